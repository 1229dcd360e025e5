#!/usr/bin/env python3
"""`make demo`: train linear-learner in its image through /opt/ml, serve it, query it.

The SageMaker container contract with nothing but the engine: the /opt/ml tree is a host folder
(build/demo/opt_ml), `docker run IMAGE train` trains on the Wisconsin breast-cancer data in
examples/breast-cancer (label in column 0, no header), `docker run -p PORT:8080 IMAGE serve`
starts an endpoint on the model folder, and /invocations gets CSV, JSON and recordIO-protobuf
requests. Prints the answers and the test accuracy, then stops the endpoint.

    python scripts/demo.py [--image smalgos/linear-learner:1-cpu] [--engine docker|podman] [--port N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "common"))  # smalgos (also importable when installed)

from smalgos.formats.protobuf import decode_predictions, dense_to_recordio  # noqa: E402
from smalgos.localjob import LocalJob  # noqa: E402

DATA = ROOT / "examples" / "breast-cancer"
HYPERPARAMETERS = {
    "predictor_type": "binary_classifier",
    "feature_dim": 30,
    "mini_batch_size": 100,
    "epochs": 15,
    "num_models": 8,
    "binary_classifier_model_selection_criteria": "accuracy",
}


def step(msg: str) -> None:
    print(f"\n== {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 30) -> tuple[int, bytes, str]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read(), e.headers.get("Content-Type", "")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", default="smalgos/linear-learner:1-cpu")
    p.add_argument("--engine", default=os.environ.get("ENGINE", "docker"))
    p.add_argument("--port", type=int, default=0, help="host port of the endpoint (default: a free one)")
    p.add_argument("--workdir", default=str(ROOT / "build" / "demo"))
    args = p.parse_args()
    engine = args.engine
    tag = f"smalgos-demo-{os.getpid()}"

    train = np.loadtxt(DATA / "train.csv", delimiter=",", dtype=np.float32)
    test = np.loadtxt(DATA / "test.csv", delimiter=",", dtype=np.float32)
    X_test, y_test = test[:, 1:], test[:, 0]

    # ---- training ---------------------------------------------------------------------------
    workdir = Path(args.workdir)
    shutil.rmtree(workdir, ignore_errors=True)
    job = LocalJob(workdir / "opt_ml")
    job.write_config(HYPERPARAMETERS, {"train": {"ContentType": "text/csv"},
                                       "validation": {"ContentType": "text/csv"}})
    job.add_file("train", "train.csv", (DATA / "train.csv").read_bytes())
    job.add_file("validation", "test.csv", (DATA / "test.csv").read_bytes())
    step(f"Training {args.image} on {len(train)} rows (/opt/ml = {job.paths.base})")
    print("hyperparameters.json:", json.dumps(HYPERPARAMETERS))
    t0 = time.time()
    # No --rm: through podman's Docker API, `docker run --rm` exits 0 whatever the container did.
    proc = subprocess.run([engine, "run", "--name", f"{tag}-train", "-v", f"{job.paths.base}:/opt/ml",
                           args.image, "train"], capture_output=True, text=True)
    subprocess.run([engine, "rm", "-f", f"{tag}-train"], capture_output=True)
    logs = proc.stdout + proc.stderr
    for line in logs.splitlines():
        if line.startswith("#quality_metric") and "epoch=" not in line:
            print("  " + line)
    if proc.returncode != 0 or not any(job.paths.model_dir.iterdir()):
        print(logs[-3000:])
        print(f"Training failed (exit {proc.returncode}): {job.failure or 'no failure file'}")
        return 1
    print(f"trained in {time.time() - t0:.1f} s; model files: "
          f"{', '.join(sorted(f.name for f in job.paths.model_dir.iterdir()))}")

    # ---- endpoint ---------------------------------------------------------------------------
    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    step(f"Starting an endpoint: {engine} run -p {port}:8080 ... serve")
    t0 = time.time()
    cid = subprocess.run([engine, "run", "-d", "--name", f"{tag}-serve", "-p", f"127.0.0.1:{port}:8080",
                          "-v", f"{job.paths.model_dir}:/opt/ml/model:ro", args.image, "serve"],
                         capture_output=True, text=True, check=True).stdout.strip()
    try:
        while True:
            try:
                if http("GET", base + "/ping", timeout=2)[0] == 200:
                    break
            except OSError:
                pass
            if time.time() - t0 > 120:
                print(subprocess.run([engine, "logs", cid], capture_output=True, text=True).stderr[-3000:])
                print("The endpoint did not answer /ping within 120 s")
                return 1
            time.sleep(0.1)
        print(f"/ping answered 200 after {time.time() - t0:.1f} s")

        csv_body = "\n".join(",".join(f"{v:g}" for v in row) for row in X_test).encode()
        json_body = json.dumps({"instances": [{"features": row.tolist()} for row in X_test]}).encode()
        pb_body = dense_to_recordio(X_test)
        requests = [
            ("text/csv", csv_body, "application/json"),
            ("application/json", json_body, "application/jsonlines"),
            ("application/x-recordio-protobuf", pb_body, "application/x-recordio-protobuf"),
        ]
        for content_type, body, accept in requests:
            step(f"POST /invocations  Content-Type: {content_type}  Accept: {accept}  ({len(X_test)} rows)")
            t0 = time.time()
            status, answer, answer_type = http("POST", base + "/invocations", body,
                                               {"Content-Type": content_type, "Accept": accept})
            ms = (time.time() - t0) * 1000
            if status != 200:
                print(f"HTTP {status}: {answer[:500]!r}")
                return 1
            if accept == "application/json":
                preds = json.loads(answer)["predictions"]
                labels = np.array([p["predicted_label"] for p in preds])
                print(f"HTTP 200 ({answer_type}, {ms:.0f} ms): " + json.dumps({"predictions": preds[:2]})[:-2]
                      + ", ...]}")
            elif accept == "application/jsonlines":
                lines = answer.decode().splitlines()
                labels = np.array([json.loads(line)["predicted_label"] for line in lines])
                print(f"HTTP 200 ({answer_type}, {ms:.0f} ms), first lines:\n  " + "\n  ".join(lines[:2]))
            else:
                fields = decode_predictions(answer).fields
                labels = np.asarray(fields["predicted_label"])
                print(f"HTTP 200 ({answer_type}, {ms:.0f} ms): {len(answer)} bytes, {len(labels)} records; "
                      f"first: " + ", ".join(f"{k}={float(v[0]):.4g}" for k, v in fields.items()))
            accuracy = float(np.mean(labels == y_test))
            print(f"accuracy on the {len(y_test)} held-out rows: {accuracy:.3f}")
    finally:
        step("Stopping the endpoint")
        subprocess.run([engine, "stop", "-t", "10", cid], capture_output=True)
        subprocess.run([engine, "rm", "-f", cid], capture_output=True)
        print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
