"""Cost as work grows: Linear Learner, K-Means and XGBoost trained on 1e5, 1e6 and 1e7 generated
records (10 dense float32 features, recordIO-protobuf, binary labels from a noisy linear rule), in
File mode and in Pipe mode, each job a fresh `python -m smalgos.cli train` process as the image
runs it. For each it records the job's seconds and its peak resident memory (the process's
VmHWM, written at exit by a `sitecustomize` this script puts first on the path), prints a
table, and plots both against the records (log-log) into `bench/out/scaling.png`.

What should hold: time grows linearly with the records (a slope near 1 on the plot), and Pipe
mode's peak memory stays flat for the streaming algorithms (Linear Learner and K-Means hold a
sample for their scaler / initialisation, never the data). XGBoost must hold its whole DMatrix
(400 MB at 1e7 x 10) in either mode, as AWS's does.

    python bench/bench_scaling.py [--sizes 1e5,1e6,1e7] [--algorithms linear-learner,kmeans,xgboost]
        [--modes File,Pipe]    # needs matplotlib for the plot (pip install matplotlib)
"""

from __future__ import annotations

import argparse
import contextlib
import mmap
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from smalgos.formats.protobuf import write_dense
from smalgos.localjob import LocalJob, PipeFeeder

ROOT = Path(__file__).resolve().parents[1]
FEATURES = 10
EPOCHS = 2
HPS = {"linear-learner": {"predictor_type": "binary_classifier", "feature_dim": FEATURES, "epochs": EPOCHS,
                          "mini_batch_size": 1000, "num_models": 8},
       "kmeans": {"k": 10, "feature_dim": FEATURES, "epochs": EPOCHS, "mini_batch_size": 5000},
       "xgboost": {"num_round": 10, "objective": "binary:logistic", "tree_method": "hist"}}
SITE = """import atexit, os
def _report():  # VmHWM: this program's own peak (ru_maxrss would count the launcher's memory at exec)
    with open("/proc/self/status") as status:
        kib = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    with open(os.environ["SCALING_RSS_FILE"], "w") as f:
        f.write(kib)
atexit.register(_report)
"""


def make_data(path: Path, rows: int, chunk: int = 1_000_000) -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=FEATURES)
    with open(path, "wb") as f:
        for start in range(0, rows, chunk):
            x = rng.normal(size=(min(chunk, rows - start), FEATURES)).astype(np.float32)
            y = (x @ w + rng.normal(scale=1.0, size=len(x)) > 0).astype(np.float32)
            write_dense(f, x, y)


def run(algorithm: str, mode: str, data: Path, folder: Path, site: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MiB) of one training job."""
    job = LocalJob(folder)
    channel = {"ContentType": "application/x-recordio-protobuf", "TrainingInputMode": mode}
    job.write_config(HPS[algorithm], {"train": channel})
    rss = folder / "rss.txt"
    env = {**os.environ, "SMALGOS_ALGORITHM": algorithm, "SAGEMAKER_BASE_DIR": str(folder),
           "SCALING_RSS_FILE": str(rss),
           "PYTHONPATH": os.pathsep.join([str(site), str(ROOT / "containers" / algorithm),
                                          os.environ.get("PYTHONPATH", "")])}
    if mode == "File":
        job.paths.channel_dir("train").mkdir(parents=True, exist_ok=True)
        os.symlink(data, job.paths.channel_dir("train") / "train.pbr")
    with open(data, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as blob, \
            (PipeFeeder(job.paths, "train", lambda epoch: blob, epochs=EPOCHS + 2, chunk_size=1 << 20)
             if mode == "Pipe" else contextlib.nullcontext()):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "smalgos.cli", "train"], env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"{algorithm} {mode} on {data.name}: exit {done.returncode}\n{job.failure}\n"
                         f"{done.stdout[-2000:]}")
    return seconds, int(rss.read_text()) / 1024


def plot(results: dict, path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (algorithm, mode), points in sorted(results.items()):
        rows = [p[0] for p in points]
        style = "-" if mode == "File" else "--"
        ax_t.plot(rows, [p[1] for p in points], style, marker="o", label=f"{algorithm} {mode}")
        ax_m.plot(rows, [p[2] for p in points], style, marker="o", label=f"{algorithm} {mode}")
    for ax, title in ((ax_t, "training job seconds"), (ax_m, "peak RSS (MiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("records")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    ax_m.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return True


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1e5,1e6,1e7")
    ap.add_argument("--algorithms", default="linear-learner,kmeans,xgboost")
    ap.add_argument("--modes", default="File,Pipe")
    ap.add_argument("--plot", default=str(ROOT / "bench" / "out" / "scaling.png"))
    args = ap.parse_args()
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    results: dict[tuple[str, str], list] = {}
    print("| algorithm | mode | records | seconds | records/s | peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        site.mkdir()
        (site / "sitecustomize.py").write_text(SITE)
        for rows in sizes:
            data = Path(tmp) / f"data-{rows}.pbr"
            make_data(data, rows)
            for algorithm in args.algorithms.split(","):
                for mode in args.modes.split(","):
                    seconds, rss = run(algorithm, mode, data, Path(tmp) / f"{algorithm}-{mode}-{rows}", site)
                    results.setdefault((algorithm, mode), []).append((rows, seconds, rss))
                    print(f"| {algorithm} | {mode} | {rows:.0e} | {seconds:.1f} | {rows * EPOCHS / seconds:,.0f} | "
                          f"{rss:.0f} |", flush=True)
            data.unlink()
    for (algorithm, mode), points in sorted(results.items()):
        if len(points) > 1:  # the slope between the two largest sizes (the smallest is mostly start-up)
            (r0, t0, m0), (r1, t1, m1) = points[-2], points[-1]
            slope = np.log(t1 / t0) / np.log(r1 / r0)
            print(f"{algorithm} {mode}: time slope {slope:.2f} from {r0:.0e} to {r1:.0e} records (1 = linear), "
                  f"peak RSS x{m1 / points[0][2]:.2f} from {points[0][0]:.0e}")
    if plot(results, Path(args.plot)):
        print(f"plot: {args.plot}")
    else:
        print("no plot: matplotlib is not installed")


if __name__ == "__main__":
    main()
