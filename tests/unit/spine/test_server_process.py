"""The real `serve` program (gunicorn, workers forked, model loaded per worker), without a container."""
import os
import signal
import socket
import subprocess
import tempfile
import sys
import threading
import time
import urllib.request
from pathlib import Path

from smalgos.localjob import LocalJob
from smalgos.training.runner import run_training

ROOT = Path(__file__).resolve().parents[3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_centroid(tmp_path) -> LocalJob:
    """A test-centroid model in `tmp_path`'s /opt/ml: centroids (0, 0) → label 0, (4, 4) → label 1."""
    job = LocalJob(tmp_path)
    job.write_config({"num_classes": 2}, {"train": {"ContentType": "text/csv"}})
    job.add_file("train", "a.csv", b"0,0,0\n1,4,4\n")
    assert run_training("test-centroid", job.paths, install_signal_handler=False) == 0
    return job


def start_serve(job: LocalJob, algorithm="test-centroid", pythonpath=(), **env_vars) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(job.paths.base), "SAGEMAKER_BIND_TO_PORT": str(port),
           "SAGEMAKER_MODEL_SERVER_WORKERS": "2", "SMALGOS_ALGORITHM": algorithm,
           "PYTHONPATH": os.pathsep.join([*map(str, pythonpath), str(ROOT / "tests/algorithms"),
                                          os.environ.get("PYTHONPATH", "")]), **env_vars}
    # The server's output goes to a file, never a pipe: a pipe nobody drains fills up and blocks
    # the workers on their next log line (every 4xx logs one).
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen([sys.executable, "-m", "smalgos.cli", "serve"], env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True)
    proc.log = log
    return proc, port


def output(proc: subprocess.Popen) -> str:
    """What the server has printed so far."""
    proc.log.flush()
    proc.log.seek(0)
    return proc.log.read()


def wait_for_ping(proc: subprocess.Popen, port: int, seconds: float = 30) -> None:
    deadline = time.time() + seconds
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
                assert r.status == 200 and r.read() == b""
                return
        except OSError:
            assert proc.poll() is None, output(proc)
            assert time.time() < deadline, f"no /ping answer within {seconds} s"
            time.sleep(0.1)


def stop(proc: subprocess.Popen) -> str:
    """SIGTERM, the exit awaited; the server's output."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=40)
    return output(proc)


def invoke(port: int, body: bytes = b"4,5\n", timeout: float = 10) -> bytes:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body, method="POST",
                                 headers={"Content-Type": "text/csv", "Accept": "application/jsonlines"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("application/jsonlines")
        return r.read()


def test_gunicorn_serves_the_model_from_opt_ml(tmp_path):
    job = train_centroid(tmp_path)
    (job.paths.model_dir / "model.tar.gz").write_bytes(b"leftover archive, must be ignored")
    proc, port = start_serve(job)
    try:
        wait_for_ping(proc, port)
        for _ in range(4):  # several requests so that both workers answer
            assert b'"predicted_label":1.0' in invoke(port).replace(b" ", b"")
    finally:
        out = stop(proc)
    assert proc.returncode == 0, out


def _slow_client(port: int, stop_event: threading.Event) -> None:
    """Sends a request head one byte per 0.5 s, never finishing it while the test runs."""
    head = b"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/csv\r\nX-Slow: " + b"a" * 200
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        for byte in head:
            if stop_event.wait(0.5):
                return
            try:
                s.sendall(bytes([byte]))
            except OSError:  # closed by the server's head-read bound: open another
                return _slow_client(port, stop_event)


def test_idle_and_slow_connections_do_not_stall_ping_or_invocations(tmp_path):
    """4 connections that send nothing and 2 that send a header byte per 0.5 s, against 2 workers:
    with sync workers (one connection per worker) /ping waited ~60 s; gthread workers answer."""
    job = train_centroid(tmp_path)
    proc, port = start_serve(job)
    idle, stop_event, slow = [], threading.Event(), []
    try:
        wait_for_ping(proc, port)
        idle = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]
        slow = [threading.Thread(target=_slow_client, args=(port, stop_event), daemon=True) for _ in range(2)]
        for t in slow:
            t.start()
        time.sleep(0.3)  # the idle and slow connections are accepted first
        end, rounds = time.monotonic() + 5, 0
        while time.monotonic() < end:
            started = time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                assert r.status == 200
            assert time.monotonic() - started < 1.0
            assert b'"predicted_label":1.0' in invoke(port, timeout=1).replace(b" ", b"")
            rounds += 1
            time.sleep(0.05)
        assert rounds >= 10
    finally:
        stop_event.set()
        for s in idle:
            s.close()
        for t in slow:
            t.join(timeout=5)
        out = stop(proc)
    assert proc.returncode == 0, out


BROKEN_MODEL = '''
import dataclasses
from smalgos_test_centroid.declaration import ALGORITHM as CENTROID
ALGORITHM = dataclasses.replace(CENTROID, name="test-broken-warmup",
                                model_loader="smalgos_test_broken_warmup.declaration:load_model")


class BrokenModel:
    def predict(self, batch, accept=None):
        raise RuntimeError("cannot predict: weights are all NaN")

    def warm_up(self):
        import numpy as np
        from smalgos.formats.batch import Batch
        self.predict(Batch(np.zeros((1, 2), dtype=np.float32)))


def load_model(model_dir):
    return BrokenModel()
'''


def test_a_model_whose_warm_up_fails_is_not_served(tmp_path):
    job = train_centroid(tmp_path)
    pkg = tmp_path / "algos" / "smalgos_test_broken_warmup"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "declaration.py").write_text(BROKEN_MODEL)
    proc, port = start_serve(job, algorithm="test-broken-warmup", pythonpath=[tmp_path / "algos"])
    try:
        deadline = time.time() + 30
        while proc.poll() is None and time.time() < deadline:
            try:  # until the server stops, /ping never answers 200
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                    assert r.status != 200, "a model that failed its warm-up is served"
            except OSError:
                pass
            time.sleep(0.1)
        assert proc.poll() is not None, "the server kept running with a model that cannot predict"
    finally:
        out = stop(proc)
    assert proc.returncode != 0
    assert (f"The model in {job.paths.model_dir} failed its warm-up prediction (one record of zeros):"
            " RuntimeError: cannot predict: weights are all NaN") in out, out
    assert "Worker failed to boot" in out, out


def test_malformed_chunk_framing_is_a_400_with_a_json_body(tmp_path):
    job = train_centroid(tmp_path)
    proc, port = start_serve(job)
    try:
        wait_for_ping(proc, port)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                      b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n4,5\n\r\n0\r\n\r\n")
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400"), data[:300]
        assert b"application/json" in head and b"malformed chunked framing" in body, data[:300]
        assert invoke(port)  # and the server keeps serving
    finally:
        stop(proc)
