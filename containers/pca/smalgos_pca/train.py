"""Training for PCA: one pass over `train` accumulating the mode's summary, then the
decomposition; the optional `test` channel is scored by the final model.

Log lines: `<n> feature(s) found in 'data'.`, progress and throughput, the test channel's mean
squared reconstruction error (AWS names no metric for it), and a `#metrics` timing line with
Algorithm `PCA`.
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from smalgos.training.passes import one_pass, score_test_channel

from .model import StreamingPCA


def estimator_from(hp: dict) -> StreamingPCA:
    return StreamingPCA(hp["num_components"], algorithm_mode=hp["algorithm_mode"],
                        subtract_mean=hp["subtract_mean"], extra_components=hp["extra_components"],
                        mini_batch_size=hp["mini_batch_size"], random_state=0)


def reconstruction_sse(pca: StreamingPCA, features) -> float:
    """Σ |x − x̂|² with x̂ = mean + (x − mean)·v·vᵀ, for one mini-batch."""
    x = features.toarray() if sp.issparse(features) else np.asarray(features)
    centred = x.astype(np.float64) - pca.mean_
    z = centred @ pca.components_.astype(np.float64)
    return float(((centred - z @ pca.components_.T.astype(np.float64)) ** 2).sum())


def train(job) -> None:
    hp = job.hyperparameters
    log = job.log
    feature_dim, batch_size = hp["feature_dim"], hp["mini_batch_size"]
    if hp["epochs"] > 1:
        log.info("PCA needs a single pass over the data: epochs=%d is accepted, one pass is made", hp["epochs"])
    pca = estimator_from(hp)
    log.info("%d feature(s) found in 'data'.", feature_dim)
    pca.begin(feature_dim)
    t_start = time.time()
    update_ms = 0.0

    def fit(batch) -> None:
        nonlocal update_ms
        t0 = time.perf_counter()
        pca.partial_fit(batch.features)
        update_ms += 1e3 * (time.perf_counter() - t0)

    one_pass(job, "train", batch_size, feature_dim, fit)

    t0 = time.perf_counter()
    pca.finalize()
    finalize_ms = 1e3 * (time.perf_counter() - t0)
    log.info("Singular values (ascending): %s", np.array2string(pca.singular_values_, precision=6))
    t0 = time.perf_counter()
    pca.save(job.model_dir)
    serialize_ms = 1e3 * (time.perf_counter() - t0)

    sse = 0.0

    def score(batch) -> None:
        nonlocal sse
        sse += reconstruction_sse(pca, batch.features)

    n = score_test_channel(job, batch_size, feature_dim, score)
    if n is not None:
        log.info("Test data: %d records, mean squared reconstruction error %r", n, sse / n)
    job.metrics.metrics_json("training", {"update.time": update_ms, "finalize.time": finalize_ms,
                                          "model.serialize.time": serialize_ms}, start=t_start)
