"""Every CUDA path, CPU beside CUDA on the same data, one table: for a machine with a CUDA GPU.

    python bench/bench_gpu.py [--quick] [--only ll,knn,kmeans,xgboost,ic]      (or bench/gpu.sh)

- Linear Learner (`binary_classifier`, num_models=auto: 32 models), records/s at mini-batch 1000 and 10000;
- k-NN (faiss.Flat, L2, k=10) on 1M×128: queries/s (CUDA: the torch brute-force backend);
- K-Means (web-scale, k=10, mini-batch 5000, 1M×20): records/s;
- XGBoost through the algorithm's trainer (`tree_method=gpu_hist`, AWS's spelling, → hist on CUDA)
  against `hist` on CPU, 1M×28 CSV, 50 rounds: rounds/s of the whole job (reading the CSV included);
- Image Classification (ResNet-50, 3×64×64, mini-batch 64): images/s, float32 and
  precision_dtype=float16 (AMP) on CUDA.
Without CUDA it runs the CPU column alone (with --quick sizes) and says so. Each row interleaves
CPU and CUDA runs (`--repeats`), best of each.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
for folder in ("linear-learner", "knn", "kmeans", "xgboost", "image-classification"):
    sys.path.insert(0, str(ROOT / "containers" / folder))
sys.path.insert(0, str(ROOT / "tests" / "unit"))


def best(fn, repeats: int) -> float:
    """The best of `repeats` timings of fn() (seconds)."""
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    return min(times)


def linear_learner(devices, rows: int, repeats: int):
    from smalgos_linear_learner.model import LinearLearner

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 100)).astype(np.float32)
    y = (X @ rng.normal(size=100) + rng.normal(scale=2.0, size=rows) > 0).astype(np.float32)
    for batch in (1000, 10000):
        rates = {}
        for dev in devices:
            est = lambda: LinearLearner("binary_classifier", epochs=2, mini_batch_size=batch,  # noqa: E731
                                        early_stopping_patience=3, device=dev).fit(X, y)
            rates[dev] = 2 * rows / best(est, repeats)
        yield f"Linear Learner, 32 models, batch {batch}", "records/s", rates


def knn(devices, rows: int, repeats: int):
    from smalgos_knn.model import KNearestNeighbors

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 128)).astype(np.float32)
    y = rng.integers(0, 10, rows).astype(np.float32)
    q = rng.normal(size=(10_000, 128)).astype(np.float32)
    rates = {}
    for dev in devices:
        model = KNearestNeighbors(10, "classifier", index_type="faiss.Flat", device=dev).fit(X, y)
        rates[dev] = len(q) / best(lambda: model.predict(q), repeats)
    yield f"k-NN faiss.Flat, {rows}x128, k=10", "queries/s", rates


def kmeans(devices, rows: int, repeats: int):
    from smalgos_kmeans.model import WebScaleKMeans

    rng = np.random.default_rng(0)
    centres = rng.normal(scale=5, size=(25, 20))
    x = (centres[rng.integers(0, 25, rows)] + rng.normal(size=(rows, 20))).astype(np.float32)
    rates = {dev: rows / best(lambda: WebScaleKMeans(10, mini_batch_size=5000, epochs=1, device=dev).fit(x), repeats)
             for dev in devices}
    yield f"K-Means web-scale, {rows}x20, k=10", "records/s", rates


def xgboost(devices, rows: int, repeats: int, work: Path):
    import contextlib
    import io
    import tempfile

    from algo_helpers import train_job

    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 28)).astype(np.float32)
    y = (X[:, :5].sum(1) + rng.normal(size=rows) > 0).astype(np.float32)
    body = "\n".join(",".join(f"{v:.5g}" for v in row) for row in np.column_stack([y, X])).encode() + b"\n"
    rates = {}
    for dev in devices:
        hps = {"num_round": "50", "objective": "binary:logistic", "max_depth": "6",
               "tree_method": "gpu_hist" if dev == "cuda" else "hist"}
        seconds = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory(dir=work) as tmp, contextlib.redirect_stdout(io.StringIO()):
                started = time.perf_counter()
                job, rc = train_job("xgboost", Path(tmp), hps, {"train": {"ContentType": "text/csv"}},
                                    {("train", "train.csv"): body})
                seconds.append(time.perf_counter() - started)
                if rc:
                    raise SystemExit(job.failure)
        rates[dev] = 50 / min(seconds)
    yield f"XGBoost hist, {rows}x28, 50 rounds", "rounds/s", rates


def image_classification(devices, images: int, repeats: int):
    from smalgos_image_classification.data import ImageSet, Item
    from smalgos_image_classification.model import ImageClassifier

    from smalgos.vision.recordio_images import Header, RecordList, encode_image, pack

    rng = np.random.default_rng(0)
    payloads = [pack(Header(0, float(i % 10), i), encode_image(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)))
                for i in range(images)]
    records = [RecordList(payloads, "bench")]
    data = ImageSet([Item(f"bench record {i}", record=(0, i)) for i in range(images)],
                    np.array([[i % 10] for i in range(images)], np.float32), records, 3, False)
    for dtype in ("float32", "float16"):
        rates = {}
        for dev in devices:
            if dtype == "float16" and dev == "cpu":
                continue
            clf = ImageClassifier(num_classes=10, num_training_samples=images, num_layers=50, image_shape="3,64,64",
                                  epochs=1, mini_batch_size=64, optimizer="sgd", learning_rate=0.01,
                                  precision_dtype=dtype, device=dev)
            rates[dev] = images / best(lambda: clf.fit(data), repeats)
        yield f"Image Classification ResNet-50 64x64, {dtype}", "images/s", rates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", default="ll,knn,kmeans,xgboost,ic")
    args = ap.parse_args()
    cuda = torch.cuda.is_available()
    devices = ["cpu", "cuda"] if cuda else ["cpu"]
    print(f"torch {torch.__version__}; CUDA: {torch.cuda.get_device_name(0) if cuda else 'none (CPU column only)'}")
    small = args.quick or not cuda
    work = Path("/tmp")
    parts = {"ll": lambda: linear_learner(devices, 100_000 if small else 1_000_000, args.repeats),
             "knn": lambda: knn(devices, 100_000 if small else 1_000_000, args.repeats),
             "kmeans": lambda: kmeans(devices, 100_000 if small else 1_000_000, args.repeats),
             "xgboost": lambda: xgboost(devices, 50_000 if small else 1_000_000, args.repeats, work),
             "ic": lambda: image_classification(devices, 256 if small else 4096, args.repeats)}
    print(f"{'what':48s} {'unit':10s} {'CPU':>12s} {'CUDA':>12s} {'CUDA/CPU':>9s}")
    for name in args.only.split(","):
        for what, unit, rates in parts[name.strip()]():
            cpu, gpu = rates.get("cpu"), rates.get("cuda")
            cell = lambda v: f"{v:12.0f}" if v is not None else f"{'-':>12s}"  # noqa: E731
            ratio = f"{gpu / cpu:9.1f}" if cpu and gpu else f"{'-':>9s}"
            print(f"{what:48s} {unit:10s} {cell(cpu)} {cell(gpu)} {ratio}", flush=True)


if __name__ == "__main__":
    main()
