"""Linear Learner (`linear-learner:1`) as SageMaker declares it: hyperparameters, channels, metrics.

Sources: AWS Developer Guide `ll_hyperparameters`, `linear-learner-tuning`, `LL-in-formats`; the
SageMaker Python SDK's `LinearLearner`; default configurations and metric lines in public job logs
(see /work/shared/spec/algorithms-tabular.md §2). Standard library only.

Serving Accept: JSON (default), JSON Lines and recordIO-protobuf. `text/csv` is *not* offered:
AWS documents that Linear Learner writes no CSV, and its image silently answered a CSV Accept with
JSON (aws/sagemaker-python-sdk#993). We follow the documented contract rather than the silent
fallback: a `text/csv`-only Accept gets 406 naming the supported types, while `text/csv, */*`
or a missing Accept gets JSON.
"""

from __future__ import annotations

from smalgos.declaration import (
    AUTO, CPU, GPU, MAXIMIZE, MINIMIZE, Algorithm, Boolean, Categorical, Channel, Float,
    FloatOrChoice, Hyperparameters, Integer, Interval, Metric, Serving, String, progress_metric, quality_metric,
    throughput_metric,
)
from smalgos.errors import ClientError

# Hidden keys of AWS's default-input.json (algorithms-tabular.md §2.1), accepted and dropped; the
# SDK's `force_dense` and the 2018 image's `_data_format` too. `_tuning_objective_metric` (set by
# HPO) is a declared hyperparameter: it forces num_models=1. Any other underscore name is refused.
ACCEPTED_HIDDEN = ("force_dense", "_data_format", "_enable_profiler", "_kvstore", "_log_level", "_num_gpus",
                   "_num_kv_servers")

PREDICTOR_TYPES = ("binary_classifier", "multiclass_classifier", "regressor")
LOSSES = (AUTO, "logistic", "squared_loss", "absolute_loss", "hinge_loss", "eps_insensitive_squared_loss",
          "eps_insensitive_absolute_loss", "quantile_loss", "huber_loss", "softmax_loss")
LOSSES_BY_PREDICTOR = {
    "binary_classifier": (AUTO, "logistic", "hinge_loss"),
    "multiclass_classifier": (AUTO, "softmax_loss"),
    "regressor": (AUTO, "squared_loss", "absolute_loss", "eps_insensitive_squared_loss",
                  "eps_insensitive_absolute_loss", "quantile_loss", "huber_loss"),
}
SELECTION_CRITERIA = ("accuracy", "f_beta", "precision_at_target_recall", "recall_at_target_precision",
                      "loss_function", "f1", "cross_entropy_loss")

POSITIVE = Interval(0, None, low_inclusive=False)
NON_NEGATIVE = Interval(0, None)
AT_LEAST_ONE = Interval(1, None)
UNIT_OPEN = Interval(0, 1, low_inclusive=False, high_inclusive=False)
UNIT_RIGHT_OPEN = Interval(0, 1, high_inclusive=False)


def _check_num_classes(hp: dict) -> None:
    if hp["predictor_type"] == "multiclass_classifier":
        n = hp.get("num_classes")
        if n is None or n < 3:
            raise ClientError(
                "Hyperparameter num_classes is required and must be at least 3 when predictor_type is "
                f"multiclass_classifier (got {n if n is not None else 'none'})")


def _check_loss(hp: dict) -> None:
    allowed = LOSSES_BY_PREDICTOR[hp["predictor_type"]]
    if hp["loss"] not in allowed:
        raise ClientError(
            f"Hyperparameter loss: {hp['loss']!r} is not allowed when predictor_type is "
            f"{hp['predictor_type']} (allowed: {', '.join(allowed)})")


