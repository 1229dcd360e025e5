import gzip
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from smalgos.localjob import LocalJob, PipeFeeder
from smalgos.training.runner import run_training

ROOT = Path(__file__).resolve().parents[3]
TRAIN_CSV = b"0,0,0\n1,5,5\n0,1,0\n1,4,5\n"


def make_job(tmp_path, hps=None, channels=None, files=None):
    job = LocalJob(tmp_path)
    job.write_config(hps if hps is not None else {"num_classes": 2},
                     channels if channels is not None else {"train": {"ContentType": "text/csv"}})
    for (ch, name), data in (files if files is not None else {("train", "a.csv"): TRAIN_CSV}).items():
        job.add_file(ch, name, data)
    return job


def run(job):
    return run_training("test-centroid", job.paths, install_signal_handler=False)


def test_success_writes_model_and_success_marker(tmp_path):
    job = make_job(tmp_path)
    assert run(job) == 0
    assert job.failure is None and job.paths.success_file.exists()
    c = np.load(job.paths.model_dir / "centroids.npy")
    np.testing.assert_allclose(c, [[0.5, 0], [4.5, 5]])


@pytest.mark.parametrize("hps, channels, files, first_line", [
    ({"num_classes": "2", "epochs": "0"}, None, None,
     "ClientError: Hyperparameter epochs: value 0 is outside the range [1, 100]"),
    ({}, None, None, "ClientError: Missing required hyperparameter: num_classes"),
    ({"num_classes": 2, "distance": "manhattan", "normalize": "true"}, None, None,
     "ClientError: Hyperparameters distance=manhattan and normalize=true cannot be combined"),
    (None, {"test": {"ContentType": "text/csv"}}, {("test", "a.csv"): TRAIN_CSV},
     "ClientError: Missing required channel: train"),
    (None, {"train": {"ContentType": "text/csv"}, "validation": {}}, None,
     "ClientError: Extraneous channel found: validation (test-centroid reads train, test)"),
    (None, {"train": {"ContentType": "application/x-parquet"}}, None, "ClientError: "),
    (None, None, {("train", "a.csv"): b"0,1,2\n1,2\n"}, "ClientError: "),
    (None, None, {("train", "a.csv"): b"0,1,2\n3,2,2\n"}, "ClientError: Channel 'train': labels must be 0..1"),
])
def test_client_errors_fill_the_failure_file(tmp_path, hps, channels, files, first_line):
    job = make_job(tmp_path, hps, channels, files)
    assert run(job) == 1
    failure = job.failure
    assert failure.splitlines()[0].startswith(first_line)
    assert "Traceback" not in failure  # the user's fault: no stack trace to wade through


def test_content_type_and_bad_rows_are_named(tmp_path):
    job = make_job(tmp_path, channels={"train": {"ContentType": "application/x-parquet"}})
    run(job)
    assert "application/x-parquet" in job.failure and "train" in job.failure
    job = make_job(tmp_path / "2", files={("train", "part-7.csv"): b"0,1,2\n1,2\n"})
    run(job)
    assert "part-7.csv" in job.failure and "line 2" in job.failure


def test_algorithm_errors_carry_a_traceback(tmp_path, monkeypatch):
    import smalgos_test_centroid.algorithm as algo
    monkeypatch.setattr(algo, "accuracy", lambda *a: 1 / 0)
    job = make_job(tmp_path)
    assert run(job) == 1
    lines = job.failure.splitlines()
    assert lines[0] == "AlgorithmError: ZeroDivisionError: division by zero"
    assert "Traceback" in job.failure


def test_file_mode_reads_nested_sorted_gzip_and_skips_dotfiles(tmp_path):
    files = {("train", "b/part-1.csv.gz"): gzip.compress(b"1,4,5\n"),
             ("train", "a/part-0.csv"): b"0,0,0\n1,5,5\n",
             ("train", ".hidden.csv"): b"garbage that would fail\n",
             ("train", ".cache/x.csv"): b"garbage\n",
             ("train", "c/part-2"): gzip.compress(b"0,1,0\n")}  # gzip found by magic, not name
    job = make_job(tmp_path, files=files)
    assert run(job) == 0, job.failure
    np.testing.assert_allclose(np.load(job.paths.model_dir / "centroids.npy"), [[0.5, 0], [4.5, 5]])


