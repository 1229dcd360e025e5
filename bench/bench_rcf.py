"""Random Cut Forest: quality and speed against rrcf (a pure-Python RCF) and scikit-learn's
IsolationForest, on the same data, interleaved.

Data: `--rows` records in `--features` dimensions from three Gaussian clusters, `--rate` of them
moved 6-10 standard deviations away (the anomalies, label 1). Ours runs AWS's defaults
(`--trees` 100 trees of `--samples` 256 records). Figures:

- quality: ROC AUC of our scores over all rows for `--seeds` seeds (data and forest); and, on a
  query set of `--queries` rows (every anomaly plus normal rows), ours, rrcf's CoDisp (each query
  inserted into each tree, scored, removed: rrcf's documented way) and IsolationForest's,
  ours and rrcf's on the *same trees' samples* (rrcf builds its trees from our reservoirs);
- build: sampled points put into trees per second (trees x samples / seconds), ours against rrcf
  growing its trees from the same samples; ours also with the reservoir pass over all rows;
- scoring: rows scored per second, ours against IsolationForest (same trees and sample size) on
  all rows, and against rrcf on the query set.

Each repeat runs every contender once, in turn (interleaved); the table shows the median over
repeats. rrcf imports pkg_resources: run this in a virtual environment with an older setuptools
(`build/bench-venv`: `python3 -m venv --system-site-packages build/bench-venv &&
build/bench-venv/bin/pip install "setuptools<70" rrcf==0.4.4`); without rrcf its rows are skipped.

    PYTHONPATH=containers/randomcutforest build/bench-venv/bin/python bench/bench_rcf.py \\
        [--rows 20000] [--features 5] [--trees 100] [--samples 256] [--queries 120] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from smalgos_randomcutforest.forest import build_forest
from smalgos_randomcutforest.model import RandomCutForest

try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import rrcf
except ImportError as exc:  # pkg_resources missing, or rrcf not installed
    rrcf, RRCF_MISSING = None, f"{type(exc).__name__}: {exc}"


def data(rows: int, features: int, rate: float, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, (3, features))
    x = centres[rng.integers(0, 3, rows)] + rng.normal(0, 1, (rows, features))
    y = np.zeros(rows)
    out = rng.choice(rows, max(1, int(rows * rate)), replace=False)
    y[out] = 1
    direction = rng.normal(size=(out.size, features))
    x[out] += direction / np.linalg.norm(direction, axis=1, keepdims=True) * rng.uniform(6, 10, (out.size, 1))
    return x.astype(np.float32), y


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def rrcf_forest(samples: np.ndarray) -> list:
    return [rrcf.RCTree(tree.astype(np.float64)) for tree in samples]


def rrcf_scores(forest: list, queries: np.ndarray) -> np.ndarray:
    out = np.zeros(len(queries))
    for i, q in enumerate(queries.astype(np.float64)):
        for tree in forest:
            tree.insert_point(q, index="query")
            out[i] += tree.codisp("query")
            tree.forget_point("query")
    return out / len(forest)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--features", type=int, default=5)
    ap.add_argument("--rate", type=float, default=0.005)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--samples", type=int, default=256)
    ap.add_argument("--queries", type=int, default=120)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if rrcf is None:
        print(f"rrcf rows skipped: rrcf does not import here ({RRCF_MISSING})")

    load_before = os.getloadavg()[0]  # the figures are only as good as the machine is quiet
    # Quality across seeds, ours on every row.
    seed_auc = []
    for seed in range(args.seeds):
        x, y = data(args.rows, args.features, args.rate, seed)
        rcf = RandomCutForest(num_trees=args.trees, num_samples_per_tree=args.samples, random_state=seed).fit(x)
        seed_auc.append(roc_auc_score(y, rcf.anomaly_score(x)))

    x, y = data(args.rows, args.features, args.rate, 0)
    rng = np.random.default_rng(1)
    anomalous = np.flatnonzero(y == 1)
    normal = rng.choice(np.flatnonzero(y == 0), max(1, args.queries - anomalous.size), replace=False)
    q_idx = np.concatenate([anomalous, normal])[:max(args.queries, 2)]
    queries, q_truth = x[q_idx], y[q_idx]

    times: dict[str, list[float]] = {k: [] for k in ("fit", "build", "score", "iso_score", "rrcf_build",
                                                     "rrcf_score")}
    for _ in range(args.repeats):
        rcf = RandomCutForest(num_trees=args.trees, num_samples_per_tree=args.samples)
        t, _ = timed(lambda: rcf.fit(x))
        times["fit"].append(t)
        samples = rcf._reservoirs.samples()
        t, forest = timed(lambda: build_forest(samples, np.random.default_rng(0)))
        times["build"].append(t)
        t, ours_all = timed(lambda: rcf.anomaly_score(x))
        times["score"].append(t)
        iso = IsolationForest(n_estimators=args.trees, max_samples=args.samples, random_state=0, n_jobs=1).fit(x)
        t, iso_all = timed(lambda: iso.score_samples(x))
        times["iso_score"].append(t)
        if rrcf is not None:
            t, trees = timed(lambda: rrcf_forest(samples))
            times["rrcf_build"].append(t)
            t, rrcf_q = timed(lambda: rrcf_scores(trees, queries))
            times["rrcf_score"].append(t)

    med = {k: statistics.median(v) for k, v in times.items() if v}
    points = args.trees * samples.shape[1]
    ours_q = rcf.anomaly_score(queries)
    print(f"\nRandom Cut Forest: {args.rows} rows x {args.features} features, {y.sum():.0f} anomalies; "
          f"{args.trees} trees x {samples.shape[1]} samples; median of {args.repeats} interleaved repeats; "
          f"one thread each; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after "
          f"({os.cpu_count()} cores)\n")
    print("| what | ours | peer | ratio |")
    print("|---|---|---|---|")
    print(f"| ROC AUC, all rows, seeds 0..{args.seeds - 1} | {' / '.join(f'{a:.4f}' for a in seed_auc)} | "
          f"IsolationForest {roc_auc_score(y, -iso_all):.4f} (seed 0) | |")
    line = f"| ROC AUC, {len(q_idx)} query rows ({int(q_truth.sum())} anomalous) | {roc_auc_score(q_truth, ours_q):.4f} | "
    if rrcf is not None:
        print(line + f"rrcf CoDisp {roc_auc_score(q_truth, rrcf_q):.4f} (same samples) | "
              f"diff {roc_auc_score(q_truth, ours_q) - roc_auc_score(q_truth, rrcf_q):+.4f} |")
    else:
        print(line + "rrcf skipped | |")
    if rrcf is not None:
        print(f"| build, sampled points/s | {points / med['build']:,.0f} | rrcf {points / med['rrcf_build']:,.0f} | "
              f"{med['rrcf_build'] / med['build']:.0f}x |")
        print(f"| scoring, rows/s ({len(q_idx)} query rows for rrcf) | {len(x) / med['score']:,.0f} | "
              f"rrcf {len(q_idx) / med['rrcf_score']:,.1f} | "
              f"{(len(x) / med['score']) / (len(q_idx) / med['rrcf_score']):,.0f}x |")
    print(f"| scoring, rows/s | {len(x) / med['score']:,.0f} | IsolationForest {len(x) / med['iso_score']:,.0f} | "
          f"{med['iso_score'] / med['score']:.2f}x |")
    print(f"| fit incl. reservoir pass over {args.rows} rows, rows/s | {args.rows / med['fit']:,.0f} | | |")


if __name__ == "__main__":
    main()