HYPERPARAMETERS = Hyperparameters(
    params=(
        Categorical("predictor_type", required=True, choices=PREDICTOR_TYPES,
                    doc="binary_classifier, multiclass_classifier or regressor"),
        Integer("num_classes", default=None, range=Interval(1, 1_000_000),
                doc="number of classes, >= 3; required iff predictor_type is multiclass_classifier"),
        Integer("feature_dim", default=AUTO, allow_auto=True, range=AT_LEAST_ONE,
                doc="number of features; auto: taken from the data"),
        Integer("mini_batch_size", default=1000, range=AT_LEAST_ONE),
        Integer("epochs", default=15, range=AT_LEAST_ONE, doc="maximum passes over the data"),
        Integer("accuracy_top_k", default=3, range=Interval(1, 1_000_000),
                doc="k of the multiclass top-k accuracy metric"),
        Boolean("balance_multiclass_weights", default=False,
                doc="weigh classes by inverse frequency in a training sample (multiclass)"),
        Float("beta_1", default=AUTO, allow_auto=True, range=UNIT_RIGHT_OPEN, doc="adam; auto: 0.9"),
        Float("beta_2", default=AUTO, allow_auto=True, range=UNIT_RIGHT_OPEN, doc="adam; auto: 0.999"),
        Float("bias_lr_mult", default=AUTO, allow_auto=True, range=POSITIVE, doc="auto: 10"),
        Float("bias_wd_mult", default=AUTO, allow_auto=True, range=NON_NEGATIVE, doc="auto: 0"),
        Categorical("binary_classifier_model_selection_criteria", default="accuracy",
                    choices=SELECTION_CRITERIA),
        Integer("early_stopping_patience", default=3, range=AT_LEAST_ONE),
        Float("early_stopping_tolerance", default=0.001, range=POSITIVE),
        Float("f_beta", default=1.0, range=POSITIVE),
        Float("huber_delta", default=1.0, range=POSITIVE),
        Float("init_bias", default=0.0),
        Categorical("init_method", default="uniform", choices=("uniform", "normal")),
        Float("init_scale", default=0.07, range=POSITIVE, doc="uniform init range [-scale, scale]"),
        Float("init_sigma", default=0.01, range=POSITIVE, doc="normal init standard deviation"),
        Float("l1", default=AUTO, allow_auto=True, range=NON_NEGATIVE, doc="L1 penalty; auto: searched"),
        Float("learning_rate", default=AUTO, allow_auto=True, range=POSITIVE, doc="auto: searched"),
        Categorical("loss", default=AUTO, choices=LOSSES),
        Float("loss_insensitivity", default=0.01, range=POSITIVE, doc="epsilon of eps-insensitive losses"),
        Float("lr_scheduler_factor", default=AUTO, allow_auto=True,
              range=UNIT_OPEN, doc="auto: 0.99"),
        Float("lr_scheduler_minimum_lr", default=AUTO, allow_auto=True, range=POSITIVE, doc="auto: 1e-5"),
        Integer("lr_scheduler_step", default=AUTO, allow_auto=True, range=AT_LEAST_ONE, doc="auto: 100"),
        Float("margin", default=1.0, range=NON_NEGATIVE, doc="hinge_loss margin"),
        Float("momentum", default=AUTO, allow_auto=True, range=UNIT_RIGHT_OPEN, doc="sgd; auto: 0"),
        Boolean("normalize_data", default=True, allow_auto=True),
        Boolean("normalize_label", default=AUTO, allow_auto=True, doc="auto: on for regressors only"),
        Integer("num_calibration_samples", default=AUTO, allow_auto=True, range=AT_LEAST_ONE,
                doc="validation records used for threshold calibration; auto: 10,000,000"),
        Integer("num_models", default=AUTO, allow_auto=True, range=AT_LEAST_ONE,
                doc="models trained in parallel; auto: the search grid, at most 32"),
        Integer("num_point_for_scaler", default=10000, range=AT_LEAST_ONE),
        Categorical("optimizer", default=AUTO, choices=(AUTO, "sgd", "adam", "rmsprop"), doc="auto: adam"),
        FloatOrChoice("positive_example_weight_mult", default=1.0, range=POSITIVE, choices=("balanced", AUTO),
                      doc="binary only: float > 0, balanced (#neg/#pos) or auto (searched)"),
        Float("quantile", default=0.5, range=UNIT_OPEN),
        Float("target_precision", default=0.8, range=UNIT_OPEN),
        Float("target_recall", default=0.8, range=UNIT_OPEN),
        Boolean("unbias_data", default=AUTO, allow_auto=True, doc="auto: on when use_bias"),
        Boolean("unbias_label", default=AUTO, allow_auto=True, doc="auto: on for regressors when use_bias"),
        Boolean("use_bias", default=True),
        Boolean("use_lr_scheduler", default=True),
        Float("wd", default=AUTO, allow_auto=True, range=NON_NEGATIVE, doc="L2 penalty; auto: searched"),
        # Set by automatic model tuning; a non-empty value forces num_models to 1 as in AWS's image.
        String("_tuning_objective_metric", default="", doc="set by HPO; forces num_models=1"),
    ),
    validators=(_check_num_classes, _check_loss),
    accept_unknown=ACCEPTED_HIDDEN,
)

