"""Training throughput of Linear Learner's maths core against scikit-learn's SGDClassifier.

Same synthetic data (dense float32, binary labels from a noisy linear rule), same number of
passes, CPU. Linear Learner is timed with one model and with `num_models=auto` (32 models in one
vectorised computation, AWS's default); SGDClassifier trains one logistic model per pass, one
record at a time in Cython. Throughput = records x epochs / seconds of `fit` (Linear Learner's
figure includes its scaler pass and per-epoch model scoring).

    python bench/bench_linear_learner.py [--rows 200000] [--features 100] [--epochs 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--features", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--mini-batch-size", type=int, default=1000)
    args = ap.parse_args()
    X, y = data(args.rows + 20_000, args.features)
    X, Xte, y, yte = X[:args.rows], X[args.rows:], y[:args.rows], y[args.rows:]
    records = args.rows * args.epochs
    print(f"{args.rows} rows x {args.features} features, {args.epochs} epochs, CPU, "
          f"torch threads {torch.get_num_threads()}")

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


if __name__ == "__main__":
    main()
