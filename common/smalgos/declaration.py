"""One declaration per algorithm: hyperparameters, channels, metrics, serving formats, variants.

The declaration is the spine's centre. The training runner validates the job's configuration
against it, the metric printer emits AWS's log lines from it, the serving app negotiates content
types from it, and `python -m smalgos.cli describe ALGO` prints it (the Makefile asks it which
image variants exist). This module imports only the standard library, so describing an
algorithm needs no maths libraries.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from .errors import ClientError

AUTO = "auto"

# ---------------------------------------------------------------------------------------------
# Hyperparameters
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    """A numeric range; `None` bounds are open-ended."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (value == self.low and not self.low_inclusive)):
            return False
        if self.high is not None and (value > self.high or (value == self.high and not self.high_inclusive)):
            return False
        return True

    def __str__(self) -> str:
        lo = "(-inf" if self.low is None else ("[" if self.low_inclusive else "(") + _num(self.low)
        hi = "inf)" if self.high is None else _num(self.high) + ("]" if self.high_inclusive else ")")
        return f"{lo}, {hi}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 1e15 else repr(x)


def _strip_json_quotes(raw: str) -> str:
    """Framework estimators send every value json.dumps-ed: '"binary_classifier"' -> 'binary_classifier'."""
    s = raw.strip()
    if len(s) >= 2 and s[0] == '"' and s[-1] == '"':
        try:
            decoded = json.loads(s)
        except ValueError:
            return s
        if isinstance(decoded, str):
            return decoded.strip()
    return s


@dataclass(frozen=True)
class Hyperparameter:
    """Base of the typed hyperparameters. Subclasses implement `_parse` on the stripped string."""

    name: str
    default: Any = None
    required: bool = False
    allow_auto: bool = False
    doc: str = ""

    type_name = "string"

    def parse(self, raw: Any) -> Any:
        """Turn a value from hyperparameters.json (normally a string) into its typed value."""
        text = _strip_json_quotes(raw) if isinstance(raw, str) else raw
        if self.allow_auto and isinstance(text, str) and text.lower() == AUTO:
            return AUTO
        try:
            return self._parse(text)
        except ClientError:
            raise
        except (ValueError, TypeError) as exc:
            detail = f": {exc}" if str(exc) else ""
            raise ClientError(
                f"Hyperparameter {self.name}: value {raw!r} is not a valid {self.describe_type()}{detail}"
            ) from None

    def _parse(self, text: Any) -> Any:
        return str(text)

    def describe_type(self) -> str:
        return self.type_name + (" or 'auto'" if self.allow_auto else "")

    def describe(self) -> dict:
        return {"type": self.type_name, "default": self.default, "required": self.required,
                "auto": self.allow_auto, "doc": self.doc}


@dataclass(frozen=True)
class Integer(Hyperparameter):
    range: Interval = Interval()
    type_name = "integer"

    def _parse(self, text: Any) -> int:
        if isinstance(text, bool):
            raise ValueError("booleans are not integers")
        if isinstance(text, int):
            value = text
        else:
            s = str(text).strip()
            try:
                value = int(s)
            except ValueError:
                f = float(s)  # "10.0" is accepted as 10, "10.5" is not
                if not f.is_integer():
                    raise ValueError("not a whole number") from None
                value = int(f)
        if value not in self.range:
            raise ClientError(f"Hyperparameter {self.name}: value {value} is outside the range {self.range}")
        return value

    def describe(self) -> dict:
        return {**super().describe(), "range": str(self.range)}


@dataclass(frozen=True)
class Float(Hyperparameter):
    range: Interval = Interval()
    type_name = "float"

    def _parse(self, text: Any) -> float:
        if isinstance(text, bool):
            raise ValueError("booleans are not numbers")
        value = float(text)
        if math.isnan(value):
            raise ValueError("NaN is not allowed")
        if math.isinf(value):
            raise ClientError(f"Hyperparameter {self.name}: value {value} is not a valid float:"
                              " infinite values are not allowed")
        if value not in self.range:
            raise ClientError(f"Hyperparameter {self.name}: value {text} is outside the range {self.range}")
        return value

    def describe(self) -> dict:
        return {**super().describe(), "range": str(self.range)}


@dataclass(frozen=True)
class Boolean(Hyperparameter):
    type_name = "boolean"
    _TRUE = ("true", "1", "yes")
    _FALSE = ("false", "0", "no")

    def _parse(self, text: Any) -> bool:
        if isinstance(text, bool):
            return text
        s = str(text).strip().lower()
        if s in self._TRUE:
            return True
        if s in self._FALSE:
            return False
        raise ValueError("expected true or false")


