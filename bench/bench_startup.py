"""Start-up: how long the `train` and `serve` commands take before they do the work asked of them,
against the floor of starting Python itself. Each is run as the image runs it (`python -m
smalgos.cli train|serve`, the algorithm from SMALGOS_ALGORITHM) on a tiny job laid out by
`smalgos.localjob.LocalJob`, as a fresh process every repeat (interleaved, median shown):

- `train`: seconds from the process start to its first epoch line (the first epoch's
  `#quality_metric` or `#progress_metric` line, XGBoost's `[0]` round line), and to its exit;
- `serve`: seconds to the first 200 on `/ping` (gunicorn, the model loaded);
- the peers: `python -c pass`, and `python -c "import smalgos.cli"` (what every command imports).
It also lists which heavy libraries each command has imported by its first epoch line / first
200: a command should import nothing it does not need (serving K-Means needs no XGBoost).

    python bench/bench_startup.py [--algorithms linear-learner,kmeans,xgboost] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "unit"))
from algo_helpers import csv_bytes  # noqa: E402

from smalgos.localjob import LocalJob  # noqa: E402

EPOCH_LINE = re.compile(r"#quality_metric: .*epoch=0\b|#progress_metric: |^\[0\]\t")
UNSUPERVISED = {"kmeans", "pca"}  # every CSV column a feature
HEAVY = ("torch", "xgboost", "sklearn", "scipy", "pandas", "pyarrow", "gluonts", "gensim")
HPS = {"linear-learner": {"predictor_type": "binary_classifier", "feature_dim": "10", "epochs": "2",
                          "mini_batch_size": "100"},
       "kmeans": {"k": "3", "feature_dim": "10", "epochs": "2", "mini_batch_size": "100"},
       "xgboost": {"num_round": "5", "objective": "binary:logistic"},
       "pca": {"num_components": "3", "feature_dim": "10", "mini_batch_size": "100"}}
# Which libraries a process has loaded, printed at exit by a `sitecustomize` this script puts first
# on the path (the command's own code is left as it is).
SITE = """import atexit, os, sys
def _report():
    with open(os.environ["STARTUP_MODULES"], "w") as f:
        f.write(" ".join(sorted({m.split(".")[0] for m in sys.modules})))
atexit.register(_report)
"""


def environment(algorithm: str, base: Path, site: Path, modules: Path) -> dict:
    package = ROOT / "containers" / algorithm
    path = os.pathsep.join([str(site), str(package), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "SMALGOS_ALGORITHM": algorithm, "SAGEMAKER_BASE_DIR": str(base),
            "STARTUP_MODULES": str(modules), "PYTHONUNBUFFERED": "1"}


def job(algorithm: str, base: Path) -> LocalJob:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 10)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.float32)
    j = LocalJob(base)
    j.write_config(HPS[algorithm], {"train": {"ContentType": "text/csv"}})
    j.add_file("train", "train.csv", csv_bytes(x) if algorithm in UNSUPERVISED else csv_bytes(x, y))
    return j


def time_train(algorithm: str, base: Path, site: Path) -> tuple[float, float, set]:
    modules = base / "modules.txt"
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "smalgos.cli", "train"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=environment(algorithm, base, site, modules))
    first = None
    for line in proc.stdout:
        if first is None and EPOCH_LINE.search(line):
            first = time.perf_counter() - started
    proc.wait()
    total = time.perf_counter() - started
    if proc.returncode or first is None:
        raise SystemExit(f"{algorithm} train: exit {proc.returncode}, epoch line {'seen' if first else 'not seen'}")
    return first, total, set(modules.read_text().split())


def time_serve(algorithm: str, base: Path, site: Path) -> tuple[float, set]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    modules = base / "serve-modules.txt"
    env = {**environment(algorithm, base, site, modules), "SAGEMAKER_BIND_TO_PORT": str(port),
           "SAGEMAKER_MODEL_SERVER_WORKERS": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "smalgos.cli", "serve"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=env)
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                    if r.status == 200:
                        ready = time.perf_counter() - started
                        break
            except OSError:
                if proc.poll() is not None:
                    raise SystemExit(f"{algorithm} serve exited with {proc.returncode}") from None
                time.sleep(0.02)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return ready, set(modules.read_text().split()) if modules.exists() else set()


def time_python(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--algorithms", default="linear-learner,kmeans,xgboost")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    algorithms = args.algorithms.split(",")
    times: dict[str, list[float]] = {}
    loaded: dict[str, set] = {}
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITE)
        for r in range(args.repeats):
            times.setdefault("python -c pass", []).append(time_python("pass"))
            times.setdefault("import smalgos.cli", []).append(time_python("import smalgos.cli"))
            for algorithm in algorithms:
                base = Path(tmp) / f"{algorithm}-{r}"
                job(algorithm, base)
                first, total, mods = time_train(algorithm, base, site)
                times.setdefault(f"{algorithm} train: first epoch line", []).append(first)
                times.setdefault(f"{algorithm} train: exit", []).append(total)
                loaded[f"{algorithm} train"] = mods
                ready, mods = time_serve(algorithm, base, site)
                times.setdefault(f"{algorithm} serve: first 200 on /ping", []).append(ready)
                loaded[f"{algorithm} serve"] = mods
    print(f"median of {args.repeats} fresh processes, interleaved")
    print("| step | seconds |")
    print("|---|---|")
    for step, values in times.items():
        print(f"| {step} | {statistics.median(values):.2f} |")
    print("\nheavy libraries loaded:")
    for command, mods in loaded.items():
        print(f"  {command}: {', '.join(m for m in HEAVY if m in mods) or 'none'}")


if __name__ == "__main__":
    main()
