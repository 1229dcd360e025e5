"""`docker run IMAGE train` through a host folder mounted as /opt/ml."""

from __future__ import annotations

import os
import subprocess
import time

import numpy as np
import pytest

from .helpers import DATA, ROOT, hyperparameters, load_split, skip_or_fail, unique

pytestmark = pytest.mark.container


def test_csv_training_writes_model_success_and_metrics(trained):
    model_files = sorted(p.name for p in (trained / "model").iterdir())
    assert model_files, "no model written"
    assert (trained / "output" / "success").exists()
    assert not (trained / "output" / "failure").exists()


def test_recordio_protobuf_training_from_sdk_bytes(engine, image, tmp_path):
    """Training data written by the SageMaker SDK's own recordIO-protobuf writer."""
    from sagemaker.amazon.common import write_numpy_to_dense_tensor
    from smalgos.localjob import LocalJob

    X, y = load_split("train")
    job = LocalJob(tmp_path / "opt_ml")
    job.write_config(hyperparameters(epochs=5),
                     {"train": {"ContentType": "application/x-recordio-protobuf"}})
    path = job.paths.channel_dir("train") / "train.pbr"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        write_numpy_to_dense_tensor(f, X, y)
    result = engine.run(image, "train", volumes={str(job.paths.base): "/opt/ml"})
    assert result.returncode == 0, result.logs[-4000:]
    assert any(job.paths.model_dir.iterdir())
    assert "#quality_metric: host=algo-1, train" in result.logs


def test_started_with_no_command_it_trains_as_sdk_v3_local_mode_does(engine, image, tmp_path):
    """SDK v3's ModelTrainer local mode starts the container with no command: the job's config is
    there, so the image trains (and writes the model), instead of printing its usage."""
    from smalgos.localjob import LocalJob

    job = LocalJob(tmp_path / "opt_ml")
    job.write_config(hyperparameters(epochs=2), {"train": {"ContentType": "text/csv"}})
    job.add_file("train", "train.csv", (DATA / "train.csv").read_bytes())
    result = engine.run(image, volumes={str(job.paths.base): "/opt/ml"})
    assert result.returncode == 0, result.logs[-4000:]
    assert "no command given" in result.logs and "so: train" in result.logs
    assert any(job.paths.model_dir.iterdir()) and job.paths.success_file.exists()


def test_user_error_exits_non_zero_with_failure_reason(engine, image, tmp_path):
    from smalgos.localjob import LocalJob

    job = LocalJob(tmp_path / "opt_ml")
    job.write_config(hyperparameters(predictor_type="not_a_predictor"), {"train": {"ContentType": "text/csv"}})
    job.add_file("train", "train.csv", (DATA / "train.csv").read_bytes())
    result = engine.run(image, "train", volumes={str(job.paths.base): "/opt/ml"})
    assert result.returncode != 0
    failure = (job.paths.failure_file).read_text()
    assert "predictor_type" in failure.splitlines()[0]
    assert not any(job.paths.model_dir.iterdir())


def test_missing_train_channel_is_a_client_error(engine, image, tmp_path):
    from smalgos.localjob import LocalJob

    job = LocalJob(tmp_path / "opt_ml")
    job.write_config(hyperparameters(), {})
    result = engine.run(image, "train", volumes={str(job.paths.base): "/opt/ml"})
    assert result.returncode != 0
    assert "train" in job.paths.failure_file.read_text()


def test_sigterm_stops_training(engine, image, tmp_path):
    """`docker stop` (SageMaker's StopTrainingJob) reaches the trainer: it exits promptly."""
    from smalgos.localjob import LocalJob

    X, y = load_split("train")
    big = np.tile(np.column_stack([y, X]), (40, 1))  # ~18k rows: many batches per epoch
    job = LocalJob(tmp_path / "opt_ml")
    job.write_config(hyperparameters(epochs=1000, mini_batch_size=10, early_stopping_patience=1000),
                     {"train": {"ContentType": "text/csv"}})
    job.paths.channel_dir("train").mkdir(parents=True, exist_ok=True)
    np.savetxt(job.paths.channel_dir("train") / "train.csv", big, delimiter=",", fmt="%.6g")
    name = unique("stop")
    engine("run", "-d", "--name", name, "-v", f"{job.paths.base}:/opt/ml", image, "train")
    try:
        deadline = time.monotonic() + 120
        while "epoch=" not in engine.logs(name):
            assert time.monotonic() < deadline, engine.logs(name)[-3000:]
            time.sleep(0.5)
        t0 = time.monotonic()
        engine("stop", "-t", "60", name)
        stopped_in = time.monotonic() - t0
        code = engine.exit_code(name)
    finally:
        engine("rm", "-f", name, check=False)
    assert stopped_in < 30, f"took {stopped_in:.1f} s to stop: SIGTERM did not reach the trainer?"
    assert code != 137, "killed, not stopped by SIGTERM"
    assert code != 0


@pytest.mark.parametrize("algo", ["linear-learner", "xgboost"])
def test_two_hosts_with_docker_compose(engine, algo_image, tmp_path, algo):
    """docker-compose.yml's algo-1/algo-2: one network, one resourceconfig.json each. XGBoost's two
    hosts form one cluster (the tracker on algo-1) and print the same metrics."""
    from smalgos.localjob import LocalJob

    if not _compose_available():
        skip_or_fail("docker-compose not installed")
    image = algo_image(algo)
    job = LocalJob(tmp_path / "opt_ml")
    hps = hyperparameters(epochs=3) if algo == "linear-learner" else {"num_round": 5, "objective": "binary:logistic"}
    job.write_config(hps, {"train": {"ContentType": "text/csv"}})
    job.add_file("train", "train.csv", (DATA / "train.csv").read_bytes())
    project = unique("compose").replace("-", "")
    env = {**os.environ, "OPT_ML": str(job.paths.base), "ALGO": algo, "TAG": image.rsplit(":", 1)[1]}
    compose = ["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "-p", project]
    try:
        up = subprocess.run([*compose, "up", "--no-color", "algo-1", "algo-2"], env=env, capture_output=True,
                            text=True, timeout=900)
        logs = up.stdout + up.stderr
        codes = {}
        for host in ("algo-1", "algo-2"):
            cid = subprocess.run([*compose, "ps", "-q", host], env=env, capture_output=True, text=True).stdout
            codes[host] = engine("inspect", "--format", "{{.State.ExitCode}}", cid.strip()).stdout.strip()
    finally:
        subprocess.run([*compose, "down", "--remove-orphans"], env=env, capture_output=True, timeout=300)
    assert codes == {"algo-1": "0", "algo-2": "0"}, logs[-4000:]
    assert (job.paths.base / "output" / "algo-1" / "success").exists()
    assert (job.paths.base / "output" / "algo-2" / "success").exists()
    assert any(job.paths.model_dir.iterdir())
    if algo == "linear-learner":
        assert "host=algo-1" in logs and "host=algo-2" in logs
    else:
        assert "is worker 0 of 2" in logs and "is worker 1 of 2" in logs
        per_host = [[line.split("|", 1)[1].strip() for line in logs.splitlines()
                     if line.startswith(host) and "train-logloss" in line] for host in ("algo-1", "algo-2")]
        assert len(per_host[0]) == 5 and per_host[0] == per_host[1], logs[-4000:]


def _compose_available() -> bool:
    try:
        return subprocess.run(["docker-compose", "version"], capture_output=True).returncode == 0
    except FileNotFoundError:
        return False
