"""End to end through the /opt/ml contract: train (File and Pipe, CSV and SDK-written
recordIO-protobuf), the metric lines SageMaker scrapes, the failure file, then serve the model."""

import io
import json
import re

import numpy as np
import pytest
import scipy.sparse as sp
from sagemaker.amazon.common import write_numpy_to_dense_tensor, write_spmatrix_to_sparse_tensor

from smalgos.config import JobConfig
from smalgos.environment import ServingEnv
from smalgos.formats.protobuf import decode_predictions, dense_to_recordio
from smalgos.localjob import LocalJob, PipeFeeder
from smalgos.serving.app import create_app
from smalgos.training.job import TrainingJob
from smalgos.training.runner import run_training
from smalgos_linear_learner.declaration import ALGORITHM
from smalgos_linear_learner.serve import load_model
from smalgos_linear_learner.train import train

CSV = {"ContentType": "text/csv"}
PROTOBUF = {"ContentType": "application/x-recordio-protobuf"}


def csv_bytes(X, y=None):
    rows = X if y is None else np.column_stack([y, X])
    buf = io.StringIO()
    np.savetxt(buf, rows, delimiter=",", fmt="%.8g")
    return buf.getvalue().encode()


def protobuf_bytes(X, y, sparse=False):
    buf = io.BytesIO()
    if sparse:
        write_spmatrix_to_sparse_tensor(buf, sp.csr_matrix(X), y)
    else:
        write_numpy_to_dense_tensor(buf, np.asarray(X, dtype=np.float32), np.asarray(y, dtype=np.float32))
    return buf.getvalue()


def run(job):
    return run_training("linear-learner", job.paths, install_signal_handler=False)


def client(model_dir):
    return create_app(ALGORITHM, load_model(model_dir), ServingEnv.from_env({})).test_client()


@pytest.fixture(scope="module")
def binary_job(tmp_path_factory, cancer):
    """Binary classifier trained from CSV in File mode with validation and test channels."""
    Xtr, Xte, ytr, yte = cancer
    job = LocalJob(tmp_path_factory.mktemp("binary"))
    job.write_config({"predictor_type": "binary_classifier", "mini_batch_size": 32, "epochs": 4, "num_models": 4,
                      "force_dense": "True"}, {"train": CSV, "validation": CSV, "test": CSV})
    job.add_file("train", "part-0.csv", csv_bytes(Xtr[:300], ytr[:300]))
    job.add_file("train", "nested/part-1.csv", csv_bytes(Xtr[300:], ytr[300:]))
    job.add_file("validation", "v.csv", csv_bytes(Xte[:70], yte[:70]))
    job.add_file("test", "t.csv", csv_bytes(Xte[70:], yte[70:]))
    return job


def test_file_mode_csv_trains_and_prints_aws_metric_lines(binary_job, capsys):
    assert run(binary_job) == 0, binary_job.failure
    out = capsys.readouterr().out
    assert binary_job.paths.success_file.exists()
    assert sorted(p.name for p in binary_job.paths.model_dir.iterdir()) == ["model.json", "model.safetensors"]
    found = {}
    for metric in ALGORITHM.metrics:
        values = re.findall(metric.regex, out)
        if values:
            found[metric.name] = [float(v) for v in values]
    assert len(found["train:objective_loss"]) == len(found["validation:objective_loss"]) >= 1
    assert len(found["validation:objective_loss:final"]) == 1 and len(found["test:objective_loss"]) == 1
    for name in ("binary_classification_accuracy", "binary_f_beta", "precision", "recall", "roc_auc_score"):
        assert 0.85 < found[f"test:{name}"][0] <= 1.0, name
        assert len(found[f"validation:{name}"]) == 1
    assert found["train:progress"][-1] == 100.0 or len(found["train:progress"]) < 4
    assert all(v > 0 for v in found["train:throughput"])
    assert "#test_score (algo-1) : ('binary_classification_accuracy'," in out
    assert "#validation_score (algo-1) : ('roc_auc_score'," in out


