import json

import pytest

from smalgos.declaration import (
    AUTO, Boolean, Categorical, Float, FloatOrChoice, Hyperparameters, Integer, Interval, StringList,
    load_algorithm,
)
from smalgos.errors import ClientError


def hps():
    return Hyperparameters((
        Integer("epochs", default=15, range=Interval(1, None)),
        Float("learning_rate", default=AUTO, allow_auto=True, range=Interval(0, None, low_inclusive=False)),
        Categorical("predictor_type", required=True, choices=("binary_classifier", "regressor")),
        Boolean("use_bias", default=True),
        FloatOrChoice("positive_example_weight_mult", default=1.0, choices=("balanced", "auto"),
                      range=Interval(0, None, low_inclusive=False)),
        StringList("eval_metrics", default=["msd"], choices=("msd", "ssd")),
    ), accept_unknown=("force_dense",))


def test_values_arrive_as_strings_and_get_their_types():
    v = hps().parse({"epochs": "10", "learning_rate": "0.5", "predictor_type": "regressor",
                     "use_bias": "False", "positive_example_weight_mult": "balanced",
                     "eval_metrics": '["msd", "ssd"]'})
    assert v == {"epochs": 10, "learning_rate": 0.5, "predictor_type": "regressor", "use_bias": False,
                 "positive_example_weight_mult": "balanced", "eval_metrics": ["msd", "ssd"]}


def test_defaults_auto_and_json_encoded_strings():
    v = hps().parse({"predictor_type": json.dumps("binary_classifier"), "learning_rate": '"auto"',
                     "epochs": "10.0", "use_bias": "true", "eval_metrics": "msd,ssd"})
    assert v["predictor_type"] == "binary_classifier"
    assert v["learning_rate"] == AUTO
    assert v["epochs"] == 10 and v["use_bias"] is True and v["eval_metrics"] == ["msd", "ssd"]
    assert v["positive_example_weight_mult"] == 1.0


def test_reserved_and_tolerated_keys_are_ignored():
    tolerant = Hyperparameters(hps().params, accept_unknown=("force_dense", "_kvstore", "_tuning_objective_metric"))
    v = tolerant.parse({"predictor_type": "regressor", "_tuning_objective_metric": "validation:mse",
                        "sagemaker_region": '"us-east-1"', "sagemaker_program": '"train.py"', "_kvstore": "auto",
                        "force_dense": "True"})
    assert v == hps().parse({"predictor_type": "regressor"})


@pytest.mark.parametrize("key", ["_kvstore", "_kfol", "_"])
def test_undeclared_underscore_keys_are_unknown(key):
    # AWS's images refuse undeclared names, hidden ones included: only sagemaker_* keys pass undeclared.
    with pytest.raises(ClientError, match=f"Unknown hyperparameter: {key} "):
        hps().parse({"predictor_type": "regressor", key: "1", "sagemaker_region": '"us-east-1"'})


@pytest.mark.parametrize("raw, fragment", [
    ({}, "Missing required hyperparameter: predictor_type"),
    ({"predictor_type": "classifier"}, "predictor_type: value 'classifier' is not one of binary_classifier, regressor"),
    ({"predictor_type": "regressor", "epochs": "0"}, "epochs: value 0 is outside the range [1, inf)"),
    ({"predictor_type": "regressor", "epochs": "ten"}, "epochs: value 'ten' is not a valid integer"),
    ({"predictor_type": "regressor", "epochs": "2.5"}, "epochs: value '2.5' is not a valid integer"),
    ({"predictor_type": "regressor", "learning_rate": "0"}, "learning_rate: value 0 is outside the range (0, inf)"),
    ({"predictor_type": "regressor", "learning_rate": "nan"}, "learning_rate: value 'nan' is not a valid float"),
    ({"predictor_type": "regressor", "use_bias": "maybe"}, "use_bias: value 'maybe' is not a valid boolean"),
    ({"predictor_type": "regressor", "eval_metrics": "msd,foo"}, "eval_metrics: 'foo' not among msd, ssd"),
    ({"predictor_type": "regressor", "mini_batch_siz": "5"}, "Unknown hyperparameter: mini_batch_siz"),
])
def test_bad_values_name_the_parameter(raw, fragment):
    with pytest.raises(ClientError) as e:
        hps().parse(raw)
    assert fragment in str(e.value)


@pytest.mark.parametrize("raw", ["inf", "-inf", "Infinity", "1e999", float("inf"), float("-inf")])
def test_float_refuses_infinity_on_the_wire_and_in_check(raw):
    unbounded = Hyperparameters((Float("init_bias", default=0.0),
                                 FloatOrChoice("weight", default=1.0, choices=("balanced",))))
    for name in ("init_bias", "weight"):
        with pytest.raises(ClientError, match=rf"Hyperparameter {name}: value -?inf is not a valid float"):
            unbounded.parse({name: raw})
        with pytest.raises(ClientError, match=rf"Hyperparameter {name}: value -?inf is not a valid float"):
            unbounded.check({name: raw})
    assert unbounded.parse({"init_bias": "1e300", "weight": "balanced"}) == {"init_bias": 1e300, "weight": "balanced"}


def test_cross_parameter_validator_runs_on_filled_values():
    def needs_two(values):
        if values["predictor_type"] == "binary_classifier" and values["epochs"] < 2:
            raise ClientError("epochs must be >= 2 for binary_classifier")
    h = Hyperparameters(hps().params, validators=(needs_two,))
    h.parse({"predictor_type": "regressor", "epochs": "1"})
    with pytest.raises(ClientError, match="epochs must be >= 2"):
        h.parse({"predictor_type": "binary_classifier", "epochs": "1"})


def test_load_algorithm_by_repository_name():
    algo = load_algorithm("test-centroid")
    assert algo.name == "test-centroid"
    assert algo.describe()["variants"] == ["cpu"]
    with pytest.raises(ClientError, match="Unknown algorithm 'no-such-algo'"):
        load_algorithm("no-such-algo")


def test_describe_cli_prints_variants(capsys):
    from smalgos.cli import main
    assert main(["describe", "test-centroid", "--field", "variants"]) == 0
    assert capsys.readouterr().out == "cpu\n"