@dataclass(frozen=True)
class Categorical(Hyperparameter):
    choices: tuple = ()
    case_sensitive: bool = False
    type_name = "categorical"

    def _parse(self, text: Any) -> str:
        s = str(text).strip()
        for choice in self.choices:
            if s == choice or (not self.case_sensitive and s.lower() == str(choice).lower()):
                return choice
        raise ClientError(
            f"Hyperparameter {self.name}: value {s!r} is not one of {', '.join(map(str, self.choices))}"
        )

    def describe_type(self) -> str:
        return f"one of {', '.join(map(str, self.choices))}"

    def describe(self) -> dict:
        return {**super().describe(), "choices": list(self.choices)}


@dataclass(frozen=True)
class FloatOrChoice(Float):
    """A float, or one of a few named strings (Linear Learner's positive_example_weight_mult)."""

    choices: tuple = ()

    def _parse(self, text: Any) -> float | str:
        s = str(text).strip()
        for choice in self.choices:
            if s.lower() == choice:
                return choice
        return super()._parse(text)


@dataclass(frozen=True)
class StringList(Hyperparameter):
    """A list given as JSON text (`["msd", "ssd"]`) or a comma list (`msd,ssd`)."""

    choices: tuple = ()
    type_name = "list"

    def _parse(self, text: Any) -> list:
        if isinstance(text, list):
            items = text
        else:
            s = str(text).strip()
            if s.startswith("["):
                items = json.loads(s)
                if not isinstance(items, list):
                    raise ValueError("expected a list")
            else:
                items = [p for p in (x.strip() for x in s.split(",")) if p]
        items = [str(i).strip() for i in items]
        if self.choices:
            bad = [i for i in items if i not in self.choices]
            if bad:
                raise ClientError(
                    f"Hyperparameter {self.name}: {', '.join(map(repr, bad))} not among {', '.join(self.choices)}"
                )
        return items


@dataclass(frozen=True)
class String(Hyperparameter):
    pattern: str | None = None

    def _parse(self, text: Any) -> str:
        s = str(text)
        if self.pattern and not re.fullmatch(self.pattern, s):
            raise ValueError(f"does not match {self.pattern}")
        return s


# A check across several hyperparameters: receives the parsed values (defaults filled in) and
# raises ClientError naming the parameters at fault.
Validator = Callable[[dict], None]


def ignored_key(name: str) -> bool:
    """Keys every algorithm accepts and ignores without declaring them: the framework/SDK keys
    prefixed `sagemaker_` (`sagemaker_program`, `sagemaker_region`, ...). Hidden underscore keys
    (`_kvstore`, `_tuning_objective_metric`, ...) are not among them: as in AWS's images, an
    algorithm accepts only those it declares (as hyperparameters or in `accept_unknown`), and a
    misspelt one (`_kfol`) is an unknown hyperparameter."""
    return name.startswith("sagemaker_")


@dataclass(frozen=True)
class Hyperparameters:
    """The declared hyperparameters of one algorithm."""

    params: tuple[Hyperparameter, ...]
    validators: tuple[Validator, ...] = ()
    accept_unknown: Sequence[str] = ()  # extra names tolerated and dropped (e.g. the SDK's force_dense)

    def __post_init__(self):
        names = [p.name for p in self.params]
        dupes = {n for n in names if names.count(n) > 1}
        if dupes:
            raise ValueError(f"hyperparameters declared twice: {sorted(dupes)}")

    def __getitem__(self, name: str) -> Hyperparameter:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    def parse(self, raw: Mapping[str, Any]) -> dict:
        """Validate a hyperparameters.json mapping; return every declared name with its value."""
        known = {p.name: p for p in self.params}
        unknown = sorted(k for k in raw if k not in known and not ignored_key(k) and k not in self.accept_unknown)
        if unknown:
            raise ClientError(
                f"Unknown hyperparameter{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}"
                f" (this algorithm accepts: {', '.join(sorted(known))})"
            )
        values: dict = {}
        for p in self.params:
            if p.name in raw:
                values[p.name] = p.parse(raw[p.name])
            elif p.required:
                raise ClientError(f"Missing required hyperparameter: {p.name}")
            else:
                values[p.name] = p.default
        for check in self.validators:
            check(values)
        return values

    def check(self, values: Mapping[str, Any]) -> dict:
        """Validate typed values, as an estimator holds them (None: unset), with the same rules
        as `parse`: each value's type and range, then the cross-parameter validators. Returns
        every declared name with its checked value."""
        checked = {p.name: None if values.get(p.name) is None else p.parse(values[p.name]) for p in self.params}
        for check in self.validators:
            check(checked)
        return checked

    def describe(self) -> dict:
        return {p.name: p.describe() for p in self.params}


# ---------------------------------------------------------------------------------------------
# Channels
# ---------------------------------------------------------------------------------------------

FILE, PIPE, FASTFILE = "File", "Pipe", "FastFile"
FULLY_REPLICATED, SHARDED = "FullyReplicated", "ShardedByS3Key"


