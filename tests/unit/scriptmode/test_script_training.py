"""Script mode through the `train` program: a user's XGBoost script trains from SM_CHANNEL_TRAIN and
saves to SM_MODEL_DIR, with the arguments, environment, exit code, failure file and SIGTERM
handling of SageMaker's framework containers."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest

from smalgos.localjob import LocalJob
from smalgos.training.runner import run_training

from .scripts import EXITS, RAISES, TRAIN, WAITS_FOR_SIGTERM

xgb = pytest.importorskip("xgboost")

HPS = {"max_depth": 3, "eta": 0.3, "num_round": 20, "objective": '"binary:logistic"',
       "sagemaker_program": '"train.py"', "sagemaker_region": '"us-east-1"',
       "sagemaker_container_log_level": 20, "sagemaker_job_name": '"job-1"',
       "sagemaker_distributed_dataparallel_enabled": "false"}


def breast_cancer():
    from sklearn.datasets import load_breast_cancer

    X, y = load_breast_cancer(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    return X[order].astype(np.float32), y[order].astype(np.float32)


def make_job(tmp_path, script: str = TRAIN, program: str = "train.py", extra: dict | None = None,
             submit: str | None = "dir", hps: dict | None = None) -> LocalJob:
    job = LocalJob(tmp_path / "opt_ml")
    src = tmp_path / "src"
    src.mkdir()
    (src / program).write_text(script)
    for name, text in (extra or {}).items():
        (src / name).write_text(text)
    submit_hps = {"sagemaker_submit_directory": json.dumps(f"file://{src}")} if submit == "dir" else {}
    hps = {**HPS, "sagemaker_program": json.dumps(program), **submit_hps, **(hps or {})}
    X, y = breast_cancer()
    rows = np.column_stack([y[:400], X[:400]])
    job.write_config(hps, {"train": {"ContentType": "text/csv"}})
    buf = io.StringIO()
    np.savetxt(buf, rows, delimiter=",", fmt="%.9g")
    job.add_file("train", "train.csv", buf.getvalue().encode())
    return job


def run(job: LocalJob) -> int:
    return run_training("xgboost", job.paths, install_signal_handler=False)


def test_script_trains_a_booster_with_the_toolkit_arguments_and_environment(tmp_path):
    job = make_job(tmp_path)
    assert run(job) == 0, job.failure
    assert job.paths.success_file.exists() and job.failure is None

    booster = xgb.Booster(model_file=str(job.paths.model_dir / "xgboost-model"))
    X, y = breast_cancer()
    accuracy = np.mean((booster.predict(xgb.DMatrix(X[400:])) > 0.5) == y[400:])
    assert accuracy > 0.9

    seen = json.loads((job.paths.output_data_dir / "seen.json").read_text())
    base = str(job.paths.base)
    # The user's hyperparameters, JSON-decoded, sorted, as `--name value`; the platform's are not theirs.
    assert seen["argv"] == ["--eta", "0.3", "--max_depth", "3", "--num_round", "20", "--objective",
                            "binary:logistic"]
    assert json.loads(seen["SM_USER_ARGS"]) == seen["argv"]
    assert json.loads(seen["SM_HPS"]) == {"eta": 0.3, "max_depth": 3, "num_round": 20, "objective": "binary:logistic"}
    assert seen["SM_HP_OBJECTIVE"] == "binary:logistic" and seen["SM_HP_MAX_DEPTH"] == "3"
    assert json.loads(seen["SM_FRAMEWORK_PARAMS"]) == {"sagemaker_distributed_dataparallel_enabled": False}
    assert seen["SM_MODEL_DIR"] == f"{base}/model"
    assert seen["SM_CHANNEL_TRAIN"] == f"{base}/input/data/train"
    assert json.loads(seen["SM_CHANNELS"]) == ["train"]
    assert json.loads(seen["SM_HOSTS"]) == ["algo-1"] and seen["SM_CURRENT_HOST"] == "algo-1"
    assert seen["SM_OUTPUT_DATA_DIR"] == f"{base}/output/data" and seen["SM_OUTPUT_DIR"] == f"{base}/output"
    assert seen["SM_INPUT_DIR"] == f"{base}/input" and seen["SM_INPUT_CONFIG_DIR"] == f"{base}/input/config"
    assert seen["SM_MODULE_NAME"] == "train" and seen["SM_USER_ENTRY_POINT"] == "train.py"
    assert seen["SM_MODULE_DIR"] == f"file://{tmp_path / 'src'}"
    assert int(seen["SM_NUM_CPUS"]) == os.cpu_count() and int(seen["SM_NUM_GPUS"]) >= 0
    assert seen["SM_LOG_LEVEL"] == "20"
    assert json.loads(seen["SM_INPUT_DATA_CONFIG"])["train"]["ContentType"] == "text/csv"
    training_env = json.loads(seen["SM_TRAINING_ENV"])
    assert training_env["job_name"] == "job-1" and training_env["is_master"] is True
    assert training_env["hyperparameters"] == json.loads(seen["SM_HPS"])
    assert seen["cwd"] == f"{base}/code"  # the code is laid out in /opt/ml/code and runs there


def test_sourcedir_tarball_in_the_code_channel(tmp_path):
    job = make_job(tmp_path, submit=None)
    tarball = io.BytesIO()
    with tarfile.open(fileobj=tarball, mode="w:gz") as tar:
        tar.add(tmp_path / "src" / "train.py", arcname="train.py")
    job.add_file("code", "sourcedir.tar.gz", tarball.getvalue())
    cfg = json.loads(job.paths.input_data_config_file.read_text())
    job.paths.input_data_config_file.write_text(json.dumps({**cfg, "code": {"TrainingInputMode": "File"}}))
    assert run(job) == 0, job.failure
    assert (job.paths.model_dir / "xgboost-model").is_file()
    assert json.loads(json.loads((job.paths.output_data_dir / "seen.json").read_text())["SM_CHANNELS"]) == [
        "code", "train"]


def test_local_sourcedir_tarball_refuses_paths_out_of_the_code_dir(tmp_path):
    job = make_job(tmp_path, submit=None)
    evil = tmp_path / "sourcedir.tar.gz"
    with tarfile.open(evil, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escaped.py")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    hps = json.loads(job.paths.hyperparameters_file.read_text())
    job.paths.hyperparameters_file.write_text(json.dumps({**hps, "sagemaker_submit_directory": json.dumps(str(evil))}))
    assert run(job) == 1
    assert job.failure.startswith("ClientError: Refusing to extract") and str(evil) in job.failure
    assert not (tmp_path / "opt_ml" / "escaped.py").exists()


def test_a_raising_script_fails_with_its_exit_code_and_traceback(tmp_path):
    job = make_job(tmp_path, script=RAISES)
    assert run(job) == 1
    first, *rest = job.failure.splitlines()
    assert first == ("AlgorithmError: ExecuteUserScriptError: train.py exited with code 1: ValueError: column"
                     " 'age' is missing from train.csv")
    details = "\n".join(rest)
    assert "Traceback (most recent call last)" in details and 'load("train.csv")' in details


def test_the_scripts_exit_code_is_the_jobs(tmp_path):
    job = make_job(tmp_path, script=EXITS)
    assert run(job) == 3
    assert job.failure.splitlines()[0] == ("AlgorithmError: ExecuteUserScriptError: train.py exited with code 3:"
                                           " giving up")
    assert not job.paths.success_file.exists()


@pytest.mark.parametrize("hps, message", [
    ({"sagemaker_program": '"missing.py"'}, "Hyperparameter sagemaker_program: 'missing.py' is not in the code"
                                             " directory"),
    ({"sagemaker_submit_directory": '"/nonexistent/src"'}, "Hyperparameter sagemaker_submit_directory:"
                                                           " /nonexistent/src does not exist"),
    ({"sagemaker_submit_directory": '"s3://bucket/src/sourcedir.tar.gz"'}, None),
])
def test_missing_code_is_a_client_error_naming_it(tmp_path, hps, message):
    job = make_job(tmp_path, hps=hps)
    assert run(job) == 1
    first = job.failure.splitlines()[0]
    assert first.startswith("ClientError: Hyperparameter sagemaker_")
    if message:
        assert message in first
    else:  # S3: downloaded with boto3 where installed; here there are no credentials nor network
        assert "s3://bucket/src/sourcedir.tar.gz" in first


def test_requirements_are_installed_and_an_uninstallable_one_is_a_client_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as offline: only what is installed or local
    ok = make_job(tmp_path / "ok", extra={"requirements.txt": "numpy\n"})
    assert run(ok) == 0, ok.failure
    bad = make_job(tmp_path / "bad", extra={"requirements.txt": "smalgos-no-such-package==9.9\n"})
    assert run(bad) == 1
    first = bad.failure.splitlines()[0]
    assert first.startswith("ClientError: ") and "requirements.txt: pip could not install" in first
    assert "smalgos-no-such-package" in first


def test_an_algorithm_without_script_mode_refuses_sagemaker_program(tmp_path):
    job = make_job(tmp_path)
    assert run_training("kmeans", job.paths, install_signal_handler=False) == 1
    assert job.failure.startswith("ClientError: Hyperparameter sagemaker_program: the kmeans image has no script")


def test_sigterm_is_forwarded_to_the_script_and_the_job_stops_with_143(tmp_path):
    job = make_job(tmp_path, script=WAITS_FOR_SIGTERM)
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(job.paths.base)}
    proc = subprocess.Popen([sys.executable, "-m", "smalgos.cli", "train", "--algorithm", "xgboost"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    for line in proc.stdout:
        if line.strip() == "ready" or time.time() > deadline:
            break
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143, out
    assert (job.paths.model_dir / "got-sigterm").read_text() == "yes"
    assert job.failure.startswith("Stopped: the job received SIGTERM")