def test_pipe_mode_reads_one_fifo_per_epoch(tmp_path):
    job = make_job(tmp_path, hps={"num_classes": 2, "epochs": 2},
                   channels={"train": {"ContentType": "text/csv", "TrainingInputMode": "Pipe"}}, files={})
    # The test algorithm makes two passes per epoch (fit, then train accuracy): 4 FIFOs.
    with PipeFeeder(job.paths, "train", TRAIN_CSV, epochs=4, chunk_size=5) as feeder:
        assert run(job) == 0, job.failure
    assert feeder.epochs_served == 4
    np.testing.assert_allclose(np.load(job.paths.model_dir / "centroids.npy"), [[0.5, 0], [4.5, 5]])


def test_pipe_wait_is_read_when_the_job_starts(tmp_path, monkeypatch):
    """$SMALGOS_PIPE_WAIT_SECONDS set after import still counts: it is read when the job starts."""
    monkeypatch.setenv("SMALGOS_PIPE_WAIT_SECONDS", "0.2")
    job = make_job(tmp_path, channels={"train": {"ContentType": "text/csv", "TrainingInputMode": "Pipe"}}, files={})
    started = time.monotonic()
    assert run(job) == 1
    assert time.monotonic() - started < 30
    assert "Pipe mode FIFO" in job.failure and "did not appear within 0 s" in job.failure.splitlines()[0]


def test_sigterm_stops_cleanly_with_exit_143(tmp_path):
    job = make_job(tmp_path, hps={"num_classes": 2, "epochs": 5},
                   channels={"train": {"ContentType": "text/csv", "TrainingInputMode": "Pipe"}}, files={})
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(job.paths.base),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests/algorithms"), os.environ.get("PYTHONPATH", "")])}
    # Only the first epoch's two FIFOs ever appear: the job then waits for train_2 until SIGTERM.
    with PipeFeeder(job.paths, "train", TRAIN_CSV, epochs=2):
        proc = subprocess.Popen([sys.executable, "-m", "smalgos.cli", "train", "--algorithm", "test-centroid"],
                                env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.time() + 60
        for line in proc.stdout:
            if "epoch=0, train accuracy" in line or time.time() > deadline:
                break
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 143, out
    assert job.failure.startswith("Stopped: the job received SIGTERM")


def test_recordio_wrapped_csv_objects_in_pipe_mode(tmp_path):
    """RecordWrapperType=RecordIO: each S3 object arrives as one RecordIO record in the stream."""
    from smalgos.formats.recordio import frame_records
    job = make_job(tmp_path, hps={"num_classes": 2},
                   channels={"train": {"ContentType": "text/csv", "TrainingInputMode": "Pipe",
                                       "RecordWrapperType": "RecordIO"}}, files={})
    stream = frame_records([b"0,0,0\n1,5,5\n", b"0,1,0\n1,4,5\n"])
    with PipeFeeder(job.paths, "train", stream, epochs=2):
        assert run(job) == 0, job.failure
    np.testing.assert_allclose(np.load(job.paths.model_dir / "centroids.npy"), [[0.5, 0], [4.5, 5]])


def test_sdk_written_sparse_protobuf_channel(tmp_path):
    import io
    import scipy.sparse as sp
    from sagemaker.amazon.common import write_spmatrix_to_sparse_tensor
    buf = io.BytesIO()
    x = sp.csr_matrix(np.array([[0, 0], [5, 5], [1, 0], [4, 5]], dtype=np.float32))
    write_spmatrix_to_sparse_tensor(buf, x, np.array([0, 1, 0, 1], dtype=np.float32))
    job = make_job(tmp_path, channels={"train": {"ContentType": "application/x-recordio-protobuf"}},
                   files={("train", "matrix_0.pbr"): buf.getvalue()})
    assert run(job) == 0, job.failure
    np.testing.assert_allclose(np.load(job.paths.model_dir / "centroids.npy"), [[0.5, 0], [4.5, 5]])
