"""k-NN (`knn:1`) as SageMaker declares it: hyperparameters, channels, metrics, serving.

Sources: AWS Developer Guide `kNN_hyperparameters`, `kNN-tuning`, `kNN-in-formats`,
`kNN-inference-formats`, `kNN_how-it-works`; the SageMaker Python SDK's `KNN`; a public job log's
default-conf.json (see /work/shared/spec/algorithms-tabular.md §6). Standard library only.

- `dimension_reduction_target` is required exactly when `dimension_reduction_type` is set, and
  must be below `feature_dim`; `faiss.IVFPQ` accepts only `index_metric=L2`.
- Hidden keys of AWS's default configuration: `epochs` (1) and `_faiss_index_nprobe` (5, the IVF
  lists probed per query) are declared; the other underscore keys of default-conf.json and HPO's
  `_tuning_objective_metric`, and the SDK's `force_dense`, are accepted and dropped
  (`ACCEPTED_HIDDEN`); any other underscore name is an unknown hyperparameter, as in AWS's image.
- Responses: JSON (default), JSON Lines, recordIO-protobuf; `verbose=true` on the Accept type
  (`application/json; verbose=true`) adds the neighbours' `distances` and `labels`.
"""

from __future__ import annotations

from smalgos.declaration import (
    AUTO, CPU, GPU, MAXIMIZE, MINIMIZE, Algorithm, Categorical, Channel, Hyperparameters,
    Integer, Interval, Serving, progress_metric, quality_metric, throughput_metric,
)
from smalgos.errors import ClientError

POSITIVE = Interval(1, None)
# Hidden keys of AWS's default-conf.json (algorithms-tabular.md §6.1) and the SDK's force_dense:
# accepted and dropped.
ACCEPTED_HIDDEN = ("force_dense", "_enable_profiler", "_kvstore", "_log_level", "_num_gpus", "_num_kv_servers",
                   "_tuning_objective_metric")
PQ_M_CHOICES = (1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96)


def _check_reduction(hp: dict) -> None:
    kind, target = hp["dimension_reduction_type"], hp["dimension_reduction_target"]
    if kind is not None and target is None:
        raise ClientError("Hyperparameter dimension_reduction_target is required when dimension_reduction_type"
                          f" is set (dimension_reduction_type={kind})")
    if kind is None and target is not None:
        raise ClientError("Hyperparameter dimension_reduction_target is set but dimension_reduction_type is not"
                          " (choose sign or fjlt)")
    if target is not None and target >= hp["feature_dim"]:
        raise ClientError(f"Hyperparameter dimension_reduction_target ({target}) must be smaller than "
                          f"feature_dim ({hp['feature_dim']})")


def _check_index(hp: dict) -> None:
    if hp["index_type"] == "faiss.IVFPQ" and hp["index_metric"] != "L2":
        raise ClientError(f"Hyperparameter index_metric={hp['index_metric']} is not supported with "
                          "index_type=faiss.IVFPQ (only L2)")
    m = hp["faiss_index_pq_m"]
    if m is not None and m not in PQ_M_CHOICES:
        raise ClientError(f"Hyperparameter faiss_index_pq_m: {m} is not one of {', '.join(map(str, PQ_M_CHOICES))}")


HYPERPARAMETERS = Hyperparameters(
    params=(
        Integer("feature_dim", required=True, range=POSITIVE, doc="number of features per record"),
        Integer("k", required=True, range=POSITIVE, doc="number of neighbours"),
        Categorical("predictor_type", required=True, choices=("classifier", "regressor")),
        Integer("sample_size", required=True, range=POSITIVE, doc="records sampled into the index"),
        Categorical("dimension_reduction_type", default=None, choices=("sign", "fjlt")),
        Integer("dimension_reduction_target", default=None, range=POSITIVE),
        Categorical("index_type", default="faiss.Flat", choices=("faiss.Flat", "faiss.IVFFlat", "faiss.IVFPQ")),
        Categorical("index_metric", default="L2", choices=("L2", "INNER_PRODUCT", "COSINE")),
        Integer("faiss_index_ivf_nlists", default=AUTO, allow_auto=True, range=POSITIVE,
                doc="IVF lists; auto = sqrt(sample_size)"),
        Integer("faiss_index_pq_m", default=None, range=POSITIVE,
                doc="IVFPQ sub-quantizers; unset = the largest allowed divisor of the dimension"),
        Integer("mini_batch_size", default=5000, range=POSITIVE),
        Integer("epochs", default=1, range=POSITIVE, doc="hidden default of AWS's image; one pass is made"),
        Integer("_faiss_index_nprobe", default=5, range=POSITIVE, doc="IVF lists probed per query"),
    ),
    validators=(_check_reduction, _check_index),
    accept_unknown=ACCEPTED_HIDDEN,
)

ALGORITHM = Algorithm(
    name="knn",
    display_name="AWS/KNN",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, doc="sampled into the index; label in CSV column 0 or recordIO label['values']"),
        Channel("test", doc="scored once at the end: accuracy (classifier) or mse (regressor)"),
    ),
    metrics=(
        quality_metric("test", "accuracy", MAXIMIZE),
        quality_metric("test", "mse", MINIMIZE),
        progress_metric(),
        throughput_metric(),
    ),
    serving=Serving(
        content_types=("text/csv", "application/json", "application/jsonlines", "application/x-recordio-protobuf"),
        accepts=("application/json", "application/jsonlines", "application/x-recordio-protobuf"),
        default_accept="application/json",
        multi_model=True,  # AWS's image serves CPU multi-model endpoints
    ),
    variants=(CPU, GPU),
    supervised=True,
    doc="k-nearest-neighbours classifier/regressor over a sampled, optionally projected, FAISS index.",
)
