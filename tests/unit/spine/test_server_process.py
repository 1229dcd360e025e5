"""The real `serve` program (gunicorn, workers forked, model loaded per worker), without a container."""
import os
import signal
import socket
import subprocess
import sys
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


def test_gunicorn_serves_the_model_from_opt_ml(tmp_path):
    job = LocalJob(tmp_path)
    job.write_config({"num_classes": 2}, {"train": {"ContentType": "text/csv"}})
    job.add_file("train", "a.csv", b"0,0,0\n1,4,4\n")
    assert run_training("test-centroid", job.paths, install_signal_handler=False) == 0
    (job.paths.model_dir / "model.tar.gz").write_bytes(b"leftover archive, must be ignored")
    port = free_port()
    env = {**os.environ, "SAGEMAKER_BASE_DIR": str(job.paths.base), "SAGEMAKER_BIND_TO_PORT": str(port),
           "SAGEMAKER_MODEL_SERVER_WORKERS": "2", "SMALGOS_ALGORITHM": "test-centroid",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "tests/algorithms"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-m", "smalgos.cli", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/ping", timeout=2) as r:
                    assert r.status == 200 and r.read() == b""
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                assert time.time() < deadline, "no /ping answer within 30 s"
                time.sleep(0.1)
        for _ in range(4):  # several requests so that both workers answer
            req = urllib.request.Request(base + "/invocations", data=b"4,5\n", method="POST",
                                         headers={"Content-Type": "text/csv", "Accept": "application/jsonlines"})
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.headers["Content-Type"].startswith("application/jsonlines")
                assert b'"predicted_label":1.0' in r.read().replace(b" ", b"")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
