"""The declaration: AWS's hyperparameters, defaults, cross checks, channels, metrics, serving."""

import inspect
import re

import pytest

from smalgos.declaration import AUTO, load_algorithm
from smalgos.errors import ClientError
from smalgos_linear_learner.declaration import ALGORITHM, HYPERPARAMETERS
from smalgos_linear_learner.model import LinearLearner

AWS_NAMES = {
    "predictor_type", "num_classes", "feature_dim", "mini_batch_size", "epochs", "accuracy_top_k",
    "balance_multiclass_weights", "beta_1", "beta_2", "bias_lr_mult", "bias_wd_mult",
    "binary_classifier_model_selection_criteria", "early_stopping_patience", "early_stopping_tolerance", "f_beta",
    "huber_delta", "init_bias", "init_method", "init_scale", "init_sigma", "l1", "learning_rate", "loss",
    "loss_insensitivity", "lr_scheduler_factor", "lr_scheduler_minimum_lr", "lr_scheduler_step", "margin",
    "momentum", "normalize_data", "normalize_label", "num_calibration_samples", "num_models",
    "num_point_for_scaler", "optimizer", "positive_example_weight_mult", "quantile", "target_precision",
    "target_recall", "unbias_data", "unbias_label", "use_bias", "use_lr_scheduler", "wd",
}


def parse(**raw):
    return HYPERPARAMETERS.parse({"predictor_type": "binary_classifier", **raw})


def test_every_aws_hyperparameter_is_declared_and_the_estimator_shares_its_defaults():
    declared = {p.name for p in HYPERPARAMETERS.params}
    assert AWS_NAMES <= declared and declared - AWS_NAMES == {"_tuning_objective_metric"}
    sig = inspect.signature(LinearLearner).parameters
    for p in HYPERPARAMETERS.params:
        if p.name in ("predictor_type", "_tuning_objective_metric"):
            continue
        assert sig[p.name].default == p.default, p.name


def test_aws_defaults():
    hp = parse()
    assert hp["epochs"] == 15 and hp["mini_batch_size"] == 1000 and hp["num_models"] == AUTO
    assert hp["loss"] == AUTO and hp["optimizer"] == AUTO and hp["normalize_data"] is True
    assert hp["binary_classifier_model_selection_criteria"] == "accuracy"
    assert hp["positive_example_weight_mult"] == 1.0 and hp["early_stopping_patience"] == 3


def test_sdk_wire_forms_are_accepted():
    hp = parse(use_bias="False", normalize_data="auto", learning_rate="0.1", num_models="auto",
               positive_example_weight_mult="balanced", feature_dim="30", force_dense="True", _kvstore="auto",
               _num_gpus="auto", _tuning_objective_metric="validation:objective_loss",
               binary_classifier_model_selection_criteria="f1")
    assert hp["use_bias"] is False and hp["normalize_data"] == AUTO and hp["learning_rate"] == 0.1
    assert hp["positive_example_weight_mult"] == "balanced" and hp["feature_dim"] == 30
    assert "force_dense" not in hp and "_kvstore" not in hp


def test_hidden_keys_of_default_input_are_accepted_and_others_refused():
    hidden = dict(_kvstore="auto", _num_gpus="auto", _num_kv_servers="auto", _log_level="info", _enable_profiler="false",
                  _data_format="record", force_dense="True")
    hp = parse(**hidden, _tuning_objective_metric="")
    assert not set(hidden) & set(hp) and hp["_tuning_objective_metric"] == ""
    with pytest.raises(ClientError, match="Unknown hyperparameter: _kvstorr "):
        parse(_kvstorr="auto")


@pytest.mark.parametrize("raw, name", [
    ({"predictor_type": "classifier"}, "predictor_type"),
    ({"epochs": "0"}, "epochs"),
    ({"mini_batch_size": "ten"}, "mini_batch_size"),
    ({"learning_rate": "-0.1"}, "learning_rate"),
    ({"wd": "-1"}, "wd"),
    ({"beta_1": "1.0"}, "beta_1"),
    ({"momentum": "1"}, "momentum"),
    ({"quantile": "1.5"}, "quantile"),
    ({"target_recall": "0"}, "target_recall"),
    ({"optimizer": "adagrad"}, "optimizer"),
    ({"init_method": "xavier"}, "init_method"),
    ({"positive_example_weight_mult": "lots"}, "positive_example_weight_mult"),
    ({"positive_example_weight_mult": "0"}, "positive_example_weight_mult"),
    ({"use_bias": "maybe"}, "use_bias"),
    ({"loss": "squared_loss"}, "loss"),
    ({"loss": "softmax_loss"}, "loss"),
    ({"predictor_type": "regressor", "loss": "hinge_loss"}, "loss"),
    ({"predictor_type": "multiclass_classifier"}, "num_classes"),
    ({"predictor_type": "multiclass_classifier", "num_classes": "2"}, "num_classes"),
    ({"binary_classifier_model_selection_criteria": "auc"}, "binary_classifier_model_selection_criteria"),
    ({"mini_batch_siz": "10"}, "mini_batch_siz"),
    ({"lr_scheduler_factor": "1"}, "lr_scheduler_factor"),
    ({"lr_scheduler_factor": "1.0"}, "lr_scheduler_factor"),
    ({"lr_scheduler_factor": "0"}, "lr_scheduler_factor"),
    ({"learning_rate": "inf"}, "learning_rate"),
])
def test_errors_name_the_parameter(raw, name):
    with pytest.raises(ClientError) as info:
        parse(**raw)
    assert name in str(info.value)


