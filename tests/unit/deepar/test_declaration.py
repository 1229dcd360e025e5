"""DeepAR's declaration: AWS's hyperparameter names, defaults and checks, channels, metrics, serving."""
import re

import pytest

from smalgos.declaration import load_algorithm
from smalgos.errors import ClientError
from smalgos.metrics import MetricsLogger
from smalgos_forecasting_deepar.frequency import Frequency

ALGO = load_algorithm("forecasting-deepar")
HP = ALGO.hyperparameters
REQUIRED = {"time_freq": "H", "context_length": "72", "prediction_length": "48", "epochs": "20"}


def parse(**extra):
    return HP.parse({**REQUIRED, **extra})


def test_defaults_are_aws():
    hp = parse()
    assert hp == {"time_freq": "H", "context_length": 72, "prediction_length": 48, "epochs": 20,
                  "cardinality": "auto", "dropout_rate": 0.1, "early_stopping_patience": None,
                  "embedding_dimension": 10, "learning_rate": 0.001, "likelihood": "student-T",
                  "mini_batch_size": 128, "num_cells": 40, "num_dynamic_feat": "auto", "num_eval_samples": 100,
                  "num_layers": 2, "test_quantiles": (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_required(name):
    raw = {k: v for k, v in REQUIRED.items() if k != name}
    with pytest.raises(ClientError, match=f"Missing required hyperparameter: {name}"):
        HP.parse(raw)


def test_aws_image_default_configuration_is_accepted():
    """The configuration AWS's image prints (deepar_synthetic's log): strings, "" for unset, hidden keys."""
    hp = parse(cardinality="auto", dropout_rate="0.10", early_stopping_patience="", embedding_dimension="10",
               learning_rate="0.001", likelihood="student-t", mini_batch_size="128", num_cells="40",
               num_dynamic_feat="auto", num_eval_samples="100", num_layers="2",
               test_quantiles="[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]",
               _kvstore="auto", _num_gpus="auto", _num_kv_servers="auto", _tuning_objective_metric="")
    assert hp["likelihood"] == "student-T" and hp["early_stopping_patience"] is None
    assert hp["test_quantiles"][0] == 0.1 and "_kvstore" not in hp


@pytest.mark.parametrize("text,multiple,unit,pandas", [
    ("H", 1, "H", "h"), ("2H", 2, "H", "2h"), ("5min", 5, "min", "5min"), ("15min", 15, "min", "15min"),
    ("D", 1, "D", "D"), ("W", 1, "W", "W"), ("M", 1, "M", "M"), (" 3D ", 3, "D", "3D")])
def test_time_freq_accepted(text, multiple, unit, pandas):
    value = parse(time_freq=text)["time_freq"]
    freq = Frequency.parse(value)
    assert (freq.multiple, freq.unit, freq.period_freq) == (multiple, unit, pandas)


@pytest.mark.parametrize("text", ["h", "0H", "S", "2 H", "Y", "1.5H", "02H", "T", "min5", ""])
def test_time_freq_refused_by_aws_regex(text):
    with pytest.raises(ClientError, match="Hyperparameter time_freq"):
        parse(time_freq=text)


@pytest.mark.parametrize("name", ["context_length", "prediction_length", "epochs", "num_cells", "num_layers",
                                  "mini_batch_size", "embedding_dimension", "num_eval_samples"])
@pytest.mark.parametrize("bad", ["0", "-3", "1.5", "ten"])
def test_positive_integers(name, bad):
    with pytest.raises(ClientError, match=f"Hyperparameter {name}"):
        parse(**{name: bad})


@pytest.mark.parametrize("spelling,value", [
    ("gaussian", "gaussian"), ("beta", "beta"), ("negative-binomial", "negative-binomial"),
    ("student-T", "student-T"), ("student-t", "student-T"), ("deterministic-L1", "deterministic-L1"),
    ("Gaussian", "gaussian")])
def test_likelihoods(spelling, value):
    assert parse(likelihood=spelling)["likelihood"] == value


def test_unknown_likelihood_names_the_choices():
    with pytest.raises(ClientError, match="likelihood: value 'poisson' is not one of gaussian, beta"):
        parse(likelihood="poisson")


@pytest.mark.parametrize("raw,value", [
    ("auto", "auto"), ("AUTO", "auto"), ("ignore", "ignore"), ("", "ignore"), ("[2, 3]", [2, 3]), ("2,3", [2, 3]),
    ("[4]", [4])])
def test_cardinality(raw, value):
    assert parse(cardinality=raw)["cardinality"] == value


@pytest.mark.parametrize("raw", ["[0, 3]", "[]", "[2.5]", "[-1]", "two", "[true]"])
def test_cardinality_refused(raw):
    with pytest.raises(ClientError, match="Hyperparameter cardinality"):
        parse(cardinality=raw)


@pytest.mark.parametrize("raw,value", [("auto", "auto"), ("ignore", "ignore"), ("", "ignore"), ("3", 3)])
def test_num_dynamic_feat(raw, value):
    assert parse(num_dynamic_feat=raw)["num_dynamic_feat"] == value


@pytest.mark.parametrize("raw", ["0", "-1", "[2]", "x"])
def test_num_dynamic_feat_refused(raw):
    with pytest.raises(ClientError, match="Hyperparameter num_dynamic_feat"):
        parse(num_dynamic_feat=raw)


@pytest.mark.parametrize("raw,value", [("", None), ("5", 5), ("null", None)])
def test_early_stopping_patience(raw, value):
    assert parse(early_stopping_patience=raw)["early_stopping_patience"] == value


def test_early_stopping_patience_refused():
    with pytest.raises(ClientError, match="Hyperparameter early_stopping_patience"):
        parse(early_stopping_patience="0")


@pytest.mark.parametrize("raw,value", [('["0.5", "0.9"]', (0.5, 0.9)), ("0.25,0.75", (0.25, 0.75))])
def test_test_quantiles(raw, value):
    assert parse(test_quantiles=raw)["test_quantiles"] == value


@pytest.mark.parametrize("raw", ["[0.0]", "[1.0]", "[1.5]", "[]", '["a"]'])
def test_test_quantiles_refused(raw):
    with pytest.raises(ClientError, match="Hyperparameter test_quantiles"):
        parse(test_quantiles=raw)


@pytest.mark.parametrize("name,bad", [("dropout_rate", "1.0"), ("dropout_rate", "-0.1"), ("learning_rate", "0"),
                                      ("learning_rate", "nan")])
def test_floats_refused(name, bad):
    with pytest.raises(ClientError, match=f"Hyperparameter {name}"):
        parse(**{name: bad})


def test_unknown_and_misspelt_hidden_keys_are_refused():
    with pytest.raises(ClientError, match="Unknown hyperparameter: _num_gpu "):
        parse(_num_gpu="auto")
    with pytest.raises(ClientError, match="Unknown hyperparameter: num_cell "):
        parse(num_cell="40")


def test_channels_formats_and_modes():
    train, test = ALGO.channel("train"), ALGO.channel("test")
    assert train.required and not test.required and ALGO.channel("validation") is None
    for channel in (train, test):
        assert channel.input_modes == ("File",)
        assert set(channel.content_types) == {"application/jsonlines", "application/json", "application/x-parquet"}
    assert ALGO.content_type_aliases["json"] == "application/jsonlines"
    assert ALGO.content_type_aliases["parquet"] == "application/x-parquet"


def test_serving_and_variants():
    assert ALGO.serving.content_types == ("application/json", "application/jsonlines")
    assert ALGO.serving.default_accept == "application/json"
    assert ALGO.variants == ("cpu", "gpu")


AWS_REGEXES = {  # the algorithm metadata's regexes (spec algorithms-neural.md §2.4)
    "test:RMSE": r"#quality_metric: host=\S+, test RMSE <loss>=(\S+)",
    "test:mean_wQuantileLoss": r"#quality_metric: host=\S+, test mean_wQuantileLoss <loss>=(\S+)",
    "train:final_loss": r"#quality_metric: host=\S+, train final_loss <loss>=(\S+)",
    "train:loss": r"#quality_metric: host=\S+, epoch=\S+, train loss <loss>=(\S+)",
    "train:loss:batch": r"#quality_metric: host=\S+, epoch=\S+, batch=\S+ train loss <loss>=(\S+)",
    "train:progress": r"#progress_metric: host=\S+, completed (\S+) %",
    "train:throughput": r"#throughput_metric: host=\S+, train throughput=(\S+) records/second",
}


def test_metric_names_and_regexes_are_aws():
    assert {m.name: m.regex for m in ALGO.metrics} == AWS_REGEXES
    tunable = {m.name for m in ALGO.metrics if m.tunable}
    assert tunable == {"test:RMSE", "test:mean_wQuantileLoss", "train:final_loss"}
    assert all(m.direction == "Minimize" for m in ALGO.metrics if m.name.startswith(("test", "train:final")))


def test_printed_lines_match_their_regexes(capsys):
    logger = MetricsLogger(host="algo-1", algorithm=ALGO.display_name, metrics=ALGO.metrics)
    logger.quality("test", "RMSE", 0.338)
    logger.quality("test", "mean_wQuantileLoss", 0.0356)
    logger.quality("train", "final_loss", 1.5)
    logger.quality("train", "loss", 1.7, epoch=3)
    text = capsys.readouterr()
    text = text.out + text.err
    for name, value in [("test:RMSE", "0.338"), ("test:mean_wQuantileLoss", "0.0356"), ("train:final_loss", "1.5"),
                        ("train:loss", "1.7")]:
        found = re.findall(AWS_REGEXES[name], text)
        assert found and float(found[0]) == float(value), name
