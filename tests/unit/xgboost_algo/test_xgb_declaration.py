"""The declaration: AWS's validation rules, channels, metrics, variants; describable without xgboost."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from smalgos.errors import ClientError

from xgb_helpers import ROOT


def parse(**hps):
    from smalgos_xgboost.declaration import ALGORITHM

    return ALGORITHM.hyperparameters.parse({k: str(v) for k, v in hps.items()})


def test_values_and_absent_names():
    hp = parse(num_round=50, eta="0.2", max_depth=5, subsample=0.7, objective="binary:logistic",
               eval_metric="auc,error@0.3", monotone_constraints="(1,0,-1)", interaction_constraints="[[1,2],[3]]",
               updater="grow_colmaker,prune", _tuning_objective_metric="validation:auc", sagemaker_region="x")
    assert hp["num_round"] == 50 and hp["eta"] == 0.2 and hp["eval_metric"] == ["auc", "error@0.3"]
    assert hp["monotone_constraints"] == (1, 0, -1) and hp["interaction_constraints"] == [[1, 2], [3]]
    assert hp["gamma"] is None  # absent: XGBoost's own default applies, as at AWS


@pytest.mark.parametrize("hps, message", [
    ({}, "Missing required hyperparameter: num_round"),
    ({"num_round": 0}, "num_round"),
    ({"num_round": 1, "foo": 1}, "Unknown hyperparameter: foo"),
    ({"num_round": 1, "single_precision_histogram": "true"}, "single_precision_histogram"),
    ({"num_round": 1, "subsample": 0}, "subsample"),
    ({"num_round": 1, "scale_pos_weight": 0}, "scale_pos_weight"),
    ({"num_round": 1, "tweedie_variance_power": 2}, "tweedie_variance_power"),
    ({"num_round": 1, "tree_method": "gpu_exact"}, "tree_method"),
    ({"num_round": 1, "objective": "multi:softprob"}, "num_class"),
    ({"num_round": 1, "num_class": 3}, "Do not need to setup parameter 'num_class'"),
    ({"num_round": 1, "eval_metric": "auc"}, "auc"),
    ({"num_round": 1, "objective": "reg:squarederror", "eval_metric": "aft-nloglik"}, "survival:aft"),
    ({"num_round": 1, "eval_metric": "rmse@2"}, "customized threshold"),
    ({"num_round": 1, "eval_metric": "error@x"}, "expects float"),
    ({"num_round": 1, "eval_metric": "bogus"}, "bogus"),
    ({"num_round": 1, "booster": "gblinear", "updater": "grow_colmaker"}, "Linear updater"),
    ({"num_round": 1, "process_type": "update", "updater": "grow_colmaker"}, "process_type 'update'"),
    ({"num_round": 1, "updater": "grow_colmaker,grow_histmaker"}, "Only one tree grow plugin"),
    ({"num_round": 1, "monotone_constraints": "(1,2)"}, "monotone_constraints"),
    ({"num_round": 1, "tree_method": "approx", "monotone_constraints": "(1,0)"}, "exact' or 'hist'"),
    ({"num_round": 1, "interaction_constraints": "[[0,1]]"}, "interaction_constraints"),
    ({"num_round": 1, "eta": 0.1, "learning_rate": 0.2}, "same parameter"),
    ({"num_round": 1, "_tuning_objective_metric": "validation:bogus"}, "_tuning_objective_metric"),
    ({"num_round": 1, "_kfol": 5}, "Unknown hyperparameter: _kfol "),  # AWS: "Extraneous hyperparameter found"
    ({"num_round": 1, "_kvstore": "auto"}, "Unknown hyperparameter: _kvstore "),  # XGBoost declares none
])
def test_aws_validation_rules(hps, message):
    with pytest.raises(ClientError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse(**hps)


def test_declared_hidden_keys_are_accepted():
    hp = parse(num_round=1, _kfold=3, _num_cv_round=2, _tuning_objective_metric="validation:rmse",
               sagemaker_program="train.py")
    assert (hp["_kfold"], hp["_num_cv_round"], hp["_tuning_objective_metric"]) == (3, 2, "validation:rmse")


def test_plan_maps_aws_names_to_xgboost_3():
    from smalgos_xgboost.params import training_plan

    plan = training_plan(parse(num_round=3, tree_method="gpu_hist", learning_rate=0.1, reg_alpha=2,
                               objective="reg:linear", predictor="cpu_predictor", eval_metric="rmse,r2",
                               _tuning_objective_metric="validation:mae", monotone_constraints="[1,0]",
                               csv_weights=1))
    p = plan.params
    assert p["tree_method"] == "hist" and p["device"] == "cuda" and plan.gpu
    assert p["eta"] == 0.1 and p["alpha"] == 2 and "learning_rate" not in p
    assert p["objective"] == "reg:squarederror" and "predictor" not in p
    assert p["monotone_constraints"] == "(1,0)" and "csv_weights" not in p
    assert p["eval_metric"] == ["rmse", "mae"] and plan.custom_metrics == ["r2"]
    assert plan.stopping_metric == "mae" and plan.csv_weights
    only_custom = training_plan(parse(num_round=3, objective="binary:logistic", eval_metric="f1"))
    assert only_custom.params["disable_default_eval_metric"] == 1


def test_channels_metrics_variants():
    from smalgos_xgboost.declaration import ALGORITHM

    assert ALGORITHM.variants == ("cpu", "gpu")
    train, validation = ALGORITHM.channels
    assert train.required and not validation.required and train.default_content_type == "text/libsvm"
    assert "Pipe" in train.input_modes and "application/x-parquet" in train.content_types
    m = ALGORITHM.metric("validation:auc")
    assert m.direction == "Maximize" and m.regex == r".*\[[0-9]+\].*#011validation-auc:(\S+)"
    assert ALGORITHM.metric("train:rmse").direction == "Minimize"
    assert ALGORITHM.serving.default_accept == "text/csv"


def test_describe_needs_no_xgboost():
    code = ("import sys; sys.modules['xgboost'] = None; sys.modules['numpy'] = None; "
            "from smalgos.cli import main; main(['describe', 'xgboost', '--field', 'variants'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": f"{ROOT / 'common'}:{ROOT / 'containers' / 'xgboost'}"})
    assert out.stdout.split() == ["cpu", "gpu"]


_BINARY_ONLY = ("f1_binary", "precision", "recall")  # binary averages are for binary labels
_METRIC_NAMES = ["accuracy", "balanced_accuracy", "f1", "f1_binary", "f1_macro", "precision", "precision_macro",
                 "precision_micro", "recall", "recall_macro", "recall_micro"]


@pytest.mark.parametrize("name, objective", [(n, o) for o in ("binary:logistic", "multi:softprob")
                                             for n in _METRIC_NAMES
                                             if o == "binary:logistic" or n not in _BINARY_ONLY])
def test_container_metrics_equal_scikit_learn(name, objective):
    from sklearn import metrics as skm

    from smalgos_xgboost.custom_metrics import compute, to_labels

    rng = np.random.default_rng(3)
    if objective == "binary:logistic":
        y, preds, k = (rng.random(200) > 0.6).astype(float), rng.random(200), None
    else:
        y, preds, k = rng.integers(0, 3, 200).astype(float), rng.random((200, 3)), 3
    yhat = to_labels(preds, objective, k)
    average = {"f1": "macro", "f1_binary": "binary", "f1_macro": "macro", "precision": "binary",
               "recall": "binary"}.get(name, name.rsplit("_", 1)[-1] if "_" in name else None)
    ref = {"accuracy": lambda: skm.accuracy_score(y, yhat),
           "balanced_accuracy": lambda: skm.balanced_accuracy_score(y, yhat)}.get(name)
    if ref is None:
        fn = {"f": skm.f1_score, "p": skm.precision_score, "r": skm.recall_score}[name[0]]
        ref = lambda: fn(y, yhat, average=average, zero_division=0)  # noqa: E731
    assert compute(name, y, preds, objective, k) == pytest.approx(ref(), abs=1e-12)


def test_regression_container_metrics():
    from sklearn import metrics as skm

    from smalgos_xgboost.custom_metrics import compute

    rng = np.random.default_rng(4)
    y, p = rng.random(100), rng.random(100)
    assert compute("mse", y, p, "reg:squarederror", None) == pytest.approx(skm.mean_squared_error(y, p))
    assert compute("r2", y, p, "reg:squarederror", None) == pytest.approx(skm.r2_score(y, p))