def test_lr_scheduler_factor_is_open_at_both_ends():
    assert str(HYPERPARAMETERS["lr_scheduler_factor"].range) == "(0, 1)"
    assert parse(lr_scheduler_factor="0.999")["lr_scheduler_factor"] == 0.999
    with pytest.raises(ClientError, match=r"lr_scheduler_factor: value 1.0 is outside the range \(0, 1\)"):
        LinearLearner("regressor", lr_scheduler_factor=1.0).validated_parameters()


def test_missing_predictor_type_is_named():
    with pytest.raises(ClientError, match="predictor_type"):
        HYPERPARAMETERS.parse({})


def test_channels_serving_and_variants():
    assert load_algorithm("linear-learner") is ALGORITHM
    train = ALGORITHM.channel("train")
    assert train.required and set(train.content_types) == {"text/csv", "application/x-recordio-protobuf"}
    assert set(train.input_modes) == {"File", "Pipe"}
    assert not ALGORITHM.channel("validation").required and ALGORITHM.channel("test") is not None
    assert "text/csv" not in ALGORITHM.serving.accepts and ALGORITHM.serving.default_accept == "application/json"
    assert set(ALGORITHM.variants) == {"cpu", "gpu"}
    assert ALGORITHM.trainer == "smalgos_linear_learner.train:train"


@pytest.mark.parametrize("name, line, value", [
    ("train:objective_loss", "#quality_metric: host=algo-1, epoch=3, train mse_objective <loss>=0.5", "0.5"),
    ("validation:objective_loss", "#quality_metric: host=algo-1, epoch=0, validation "
                                  "binary_classification_cross_entropy_objective <loss>=0.25", "0.25"),
    ("validation:objective_loss:final", "#quality_metric: host=algo-1, validation mse_objective <loss>=1.5", "1.5"),
    ("test:objective_loss", "#quality_metric: host=algo-1, test multiclass_cross_entropy_objective <loss>=2", "2"),
    ("validation:binary_f_beta", "#quality_metric: host=algo-1, validation binary_f_1.000 <score>=0.9", "0.9"),
    ("test:multiclass_top_k_accuracy", "#quality_metric: host=algo-1, test multiclass_top_k_accuracy_3 <score>=1.0",
     "1.0"),
    ("validation:macro_f_beta", "#quality_metric: host=algo-1, validation macro_f_1.000 <score>=0.91", "0.91"),
    ("validation:rmse", "#quality_metric: host=algo-1, validation rmse <loss>=3.2", "3.2"),
    ("test:roc_auc_score", "#quality_metric: host=algo-1, test roc_auc_score <score>=0.99", "0.99"),
    ("train:progress", "#progress_metric: host=algo-1, completed 20 % of epochs", "20"),
    ("train:throughput", "#throughput_metric: host=algo-1, train throughput=905.99 records/second", "905.99"),
])
def test_metric_regexes_read_aws_lines(name, line, value):
    assert re.search(ALGORITHM.metric(name).regex, line).group(1) == value


def test_final_regex_does_not_read_per_epoch_lines():
    regex = ALGORITHM.metric("validation:objective_loss:final").regex
    assert not re.search(regex, "#quality_metric: host=algo-1, epoch=0, validation mse_objective <loss>=1")


def test_tunable_metrics_and_directions():
    tunable = {m.name: m.direction for m in ALGORITHM.metrics if m.tunable}
    for ch in ("validation", "test"):
        for name in ("objective_loss", "mse", "absolute_loss"):
            assert tunable[f"{ch}:{name}"] == "Minimize"
        for name in ("binary_classification_accuracy", "binary_f_beta", "precision", "recall", "roc_auc_score",
                     "multiclass_accuracy", "multiclass_top_k_accuracy", "macro_precision", "macro_recall",
                     "macro_f_beta", "dcg"):
            assert tunable[f"{ch}:{name}"] == "Maximize"
    assert tunable["validation:rmse"] == "Minimize" and "test:rmse" not in tunable
