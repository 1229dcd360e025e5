"""Training for k-NN: one pass over `train` (projected if asked, reservoir-sampled to
`sample_size`), the FAISS index built over the sample, `test` scored at the end.

Log lines: progress and throughput, `#quality_metric: host=algo-1, test accuracy <score>=...`
(classifier) or `test mse <loss>=...` (regressor), `#test_score (algo-1) : ('accuracy', ...)`,
and a `#metrics` timing line with Algorithm `AWS/KNN`.
"""

from __future__ import annotations

import time

import numpy as np

from smalgos.errors import ClientError
from smalgos.metrics import LOSS, SCORE
from smalgos.training.passes import one_pass, score_test_channel

from .model import KNearestNeighbors


def estimator_from(hp: dict) -> KNearestNeighbors:
    return KNearestNeighbors(
        hp["k"], hp["predictor_type"], sample_size=hp["sample_size"],
        dimension_reduction_type=hp["dimension_reduction_type"],
        dimension_reduction_target=hp["dimension_reduction_target"], index_type=hp["index_type"],
        index_metric=hp["index_metric"], faiss_index_ivf_nlists=hp["faiss_index_ivf_nlists"],
        faiss_index_pq_m=hp["faiss_index_pq_m"], faiss_index_nprobe=hp["_faiss_index_nprobe"], random_state=0)


def labels_of(batch, channel: str) -> np.ndarray:
    if batch.labels is None:
        raise ClientError(f"Channel '{channel}' has no labels: k-NN needs one label per record (CSV: the first"
                          " column; recordIO-protobuf: label['values'])")
    labels = np.asarray(batch.labels, dtype=np.float32)
    if labels.ndim == 2:
        if labels.shape[1] != 1:
            raise ClientError(f"Channel '{channel}': records carry {labels.shape[1]} labels; k-NN takes one")
        labels = labels[:, 0]
    if not np.isfinite(labels).all():
        raise ClientError(f"Channel '{channel}': labels must be finite numbers")
    return labels


def train(job) -> None:
    hp = job.hyperparameters
    log = job.log
    feature_dim, batch_size = hp["feature_dim"], hp["mini_batch_size"]
    if len(job.resources.hosts) > 1:
        log.warning("k-NN runs on one host here: %s samples its own share only", job.resources.current_host)
    knn = estimator_from(hp)
    knn.begin(feature_dim)
    t_start = time.time()
    seen = one_pass(job, "train", batch_size, feature_dim,
                    lambda batch: knn.partial_fit(batch.features, labels_of(batch, "train")))

    t0 = time.perf_counter()
    knn.finalize()
    index_ms = 1e3 * (time.perf_counter() - t0)
    log.info("Built a %s index (%s) over %d sampled records of %d", hp["index_type"], hp["index_metric"],
             knn.index_.ntotal, seen)
    t0 = time.perf_counter()
    knn.save(job.model_dir)
    serialize_ms = 1e3 * (time.perf_counter() - t0)

    right, sq_err = 0, 0.0

    def score(batch) -> None:
        nonlocal right, sq_err
        y = labels_of(batch, "test")
        pred = knn.predict(batch.features)
        right += int((pred == y).sum())
        sq_err += float(((pred.astype(np.float64) - y) ** 2).sum())

    n = score_test_channel(job, batch_size, feature_dim, score)
    if n is not None:
        if hp["predictor_type"] == "classifier":
            job.metrics.quality("test", "accuracy", right / n, SCORE)
            job.metrics.score_summary("test", "accuracy", right / n)
        else:
            job.metrics.quality("test", "mse", sq_err / n, LOSS)
            job.metrics.score_summary("test", "mse", sq_err / n)
    job.metrics.metrics_json("training", {"index.build.time": index_ms, "model.serialize.time": serialize_ms},
                             start=t_start)
