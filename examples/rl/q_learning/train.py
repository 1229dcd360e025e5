"""Tabular Q-learning on Gymnasium's FrozenLake (4x4), the classic update

    Q(s, a) += alpha * (reward + discount * max Q(s') - Q(s, a))

with epsilon-greedy exploration (epsilon decays linearly to `epsilon_min` over the first half of
the episodes). Runs anywhere Gymnasium does, and in the smalgos `rl` image under SageMaker's
RLEstimator: hyperparameters arrive as `--name value`, the Q-table goes to SM_MODEL_DIR as the
image's servable `q_table` policy, and each evaluation prints the line the SDK's Ray metric
definitions read (`episode_reward_mean: <success rate>`).
"""

import argparse
import json
import os

import gymnasium as gym
import numpy as np


def evaluate(env, q, episodes, seed):
    wins = 0.0
    for i in range(episodes):
        state, _ = env.reset(seed=seed + i)
        done = False
        while not done:
            state, reward, terminated, truncated, _ = env.step(int(np.argmax(q[state])))
            done = terminated or truncated
        wins += reward
    return wins / episodes


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--episodes", type=int, default=4000)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--discount", type=float, default=0.99)
    parser.add_argument("--epsilon", type=float, default=1.0)
    parser.add_argument("--epsilon_min", type=float, default=0.05)
    parser.add_argument("--is_slippery", type=lambda s: s.lower() in ("1", "true", "yes"), default=False)
    parser.add_argument("--eval_episodes", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model_dir", default=os.environ.get("SM_MODEL_DIR", "model"))
    args = parser.parse_args()

    env = gym.make("FrozenLake-v1", is_slippery=args.is_slippery)
    rng = np.random.default_rng(args.seed)
    n_states, n_actions = env.observation_space.n, env.action_space.n
    q = np.zeros((n_states, n_actions))
    decay = (args.epsilon - args.epsilon_min) / max(1, args.episodes // 2)
    epsilon = args.epsilon
    for episode in range(args.episodes):
        state, _ = env.reset(seed=args.seed + episode)
        done = False
        while not done:
            if rng.random() < epsilon:
                action = int(rng.integers(n_actions))
            else:  # greedy, ties broken at random (an all-zero row would always pick action 0)
                best = np.flatnonzero(q[state] == q[state].max())
                action = int(rng.choice(best))
            nxt, reward, terminated, truncated, _ = env.step(action)
            target = reward + (0.0 if terminated else args.discount * q[nxt].max())
            q[state, action] += args.alpha * (target - q[state, action])
            state, done = nxt, terminated or truncated
        epsilon = max(args.epsilon_min, epsilon - decay)
        if (episode + 1) % max(1, args.episodes // 10) == 0:
            rate = evaluate(env, q, args.eval_episodes, 10_000)
            print(f"iteration {episode + 1}: episode_reward_mean: {rate:.4g} epsilon: {epsilon:.3f}", flush=True)

    rate = evaluate(env, q, args.eval_episodes, 10_000)
    print(f"final success rate over {args.eval_episodes} episodes: {rate:.4g}", flush=True)
    os.makedirs(args.model_dir, exist_ok=True)
    try:
        from smalgos_rl.policy import save_q_table  # in the smalgos rl image
    except ImportError:  # elsewhere: the same array, for np.load
        np.save(os.path.join(args.model_dir, "q_table.npy"), q)
    else:
        save_q_table(q, args.model_dir)
    output = os.environ.get("SM_OUTPUT_DATA_DIR")
    if output:
        with open(os.path.join(output, "evaluation.json"), "w") as f:
            json.dump({"success_rate": rate, "episodes": args.episodes}, f)


if __name__ == "__main__":
    main()
