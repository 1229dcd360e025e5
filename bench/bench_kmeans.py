"""K-Means: quality against scikit-learn's KMeans and throughput against MiniBatchKMeans.

Synthetic data: `--rows` points (1,000,000 by default) in `--features` dimensions drawn around
`--blobs` Gaussian centres of random spread, shuffled, float32; `k` clusters asked for (fewer
than the blobs, so that the problem has no trivial answer). Ours runs AWS's defaults
(mini_batch_size 5000, epochs 1, extra_center_factor auto = 10, 10 local Lloyd trials) through
the maths core on CPU. Figures:

- quality: final within-cluster sum of squares (WCSS) over all rows, relative to KMeans with
  n_init = 10 (our local_lloyd_num_trials) — the issue asks for ≤ 2 % worse;
- throughput: records per second of `fit` (ours: records x epochs / seconds), against
  MiniBatchKMeans with the same batch size (n_init=3, its default for random seeding, and 1).

    python bench/bench_kmeans.py [--rows 1000000] [--features 20] [--k 10] [--blobs 25] [--epochs 1]
                                 [--threads N]

`--threads` caps torch's and scikit-learn's (OpenMP/BLAS) threads alike; on a shared machine one
thread per process gives steadier figures than oversubscribed OpenMP pools.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.cluster import KMeans, MiniBatchKMeans
from threadpoolctl import threadpool_limits

from smalgos_kmeans.model import WebScaleKMeans


def data(rows: int, features: int, blobs: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(-10, 10, size=(blobs, features))
    spread = rng.uniform(0.5, 2.5, size=blobs)
    which = rng.integers(0, blobs, rows)
    return (centres[which] + rng.normal(size=(rows, features)) * spread[which, None]).astype(np.float32)


def wcss(x: np.ndarray, centres: np.ndarray, chunk: int = 200_000) -> float:
    total = 0.0
    c = centres.astype(np.float64)
    c_sq = (c ** 2).sum(1)
    for s in range(0, len(x), chunk):
        xb = x[s:s + chunk].astype(np.float64)
        d = (xb ** 2).sum(1)[:, None] - 2 * xb @ c.T + c_sq[None, :]
        total += float(np.maximum(d.min(1), 0).sum())
    return total


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--features", type=int, default=20)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--blobs", type=int, default=25)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--mini-batch-size", type=int, default=5000)
    ap.add_argument("--skip-kmeans", action="store_true", help="skip the (slow) full KMeans reference")
    ap.add_argument("--threads", type=int, default=None, help="threads for torch and scikit-learn")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)
    x = data(args.rows, args.features, args.blobs)
    print(f"{args.rows} rows x {args.features} features, k={args.k} ({args.blobs} blobs), "
          f"mini_batch_size={args.mini_batch_size}, epochs={args.epochs}, CPU, torch threads {torch.get_num_threads()}")

    ours, t_ours = timed(lambda: WebScaleKMeans(args.k, mini_batch_size=args.mini_batch_size,
                                                epochs=args.epochs).fit(x))
    rows = [("smalgos WebScaleKMeans (AWS defaults)", wcss(x, ours.cluster_centers_), t_ours, args.rows * args.epochs)]
    for n_init in (3, 1):
        mb, t = timed(lambda: MiniBatchKMeans(args.k, batch_size=args.mini_batch_size, n_init=n_init,
                                              random_state=0).fit(x))
        rows.append((f"sklearn MiniBatchKMeans (n_init={n_init})", wcss(x, mb.cluster_centers_), t,
                     args.rows * mb.n_steps_ * args.mini_batch_size // args.rows))
    ref = None
    if not args.skip_kmeans:
        km, t = timed(lambda: KMeans(args.k, n_init=10, random_state=0).fit(x))
        ref = wcss(x, km.cluster_centers_)
        rows.append(("sklearn KMeans (n_init=10, Lloyd)", ref, t, args.rows * km.n_iter_))
    print(f"{'':42s} {'WCSS':>16s} {'vs KMeans':>10s} {'seconds':>8s} {'records/s':>12s}")
    for name, w, t, records in rows:
        rel = f"{100 * (w / ref - 1):+.2f}%" if ref else "-"
        print(f"{name:42s} {w:16.1f} {rel:>10s} {t:8.2f} {records / t:12.0f}")


if __name__ == "__main__":
    main()
