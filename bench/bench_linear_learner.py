"""Training throughput of Linear Learner's maths core against its peers, on CPU.

Same synthetic data (dense float32, binary labels from a noisy linear rule), same number of
passes. Throughput = records x epochs / seconds of `fit` (Linear Learner's figure includes its
scaler pass, per-batch input checks and per-epoch model scoring with threshold calibration).

* `sklearn`: scikit-learn's SGDClassifier, one logistic model per pass, one record at a time in
  Cython, against Linear Learner with one model and with `num_models=auto` (32 models in one
  vectorised computation, AWS's default).
* `bare`: the bound of what torch does here: a bare loop over the same 32 logistic models, one
  `X @ W + b` with W (d, 32), `binary_cross_entropy_with_logits`, `torch.optim.Adam`, the data a
  float32 tensor in memory, no scaler, checks, metrics nor scoring, against Linear Learner with
  `num_models=auto`. Rounds alternate the two (`--rounds`), as the machine may be shared. The
  bare loop runs at one thread and at `--threads`, and its faster figure is the bound: Linear
  Learner itself runs a step this small on one thread (`smalgos.maths.threads`), and a busy
  2-core machine can make two threads 30 times slower for it.
* `job`: a whole training job through the runner (`smalgos.training.runner`, in-process, the
  /opt/ml contract) against the same bare loop: recordIO-protobuf train and validation channels
  in File mode, so the figure adds the reading and decoding of the records, the scaler pass, the
  per-epoch scoring on the validation channel, the metric lines and the saving of the model.

    python bench/bench_linear_learner.py [--rows 200000] [--features 100] [--epochs 5]
                                         [--part all|sklearn|bare|job] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import SGDClassifier

from smalgos_linear_learner.model import LinearLearner


def data(rows: int, features: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features)).astype(np.float32)
    w = rng.normal(size=features)
    y = (X @ w + rng.normal(scale=2.0, size=rows) > 0).astype(np.float32)
    return X, y


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bare_loop(X: torch.Tensor, y: torch.Tensor, epochs: int, batch: int, models: int = 32,
              learning_rate: float = 0.01) -> None:
    """`models` logistic models trained side by side with nothing but torch: the peer's loop."""
    W = torch.zeros(X.shape[1], models, requires_grad=True)
    b = torch.zeros(models, requires_grad=True)
    opt = torch.optim.Adam([W, b], lr=learning_rate)
    for _ in range(epochs):
        for start in range(0, X.shape[0], batch):
            z = X[start:start + batch] @ W + b
            target = y[start:start + batch].expand_as(z)
            loss = F.binary_cross_entropy_with_logits(z, target, reduction="sum") / z.shape[0]
            opt.zero_grad()
            loss.backward()
            opt.step()


def with_threads(n: int, fn):
    """`fn` run with `n` torch threads, the previous setting restored."""
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        return fn()
    finally:
        torch.set_num_threads(previous)


def bare_loop_runs(args, Xt: torch.Tensor, yt: torch.Tensor) -> dict[int, float]:
    """Seconds of the bare loop at one thread and at the process's `--threads`."""
    return {n: timed(lambda: with_threads(n, lambda: bare_loop(Xt, yt, args.epochs, args.mini_batch_size)))
            for n in sorted({1, args.threads})}


def warm_bare_loop(args, Xt: torch.Tensor, yt: torch.Tensor) -> None:
    """A short run at each thread count first: the first one pays for the thread pool and the first calls."""
    for n in sorted({1, args.threads}):
        with_threads(n, lambda: bare_loop(Xt[:20 * args.mini_batch_size], yt, 1, args.mini_batch_size))


def against_bare_loop(args, X: np.ndarray, y: np.ndarray) -> None:
    records = args.rows * args.epochs
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y).view(-1, 1)

    def core():
        LinearLearner("binary_classifier", epochs=args.epochs, mini_batch_size=args.mini_batch_size,
                      num_models="auto", early_stopping_patience=args.epochs + 1, device="cpu").fit(X, y)

    core()  # warm up: first calls, allocator, caches
    warm_bare_loop(args, Xt, yt)
    print(f"\nLinear Learner num_models=auto against a bare torch loop of 32 logistic models, "
          f"{args.rounds} interleaved rounds, process threads {torch.get_num_threads()}")
    ratios = []
    for r in range(args.rounds):
        t_core = timed(core)
        t_bare = bare_loop_runs(args, Xt, yt)
        best = min(t_bare.values())
        ratios.append(best / t_core)
        bare_text = "   ".join(f"bare loop ({n} thread{'s' if n > 1 else ''}) {records / t / 1e6:.3f}M"
                               for n, t in t_bare.items())
        print(f"round {r + 1}: linear-learner {records / t_core / 1e6:.3f}M records/s   {bare_text}   "
              f"ratio linear-learner / best bare loop {ratios[-1]:.2f}x", flush=True)
    print_ratios(ratios)


