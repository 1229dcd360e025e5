"""LDA (`lda:1`) as SageMaker declares it: hyperparameters, channels, metrics, serving.

Sources: AWS Developer Guide `lda`, `lda_hyperparameters`, `lda-how-it-works`, `lda-tuning`; the
SageMaker Python SDK's `LDA`; a public job log's default configuration (see
/work/shared/spec/algorithms-tabular.md §9). Standard library only.

- `num_topics`, `feature_dim` (the vocabulary size) and `mini_batch_size` are required (the SDK
  always sends the last two; AWS describes `mini_batch_size` as the corpus size, here it is only
  the number of documents read at a time).
- Hidden keys of AWS's default configuration: `allow_svd_init` (the first restart of the tensor
  decomposition starts from an SVD of the tensor) and `epochs` are declared; `_kvstore`,
  `_num_gpus` and HPO's `_tuning_objective_metric` are accepted and dropped (`ACCEPTED_HIDDEN`).
- Records are documents: one word-count vector of `feature_dim` counts each (recordIO-protobuf
  dense or sparse, or CSV without a label column). Single host, CPU only (train.py refuses more
  hosts, as AWS does).
- `test:pwll`, the per-word log-likelihood of the test documents, is the tunable metric.
- Responses: JSON `{"predictions": [{"topic_mixture": [...]}, ...]}`, JSON Lines and
  recordIO-protobuf (`label["topic_mixture"]`). AWS documents no CSV answer.
"""

from __future__ import annotations

from smalgos.declaration import (
    CPU, MAXIMIZE, Algorithm, Boolean, Channel, Float, Hyperparameters, Integer, Interval, Serving,
    progress_metric, quality_metric, throughput_metric,
)
from smalgos.errors import ClientError

POSITIVE = Interval(1, None)
ABOVE_ZERO = Interval(0, None, low_inclusive=False)

# Hidden keys of AWS's default configuration (algorithms-tabular.md §9.1) and HPO's
# `_tuning_objective_metric`: accepted and dropped. Any other underscore name is refused.
ACCEPTED_HIDDEN = ("_kvstore", "_num_gpus", "_tuning_objective_metric")


def _topics_fit_vocabulary(hp: dict) -> None:
    k, v = hp.get("num_topics"), hp.get("feature_dim")
    if k is not None and v is not None and k > v:
        raise ClientError(f"Hyperparameter num_topics ({k}) must not exceed feature_dim ({v}): "
                          "a spectral fit finds at most one topic per word of the vocabulary")


HYPERPARAMETERS = Hyperparameters(
    params=(
        Integer("num_topics", required=True, range=POSITIVE, doc="number of topics to find"),
        Integer("feature_dim", required=True, range=POSITIVE, doc="vocabulary size (words per record)"),
        Integer("mini_batch_size", required=True, range=POSITIVE, doc="documents read at a time"),
        Float("alpha0", default=1.0, range=ABOVE_ZERO,
              doc="guess of the Dirichlet concentration (sum of the topic prior): small = sparse mixtures"),
        Integer("max_restarts", default=10, range=POSITIVE,
                doc="random restarts of the tensor decomposition, per topic"),
        Integer("max_iterations", default=1000, range=POSITIVE,
                doc="iterations of each restart of the tensor decomposition"),
        Float("tol", default=1e-8, range=ABOVE_ZERO, doc="convergence tolerance of the tensor decomposition"),
        Boolean("allow_svd_init", default=True,
                doc="hidden default of AWS's image: the first restart starts from the tensor's SVD"),
        Integer("epochs", default=1, range=POSITIVE,
                doc="hidden default of AWS's image; the data are read twice whatever its value"),
    ),
    validators=(_topics_fit_vocabulary,),
    accept_unknown=ACCEPTED_HIDDEN,
)

ALGORITHM = Algorithm(
    name="lda",
    display_name="LDA",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, doc="word counts, one document per record; read twice"),
        Channel("test", doc="scored by the final model: per-word log-likelihood (test:pwll)"),
    ),
    metrics=(
        quality_metric("test", "pwll", MAXIMIZE),
        progress_metric(),
        throughput_metric(),
    ),
    serving=Serving(),  # the defaults: CSV, JSON, JSON Lines, recordIO in; JSON (default), JSON Lines, recordIO out
    variants=(CPU,),
    supervised=False,
    doc="Topic model by spectral decomposition of the word co-occurrence moments (Anandkumar et al. 2014).",
)
