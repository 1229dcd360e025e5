"""DeepAR forecasting (`forecasting-deepar:1`) as SageMaker declares it: hyperparameters,
channels, metrics, serving.

Sources: AWS Developer Guide `deepar_hyperparameters`, `deepar`, `deepar-tuning`,
`deepar-in-formats`; the default configuration AWS's image prints (deepar_synthetic notebook log);
see /work/shared/spec/algorithms-neural.md §2. Standard library only.

- `time_freq` follows AWS's validator regex: an optional multiple and one of M, W, D, H, min.
  (`frequency.py` turns it into pandas' spelling.)
- `cardinality` and `num_dynamic_feat` are `auto` (from the data), `ignore` (or `""`, as AWS: the
  field is not used even if present), or a value: a list of positive ints / a positive int.
- `early_stopping_patience` is unset by default (AWS's image default is `""`, accepted as unset).
- `likelihood`: `student-t` is AWS's image's own spelling of the default `student-T`; any case of
  a name is accepted.
- Channels `train` (required) and `test` (optional), File mode, JSON Lines (`.json`, `.json.gz`)
  or Parquet (`.parquet`), found by extension or the channel's ContentType.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from smalgos.declaration import (
    CPU, FILE, GPU, MINIMIZE, Algorithm, Categorical, Channel, Float, Hyperparameter, Hyperparameters,
    Integer, Interval, Metric, Serving, String, progress_metric, quality_metric, quality_regex, throughput_metric,
)
from smalgos.errors import ClientError
from smalgos.formats.media import JSON, JSONLINES

PARQUET = "application/x-parquet"  # smalgos.formats.parquet's name (not imported: it needs numpy)
AUTO, IGNORE = "auto", "ignore"
POSITIVE = Interval(1, None)

# AWS's validator of time_freq (the SageMaker console's algorithm metadata).
TIME_FREQ_PATTERN = r"\s*([1-9]\d*)?(M|D|W|H|min)\s*"
GAUSSIAN, BETA, NEGATIVE_BINOMIAL, STUDENT_T, DETERMINISTIC_L1 = (
    "gaussian", "beta", "negative-binomial", "student-T", "deterministic-L1")
DEFAULT_TEST_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)

# Hidden keys of AWS's default configuration, and HPO's `_tuning_objective_metric`: accepted and
# dropped. Any other underscore name is refused.
ACCEPTED_HIDDEN = ("_kvstore", "_num_gpus", "_num_kv_servers", "_tuning_objective_metric")


@dataclass(frozen=True)
class AutoIgnoreOr(Hyperparameter):
    """`auto`, `ignore` (`""` means ignore, as in AWS's image), or a value: with `is_list`, a JSON
    list of positive integers (`[2, 3]`, or `2,3`); otherwise one positive integer."""

    allow_auto: bool = True
    is_list: bool = False
    type_name = "auto, ignore or value"

    def describe_type(self) -> str:
        value = "a list of positive integers" if self.is_list else "a positive integer"
        return f"'auto', 'ignore' or {value}"

    def _parse(self, text: Any) -> Any:
        if isinstance(text, str):
            s = text.strip()
            if s.lower() in (IGNORE, ""):
                return IGNORE
            text = json.loads(s) if s.startswith("[") else [p.strip() for p in s.split(",")] if self.is_list else s
        if not self.is_list:
            return _positive_int(self.name, text)
        if not isinstance(text, list) or not text:
            raise ValueError("expected a non-empty list of positive integers")
        return [_positive_int(self.name, item) for item in text]


def _positive_int(name: str, value: Any) -> int:
    return Integer(name, range=POSITIVE).parse(value)


@dataclass(frozen=True)
class OptionalInteger(Integer):
    """An integer that may be unset: absent, `""` (AWS's image default) or JSON null is None."""

    def _parse(self, text: Any) -> int | None:
        if text is None or (isinstance(text, str) and text.strip().lower() in ("", "null", "none")):
            return None
        return super()._parse(text)


@dataclass(frozen=True)
class Quantiles(Hyperparameter):
    """A list of quantiles in (0, 1): JSON (`[0.1, 0.5]`, strings allowed) or comma separated."""

    type_name = "list of quantiles"

    def _parse(self, text: Any) -> tuple[float, ...]:
        items = list(text) if isinstance(text, (list, tuple)) else (
            json.loads(text) if str(text).strip().startswith("[") else str(text).split(","))
        if not isinstance(items, list) or not items:
            raise ValueError("expected a non-empty list")
        values = []
        for item in items:
            if isinstance(item, bool):
                raise ValueError("booleans are not quantiles")
            q = float(item)
            if not 0.0 < q < 1.0:
                raise ClientError(f"Hyperparameter {self.name}: quantile {item} is outside (0, 1)")
            values.append(q)
        return tuple(values)


HYPERPARAMETERS = Hyperparameters(
    params=(
        Integer("context_length", required=True, range=POSITIVE,
                doc="time points the network sees before predicting (its lags let it see further back)"),
        Integer("epochs", required=True, range=POSITIVE, doc="the most passes over the training data"),
        Integer("prediction_length", required=True, range=POSITIVE,
                doc="forecast horizon in time points, fixed at training"),
        String("time_freq", required=True, pattern=TIME_FREQ_PATTERN,
               doc="an optional multiple and one of M, W, D, H, min (5min, 2H, ...): the series' frequency"),
        AutoIgnoreOr("cardinality", default=AUTO, is_list=True,
                     doc="categories of each `cat` field: auto (from the data), ignore, or a list"),
        Float("dropout_rate", default=0.1, range=Interval(0.0, 1.0, high_inclusive=False),
              doc="dropout between the RNN's layers"),
        OptionalInteger("early_stopping_patience", default=None, range=POSITIVE,
                        doc="stop after this many epochs without a lower training loss; the best epoch is kept"),
        Integer("embedding_dimension", default=10, range=POSITIVE, doc="size of each category's embedding"),
        Float("learning_rate", default=0.001, range=Interval(0.0, None, low_inclusive=False), doc="Adam's step"),
        Categorical("likelihood", default=STUDENT_T,
                    choices=(GAUSSIAN, BETA, NEGATIVE_BINOMIAL, STUDENT_T, DETERMINISTIC_L1),
                    doc="the output distribution (deterministic-L1: a point forecast)"),
        Integer("mini_batch_size", default=128, range=POSITIVE, doc="windows per mini-batch"),
        Integer("num_cells", default=40, range=POSITIVE, doc="units in each RNN layer"),
        AutoIgnoreOr("num_dynamic_feat", default=AUTO,
                     doc="how many `dynamic_feat` series each record has: auto (from the data), ignore, or a number"),
        Integer("num_eval_samples", default=100, range=POSITIVE,
                doc="sample paths per series when scoring the test channel"),
        Integer("num_layers", default=2, range=POSITIVE, doc="RNN layers"),
        Quantiles("test_quantiles", default=DEFAULT_TEST_QUANTILES,
                  doc="quantiles of the test channel's weighted quantile losses"),
    ),
    accept_unknown=ACCEPTED_HIDDEN,
)

RMSE, MEAN_WQL, FINAL_LOSS, LOSS = "RMSE", "mean_wQuantileLoss", "final_loss", "loss"


def _batch_loss() -> Metric:
    """`train:loss:batch`, read from `epoch=E, batch=B train loss <loss>=` lines."""
    regex = quality_regex("train", LOSS, "loss", per_epoch=True).replace(r"epoch=\S+, ", r"epoch=\S+, batch=\S+ ")
    return Metric("train:loss:batch", MINIMIZE, regex, tunable=False)


ALGORITHM = Algorithm(
    name="forecasting-deepar",
    display_name="AWS/DeepAR",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, content_types=(JSONLINES, JSON, PARQUET), input_modes=(FILE,),
                doc="series as JSON Lines (.json, .json.gz) or Parquet (.parquet): start, target, cat, dynamic_feat"),
        Channel("test", content_types=(JSONLINES, JSON, PARQUET), input_modes=(FILE,),
                doc="whole series; the last prediction_length points of each are forecast and scored"),
    ),
    metrics=(
        quality_metric("test", RMSE, MINIMIZE),
        quality_metric("test", MEAN_WQL, MINIMIZE),
        quality_metric("train", FINAL_LOSS, MINIMIZE),
        quality_metric("train", LOSS, MINIMIZE, per_epoch=True, tunable=False),
        _batch_loss(),
        progress_metric(),
        throughput_metric(),
    ),
    serving=Serving(
        content_types=(JSON, JSONLINES),
        accepts=(JSON, JSONLINES),
        default_accept=JSON,
    ),
    variants=(CPU, GPU),
    supervised=False,
    # AWS's SDK examples name the format `json` or `parquet` (s3_input's content_type).
    content_type_aliases={"json": JSONLINES, "jsonlines": JSONLINES, "parquet": PARQUET,
                          "application/parquet": PARQUET},
    doc="An autoregressive LSTM trained over many related series; forecasts by sample paths.",
)
