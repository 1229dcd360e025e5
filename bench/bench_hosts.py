"""Training across hosts: two hosts against one on the same total data, records per second.

Each run is a whole `train` job (`smalgos.localjob.LocalCluster`: one process per host on this
machine, meeting on loopback through torch.distributed): one host given all the records, and two
hosts given the same records as one FullyReplicated channel (each reads its half by record
index). Runs alternate (one, two, one, two, ...) and each figure is the median over `--repeats`.
Records per second = records / the job's wall time (process start to the last host's exit), so
the fixed costs (interpreter and torch import, the rendezvous) are in it, as they are on
SageMaker.

On one machine two hosts share its cores: with 2 cores, two hosts at one thread each can at best
match one host at two threads; what the bench shows is the cost of the synchronisation (the
lockstep and the all-reduce of every step), not the speed-up of a second machine.

    python bench/bench_hosts.py [--algorithms kmeans linear-learner] [--rows 200000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import io
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from smalgos.localjob import LocalCluster

JOBS = {  # algorithm → (hyperparameters, whether the first CSV column is a label)
    "kmeans": ({"k": 10, "feature_dim": 20, "mini_batch_size": 1000, "epochs": 2}, False),
    "linear-learner": ({"predictor_type": "binary_classifier", "feature_dim": 20, "mini_batch_size": 1000,
                        "epochs": 2, "num_models": 8}, True),
    "pca": ({"feature_dim": 20, "num_components": 5, "mini_batch_size": 1000}, False),
}


def csv_data(rows: int, labelled: bool, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 20)).astype(np.float32) + rng.integers(0, 10, (rows, 1))
    if labelled:
        x = np.column_stack([(x[:, 0] + x[:, 1] > x[:, 2]).astype(np.float32), x])
    out = io.StringIO()
    np.savetxt(out, x, delimiter=",", fmt="%.5g")
    return out.getvalue().encode()


def run(algorithm: str, hosts: int, data: bytes, base: Path) -> float:
    hps, _ = JOBS[algorithm]
    cluster = LocalCluster(base, hosts)
    for host, job in zip(cluster.names, cluster.jobs):
        job.write_config(hps, {"train": {"ContentType": "text/csv"}}, resources=cluster.resources(host))
        job.add_file("train", "train.csv", data)
    threads = {"OMP_NUM_THREADS": str(max(1, 2 // hosts))}
    t0 = time.perf_counter()
    results = cluster.train(algorithm, timeout=1800, env=threads)
    seconds = time.perf_counter() - t0
    for code, log in results:
        if code != 0:
            raise SystemExit(f"{algorithm} on {hosts} host(s) failed:\n{log[-3000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algorithms", nargs="+", default=["kmeans", "linear-learner", "pca"], choices=sorted(JOBS))
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    for algorithm in args.algorithms:
        data = csv_data(args.rows, JOBS[algorithm][1])
        times = {1: [], 2: []}
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeats):
                for hosts in (1, 2):
                    times[hosts].append(run(algorithm, hosts, data, Path(tmp) / f"{hosts}-{r}"))
        one, two = (statistics.median(times[h]) for h in (1, 2))
        print(f"{algorithm:15s} rows={args.rows}: 1 host {args.rows / one:9.0f} rec/s ({one:5.1f} s), "
              f"2 hosts {args.rows / two:9.0f} rec/s ({two:5.1f} s): ratio {one / two:.2f}", flush=True)


if __name__ == "__main__":
    main()
