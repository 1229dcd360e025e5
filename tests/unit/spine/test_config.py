import json

import pytest

from smalgos.config import JobConfig
from smalgos.environment import THREAD_VARS, Paths, ServingEnv, TrainingEnv, XGBoostEnv
from smalgos.errors import ClientError
from smalgos.localjob import LocalJob


def test_base_dir_relocates_opt_ml(tmp_path):
    paths = Paths.from_env({"SAGEMAKER_BASE_DIR": str(tmp_path)})
    assert paths.hyperparameters_file == tmp_path / "input/config/hyperparameters.json"
    assert paths.channel_fifo("train", 3) == tmp_path / "input/data/train_3"
    assert Paths.from_env({}).base.as_posix() == "/opt/ml"


def test_local_mode_config_gets_defaults(tmp_path):
    """SDK local mode writes only TrainingInputMode (+ContentType) and no instance_groups."""
    job = LocalJob(tmp_path)
    job.paths.input_data_config_file.write_text(json.dumps(
        {"train": {"TrainingInputMode": "File", "ContentType": "text/csv"}, "test": {"TrainingInputMode": "Pipe"}}))
    job.paths.resource_config_file.write_text(json.dumps(
        {"current_host": "algo-2", "hosts": ["algo-2", "algo-1"], "network_interface_name": "eth0",
         "current_instance_type": "local_gpu"}))
    job.paths.hyperparameters_file.write_text("{}")
    cfg = JobConfig.load(job.paths)
    train, test = cfg.channels["train"], cfg.channels["test"]
    assert (train.input_mode, train.content_type, train.distribution, train.record_wrapper) == \
        ("File", "text/csv", "FullyReplicated", "None")
    assert test.input_mode == "Pipe" and test.content_type is None
    assert cfg.resources.hosts == ("algo-1", "algo-2") and cfg.resources.rank == 1
    assert not cfg.resources.is_master and cfg.resources.master_host == "algo-1"
    assert cfg.checkpoint_dir == job.paths.base / "checkpoints" and not cfg.checkpoint_configured


def test_full_sagemaker_config_and_checkpoint_path(tmp_path):
    job = LocalJob(tmp_path)
    job.write_config({}, {"train": {"ContentType": "text/libsvm", "RecordWrapperType": "None",
                                    "S3DistributionType": "ShardedByS3Key", "TrainingInputMode": "File"}},
                     resources={"current_host": "algo-1", "current_instance_type": "ml.m5.xlarge",
                                "current_group_name": "homogeneousCluster", "hosts": ["algo-1"],
                                "instance_groups": [{"instance_group_name": "homogeneousCluster",
                                                     "instance_type": "ml.m5.xlarge", "hosts": ["algo-1"]}],
                                "network_interface_name": "eth0"},
                     checkpoint={"S3Uri": "s3://b/ckpt", "LocalPath": str(tmp_path / "ck")})
    cfg = JobConfig.load(job.paths)
    assert cfg.channels["train"].distribution == "ShardedByS3Key"
    assert cfg.checkpoint_dir == tmp_path / "ck" and cfg.checkpoint_configured


@pytest.mark.parametrize("channel, fragment", [
    ({"TrainingInputMode": "Stream"}, "TrainingInputMode='Stream'"),
    ({"S3DistributionType": "Random"}, "S3DistributionType='Random'"),
])
def test_bad_channel_config_names_key(tmp_path, channel, fragment):
    job = LocalJob(tmp_path)
    job.write_config({}, {"train": channel})
    with pytest.raises(ClientError, match=fragment):
        JobConfig.load(job.paths)


def test_broken_json_names_the_file(tmp_path):
    job = LocalJob(tmp_path)
    job.paths.hyperparameters_file.write_text("{not json")
    with pytest.raises(ClientError, match="hyperparameters.json is not valid JSON"):
        JobConfig.load(job.paths)


def test_serving_env_defaults_and_overrides():
    env = ServingEnv.from_env({})
    assert (env.port, env.timeout, env.max_payload_mb, env.batch, env.batch_strategy) == \
        (8080, 60, 6, False, "MULTI_RECORD")
    env = ServingEnv.from_env({"SAGEMAKER_BIND_TO_PORT": "9000", "SAGEMAKER_MODEL_SERVER_WORKERS": "3",
                               "SAGEMAKER_BATCH": "True", "SAGEMAKER_MAX_PAYLOAD_IN_MB": "20",
                               "SAGEMAKER_BATCH_STRATEGY": "SingleRecord"})
    assert (env.port, env.workers, env.batch, env.max_payload_bytes, env.batch_strategy) == \
        (9000, 3, True, 20 * 1024 * 1024, "SINGLE_RECORD")


@pytest.mark.parametrize("cpus, workers, threads", [(8, None, 1), (8, "2", 4), (8, "3", 2), (2, "1", 2), (2, "4", 1)])
def test_threads_per_worker_share_the_cores(monkeypatch, cpus, workers, threads):
    """One worker per core (the default) gets one thread each; fewer workers get the rest."""
    monkeypatch.setattr("os.cpu_count", lambda: cpus)
    env = ServingEnv.from_env({} if workers is None else {"SAGEMAKER_MODEL_SERVER_WORKERS": workers})
    assert env.threads_per_worker == threads


def test_worker_thread_vars_keep_what_is_set(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    env = ServingEnv.from_env({"SAGEMAKER_MODEL_SERVER_WORKERS": "2", "OMP_NUM_THREADS": "1"})
    assert env.worker_thread_vars == {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "4"}
    assert set(ServingEnv.from_env({}).worker_thread_vars) == set(THREAD_VARS)


def test_training_env_defaults_and_overrides():
    env = TrainingEnv.from_env({})
    assert (env.pipe_wait_seconds, env.device) == (600.0, None)
    env = TrainingEnv.from_env({"SMALGOS_PIPE_WAIT_SECONDS": "2.5", "SMALGOS_DEVICE": "cuda:1"})
    assert (env.pipe_wait_seconds, env.device) == (2.5, "cuda:1")
    with pytest.raises(ValueError, match="SMALGOS_PIPE_WAIT_SECONDS"):
        TrainingEnv.from_env({"SMALGOS_PIPE_WAIT_SECONDS": "soon"})


def test_xgboost_env_defaults_and_overrides():
    env = XGBoostEnv.from_env({})
    assert (env.tracker_port, env.connect_seconds, env.wait_seconds) == (9099, 300, 3600)
    env = XGBoostEnv.from_env({"SMALGOS_XGBOOST_TRACKER_PORT": "9200", "SMALGOS_XGBOOST_CONNECT_SECONDS": "60",
                               "SMALGOS_XGBOOST_WAIT_SECONDS": "10"})
    assert (env.tracker_port, env.connect_seconds, env.wait_seconds) == (9200, 60, 10)


def test_environment_is_read_only_in_environment_py():
    """No other module of the spine or of an algorithm reads `os.environ` (or `os.getenv`)."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[3]
    reads = re.compile(r"\bos\.environ\b(?!\.update\(env\.)|\bgetenv\(")  # writing a snapshot back is fine
    offenders = []
    for src in [*(root / "common/smalgos").rglob("*.py"), *(root / "containers").glob("*/smalgos_*/**/*.py")]:
        if src.name == "environment.py" and src.parent.name == "smalgos":
            continue
        for n, line in enumerate(src.read_text(encoding="utf-8").splitlines(), 1):
            if reads.search(line.split("#")[0]):
                offenders.append(f"{src.relative_to(root)}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