RECORDIO_PROTOBUF, CSV = "application/x-recordio-protobuf", "text/csv"


@dataclass(frozen=True)
class Channel:
    """A training channel. The defaults are the recordIO family's (Linear Learner, K-Means, PCA,
    k-NN, ...): recordIO-protobuf (the default when inputdataconfig.json names no type) or CSV, in
    File or Pipe mode, either S3 distribution."""

    name: str
    required: bool = False
    content_types: tuple[str, ...] = (RECORDIO_PROTOBUF, CSV)
    default_content_type: str | None = None  # when inputdataconfig.json names none
    input_modes: tuple[str, ...] = (FILE, PIPE)
    distributions: tuple[str, ...] = (FULLY_REPLICATED, SHARDED)
    doc: str = ""

    def describe(self) -> dict:
        return {"required": self.required, "content_types": list(self.content_types),
                "default_content_type": self.default_content_type or self.content_types[0],
                "input_modes": list(self.input_modes), "distributions": list(self.distributions)}


# ---------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------

MINIMIZE, MAXIMIZE = "Minimize", "Maximize"


@dataclass(frozen=True)
class Metric:
    """A metric as SageMaker scrapes it: `<channel>:<name>` plus the regex over the log text.

    A metric printed as a `#quality_metric` line (made by `quality_metric`) also says how it is
    printed: its channel, the printed name (`token`, a regex: Linear Learner prints
    `binary_f_beta` as `binary_f_1.0`), `<loss>` or `<score>` (`kind`) and whether the line carries
    `epoch=`. `smalgos.metrics.MetricsLogger.quality` finds the declared metric from these, so the
    printed line and the regex SageMaker scrapes come from one statement.
    """

    name: str  # e.g. "validation:binary_f_beta"
    direction: str  # MINIMIZE or MAXIMIZE
    regex: str
    tunable: bool = True
    channel: str | None = None
    token: str | None = None
    kind: str | None = None  # "loss" or "score"
    per_epoch: bool = False

    def prints(self, channel: str, name: str, per_epoch: bool) -> bool:
        """True if this metric is the one a quality line `<channel> <name>` stands for."""
        return (self.token is not None and self.channel == channel and self.per_epoch == per_epoch
                and re.fullmatch(self.token, name) is not None)

    def describe(self) -> dict:
        return {"Name": self.name, "Regex": self.regex, "Type": self.direction, "Tunable": self.tunable}


# AWS's log-line regexes for the first-party algorithms (the lines `smalgos.metrics` prints).
PROGRESS_REGEX = r"#progress_metric: host=\S+, completed (\S+) %"
THROUGHPUT_REGEX = r"#throughput_metric: host=\S+, train throughput=(\S+) records/second"
LOSS, SCORE = "loss", "score"


def quality_regex(channel: str, token: str, kind: str, per_epoch: bool = False) -> str:
    """`#quality_metric: host=\\S+, [epoch=\\S+, ]<channel> <token> <kind>=(\\S+)`; `token` may itself be a regex."""
    where = r"epoch=\S+, " if per_epoch else ""
    return r"#quality_metric: host=\S+, " + where + f"{channel} {token} <{kind}>=" + r"(\S+)"


def quality_metric(channel: str, name: str, direction: str, per_epoch: bool = False, tunable: bool = True,
                   *, token: str | None = None, kind: str | None = None) -> Metric:
    """The metric `<channel>:<name>` read from a `#quality_metric` line.

    The line prints `token` (a regex; default: `name` itself) as `<loss>` when minimized, `<score>`
    when maximized, unless `kind` says otherwise (Linear Learner prints multiclass_log_loss as a
    `<score>`).
    """
    kind = kind or (LOSS if direction == MINIMIZE else SCORE)
    token = token or re.escape(name)
    return Metric(f"{channel}:{name}", direction, quality_regex(channel, token, kind, per_epoch), tunable,
                  channel=channel, token=token, kind=kind, per_epoch=per_epoch)


def progress_metric() -> Metric:
    """`train:progress`: the `#progress_metric: ... completed <p> % of epochs` lines (not tunable)."""
    return Metric("train:progress", MAXIMIZE, PROGRESS_REGEX, tunable=False)


def throughput_metric() -> Metric:
    """`train:throughput`: the `#throughput_metric: ... train throughput=<r> records/second` lines."""
    return Metric("train:throughput", MAXIMIZE, THROUGHPUT_REGEX, tunable=False)


