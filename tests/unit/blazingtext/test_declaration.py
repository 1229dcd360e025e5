"""BlazingText's declaration: AWS's hyperparameter names, defaults and ranges, the mode-dependent
checks (each failure a ClientError naming the parameter), channels, metrics and their lines."""
import re

import pytest

from smalgos.declaration import load_algorithm
from smalgos.errors import ClientError
from smalgos_blazingtext.declaration import (
    MEAN_RHO, METRIC_LINES, SUPERVISED_ONLY, TRAIN_ACCURACY, VALIDATION_ACCURACY, WORD2VEC_ONLY, metric_line,
)

ALGO = load_algorithm("blazingtext")
HP = ALGO.hyperparameters

# AWS's tables (DG blazingtext_hyperparameters; spec §3.1, §3.2): name -> default.
AWS_DEFAULTS = {
    "batch_size": 11, "buckets": 2000000, "epochs": 5, "evaluation": True, "learning_rate": 0.05,
    "min_char": 3, "max_char": 6, "min_count": 5, "negative_samples": 5, "sampling_threshold": 0.0001,
    "subwords": False, "vector_dim": 100, "window_size": 5,
    "early_stopping": False, "min_epochs": 5, "patience": 4, "word_ngrams": 2,
}


def parse(**raw):
    return HP.parse({k: str(v) for k, v in raw.items()})


def test_every_aws_hyperparameter_with_its_default():
    values = parse(mode="skipgram")
    assert {k: values[k] for k in AWS_DEFAULTS} == AWS_DEFAULTS
    assert set(values) == set(AWS_DEFAULTS) | {"mode"}
    assert set(WORD2VEC_ONLY) | set(SUPERVISED_ONLY) < set(values)


def test_mode_is_required_and_one_of_four():
    with pytest.raises(ClientError, match="Missing required hyperparameter: mode"):
        parse()
    with pytest.raises(ClientError, match=r"Hyperparameter mode: value 'skip-gram' is not one of "
                                          r"cbow, skipgram, batch_skipgram, supervised"):
        parse(mode="skip-gram")
    for mode in ("cbow", "skipgram", "batch_skipgram", "supervised", "SkipGram"):
        assert parse(mode=mode)["mode"] == mode.lower()


def test_the_sdk_spelling_of_booleans_is_read():
    values = parse(mode="cbow", subwords="True", evaluation="False")
    assert values["subwords"] is True and values["evaluation"] is False


@pytest.mark.parametrize("name, value, words", [
    ("epochs", 0, "outside the range [1, inf)"),
    ("vector_dim", -3, "outside the range [1, inf)"),
    ("window_size", 0, "outside the range [1, inf)"),
    ("negative_samples", 0, "outside the range [1, inf)"),
    ("min_count", -1, "outside the range [0, inf)"),
    ("learning_rate", 0, "outside the range (0, inf)"),
    ("sampling_threshold", 1.5, "outside the range (0, 1)"),
    ("sampling_threshold", 0, "outside the range (0, 1)"),
    ("buckets", 0, "outside the range [1, inf)"),
    ("batch_size", "ten", "not a valid integer"),
    ("subwords", "maybe", "not a valid boolean"),
    ("word_ngrams", 0, "outside the range [1, inf)"),
])
def test_bad_values_name_the_parameter(name, value, words):
    with pytest.raises(ClientError, match=rf"Hyperparameter {name}: .*{re.escape(words)}"):
        parse(mode="skipgram", **{name: value})


@pytest.mark.parametrize("mode", ["batch_skipgram", "supervised"])
def test_subwords_only_with_cbow_or_skipgram(mode):
    with pytest.raises(ClientError, match=rf"Hyperparameter subwords: .* not in mode {mode}"):
        parse(mode=mode, subwords="true")
    parse(mode=mode)  # without subwords: accepted


def test_min_char_must_not_exceed_max_char_with_subwords():
    with pytest.raises(ClientError, match=r"min_char \(5\) and max_char \(4\)"):
        parse(mode="cbow", subwords="true", min_char=5, max_char=4)
    parse(mode="cbow", min_char=5, max_char=4)  # unread without subwords


def test_unknown_and_hidden_names():
    with pytest.raises(ClientError, match=r"Unknown hyperparameter: vector_size \(this algorithm accepts: "):
        parse(mode="cbow", vector_size=10)
    parse(mode="cbow", _tuning_objective_metric="train:mean_rho")


def test_channels_metrics_serving_variants():
    train, validation = ALGO.channel("train"), ALGO.channel("validation")
    assert train.required and not validation.required
    assert train.content_types == ("text/plain", "application/jsonlines") and set(train.input_modes) == {"File", "Pipe"}
    assert {m.name: (m.direction, m.regex) for m in ALGO.metrics} == {
        "train:mean_rho": ("Maximize", r"#mean_rho: (\S+)"),
        "train:accuracy": ("Maximize", r"#train_accuracy: (\S+)"),
        "validation:accuracy": ("Maximize", r"#validation_accuracy: (\S+)"),
    }
    assert ALGO.serving.content_types == ("application/json", "application/jsonlines")
    assert ALGO.serving.default_accept == "application/json"
    assert set(ALGO.variants) == {"cpu", "gpu"}


@pytest.mark.parametrize("name, line", [(MEAN_RHO, "#mean_rho: 0.6958053323245772"),
                                        (TRAIN_ACCURACY, "#train_accuracy: 0.9866"),
                                        (VALIDATION_ACCURACY, "#validation_accuracy: 0.9721")])
def test_metric_lines_are_aws_lines_and_scraped_by_the_declared_regex(name, line):
    value = float(line.split(": ")[1])
    assert metric_line(ALGO, name, value) == line
    assert float(re.search(ALGO.metric(name).regex, "[INFO] " + line).group(1)) == value
    assert set(METRIC_LINES) == {m.name for m in ALGO.metrics}