def against_job(args, X: np.ndarray, y: np.ndarray, Xval: np.ndarray, yval: np.ndarray) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))
    from algo_helpers import recordio_bytes

    from smalgos.localjob import LocalJob
    from smalgos.training.runner import run_training

    records = args.rows * args.epochs
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y).view(-1, 1)
    protobuf = {"ContentType": "application/x-recordio-protobuf"}
    files = {"train": recordio_bytes(X, y), "validation": recordio_bytes(Xval, yval)}  # the SDK's writer
    hp = {"predictor_type": "binary_classifier", "feature_dim": str(args.features), "num_models": "auto",
          "mini_batch_size": str(args.mini_batch_size), "epochs": str(args.epochs),
          "early_stopping_patience": str(args.epochs + 1)}

    def job() -> float:
        """Seconds of one job, from the runner's start to its end (the files written before)."""
        with tempfile.TemporaryDirectory() as folder:
            local = LocalJob(Path(folder))
            local.write_config(hp, {channel: protobuf for channel in files})
            for channel, data in files.items():
                local.add_file(channel, f"{channel}.pbr", data)
            log, buf = logging.getLogger("smalgos"), io.StringIO()
            handler = logging.StreamHandler(buf)
            log.addHandler(handler)
            try:
                with contextlib.redirect_stdout(buf):  # the metric lines
                    started = time.perf_counter()
                    rc = run_training("linear-learner", local.paths, install_signal_handler=False)
                    seconds = time.perf_counter() - started
            finally:
                log.removeHandler(handler)
            if rc:
                raise SystemExit(local.failure)
            return seconds

    job()  # warm up
    warm_bare_loop(args, Xt, yt)
    print(f"\nA whole Linear Learner job (recordIO-protobuf File mode, {len(Xval)} validation records) against "
          f"the bare loop, {args.rounds} interleaved rounds, process threads {torch.get_num_threads()}")
    ratios = []
    for r in range(args.rounds):
        t_job = job()
        runs = bare_loop_runs(args, Xt, yt)
        n = min(runs, key=runs.get)
        ratios.append(runs[n] / t_job)
        print(f"round {r + 1}: job {records / t_job / 1e6:.3f}M records/s   bare loop ({n} thread"
              f"{'s' if n > 1 else ''}) {records / runs[n] / 1e6:.3f}M   ratio job / bare loop {ratios[-1]:.2f}x",
              flush=True)
    print_ratios(ratios)


def print_ratios(ratios: list[float]) -> None:
    print(f"ratio over {len(ratios)} rounds: median {np.median(ratios):.2f}x, "
          f"range {min(ratios):.2f}x - {max(ratios):.2f}x")


def against_sklearn(args, X, y, Xte, yte) -> None:
    records = args.rows * args.epochs
    sgd = SGDClassifier(loss="log_loss", max_iter=args.epochs, tol=None, random_state=0)
    t_sgd = timed(lambda: sgd.fit(X, y))
    print(f"{'sklearn SGDClassifier (1 model)':<38}{records / t_sgd:12.0f} records/s   "
          f"accuracy {sgd.score(Xte, yte):.4f}")

    results = {}
    for label, num_models in (("1 model", 1), ("num_models=auto (32)", "auto")):
        est = LinearLearner("binary_classifier", epochs=args.epochs, mini_batch_size=args.mini_batch_size,
                            num_models=num_models, early_stopping_patience=args.epochs + 1, device="cpu")
        t = timed(lambda: est.fit(X, y))
        results[label] = t
        acc = float(np.mean(est.predict(Xte) == yte))
        print(f"{'linear-learner ' + label:<38}{records / t:12.0f} records/s   accuracy {acc:.4f}   "
              f"({len(est.models_)} models, {len(est.models_) * records / t:.0f} model-records/s)")
    for label, t in results.items():
        print(f"ratio linear-learner ({label}) / SGDClassifier: {t_sgd / t:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--features", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--mini-batch-size", type=int, default=1000)
    ap.add_argument("--part", choices=("all", "sklearn", "bare", "job"), default="all")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds against the bare loop")
    ap.add_argument("--threads", type=int, default=2, help="torch threads of the process")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    X, y = data(args.rows + 20_000, args.features)
    X, Xte, y, yte = X[:args.rows], X[args.rows:], y[:args.rows], y[args.rows:]
    print(f"{args.rows} rows x {args.features} features, {args.epochs} epochs, CPU, "
          f"torch threads {torch.get_num_threads()}")
    if args.part in ("all", "sklearn"):
        against_sklearn(args, X, y, Xte, yte)
    if args.part in ("all", "bare"):
        against_bare_loop(args, X, y)
    if args.part in ("all", "job"):
        against_job(args, X, y, Xte, yte)


if __name__ == "__main__":
    main()