# ---------------------------------------------------------------------------------------------
# Serving
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Serving:
    content_types: tuple[str, ...] = (
        "text/csv", "application/json", "application/jsonlines", "application/x-recordio-protobuf")
    accepts: tuple[str, ...] = ("application/json", "application/jsonlines", "application/x-recordio-protobuf")
    default_accept: str = "application/json"
    json_root_key: str = "predictions"
    empty_body_status: int = 400  # AWS's XGBoost answers an empty body with 204 No Content
    # AWS's image serves multi-model endpoints (SAGEMAKER_MULTI_MODEL=true: the /models API of
    # serving/multi_model.py); the image then carries the label
    # com.amazonaws.sagemaker.capabilities.multi-models=true (scripts/new-dockerfile.sh writes it).
    multi_model: bool = False

    def describe(self) -> dict:
        return {"content_types": list(self.content_types), "accepts": list(self.accepts),
                "default_accept": self.default_accept, "multi_model": self.multi_model}


# ---------------------------------------------------------------------------------------------
# The algorithm
# ---------------------------------------------------------------------------------------------

CPU, GPU = "cpu", "gpu"


@dataclass(frozen=True)
class Algorithm:
    """Everything the spine needs to know about one algorithm.

    `trainer` and `model_loader` are "module:function" strings imported only when used, so that
    the declaration stays cheap to import (no torch or xgboost needed to describe an algorithm);
    left out, they are `smalgos_<name>.train:train` and `smalgos_<name>.serve:load_model`.
      trainer(job: smalgos.training.TrainingJob) -> None
      model_loader(model_dir: pathlib.Path) -> smalgos.serving.model.Model
    """

    name: str  # AWS's repository name, e.g. "linear-learner"
    hyperparameters: Hyperparameters
    channels: tuple[Channel, ...]
    metrics: tuple[Metric, ...]
    trainer: str = ""  # by convention smalgos_<name>.train:train
    model_loader: str = ""  # by convention smalgos_<name>.serve:load_model
    serving: Serving = Serving()
    variants: tuple[str, ...] = (CPU, GPU)
    supervised: bool = True  # CSV channels carry a label column unless label_size says otherwise
    # Extra spellings of content types this algorithm accepts (XGBoost: bare "csv", "libsvm").
    content_type_aliases: Mapping[str, str] = field(default_factory=dict)
    # Options passed to a content type's decoder, in training and serving alike
    # (XGBoost: {"text/libsvm": {"zero_based": True}} — indices are column numbers as written).
    decoder_options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    doc: str = ""
    # The Algorithm dimension of the `#metrics` timing lines (AWS's images: "AWS/KNN", "PCA", ...);
    # empty means `name`.
    display_name: str = ""
    # Framework (script) mode: a job whose hyperparameters carry `sagemaker_program` runs the
    # user's script (smalgos.scriptmode), and a model given SAGEMAKER_PROGRAM serves through the
    # user's model_fn / input_fn / predict_fn / output_fn. False: such a job is refused.
    script_mode: bool = False
    # A framework image with no algorithm mode (RL): a job without `sagemaker_program` is refused.
    script_only: bool = False
    # "module:function" that runs a script-mode job, `run_script(config, paths, stop_event)`
    # (RL: forms the Ray cluster first); empty means smalgos.scriptmode.training:run_script.
    script_runner: str = ""

    def __post_init__(self):
        package = package_of(self.name)
        defaults = {"display_name": self.name, "trainer": f"{package}.train:train",
                    "model_loader": f"{package}.serve:load_model",
                    "script_runner": "smalgos.scriptmode.training:run_script"}
        for attribute, default in defaults.items():
            if not getattr(self, attribute):
                object.__setattr__(self, attribute, default)

    def entry_points(self) -> tuple[str, ...]:
        """The "module:function" targets this image runs (its build imports each one)."""
        return ((() if self.script_only else (self.trainer,)) + (self.model_loader,)
                + ((self.script_runner,) if self.script_mode else ()))

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)

    def metric(self, name: str) -> Metric:
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"{self.name} declares no metric {name!r}")

    def describe(self) -> dict:
        return {
            "name": self.name,
            "variants": list(self.variants),
            "hyperparameters": self.hyperparameters.describe(),
            "channels": {c.name: c.describe() for c in self.channels},
            "metrics": [m.describe() for m in self.metrics],
            "serving": self.serving.describe(),
        }


def package_of(name: str) -> str:
    """The import package of the algorithm `name`: smalgos_<name with - as _>."""
    return "smalgos_" + name.replace("-", "_")


def resolve(target: str) -> Any:
    """Import "package.module:attribute"."""
    import importlib

    module, _, attr = target.partition(":")
    obj = importlib.import_module(module)
    return getattr(obj, attr) if attr else obj


def load_algorithm(name: str) -> Algorithm:
    """The declaration of the algorithm named `name` (AWS's repository name, e.g. "kmeans").

    By convention it lives in `smalgos_<name with - as _>.declaration` as `ALGORITHM`.
    """
    import importlib

    module_name = package_of(name) + ".declaration"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise ClientError(f"Unknown algorithm {name!r}: no module {module_name}") from None
        raise
    return module.ALGORITHM
