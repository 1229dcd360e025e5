"""K-Means (`kmeans:1`) as SageMaker declares it: hyperparameters, channels, metrics, serving.

Sources: AWS Developer Guide `k-means-api-config`, `k-means-tuning`, `km-in-formats`,
`algo-kmeans-tech-notes`; the SageMaker Python SDK's `KMeans`; defaults seen in a public job log
(see /work/shared/spec/algorithms-tabular.md §4). Standard library only.

- The SDK always sends `force_dense="True"`: accepted (and meaningless here: sparse records are
  densified one mini-batch at a time).
- Hidden underscore keys of AWS's default configuration (`_kvstore`, `_num_gpus`, ...) and HPO's
  `_tuning_objective_metric` are accepted and dropped (`ACCEPTED_HIDDEN`); other underscore names
  are unknown hyperparameters, as in AWS's image.
- Unsupervised: CSV channels carry no label column unless `label_size` says so.
- Serving answers JSON (default), JSON Lines, recordIO-protobuf and CSV (`closest_cluster,
  distance_to_cluster` per line), as `km-in-formats` documents.
"""

from __future__ import annotations

from smalgos.declaration import (
    AUTO, CPU, GPU, MINIMIZE, Algorithm, Boolean, Categorical, Channel, Float, Hyperparameters,
    Integer, Interval, Serving, StringList, progress_metric, quality_metric, throughput_metric,
)
from smalgos.errors import ClientError

POSITIVE = Interval(1, None)


def _mini_batch_seeds_k(hp: dict) -> None:
    """The first mini-batch seeds the centres, so it must be able to hold k records."""
    k, batch = hp.get("k"), hp.get("mini_batch_size")
    if k is not None and batch is not None and batch < k:
        raise ClientError(f"Hyperparameter mini_batch_size ({batch}) must be at least k ({k}):"
                          " the first mini-batch seeds the centres")

# Hidden keys of AWS's default-input.json (algorithms-tabular.md §4.1) and HPO's
# `_tuning_objective_metric`: accepted and dropped. Any other underscore name is refused.
ACCEPTED_HIDDEN = ("_disable_wait_to_read", "_enable_profiler", "_kvstore", "_log_level", "_num_gpus",
                   "_num_kv_servers", "_num_slices", "_tuning_objective_metric")

INIT_METHODS = ("random", "kmeans++")
EVAL_METRICS = ("msd", "ssd")

HYPERPARAMETERS = Hyperparameters(
    params=(
        Integer("feature_dim", required=True, range=POSITIVE, doc="number of features per record"),
        Integer("k", required=True, range=POSITIVE, doc="number of clusters in the final model"),
        Integer("epochs", default=1, range=POSITIVE, doc="passes over the training data"),
        StringList("eval_metrics", default=["msd"], choices=EVAL_METRICS,
                   doc="scores reported on the test channel: msd and/or ssd"),
        Integer("extra_center_factor", default=AUTO, allow_auto=True, range=POSITIVE,
                doc="K = k x extra_center_factor centres are kept while streaming; auto = 10"),
        Integer("half_life_time_size", default=0, range=Interval(0, None),
                doc="points after which an old point's weight in a centre halves; 0 = no decay"),
        Categorical("init_method", default="random", choices=INIT_METHODS,
                    doc="seeding of the streaming centres from the first mini-batch"),
        Categorical("local_lloyd_init_method", default="kmeans++", choices=INIT_METHODS,
                    doc="seeding of the final Lloyd's reduction"),
        Integer("local_lloyd_max_iter", default=300, range=POSITIVE),
        Integer("local_lloyd_num_trials", default=AUTO, allow_auto=True, range=POSITIVE,
                doc="Lloyd's restarts, the lowest loss kept; auto = 10"),
        Float("local_lloyd_tol", default=0.0001, range=Interval(0, 1),
              doc="stop a Lloyd's trial when the loss improves by less than this fraction"),
        Integer("mini_batch_size", default=5000, range=POSITIVE),
        Boolean("force_dense", default=True, doc="sent by the SageMaker SDK; accepted and ignored"),
    ),
    validators=(_mini_batch_seeds_k,),
    accept_unknown=ACCEPTED_HIDDEN,
)

ALGORITHM = Algorithm(
    name="kmeans",
    display_name="AWS/KMeansWebscale",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, doc="streamed in mini-batches, `epochs` times; labels ignored"),
        Channel("test", doc="scored once at the end with eval_metrics"),
    ),
    metrics=(
        quality_metric("test", "msd", MINIMIZE),
        quality_metric("test", "ssd", MINIMIZE),
        quality_metric("train", "msd", MINIMIZE, tunable=False),
        progress_metric(),
        throughput_metric(),
    ),
    serving=Serving(
        content_types=("text/csv", "application/json", "application/jsonlines", "application/x-recordio-protobuf"),
        accepts=("application/json", "application/jsonlines", "application/x-recordio-protobuf", "text/csv"),
        default_accept="application/json",
    ),
    variants=(CPU, GPU),
    supervised=False,
    doc="Web-scale mini-batch k-means over streamed mini-batches, reduced to k centres with Lloyd's method.",
)