def test_served_binary_model_answers_in_aws_shapes(binary_job, cancer):
    if not (binary_job.paths.model_dir / "model.json").exists():
        assert run(binary_job) == 0
    _, Xte, _, _ = cancer
    c = client(binary_job.paths.model_dir)
    r = c.post("/invocations", data=csv_bytes(Xte[:3]), content_type="text/csv")
    assert r.status_code == 200 and r.mimetype == "application/json"
    preds = r.get_json()["predictions"]
    assert len(preds) == 3 and set(preds[0]) == {"score", "predicted_label"}
    assert all(0 <= p["score"] <= 1 and p["predicted_label"] in (0.0, 1.0) for p in preds)
    assert b'"predicted_label": 1.0' in r.data or b'"predicted_label": 0.0' in r.data  # floats, as AWS

    body = json.dumps({"instances": [{"features": Xte[0].tolist()}, {"data": {"features": {"values": Xte[1].tolist()}}}]})
    r = c.post("/invocations", data=body, headers={"Content-Type": "application/json", "Accept": "application/jsonlines"})
    lines = [json.loads(l) for l in r.data.decode().splitlines()]
    assert r.mimetype == "application/jsonlines" and [l["score"] for l in lines] == pytest.approx(
        [p["score"] for p in preds[:2]], rel=1e-5)

    r = c.post("/invocations", data=dense_to_recordio(Xte[:3]), headers={
        "Content-Type": "application/x-recordio-protobuf", "Accept": "application/x-recordio-protobuf"})
    decoded = decode_predictions(r.data)
    np.testing.assert_allclose(decoded.fields["score"].ravel(), [p["score"] for p in preds], rtol=1e-5)

    r = c.post("/invocations", data=csv_bytes(Xte[:2]), headers={"Content-Type": "text/csv", "Accept": "text/csv"})
    assert r.status_code == 406  # AWS documents no CSV output; we refuse rather than answer JSON silently
    r = c.post("/invocations", data=csv_bytes(Xte[:2, :29]), content_type="text/csv")
    assert r.status_code == 400 and "30" in r.get_json()["message"] and "29" in r.get_json()["message"]


def test_pipe_mode_sdk_protobuf_multiclass(tmp_path, wine):
    Xtr, Xte, ytr, yte = wine
    job = LocalJob(tmp_path)
    epochs = 3
    job.write_config({"predictor_type": "multiclass_classifier", "num_classes": 3, "mini_batch_size": 16,
                      "epochs": epochs, "num_models": 4, "early_stopping_patience": 10},
                     {"train": {**PROTOBUF, "TrainingInputMode": "Pipe"},
                      "validation": {**PROTOBUF, "TrainingInputMode": "Pipe"}})
    train_bytes, val_bytes = protobuf_bytes(Xtr, ytr), protobuf_bytes(Xte, yte)
    # train: scaler pass + one pass per epoch + final scoring; validation: one per epoch + final scoring
    with PipeFeeder(job.paths, "train", train_bytes, epochs=epochs + 2) as ft, \
            PipeFeeder(job.paths, "validation", val_bytes, epochs=epochs + 1) as fv:
        assert run(job) == 0, job.failure
    assert ft.epochs_served == epochs + 2 and fv.epochs_served == epochs + 1
    c = client(job.paths.model_dir)
    r = c.post("/invocations", data=csv_bytes(Xte), content_type="text/csv")
    preds = r.get_json()["predictions"]
    assert len(preds[0]["score"]) == 3 and sum(preds[0]["score"]) == pytest.approx(1, abs=1e-5)
    assert np.mean([p["predicted_label"] for p in preds] == yte) > 0.9


def test_file_mode_sdk_sparse_protobuf_regression_and_hpo(tmp_path, diabetes):
    Xtr, _, ytr, _ = diabetes
    X = Xtr.copy()
    X[X < 0] = 0.0
    job = LocalJob(tmp_path)
    job.write_config({"predictor_type": "regressor", "mini_batch_size": 32, "epochs": 3, "feature_dim": 10,
                      "_tuning_objective_metric": "validation:mse"}, {"train": PROTOBUF})
    job.add_file("train", "matrix_0.pbr", protobuf_bytes(X, ytr, sparse=True))
    assert run(job) == 0, job.failure
    meta = json.loads((job.paths.model_dir / "model.json").read_text())
    assert meta["hyperparameters"]["num_models"] == 1 and meta["predictor_type"] == "regressor"
    r = client(job.paths.model_dir).post("/invocations", data=csv_bytes(X[:2]), content_type="text/csv")
    assert set(r.get_json()["predictions"][0]) == {"score"}


