"""XGBoost's hyperparameters as AWS's algorithm-mode image validates them (image lines 1.7-1, 3.0-5).

Source: /work/shared/spec/algorithms-tabular.md §3.2 (aws/sagemaker-xgboost-container
`algorithm_mode/hyperparameter_validation.py`). AWS declares no defaults: a name absent from
hyperparameters.json is not passed to XGBoost, so the library's own default applies. Every
default here is therefore None ("not given"), except where noted. Standard library only.

Where AWS's validator is stricter than the library it wraps we say so next to the check; where it
was wrong for XGBoost 3 (it rejected monotone/interaction constraints unless `tree_method` was
spelled out, although `auto` means `hist` since XGBoost 2.0) we accept what XGBoost accepts.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from smalgos.declaration import (
    Boolean, Categorical, Float, Hyperparameter, Hyperparameters, Integer, Interval, String, StringList,
)
from smalgos.errors import ClientError

# -- metric names (constants/xgb_constants.py) ------------------------------------------------------

MAXIMIZE_METRICS = (
    "accuracy", "auc", "aucpr", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "map", "ndcg",
    "precision", "r2", "recall", "precision_macro", "precision_micro", "recall_macro", "recall_micro",
)
MINIMIZE_METRICS = (
    "aft-nloglik", "cox-nloglik", "error", "gamma-deviance", "gamma-nloglik", "interval-regression-accuracy",
    "logloss", "mae", "mape", "merror", "mlogloss", "mphe", "mse", "poisson-nloglik", "rmse", "rmsle",
    "tweedie-nloglik",
)
# Metrics XGBoost does not compute itself; the container computes them from the predictions
# (AWS: metrics/custom_metrics.py with scikit-learn; here numpy, see smalgos_xgboost.custom_metrics).
CUSTOM_METRICS = (
    "accuracy", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "mse", "precision", "precision_macro",
    "precision_micro", "r2", "recall", "recall_macro", "recall_micro",
)
THRESHOLD_METRICS = ("error", "ndcg", "map")  # error@t, ndcg@n, map@n

OBJECTIVES = (
    "aft_loss_distribution",  # a stray entry in AWS's list; XGBoost itself refuses it at training
    "binary:logistic", "binary:logitraw", "binary:hinge", "count:poisson", "multi:softmax", "multi:softprob",
    "rank:pairwise", "rank:ndcg", "rank:map", "reg:linear", "reg:squarederror", "reg:logistic", "reg:gamma",
    "reg:pseudohubererror", "reg:squaredlogerror", "reg:absoluteerror", "reg:tweedie", "survival:aft",
    "survival:cox",
)

TREE_PLUGINS = ("grow_colmaker", "distcol", "grow_histmaker", "grow_local_histmaker", "grow_skmaker", "sync",
                "refresh", "prune", "grow_quantile_histmaker")
TREE_BUILD_PLUGINS = ("grow_colmaker", "distcol", "grow_histmaker", "grow_local_histmaker",
                      "grow_quantile_histmaker")
LINEAR_PLUGINS = ("shotgun", "coord_descent")
UPDATE_PLUGINS = ("refresh", "prune")

# Aliases AWS declares (`declare_alias`): alias -> canonical name.
ALIASES = {"learning_rate": "eta", "min_split_loss": "gamma", "reg_lambda": "lambda", "reg_alpha": "alpha"}

NON_NEGATIVE = Interval(0, None)
POSITIVE = Interval(0, None, low_inclusive=False)
AT_LEAST_ONE = Interval(1, None)
UNIT = Interval(0, 1)
UNIT_LEFT_OPEN = Interval(0, 1, low_inclusive=False)
UNIT_OPEN = Interval(0, 1, low_inclusive=False, high_inclusive=False)
ZERO_ONE = Interval(0, 1)


# -- parameter types the spine lacks ------------------------------------------------------------------


@dataclass(frozen=True)
class IntTuple(Hyperparameter):
    """`monotone_constraints`: `(1,0,-1)`, `[1,0,-1]` or `1,0,-1`; each value among `choices`."""

    choices: tuple = (-1, 0, 1)
    type_name = "tuple of integers"

    def _parse(self, text: Any) -> tuple:
        s = str(text).strip()
        inner = s[1:-1] if s[:1] in "([" and s[-1:] in ")]" else s
        items = [p.strip() for p in inner.split(",") if p.strip()]
        values = tuple(int(p) for p in items)
        bad = [v for v in values if v not in self.choices]
        if bad:
            raise ClientError(f"Hyperparameter {self.name}: values {bad} are not among "
                              f"{', '.join(map(str, self.choices))}")
        return values


@dataclass(frozen=True)
class NestedIntList(Hyperparameter):
    """`interaction_constraints`: a JSON list of lists of feature indices, e.g. `[[1,2],[3,4,5]]`."""

    range: Interval = Interval()
    type_name = "list of lists of integers"

    def _parse(self, text: Any) -> list:
        value = text if isinstance(text, list) else json.loads(str(text).strip().replace("(", "[").replace(")", "]"))
        if not isinstance(value, list) or not all(isinstance(g, list) for g in value):
            raise ValueError("expected a list of lists, e.g. [[1,2],[3,4,5]]")
        out = []
        for group in value:
            ints = []
            for v in group:
                if isinstance(v, bool) or not isinstance(v, int):
                    raise ValueError(f"{v!r} is not an integer feature index")
                if v not in self.range:
                    raise ClientError(f"Hyperparameter {self.name}: feature index {v} is outside the range "
                                      f"{self.range}")
                ints.append(v)
            out.append(ints)
        return out


@dataclass(frozen=True)
class CommaList(StringList):
    """AWS's CommaSeparatedListHyperparameter (updater, eval_metric): `a,b` or a JSON list."""


