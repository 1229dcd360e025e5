"""IP Insights (`ipinsights:1`) as SageMaker declares it: hyperparameters, channels, metrics, serving.

Sources: AWS Developer Guide `ip-insights-hyperparameters`, `ip-insights-tuning`,
`ip-insights-training-data-formats`, `ip-insights-inference-data-formats`; the SageMaker Python
SDK's `IPInsights`; the default configuration printed by AWS's image in a public job log (see
/work/shared/spec/algorithms-tabular.md §10). Standard library only.

- The Developer Guide marks `num_entity_vectors` and `vector_dim` required, but AWS's image ships
  defaults for both (100000 and 128): they are optional here, with those defaults, and the
  trainer logs the default it took.
- `mini_batch_size` defaults to the image's 5000 (the Developer Guide says 10,000).
- `random_negative_sampling_rate` + `shuffled_negative_sampling_rate` must lie in [1, 500].
- Channels: `train` (required) and `validation` (optional), `text/csv` lines `entity,ip`; File
  mode as AWS, and Pipe mode as well (an addition). IPv6 addresses are read beside IPv4 (an
  addition: AWS documents IPv4 only).
- Serving reads CSV, JSON and JSON Lines (no recordIO, as AWS) and answers JSON or JSON Lines.
"""

from __future__ import annotations

import re

from smalgos.declaration import (
    CPU, CSV, FILE, GPU, MAXIMIZE, MINIMIZE, PIPE, Algorithm, Channel, Float, Hyperparameters, Integer,
    Interval, Metric, Serving, progress_metric, quality_metric, quality_regex, throughput_metric,
)
from smalgos.errors import ClientError

POSITIVE = Interval(1, None)
MAX_NEGATIVE_RATE = 500

# Hidden keys of AWS's default configuration (algorithms-tabular.md §10.1) and HPO's
# `_tuning_objective_metric`: accepted and dropped. Any other underscore name is refused.
ACCEPTED_HIDDEN = ("_kvstore", "_log_level", "_num_gpus", "_num_kv_servers", "_tuning_objective_metric")


def _negative_rates(hp: dict) -> None:
    """Every positive pair needs at least one negative, and at most 500."""
    random_rate, shuffled_rate = hp.get("random_negative_sampling_rate"), hp.get("shuffled_negative_sampling_rate")
    if random_rate is None or shuffled_rate is None:
        return
    total = random_rate + shuffled_rate
    if not 1 <= total <= MAX_NEGATIVE_RATE:
        raise ClientError(
            f"Hyperparameters random_negative_sampling_rate ({random_rate}) + shuffled_negative_sampling_rate "
            f"({shuffled_rate}) = {total} must lie in [1, {MAX_NEGATIVE_RATE}]: each pair needs at least one "
            "negative pair to be told apart from")


HYPERPARAMETERS = Hyperparameters(
    params=(
        Integer("num_entity_vectors", default=100000, range=Interval(1, 250_000_000),
                doc="hash buckets of the entity embeddings (and of the IP-prefix embeddings); about twice "
                    "the number of distinct entities"),
        Integer("vector_dim", default=128, range=Interval(4, 4096), doc="size of every embedding"),
        Integer("batch_metrics_publish_interval", default=1000, range=POSITIVE,
                doc="mini-batches between two batch metric lines"),
        Integer("epochs", default=10, range=POSITIVE, doc="passes over the training data"),
        Float("learning_rate", default=0.001, range=Interval(1e-6, 10.0), doc="Adam's step size"),
        Integer("mini_batch_size", default=5000, range=Interval(1, 500_000),
                doc="observed pairs per mini-batch (their negatives come on top)"),
        Integer("num_ip_encoder_layers", default=1, range=Interval(0, 100),
                doc="fully connected layers of the IP encoder, above its prefix embeddings"),
        Integer("random_negative_sampling_rate", default=1, range=Interval(0, MAX_NEGATIVE_RATE),
                doc="negatives per pair made with a uniformly random IP address"),
        Integer("shuffled_negative_sampling_rate", default=1, range=Interval(0, MAX_NEGATIVE_RATE),
                doc="negatives per pair made with the IP address of another pair of the mini-batch"),
        Float("weight_decay", default=0.00001, range=Interval(0.0, 10.0), doc="L2 penalty"),
    ),
    validators=(_negative_rates,),
    accept_unknown=ACCEPTED_HIDDEN + ("feature_dim",),  # the SDK's base estimator may send it: meaningless here
)

ACCURACY, CROSS_ENTROPY = "binary_classification_accuracy", "binary_classification_cross_entropy"
AUC = "discriminator_auc"


def _batch_metric(name: str, direction: str) -> Metric:
    """A train metric of the lines printed every batch_metrics_publish_interval batches
    (`epoch=E, batch=B train <name> <kind>=`); printed through the per-epoch metric of the same name."""
    kind = "score" if direction == MAXIMIZE else "loss"
    regex = quality_regex("train", name, kind, per_epoch=True).replace(r"epoch=\S+, ", r"epoch=\S+, batch=\S+ ")
    return Metric(f"train:{name}", direction, regex, tunable=False)


def _epoch_metric(name: str, direction: str) -> Metric:
    """`train:<name>:epoch`, AWS's name for the per-epoch line `epoch=E, train <name> <kind>=`."""
    return quality_metric("train", f"{name}:epoch", direction, per_epoch=True, tunable=False, token=re.escape(name))


ALGORITHM = Algorithm(
    name="ipinsights",
    display_name="AWS/IPInsights",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, content_types=(CSV,), input_modes=(FILE, PIPE),
                doc="`entity,ip` lines, `epochs` passes"),
        Channel("validation", content_types=(CSV,), input_modes=(FILE, PIPE),
                doc="`entity,ip` lines scored after each epoch: AUC of the pairs against fresh negatives"),
    ),
    metrics=(
        quality_metric("validation", AUC, MAXIMIZE, per_epoch=True),
        _batch_metric(ACCURACY, MAXIMIZE),
        _epoch_metric(ACCURACY, MAXIMIZE),
        _batch_metric(CROSS_ENTROPY, MINIMIZE),
        _epoch_metric(CROSS_ENTROPY, MINIMIZE),
        progress_metric(),
        throughput_metric(),
    ),
    serving=Serving(
        content_types=("text/csv", "application/json", "application/jsonlines"),
        accepts=("application/json", "application/jsonlines"),
        default_accept="application/json",
    ),
    variants=(CPU, GPU),
    supervised=False,
    doc="Hashed entity embeddings and an IP-prefix encoder trained to tell observed (entity, IP) pairs "
        "from random and shuffled ones.",
)
