"""PCA (`pca:1`) as SageMaker declares it: hyperparameters, channels, metrics, serving.

Sources: AWS Developer Guide `PCA-reference`, `pca`, `PCA-in-formats`, `how-pca-works`; the
SageMaker Python SDK's `PCA`; a public job log's default-conf.json (see
/work/shared/spec/algorithms-tabular.md §5). Standard library only.

- `mini_batch_size` is required on the wire (the SDK always sends it).
- Hidden keys of AWS's default configuration: `force_dense` and `epochs` are declared (PCA needs
  one pass: a larger `epochs` is accepted and the data are still read once); the underscore keys
  of its default-conf.json (`ACCEPTED_HIDDEN`) are accepted and dropped, any other underscore name
  is an unknown hyperparameter, as in AWS's image.
- Responses: JSON `{"projections": [{"projection": [...]}, ...]}` — the root key is
  `projections`, not `predictions` — JSON Lines and recordIO-protobuf. AWS documents no CSV answer.
- No tunable metrics (PCA is not HPO-tunable); the test channel's reconstruction error is logged.
"""

from __future__ import annotations

from smalgos.declaration import (
    CPU, GPU, Algorithm, Boolean, Categorical, Channel, Hyperparameters, Integer, Interval,
    Serving, progress_metric, throughput_metric,
)
from smalgos.errors import ClientError

POSITIVE = Interval(1, None)

# Hidden keys of AWS's default-conf.json (algorithms-tabular.md §5.1): accepted and dropped.
ACCEPTED_HIDDEN = ("_kvstore", "_log_level", "_num_gpus", "_num_kv_servers")


def _components_fit(hp: dict) -> None:
    if hp["num_components"] > hp["feature_dim"]:
        raise ClientError(f"Hyperparameter num_components ({hp['num_components']}) must not exceed "
                          f"feature_dim ({hp['feature_dim']})")


HYPERPARAMETERS = Hyperparameters(
    params=(
        Integer("feature_dim", required=True, range=POSITIVE, doc="number of features per record"),
        Integer("mini_batch_size", required=True, range=POSITIVE, doc="records per mini-batch"),
        Integer("num_components", required=True, range=POSITIVE, doc="principal components to compute"),
        Categorical("algorithm_mode", default="regular", choices=("regular", "randomized"),
                    doc="regular: exact (d x d scatter matrix); randomized: one-pass sketch for large d"),
        Integer("extra_components", default=-1, range=Interval(-1, None),
                doc="randomized only: sketch size is num_components + this; -1 = max(10, num_components)"),
        Boolean("subtract_mean", default=True, doc="centre the data in training and at inference"),
        Boolean("force_dense", default=True, doc="hidden default of AWS's image; accepted and ignored"),
        Integer("epochs", default=1, range=POSITIVE, doc="hidden default of AWS's image; one pass is made"),
    ),
    validators=(_components_fit,),
    accept_unknown=ACCEPTED_HIDDEN,
)

ALGORITHM = Algorithm(
    name="pca",
    display_name="PCA",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, doc="read once, in mini-batches; labels ignored"),
        Channel("test", doc="scored by the final model (reconstruction error, logged)"),
    ),
    metrics=(
        progress_metric(),
        throughput_metric(),
    ),
    serving=Serving(
        content_types=("text/csv", "application/json", "application/jsonlines", "application/x-recordio-protobuf"),
        accepts=("application/json", "application/jsonlines", "application/x-recordio-protobuf"),
        default_accept="application/json",
        json_root_key="projections",
    ),
    variants=(CPU, GPU),
    supervised=False,
    doc="Principal components from streamed mini-batch summaries (exact scatter matrix or a one-pass sketch).",
)