# -- checks across parameters (AWS's dependency validators) -------------------------------------------


def metric_name_ok(metric: str) -> bool:
    """AWS's eval_metric range: a listed metric, or error@t / ndcg@n / map@n with a float t."""
    if "@" in metric:
        name, _, threshold = metric.partition("@")
        if name.strip() not in THRESHOLD_METRICS:
            raise ClientError(f"Metric '{metric}' is not supported. Parameter 'eval_metric' with customized "
                              "threshold should be one of these options: 'error', 'ndcg', 'map'.")
        try:
            float(threshold.strip().rstrip("-"))  # ndcg@n- / map@n- are XGBoost's "no-positive-is-zero" forms
        except ValueError:
            raise ClientError(f"Threshold value 't' in '{name.strip()}@t' expects float input.") from None
        return True
    return metric in MAXIMIZE_METRICS or metric in MINIMIZE_METRICS


def _check_aliases(hp: dict) -> None:
    for alias, canonical in ALIASES.items():
        if hp.get(alias) is not None and hp.get(canonical) is not None:
            raise ClientError(f"Hyperparameters {canonical} and {alias} are the same parameter: give only one")


def _check_objective(hp: dict) -> None:
    objective, num_class = hp.get("objective"), hp.get("num_class")
    if objective in ("multi:softmax", "multi:softprob") and num_class is None:
        raise ClientError("Require input for parameter 'num_class' for multi-classification")
    if objective is None and num_class is not None:
        raise ClientError("Do not need to setup parameter 'num_class' for learning task other than "
                          "multi-classification.")


def _check_eval_metric(hp: dict) -> None:
    metrics = hp.get("eval_metric")
    if not metrics:
        return
    for m in metrics:
        if "<function" in m:
            raise ClientError(f"User defined evaluation metric {m} is not supported yet.")
        if not metric_name_ok(m):
            raise ClientError(f"Hyperparameter eval_metric: {m!r} is not a supported metric (supported: "
                              f"{', '.join(MAXIMIZE_METRICS + MINIMIZE_METRICS)}, or error@t, ndcg@n, map@n)")
    objective = hp.get("objective") or "reg:squarederror"
    if "auc" in metrics and not objective.startswith(("binary:", "rank:")):
        raise ClientError("Metric 'auc' can only be applied for classification and ranking problems.")
    if "aft-nloglik" in metrics and objective != "survival:aft":
        raise ClientError("Metric 'aft-nloglik' can only be applied for 'survival:aft' objective.")


