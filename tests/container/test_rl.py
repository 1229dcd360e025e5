"""The `rl` image under SageMaker SDK v2 local mode, as SageMaker RL's users drive it:
`sagemaker.rl.RLEstimator(entry_point=..., source_dir=examples/rl/..., image_uri=ours)` fits with the
example scripts, and `.deploy` serves the policy the script saved (observations in, actions out).

Also: two containers under one Ray cluster (the head on algo-1, algo-2 joins; PPO's env runners on
both), and the failures a user meets first — a script that raises, an entry point that is not in
the source directory, a requirements.txt pip cannot install — each in the failure file.

Local mode exits 0 when the training container fails (docker-compose 1.x), so the tests read the
artifacts: the model the script saved, its output data, the failure file.
"""

from __future__ import annotations

import json
import re
import tarfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from .helpers import ROLE, model_artifact, skip_or_fail, unique
from .test_hosts import HOSTS

pytestmark = pytest.mark.container

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rl"
ALGO = "rl"


def rl_estimator(session, root: Path, image: str, source_dir: Path, hyperparameters: dict,
                 entry_point: str = "train.py"):
    from sagemaker.rl import RLEstimator

    return RLEstimator(entry_point=entry_point, source_dir=str(source_dir), image_uri=image, role=ROLE,
                       instance_count=1, instance_type="local", output_path=f"file://{root}",
                       sagemaker_session=session, hyperparameters=hyperparameters,
                       # Never uploaded to (local code); naming a bucket spares `deploy` the STS call.
                       code_location="s3://unused-local-code/code")


@contextmanager
def deployed(estimator, serializer, deserializer):
    """A local endpoint on the estimator's model, and a Predictor for it: with `image_uri` the SDK's
    RLEstimator deploys a plain FrameworkModel, whose `deploy` returns no predictor (as on AWS)."""
    from sagemaker.predictor import Predictor

    name = unique("rl-endpoint")
    estimator.deploy(initial_instance_count=1, instance_type="local", endpoint_name=name, wait=False)
    predictor = Predictor(name, sagemaker_session=estimator.sagemaker_session, serializer=serializer,
                          deserializer=deserializer)
    try:
        yield predictor
    finally:
        predictor.delete_endpoint()


def output_member(model_tar: Path, name: str) -> bytes:
    with tarfile.open(model_tar.parent / "output.tar.gz") as tar:
        return tar.extractfile(name).read()


def failure_of(root: Path) -> str:
    output = next(root.rglob("output.tar.gz"))
    with tarfile.open(output) as tar:
        return tar.extractfile("failure").read().decode()


def test_q_learning_on_frozenlake_fits_and_the_deployed_policy_walks_the_lake(algo_image, session, sdk_env):
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import JSONSerializer

    est = rl_estimator(session, sdk_env / "rl-q", algo_image(ALGO), EXAMPLES / "q_learning",
                       {"episodes": 2000, "is_slippery": False})
    est.fit(wait=True, logs=False)
    model_tar = model_artifact(est)
    with tarfile.open(model_tar) as tar:
        assert {"q_table.npy", "policy.json"} <= set(tar.getnames())
    evaluation = json.loads(output_member(model_tar, "data/evaluation.json"))
    assert evaluation["success_rate"] == 1.0  # non-slippery FrozenLake: the greedy path always arrives

    # FrozenLake 4x4 (SFFF / FHFH / FFFH / HFFG): from the start only down (1) or right (2) are safe,
    # and from state 14 (beside the goal) right wins.
    with deployed(est, JSONSerializer(), JSONDeserializer()) as predictor:
        answer = predictor.predict({"instances": [0, 14]})
        verbose = predictor.predict({"instances": [14]}, initial_args={"Accept": "application/json;verbose=true"})
    actions = [p["action"] for p in answer["predictions"]]
    assert actions[0] in (1, 2) and actions[1] == 2
    q_values = verbose["predictions"][0]["q_values"]
    assert len(q_values) == 4 and int(np.argmax(q_values)) == 2


def test_ppo_on_cartpole_reaches_450_and_the_deployed_policy_balances(algo_image, session, sdk_env):
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import CSVSerializer

    est = rl_estimator(session, sdk_env / "rl-ppo", algo_image(ALGO), EXAMPLES / "ppo_cartpole",
                       {"iterations": 40, "stop_reward": 450})
    est.fit(wait=True, logs=False)
    model_tar = model_artifact(est)
    with tarfile.open(model_tar) as tar:
        names = set(tar.getnames())
        spec = json.load(tar.extractfile("policy.json"))
    assert {"policy.safetensors", "policy.json"} <= names
    assert spec["format"] == "mlp" and spec["output"] == "logits"
    assert spec["action_space"] == {"type": "discrete", "n": 2} and spec["observation_shape"] == [4]

    # [cart position, cart velocity, pole angle, pole angular velocity]: a pole falling to the
    # right is caught by pushing right (1), one falling left by pushing left (0).
    falling = np.array([[0.0, 0.0, 0.1, 0.8], [0.0, 0.0, -0.1, -0.8]], dtype=np.float32)
    with deployed(est, CSVSerializer(), JSONDeserializer()) as predictor:
        answer = predictor.predict(falling)
        verbose = predictor.predict(falling, initial_args={"Accept": "application/json;verbose=true"})
    assert [p["action"] for p in answer["predictions"]] == [1, 0]
    for p in verbose["predictions"]:
        assert len(p["probabilities"]) == 2 and abs(sum(p["probabilities"]) - 1) < 1e-5
        assert p["probabilities"][p["action"]] > 0.5


