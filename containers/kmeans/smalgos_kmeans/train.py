"""Training for K-Means: stream `train` through web-scale k-means, reduce to k, score `test`.

Log lines follow AWS's image: `local kmeans attempt #i. Current mean square distance x`,
`#quality_metric: host=algo-1, train msd <loss>=...`, `#quality_metric: host=algo-1, test msd
<loss>=...` (and `ssd`), `#test_score (algo-1) : ('msd', ...)`, progress and throughput per epoch,
and a `#metrics` timing line with Algorithm `AWS/KMeansWebscale`.
"""

from __future__ import annotations

import time

from smalgos.errors import ClientError
from smalgos.metrics import LOSS
from smalgos.training.passes import score_test_channel, stream

from .model import WebScaleKMeans


def estimator_from(hp: dict) -> WebScaleKMeans:
    return WebScaleKMeans(
        k=hp["k"], extra_center_factor=hp["extra_center_factor"], init_method=hp["init_method"],
        mini_batch_size=hp["mini_batch_size"], epochs=hp["epochs"], half_life_time_size=hp["half_life_time_size"],
        local_lloyd_max_iter=hp["local_lloyd_max_iter"], local_lloyd_tol=hp["local_lloyd_tol"],
        local_lloyd_num_trials=hp["local_lloyd_num_trials"], local_lloyd_init_method=hp["local_lloyd_init_method"],
        random_state=0)


def train(job) -> None:
    hp = job.hyperparameters
    log = job.log
    feature_dim, batch_size, epochs = hp["feature_dim"], hp["mini_batch_size"], hp["epochs"]
    km = estimator_from(hp)
    km.begin(feature_dim)
    timings = {"initialize.time": 0.0, "update.time": 0.0}
    t_start = time.time()
    train_channel = job.channel("train")
    first = True

    def fit(batch) -> None:
        nonlocal first
        t0 = time.perf_counter()
        if first:
            first = False
            if len(batch) < batch_size:
                log.warning("Effective batch size used to initialize is %d", len(batch))
            if len(batch) < hp["k"]:
                raise ClientError(f"Channel 'train' has only {len(batch)} records: fewer than k={hp['k']}")
            km.partial_fit(batch.features)
            timings["initialize.time"] += 1e3 * (time.perf_counter() - t0)
        else:
            km.partial_fit(batch.features)
            timings["update.time"] += 1e3 * (time.perf_counter() - t0)

    for epoch in range(epochs):
        started = time.time()
        seen = stream(train_channel, batch_size, feature_dim, fit, stop=lambda _: job.should_stop())
        km.end_epoch()
        job.metrics.progress(100.0 * (epoch + 1) / epochs)
        job.metrics.throughput(seen / max(time.time() - started, 1e-9))
        if job.should_stop():
            log.warning("Stopping after epoch %d of %d", epoch + 1, epochs)
            break

    t_final = t0 = time.perf_counter()
    log.info("shrinking %d centers into %d", km.n_stream_centers, km.k)
    km.finalize()
    timings["_shrink.time"] = 1e3 * (time.perf_counter() - t0)
    job.metrics.quality("train", "msd", km.train_msd_, LOSS)

    t0 = time.perf_counter()
    km.save(job.model_dir)
    timings["model.serialize.time"] = 1e3 * (time.perf_counter() - t0)

    ssd = 0.0

    def score(batch) -> None:
        nonlocal ssd
        ssd += km.sum_squared_distances(batch.features)[0]

    n = score_test_channel(job, batch_size, feature_dim, score)
    if n is not None:
        scores = {"msd": ssd / n, "ssd": ssd}
        for name in hp["eval_metrics"]:
            job.metrics.quality("test", name, scores[name], LOSS)
        for name in hp["eval_metrics"]:
            job.metrics.score_summary("test", name, scores[name])
    timings["finalize.time"] = 1e3 * (time.perf_counter() - t_final)
    job.metrics.metrics_json("training", timings, start=t_start)