def _check_updater(hp: dict) -> None:
    value = hp.get("updater")
    if not value:
        return
    if hp.get("booster") == "gblinear":
        if not (len(value) == 1 and value[0] in LINEAR_PLUGINS):
            raise ClientError("Linear updater should be one of these options: 'shotgun', 'coord_descent'.")
    elif hp.get("process_type") == "update":
        if not all(x in UPDATE_PLUGINS for x in value):
            raise ClientError("process_type 'update' can only be used with updater 'refresh' and 'prune'")
    else:
        bad = [x for x in value if x not in TREE_PLUGINS]
        if bad:
            raise ClientError(f"Tree updater {', '.join(map(repr, bad))} is not supported: choose from "
                              f"{', '.join(TREE_PLUGINS)}.")
        if sum(1 for x in value if x in TREE_BUILD_PLUGINS) > 1:
            raise ClientError("Only one tree grow plugin can be selected. Choose one from the following: "
                              f"{', '.join(TREE_BUILD_PLUGINS)}")


def _check_constraints(hp: dict) -> None:
    # AWS rejected these unless tree_method was given explicitly; XGBoost >= 2 resolves auto (or no
    # tree_method) to hist, and gpu_hist is hist on CUDA, so we accept those too.
    method = hp.get("tree_method")
    if hp.get("monotone_constraints") is not None and method not in (None, "auto", "exact", "hist", "gpu_hist"):
        raise ClientError("monotone_constraints can be used only when the tree_method parameter is set to "
                          "either 'exact' or 'hist'.")
    if hp.get("interaction_constraints") is not None and method not in (
            None, "auto", "exact", "hist", "approx", "gpu_hist"):
        raise ClientError("interaction_constraints can be used only when the tree_method parameter is set to "
                          "either 'exact', 'hist' or 'approx'.")


def _check_tuning_metric(hp: dict) -> None:
    name = hp.get("_tuning_objective_metric")
    if name is None:
        return
    channel, _, metric = name.partition(":")
    if channel not in ("validation", "train") or not metric or not metric_name_ok(metric):
        raise ClientError(f"Hyperparameter _tuning_objective_metric: {name!r} is not a metric of this algorithm "
                          "(expected validation:<metric>, e.g. validation:auc)")


def _check_kfold(hp: dict) -> None:
    if hp.get("_num_cv_round") is not None and hp.get("_kfold") is None:
        raise ClientError("Hyperparameter _num_cv_round needs _kfold")