@pytest.mark.parametrize("hps, data, first_line", [
    ({"predictor_type": "binary_classifier", "loss": "squared_loss"}, None, "ClientError: Hyperparameter loss"),
    ({"predictor_type": "multiclass_classifier"}, None, "ClientError: Hyperparameter num_classes"),
    ({"predictor_type": "binary_classifier", "epochs": "0"}, None, "ClientError: Hyperparameter epochs"),
    ({"predictor_type": "binary_classifier"}, b"2,1,1\n0,1,2\n", "ClientError: The training data: binary_classifier labels must be 0 or 1"),
    ({"predictor_type": "binary_classifier", "feature_dim": "3"}, b"1,1,1\n0,1,2\n",
     "ClientError: The training data: records have 2 features but hyperparameter feature_dim is 3"),
])
def test_user_errors_reach_the_failure_file(tmp_path, hps, data, first_line):
    job = LocalJob(tmp_path)
    job.write_config(hps, {"train": CSV})
    job.add_file("train", "a.csv", data or b"1,1,1\n0,1,2\n")
    assert run(job) == 1
    assert job.failure.splitlines()[0].startswith(first_line)
    assert "Traceback" not in job.failure


@pytest.mark.parametrize("name", ["learning_rate", "wd", "init_scale", "huber_delta", "init_bias",
                                  "positive_example_weight_mult"])
@pytest.mark.parametrize("value", ["inf", "-inf"])
def test_infinite_hyperparameters_are_refused(tmp_path, name, value):
    job = LocalJob(tmp_path)
    job.write_config({"predictor_type": "binary_classifier", name: value}, {"train": CSV})
    job.add_file("train", "a.csv", b"1,1,1\n0,1,2\n")
    assert run(job) == 1
    first = job.failure.splitlines()[0]
    assert first.startswith(f"ClientError: Hyperparameter {name}: value {value} is not a valid float"), first
    assert not any(job.paths.model_dir.iterdir())


def test_a_diverged_training_saves_no_model(tmp_path, cancer):
    Xtr, _, ytr, _ = cancer
    job = LocalJob(tmp_path)
    job.write_config({"predictor_type": "binary_classifier", "optimizer": "sgd", "learning_rate": "1e38",
                      "init_scale": "1e38", "num_models": "1", "epochs": "1", "mini_batch_size": "32"},
                     {"train": CSV})
    job.add_file("train", "a.csv", csv_bytes(Xtr, ytr))
    assert run(job) == 1
    first = job.failure.splitlines()[0]
    assert first.startswith("ClientError: Training diverged"), first
    for name in ("learning_rate", "wd", "l1", "init_scale", "normalize_data"):
        assert name in first
    assert not any(job.paths.model_dir.iterdir())


def _two_runs(lj, caplog, cancer):
    Xtr, _, ytr, _ = cancer
    lj.add_file("train", "a.csv", csv_bytes(Xtr, ytr))
    caplog.set_level("INFO")
    assert run(lj) == 0, lj.failure
    assert "Resuming from the checkpoint" not in caplog.text
    caplog.clear()
    assert run(lj) == 0, lj.failure
    return caplog.text


def test_no_checkpoints_unless_the_job_asks_for_them(tmp_path, caplog, cancer):
    lj = LocalJob(tmp_path)
    lj.write_config({"predictor_type": "binary_classifier", "mini_batch_size": 32, "epochs": 2, "num_models": 2},
                    {"train": CSV})  # no checkpointconfig.json
    second = _two_runs(lj, caplog, cancer)
    assert "Resuming from the checkpoint" not in second
    ckpt = lj.paths.default_checkpoint_dir
    assert not ckpt.exists() or not any(ckpt.rglob("*"))


def test_a_configured_checkpoint_is_written_and_resumed(tmp_path, caplog, cancer):
    lj = LocalJob(tmp_path)
    lj.write_config({"predictor_type": "binary_classifier", "mini_batch_size": 32, "epochs": 2, "num_models": 2},
                    {"train": CSV}, checkpoint={"LocalPath": str(tmp_path / "ckpt")})
    second = _two_runs(lj, caplog, cancer)
    assert "Resuming from the checkpoint" in second
    assert (tmp_path / "ckpt" / "linear-learner-checkpoint.safetensors").exists()


def test_stop_request_still_saves_a_model(tmp_path, cancer):
    Xtr, _, ytr, _ = cancer
    lj = LocalJob(tmp_path)
    lj.write_config({"predictor_type": "binary_classifier", "mini_batch_size": 32, "num_models": 2}, {"train": CSV})
    lj.add_file("train", "a.csv", csv_bytes(Xtr, ytr))
    job = TrainingJob.from_config(ALGORITHM, JobConfig.load(lj.paths), lj.paths)
    job.stop_event.set()  # as after SIGTERM
    train(job)
    assert (lj.paths.model_dir / "model.safetensors").exists()


