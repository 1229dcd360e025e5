"""Factorization Machines (`factorization-machines:1`) as SageMaker declares it: hyperparameters,
channels, metrics, serving.

Sources: AWS Developer Guide `fact-machines`, `fact-machines-hyperparameters`, `fm-tuning`,
`fm-in-formats`, `cdf-inference`; the SageMaker Python SDK's `FactorizationMachines`; the metric
regexes of SageMaker's algorithm description (see /work/shared/spec/algorithms-tabular.md §7).
Standard library only.

- Training reads recordIO-protobuf only (Float32 tensors, dense or sparse), in File or Pipe mode;
  AWS documents no CSV for FM. `train` is required, `test` optional.
- Each of the three terms (bias, linear, factors) has its own init method (`normal`, `uniform`,
  `constant`) with `*_init_sigma` / `*_init_scale` / `*_init_value`, learning rate and weight
  decay. `uniform` without its `*_init_scale`, or `constant` without its `*_init_value`, is a
  ClientError naming the missing one (AWS documents no default for either).
- `clip_gradient` (≤ 0: no clipping, as in MXNet's optimizers), `eps` (Adam's epsilon; default
  1e-8) and `rescale_grad` (the multiplier of the summed mini-batch gradient; default
  1/records-in-the-batch) are honoured by the optimizer (see `optimizer.py`).
- Hidden underscore keys of the family's default configurations (`ACCEPTED_HIDDEN`) are accepted
  and dropped; any other underscore name is an unknown hyperparameter, as in AWS's images.
- Serving reads JSON, JSON Lines and recordIO-protobuf and answers in the same three; CSV
  requests are refused (415), as AWS documents. Per record `score` (+ `predicted_label` for a
  binary classifier).
"""

from __future__ import annotations

from smalgos.declaration import (
    CPU, GPU, MAXIMIZE, MINIMIZE, RECORDIO_PROTOBUF, Algorithm, Categorical, Channel, Float, Hyperparameters,
    Integer, Interval, Serving, progress_metric, quality_metric, throughput_metric,
)
from smalgos.errors import ClientError

POSITIVE_INT = Interval(1, None)
NON_NEGATIVE = Interval(0, None)
POSITIVE = Interval(0, None, low_inclusive=False)

PREDICTOR_TYPES = ("binary_classifier", "regressor")
INIT_METHODS = ("normal", "uniform", "constant")
TERMS = ("bias", "linear", "factors")

# Hidden keys of the family's default configurations (algorithms-tabular.md §1.2) and HPO's
# `_tuning_objective_metric`: accepted and dropped. FM's own default-input.json is not on record.
ACCEPTED_HIDDEN = ("_enable_profiler", "_kvstore", "_log_level", "_num_gpus", "_num_kv_servers",
                   "_tuning_objective_metric")

# The tokens of the quality lines: `binary_f_beta` prints as `binary_f_1.000` (AWS's regex).
F_BETA_TOKEN = "binary_f_1.000"
BINARY_TOKENS = ("binary_classification_accuracy", "binary_classification_cross_entropy", F_BETA_TOKEN)
REGRESSION_TOKENS = ("rmse",)


def _term_parameters(term: str, sigma: float, lr: float, wd: float) -> tuple:
    return (
        Categorical(f"{term}_init_method", default="normal", choices=INIT_METHODS,
                    doc=f"initialisation of the {term} term: normal (sigma), uniform (scale) or constant (value)"),
        Float(f"{term}_init_scale", default=None, range=NON_NEGATIVE,
              doc=f"uniform: the {term} term starts in [-scale, +scale]"),
        Float(f"{term}_init_sigma", default=sigma, range=NON_NEGATIVE,
              doc=f"normal: standard deviation of the {term} term's initial values"),
        Float(f"{term}_init_value", default=None, doc=f"constant: the {term} term's initial value"),
        Float(f"{term}_lr", default=lr, range=NON_NEGATIVE, doc=f"learning rate of the {term} term"),
        Float(f"{term}_wd", default=wd, range=NON_NEGATIVE, doc=f"weight decay (L2) of the {term} term"),
    )


def _init_values_given(hp: dict) -> None:
    """`uniform` needs its scale and `constant` its value: AWS documents no default for either."""
    for term in TERMS:
        method = hp.get(f"{term}_init_method")
        needed = {"uniform": f"{term}_init_scale", "constant": f"{term}_init_value"}.get(method)
        if needed is not None and hp.get(needed) is None:
            raise ClientError(f"Hyperparameter {needed} is required when {term}_init_method is {method}")


HYPERPARAMETERS = Hyperparameters(
    params=(
        Integer("feature_dim", required=True, range=POSITIVE_INT, doc="number of features per record"),
        Integer("num_factors", required=True, range=POSITIVE_INT, doc="dimension k of the factor vectors"),
        Categorical("predictor_type", required=True, choices=PREDICTOR_TYPES, doc="binary_classifier or regressor"),
        Integer("epochs", default=1, range=POSITIVE_INT, doc="passes over the training data"),
        Integer("mini_batch_size", default=1000, range=POSITIVE_INT, doc="records per optimizer step"),
        *_term_parameters("bias", sigma=0.01, lr=0.1, wd=0.01),
        *_term_parameters("linear", sigma=0.01, lr=0.001, wd=0.001),
        *_term_parameters("factors", sigma=0.001, lr=0.0001, wd=0.00001),
        Float("clip_gradient", default=None, doc="clip each gradient value to [-c, +c]; <= 0: no clipping"),
        Float("eps", default=None, range=POSITIVE, doc="Adam's epsilon; none: 1e-8"),
        Float("rescale_grad", default=None, range=POSITIVE,
              doc="multiplier of the mini-batch's summed gradient; none: 1 / records in the batch"),
    ),
    validators=(_init_values_given,),
    accept_unknown=ACCEPTED_HIDDEN,
)


def _metrics() -> tuple:
    out = [
        quality_metric("test", "rmse", MINIMIZE),
        quality_metric("test", "binary_classification_accuracy", MAXIMIZE),
        quality_metric("test", "binary_classification_cross_entropy", MINIMIZE),
        quality_metric("test", "binary_f_beta", MAXIMIZE, token=r"binary_f_1\.000"),
    ]
    # The same over each training pass (`epoch=` lines) and the last one (the model's predictions
    # before each step), not tunable.
    test = list(out)
    out += [quality_metric("train", m.name.split(":")[1], m.direction, tunable=False, token=m.token) for m in test]
    out += [quality_metric("train", f"{m.name.split(':')[1]}:epoch", m.direction, per_epoch=True, tunable=False,
                           token=m.token) for m in test]
    return (*out, progress_metric(), throughput_metric())


ALGORITHM = Algorithm(
    name="factorization-machines",
    display_name="AWS/FactorizationMachines",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, content_types=(RECORDIO_PROTOBUF,),
                doc="recordIO-protobuf Float32 records (sparse or dense) with a label each, `epochs` passes"),
        Channel("test", content_types=(RECORDIO_PROTOBUF,),
                doc="scored once by the final model: rmse, or accuracy, cross entropy and F1 at 0.5"),
    ),
    metrics=_metrics(),
    serving=Serving(
        content_types=("application/json", "application/jsonlines", RECORDIO_PROTOBUF),
        accepts=("application/json", "application/jsonlines", RECORDIO_PROTOBUF),
        default_accept="application/json",
    ),
    variants=(CPU, GPU),
    doc="Second-order factorization machine (bias, linear and pairwise factorised terms) for binary "
        "classification or regression on sparse data, trained by mini-batch Adam.",
)