HYPERPARAMETERS = Hyperparameters(
    params=(
        Integer("num_round", required=True, range=AT_LEAST_ONE, doc="Number of boosting rounds."),
        Integer("num_class", range=Interval(2, None), doc="Number of classes; required for multi:* objectives."),
        Categorical("objective", choices=OBJECTIVES, case_sensitive=True,
                    doc="Learning task (XGBoost default reg:squarederror)."),
        Categorical("booster", choices=("gbtree", "gblinear", "dart"), case_sensitive=True),
        Float("eta", range=UNIT, doc="Step size shrinkage (alias learning_rate)."),
        Float("learning_rate", range=UNIT, doc="Alias of eta."),
        Float("gamma", range=NON_NEGATIVE, doc="Minimum loss reduction to split (alias min_split_loss)."),
        Float("min_split_loss", range=NON_NEGATIVE, doc="Alias of gamma."),
        Integer("max_depth", range=NON_NEGATIVE),
        Float("min_child_weight", range=NON_NEGATIVE),
        Float("max_delta_step", range=NON_NEGATIVE),
        Float("subsample", range=UNIT_LEFT_OPEN),
        Float("colsample_bytree", range=UNIT_LEFT_OPEN),
        Float("colsample_bylevel", range=UNIT_LEFT_OPEN),
        Float("colsample_bynode", range=UNIT_LEFT_OPEN),
        Float("lambda", range=NON_NEGATIVE, doc="L2 regularisation (alias reg_lambda)."),
        Float("reg_lambda", range=NON_NEGATIVE, doc="Alias of lambda."),
        Float("alpha", range=NON_NEGATIVE, doc="L1 regularisation (alias reg_alpha)."),
        Float("reg_alpha", range=NON_NEGATIVE, doc="Alias of alpha."),
        Categorical("tree_method", choices=("auto", "exact", "approx", "hist", "gpu_hist"), case_sensitive=True,
                    doc="gpu_hist trains on CUDA (XGBoost 3: tree_method=hist, device=cuda); GPU image only."),
        Float("sketch_eps", range=UNIT_OPEN, doc="Accepted; ignored by XGBoost >= 2 (max_bin rules approx)."),
        Float("scale_pos_weight", range=POSITIVE),
        CommaList("updater"),
        Categorical("dsplit", choices=("row", "col"), case_sensitive=True, doc="Legacy; ignored."),
        Integer("refresh_leaf", range=ZERO_ONE),
        Categorical("process_type", choices=("default", "update"), case_sensitive=True),
        Categorical("grow_policy", choices=("depthwise", "lossguide"), case_sensitive=True),
        Integer("max_leaves", range=NON_NEGATIVE),
        Integer("max_bin", range=NON_NEGATIVE),
        Categorical("predictor", choices=("auto", "cpu_predictor", "gpu_predictor"), case_sensitive=True,
                    doc="Legacy; ignored by XGBoost >= 2 (prediction runs where the data is)."),
        IntTuple("monotone_constraints"),
        NestedIntList("interaction_constraints", range=AT_LEAST_ONE),
        Categorical("sample_type", choices=("uniform", "weighted"), case_sensitive=True),
        Categorical("normalize_type", choices=("tree", "forest"), case_sensitive=True),
        Float("rate_drop", range=UNIT),
        Integer("one_drop", range=ZERO_ONE),
        Float("skip_drop", range=UNIT),
        Float("lambda_bias", range=UNIT, doc="Legacy gblinear parameter; ignored by XGBoost >= 1.0."),
        Float("tweedie_variance_power", range=Interval(1, 2, low_inclusive=False, high_inclusive=False)),
        Float("base_score", range=NON_NEGATIVE,
              doc="Unset: XGBoost 3 estimates the intercept from the labels; 0.5 reproduces XGBoost 1.x."),
        CommaList("eval_metric", doc="Comma list; the last one drives early stopping."),
        Integer("seed", range=Interval(-(2 ** 31), 2 ** 31 - 1, low_inclusive=False, high_inclusive=False)),
        Integer("nthread", range=AT_LEAST_ONE),
        Integer("verbosity", range=Interval(0, 3)),
        Integer("num_parallel_tree", range=AT_LEAST_ONE),
        Integer("csv_weights", range=ZERO_ONE, doc="1: CSV column 1 (after the label) is the instance weight."),
        Integer("early_stopping_rounds", range=AT_LEAST_ONE, doc="Stop when validation has not improved."),
        Categorical("aft_loss_distribution", choices=("normal", "logistic", "extreme"), case_sensitive=True),
        Float("aft_loss_distribution_scale", range=NON_NEGATIVE),
        Boolean("deterministic_histogram", doc="Accepted; XGBoost >= 2 builds GPU histograms deterministically."),
        Categorical("sampling_method", choices=("uniform", "gradient_based"), case_sensitive=True),
        Integer("prob_buffer_row", range=Interval(1, None, low_inclusive=False), doc="Legacy GPU; ignored."),
        Boolean("save_model_on_termination", doc="Write the model after every round and on SIGTERM."),
        Boolean("use_dask_gpu_training", doc="Accepted; training uses the one process's GPU (no Dask)."),
        Integer("_kfold", range=Interval(2, None), doc="Hidden: k-fold cross-validation mode."),
        Integer("_num_cv_round", range=AT_LEAST_ONE, doc="Hidden: repeats of k-fold."),
        String("_tuning_objective_metric", doc="Set by HPO; its metric joins eval_metric."),
    ),
    validators=(_check_aliases, _check_objective, _check_eval_metric, _check_updater, _check_constraints,
                _check_tuning_metric, _check_kfold),
)
