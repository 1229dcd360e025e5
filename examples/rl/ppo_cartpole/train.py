"""RLlib PPO on Gymnasium's CartPole-v1, as a SageMaker RLEstimator entry point (smalgos `rl` image).

Each training iteration prints the line SageMaker's Ray metric definitions read
(`episode_reward_mean: <x>`); training stops at `--stop_reward` or after `--iterations`. The policy
is saved to SM_MODEL_DIR as the image serves it (`smalgos_rl.policy`: the network's layers in JSON,
its weights in safetensors; no pickle in the model artifact). On several hosts the image has already formed one Ray cluster
(RAY_ADDRESS): `ray.init()` joins it and the env runners spread over every node (one CPU per runner,
one kept for the learner), which the `env runners on` line shows.

    python train.py --iterations 30          # anywhere ray[rllib] and torch are installed
"""

import argparse
import os
import socket

import ray
from ray.rllib.algorithms.ppo import PPOConfig


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--stop_reward", type=float, default=450.0)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--num_epochs", type=int, default=6)
    parser.add_argument("--train_batch_size", type=int, default=4000)
    parser.add_argument("--minibatch_size", type=int, default=128)
    parser.add_argument("--num_env_runners", type=int, default=0, help="0: one per cluster CPU but one")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model_dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    args = parser.parse_args()

    ray.init(include_dashboard=False, log_to_driver=False)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    runners = args.num_env_runners or max(1, cpus - 1)
    config = (PPOConfig().environment("CartPole-v1")
              .env_runners(num_env_runners=runners, num_envs_per_env_runner=4, num_cpus_per_env_runner=1)
              .training(lr=args.lr, num_epochs=args.num_epochs, vf_loss_coeff=0.01,
                        train_batch_size_per_learner=args.train_batch_size, minibatch_size=args.minibatch_size)
              .debugging(seed=args.seed))
    algo = config.build_algo()
    hosts = algo.env_runner_group.foreach_env_runner(lambda runner: socket.gethostname(), local_env_runner=False)
    print(f"cluster CPUs: {cpus}; env runners on: {', '.join(sorted(hosts))}", flush=True)

    try:
        from smalgos_rl.report import log_result
    except ImportError:  # outside the image: print the mean return only
        def log_result(result):
            value = result["env_runners"].get("episode_return_mean")
            print(f"iteration {result['training_iteration']}: episode_reward_mean: {value}", flush=True)
            return value

    for _ in range(args.iterations):
        mean = log_result(algo.train())
        if mean is not None and mean >= args.stop_reward:
            break

    os.makedirs(args.model_dir, exist_ok=True)
    try:
        from smalgos_rl.policy import save_rllib_policy
    except ImportError:
        algo.save(os.path.join(args.model_dir, "checkpoint"))  # RLlib's own checkpoint
    else:
        save_rllib_policy(algo, args.model_dir)
    algo.stop()


if __name__ == "__main__":
    main()