def test_two_hosts_under_docker_compose_form_one_ray_cluster_and_ppo_runs_on_both(engine, algo_image, tmp_path):
    """docker-compose.yml's `algo-1` and `algo-2` (the README's two-host recipe), the code in the
    `code` channel: the head's log shows both nodes and PPO's env runners on both hosts."""
    import os
    import shutil
    import subprocess

    from smalgos.localjob import LocalJob

    compose = shutil.which("docker-compose")
    if compose is None:
        skip_or_fail("docker-compose is not installed (scripts/setup-engine.sh installs it)")
    opt_ml = tmp_path / "opt_ml"
    job = LocalJob(opt_ml)
    job.write_config({"sagemaker_program": "train.py", "iterations": "2", "stop_reward": "1000",
                      "train_batch_size": "1000"}, {"code": {}})
    job.add_file("code", "train.py", (EXAMPLES / "ppo_cartpole" / "train.py").read_bytes())
    env = {**os.environ, "ALGO": ALGO, "TAG": algo_image(ALGO).rsplit(":", 1)[1], "OPT_ML": str(opt_ml),
           "COMPOSE_PROJECT_NAME": unique("rl").replace("-", "")}
    root = Path(__file__).resolve().parents[2]
    base = [compose, "-f", str(root / "docker-compose.yml")]
    try:
        up = subprocess.run([*base, "up", "algo-1", "algo-2"], cwd=root, env=env, capture_output=True, text=True,
                            timeout=600)
        logs = up.stdout + up.stderr
        ids = subprocess.run([*base, "ps", "-a", "-q"], cwd=root, env=env, capture_output=True, text=True).stdout
        codes = sorted(engine.exit_code(cid) for cid in ids.split())
    finally:
        subprocess.run([*base, "down", "-v"], cwd=root, env=env, capture_output=True, timeout=120)
    assert codes == [0, 0], logs[-4000:]
    assert re.search(r"algo-1.*Ray cluster: 2 nodes \(.*\), 4 CPUs", logs), logs[-4000:]
    runners = re.search(r"cluster CPUs: 4; env runners on: (.*)", logs)
    assert runners and set(runners.group(1).strip().split(", ")) == set(HOSTS), logs[-4000:]
    assert "episode_reward_mean:" in logs
    assert re.search(r"algo-2.*The Ray head algo-1 has closed", logs), logs[-4000:]
    for host in HOSTS:
        assert (opt_ml / "output" / host / "success").exists(), host
    assert (opt_ml / "model" / "policy.safetensors").exists()


def test_a_failing_script_fails_the_sdk_job_with_its_error(algo_image, session, sdk_env, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("raise RuntimeError('the environment has no reward')\n")
    root = sdk_env / "rl-failing"
    try:
        rl_estimator(session, root, algo_image(ALGO), src, {}).fit(wait=True, logs=False)
    except RuntimeError:
        pass  # docker-compose 2 reports the failed container; 1.x exits 0
    assert failure_of(root).splitlines()[0] == ("AlgorithmError: ExecuteUserScriptError: train.py exited with"
                                                " code 1: RuntimeError: the environment has no reward")


@pytest.mark.parametrize("case", ["no program", "missing entry point", "bad requirements"])
def test_a_job_the_image_cannot_run_says_why_in_the_failure_file(engine, algo_image, tmp_path, case):
    from smalgos.localjob import LocalJob

    job = LocalJob(tmp_path / "job")
    code = job.paths.base / "code"
    code.mkdir(parents=True)
    (code / "train.py").write_text("print('never reached')\n")
    program = {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"/opt/ml/code"'}
    if case == "no program":
        program = {}
    if case == "missing entry point":
        program["sagemaker_program"] = '"nowhere.py"'
    if case == "bad requirements":
        (code / "requirements.txt").write_text("no-such-package-smalgos==0.0.1\n")
    job.write_config({**program, "episodes": "3"}, {})
    run = engine.run(algo_image(ALGO), "train", volumes={str(job.paths.base): "/opt/ml"}, timeout=300)
    assert run.returncode != 0, run.logs[-2000:]
    first = job.paths.failure_file.read_text().splitlines()[0]
    if case == "no program":
        assert first.startswith("ClientError: Hyperparameter sagemaker_program is missing: the rl image runs your"
                                " training script"), first
    elif case == "missing entry point":
        assert first.startswith("ClientError: Hyperparameter sagemaker_program: 'nowhere.py' is not in the code"
                                " directory"), first
        assert "train.py" in first  # what is there
    else:
        assert first.startswith("ClientError:") and "requirements.txt" in first, first