def test_a_model_state_larger_than_memory_is_refused_up_front(tmp_path, monkeypatch):
    """A wide sparse recordIO job with num_models=auto is sized before any weight is allocated."""
    from smalgos_linear_learner import trainer

    monkeypatch.setattr(trainer, "available_memory", lambda device: 200_000_000)  # 0.2 GB
    rng = np.random.default_rng(0)
    d = 1_000_000
    X = sp.random(40, d, density=1e-5, format="csr", dtype=np.float32, random_state=0)
    y = (rng.random(40) > 0.5).astype(np.float32)
    job = LocalJob(tmp_path)
    job.write_config({"predictor_type": "binary_classifier", "feature_dim": str(d), "num_models": "auto"},
                     {"train": PROTOBUF})
    job.add_file("train", "a.pbr", protobuf_bytes(X, y, sparse=True))
    assert run(job) == 1
    first = job.failure.splitlines()[0]
    assert first.startswith("ClientError: Linear Learner needs about "), first
    # 32 models x 1e6 features x 4 bytes: 0.128 GB a copy; adam 2 copies, best 1, batch work 8
    assert "0.20 GB of memory is available" in first and "num_models=32" in first
    assert "weights 0.13 GB" in first and "adam state 0.26 GB" in first and "best copies 0.13 GB" in first
    assert "weights 0.13 GB" in first and "per-batch work 1.02 GB" in first
    assert "num_models=1 needs about 0.09 GB" in first and "more memory" in first and "feature_dim" in first
    assert not any(job.paths.model_dir.iterdir())


def test_non_finite_features_name_the_file_and_line(tmp_path):
    """CSV in File mode: the line (blank lines counted), in a gzip file too; the first file is clean."""
    import gzip

    job = LocalJob(tmp_path)
    job.write_config({"predictor_type": "binary_classifier", "mini_batch_size": 2}, {"train": CSV})
    job.add_file("train", "part-0.csv", b"1,1,1\n0,1,2\n1,2,2\n")
    bad = job.add_file("train", "part-1.csv.gz", gzip.compress(b"1,1,1\n\n0,1,2\n1,inf,2\n0,nan,1\n"))
    assert run(job) == 1
    assert job.failure.splitlines()[0] == (
        f"ClientError: Channel 'train': 2 feature value(s) are NaN or infinite, the first in line 4 of {bad} "
        "(feature column 1); every feature must be a finite number"), job.failure


@pytest.mark.parametrize("channel", ["train", "validation"])
def test_non_finite_protobuf_features_name_the_file_and_record(tmp_path, channel):
    X = np.ones((6, 3), np.float32)
    X[4, 2] = np.nan
    clean = protobuf_bytes(np.ones((6, 3)), np.array([0, 1] * 3))
    job = LocalJob(tmp_path)
    job.write_config({"predictor_type": "binary_classifier"}, {"train": PROTOBUF, "validation": PROTOBUF})
    job.add_file("train", "a.pbr", clean)
    job.add_file("validation", "v.pbr", clean)
    bad = job.add_file(channel, "b.pbr", protobuf_bytes(X, np.array([0, 1] * 3)))
    assert run(job) == 1
    assert job.failure.splitlines()[0].startswith(
        f"ClientError: Channel '{channel}': 1 feature value(s) are NaN or infinite, the first in record 5 of {bad} "
        "(feature column 3)"), job.failure


def test_non_finite_features_in_pipe_mode_name_the_fifo_and_record(tmp_path):
    job = LocalJob(tmp_path)
    job.write_config({"predictor_type": "binary_classifier"}, {"train": {**CSV, "TrainingInputMode": "Pipe"}})
    with PipeFeeder(job.paths, "train", b"1,1,1\n0,1,2\n1,2,-inf\n", epochs=1):
        assert run(job) == 1
    fifo = job.paths.channel_fifo("train", 0)
    assert fifo.name == "train_0"
    assert job.failure.splitlines()[0].startswith(
        f"ClientError: Channel 'train': 1 feature value(s) are NaN or infinite, the first in record 3 of {fifo} "
        "(feature column 2)"), job.failure