CHANNELS = (
    Channel("train", required=True, doc="training data; label in CSV column 0 or recordIO label 'values'"),
    Channel("validation", doc="early stopping, model selection and threshold calibration"),
    Channel("test", doc="scored once at the end"),
)


def _metrics() -> tuple[Metric, ...]:
    out = [
        quality_metric("train", "objective_loss", MINIMIZE, per_epoch=True, tunable=False, token=r"\S+_objective"),
        quality_metric("train", "objective_loss:final", MINIMIZE, tunable=False, token=r"\S+_objective"),
        quality_metric("validation", "objective_loss", MINIMIZE, per_epoch=True, token=r"\S+_objective"),
        quality_metric("validation", "objective_loss:final", MINIMIZE, token=r"\S+_objective"),
        quality_metric("test", "objective_loss", MINIMIZE, token=r"\S+_objective"),
    ]
    scores = (
        ("binary_classification_accuracy", "binary_classification_accuracy"),
        ("binary_f_beta", r"binary_f_\S+"),
        ("precision", "precision"),
        ("recall", "recall"),
        ("roc_auc_score", "roc_auc_score"),
        ("multiclass_accuracy", "multiclass_accuracy"),
        ("multiclass_top_k_accuracy", r"multiclass_top_k_accuracy_\S+"),
        ("macro_precision", "macro_precision"),
        ("macro_recall", "macro_recall"),
        ("macro_f_beta", r"macro_f_\S+"),
        ("dcg", "dcg"),
    )
    # The final model is scored on every channel; AWS's tunable metrics are validation and test ones
    # (rmse on validation only), and the console lists the train channel's binary metrics.
    for channel in ("validation", "test", "train"):
        tunable = channel != "train"
        for name, token in scores:
            out.append(quality_metric(channel, name, MAXIMIZE, tunable=tunable, token=token))
        for name in ("mse", "absolute_loss"):
            out.append(quality_metric(channel, name, MINIMIZE, tunable=tunable))
        out.append(quality_metric(channel, "rmse", MINIMIZE, tunable=channel == "validation"))
        # newer images also print these; not tunable in AWS's list
        out.append(quality_metric(channel, "multiclass_balanced_accuracy", MAXIMIZE, tunable=False))
        # AWS prints multiclass_log_loss as a <score> (see evaluation.py)
        out.append(quality_metric(channel, "multiclass_log_loss", MINIMIZE, tunable=False, kind="score"))
    out += [progress_metric(), throughput_metric()]
    return tuple(out)


ALGORITHM = Algorithm(
    name="linear-learner",
    hyperparameters=HYPERPARAMETERS,
    channels=CHANNELS,
    metrics=_metrics(),
    serving=Serving(
        content_types=("text/csv", "application/json", "application/jsonlines",
                       "application/x-recordio-protobuf"),
        accepts=("application/json", "application/jsonlines", "application/x-recordio-protobuf"),
        default_accept="application/json",
        multi_model=True,  # AWS's image serves CPU multi-model endpoints
    ),
    variants=(CPU, GPU),
    supervised=True,
    doc="Linear models for binary/multiclass classification and regression, many trained in parallel, "
        "with model selection and binary threshold calibration.",
)
