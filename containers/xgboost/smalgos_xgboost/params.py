"""From validated hyperparameters to what `xgboost` takes: a params dict and a training plan.

Kept free of `/opt/ml` and HTTP, so a notebook can call `training_plan(hyperparameters)` and
train with plain `xgboost`. What AWS's names mean for XGBoost 3 (our reading of the spec, §3.2):

- `tree_method=gpu_hist` (AWS's spelling) becomes `tree_method=hist, device=cuda`.
- `reg:linear` becomes `reg:squarederror` (its name since XGBoost 0.90).
- Parameters XGBoost >= 2 no longer reads (`predictor`, `sketch_eps`, `dsplit`, `lambda_bias`,
  `prob_buffer_row`, `deterministic_histogram`) are accepted, logged and left out, so XGBoost does
  not print "Parameters: { ... } are not used" on every job.
- Aliases (`learning_rate`, `min_split_loss`, `reg_lambda`, `reg_alpha`) go under the canonical name.
- `eval_metric` (plus the HPO metric `_tuning_objective_metric`, appended when missing, as AWS
  does) is split between XGBoost's own metrics and the ones the container computes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from .hyperparameters import ALIASES, CUSTOM_METRICS, MAXIMIZE_METRICS

log = logging.getLogger("smalgos")

# Hyperparameters that steer the container, not XGBoost.
CONTAINER_KEYS = frozenset({
    "num_round", "csv_weights", "early_stopping_rounds", "save_model_on_termination", "use_dask_gpu_training",
    "_kfold", "_num_cv_round", "_tuning_objective_metric", "eval_metric",
})
# Accepted for compatibility; XGBoost >= 2 ignores them.
OBSOLETE_KEYS = frozenset({"predictor", "sketch_eps", "dsplit", "lambda_bias", "prob_buffer_row",
                           "deterministic_histogram"})

# XGBoost's own rule for metrics to maximise (callback.EarlyStopping).
_XGB_MAXIMIZE_PREFIXES = ("auc", "aucpr", "pre", "pre@", "map", "ndcg", "auc@", "aucpr@", "map@", "ndcg@")


@dataclass
class TrainingPlan:
    params: dict  # passed to xgboost.Booster
    num_round: int
    native_metrics: list[str] = field(default_factory=list)
    custom_metrics: list[str] = field(default_factory=list)
    early_stopping_rounds: int | None = None
    stopping_metric: str | None = None  # None: the last metric XGBoost prints for validation
    csv_weights: bool = False
    save_model_on_termination: bool = False
    gpu: bool = False
    kfold: int | None = None
    num_cv_round: int = 1

    @property
    def objective(self) -> str:
        return self.params.get("objective", "reg:squarederror")

    @property
    def num_class(self) -> int | None:
        return self.params.get("num_class")


def maximize(metric: str) -> bool:
    """Whether a larger value of `metric` is better."""
    base = metric.split("@", 1)[0]
    if base in MAXIMIZE_METRICS:
        return True
    return metric.startswith(_XGB_MAXIMIZE_PREFIXES)


def _format_value(name: str, value):
    if name == "monotone_constraints":
        return "(" + ",".join(str(v) for v in value) + ")"
    if name == "interaction_constraints":
        return "[" + ",".join("[" + ",".join(str(v) for v in g) + "]" for g in value) + "]"
    if name == "updater":
        return ",".join(value)
    if isinstance(value, bool):
        return int(value)
    return value


def training_plan(hp: dict) -> TrainingPlan:
    """`hp` as `ALGORITHM.hyperparameters.parse` returns it (absent names are None)."""
    params: dict = {}
    for name, value in hp.items():
        if value is None or name in CONTAINER_KEYS:
            continue
        if name in OBSOLETE_KEYS:
            log.info("Hyperparameter %s=%s is accepted for compatibility; XGBoost 3 no longer uses it", name, value)
            continue
        params[ALIASES.get(name, name)] = _format_value(name, value)

    gpu = params.get("tree_method") == "gpu_hist"
    if gpu:
        params["tree_method"] = "hist"
        params["device"] = "cuda"
    if params.get("objective") == "reg:linear":
        params["objective"] = "reg:squarederror"

    metrics = list(hp.get("eval_metric") or [])
    tuning = hp.get("_tuning_objective_metric")
    stopping = None
    if tuning:
        tuning_metric = tuning.split(":", 1)[1]
        if tuning_metric not in metrics:
            metrics.append(tuning_metric)
        stopping = tuning_metric
    elif metrics:
        stopping = metrics[-1]
    custom = [m for m in metrics if m in CUSTOM_METRICS]
    native = [m for m in metrics if m not in CUSTOM_METRICS]
    if native:
        params["eval_metric"] = native
    elif custom:
        # Only container metrics asked for: don't let XGBoost add its default one.
        params["disable_default_eval_metric"] = 1
    return TrainingPlan(
        params=params,
        num_round=hp["num_round"],
        native_metrics=native,
        custom_metrics=custom,
        early_stopping_rounds=hp.get("early_stopping_rounds"),
        stopping_metric=stopping,
        csv_weights=bool(hp.get("csv_weights")),
        save_model_on_termination=bool(hp.get("save_model_on_termination")),
        gpu=gpu,
        kfold=hp.get("_kfold"),
        num_cv_round=hp.get("_num_cv_round") or 1,
    )
