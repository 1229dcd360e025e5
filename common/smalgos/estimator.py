"""The algorithm kit's estimators: parameters from the declaration, a streaming protocol, artifacts.

An algorithm's maths core is an estimator usable from a notebook. Its parameters are the
algorithm's declared hyperparameters, stated once, in the declaration:

    class WebScaleKMeans(StreamingEstimator):
        hyperparameters = HYPERPARAMETERS          # the declaration's names, defaults and checks
        positional = ("k",)                        # WebScaleKMeans(10) as well as WebScaleKMeans(k=10)

`DeclaredEstimator` gives it scikit-learn's parameter protocol (`get_params`, `set_params`, a
signature for `help()`), `from_hyperparameters(job.hyperparameters)`, and `validated_parameters()`,
which checks the values with the declaration (types, ranges, cross-parameter validators) when
fitting starts: scikit-learn's `_parameter_constraints` idea, with the declaration as the
constraints. A declared name that starts with `_` (AWS's hidden keys) is the attribute without it.

`StreamingEstimator` is the protocol the streaming training driver
(`smalgos.training.streaming`) runs: `begin(n_features)`, `partial_fit(X[, y])` per mini-batch,
`end_epoch()`, `finalize()`, `save(model_dir)` / `load(model_dir)`, plus what the driver reports
(`training_metrics()`, `test_scorer()`). `fit(X[, y])` is the same protocol over in-memory data.

Epoch-based torch training (the neural algorithms: optimisers by AWS's names, learning-rate
schedules, early stopping on a validation metric, best-epoch checkpoints, AMP on CUDA) is to be a
second driver beside the streaming one, over the same declared parameters, declared metrics and
validators, built with the first neural algorithm that needs it; Linear Learner's `optimizers`,
`selection` and `checkpoints` modules are where its pieces come from.

Artifact metadata follows one convention (`write_metadata` / `read_metadata`): a JSON file
holding `"format": "smalgos-<algorithm>"` and an integer `"format_version"`; a reader refuses
another format and any newer version.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Mapping, Protocol

import numpy as np

from .declaration import Hyperparameter, Hyperparameters
from .distributed import SOLO, Cluster
from .errors import ClientError, InputError
from .maths.inputs import check_fitted, check_labels, checked_features, minibatches

# Estimator parameters that are not hyperparameters: every core takes these.
COMMON_PARAMETERS: Mapping[str, Any] = {"random_state": 0, "device": None}


def attribute_name(hyperparameter: str) -> str:
    """The estimator attribute of a declared hyperparameter: AWS's hidden `_name` is `name`."""
    return hyperparameter.lstrip("_")


class DeclaredEstimator:
    """Parameters from the algorithm's declaration. See the module docstring.

    Class attributes a subclass sets:
      hyperparameters   the declaration's `Hyperparameters`
      positional        parameters that may also be passed by position, in order
      job_only          declared names that are the job's, not the estimator's (`feature_dim` is
                        read off the data; `force_dense` and the like are accepted and ignored)
      notebook_defaults defaults for names the declaration requires on the wire but a notebook
                        may leave out (PCA's `mini_batch_size`)
      extra_parameters  parameters that are not hyperparameters, with their defaults (every core
                        also takes `random_state` and `device`)
      uses_labels       a supervised core: fit(X, y), and the training driver checks the labels
      test_uses_labels  the test scorer gets the `test` channel's labels (None: as uses_labels)
      fitted_attribute  set by fit() and load(): its absence means "not fitted"
    """

    hyperparameters: ClassVar[Hyperparameters]
    positional: ClassVar[tuple[str, ...]] = ()
    job_only: ClassVar[tuple[str, ...]] = ("feature_dim",)
    notebook_defaults: ClassVar[Mapping[str, Any]] = {}
    extra_parameters: ClassVar[Mapping[str, Any]] = {}
    uses_labels: ClassVar[bool] = False
    # The `test` channel's labels reach the test scorer: as `uses_labels` when None (Random Cut
    # Forest learns from unlabelled records and is tested on labelled ones).
    test_uses_labels: ClassVar[bool | None] = None
    fitted_attribute: ClassVar[str] = "n_features_in_"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "hyperparameters" in cls.__dict__:
            cls.__signature__ = cls._signature()

    @classmethod
    def declared_parameters(cls) -> dict[str, Hyperparameter]:
        """Attribute name → its declared hyperparameter, in declaration order."""
        return {attribute_name(p.name): p for p in cls.hyperparameters.params if p.name not in cls.job_only}

    @classmethod
    def parameter_defaults(cls) -> dict[str, Any]:
        """Every parameter with its default: the declaration's, a notebook default, or None."""
        defaults = {name: cls.notebook_defaults.get(name, p.default)
                    for name, p in cls.declared_parameters().items()}
        return {**defaults, **cls.extra_parameters, **COMMON_PARAMETERS}

    @classmethod
    def _signature(cls) -> inspect.Signature:
        params = []
        defaults = cls.parameter_defaults()
        for name in cls.positional:
            params.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=defaults[name]))
        params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default)
                   for name, default in defaults.items() if name not in cls.positional]
        return inspect.Signature(params)

    def __init__(self, *args, **kwargs):
        cls = type(self)
        if len(args) > len(cls.positional):
            raise TypeError(f"{cls.__name__} takes at most {len(cls.positional)} positional parameter(s)"
                            f" ({', '.join(cls.positional) or 'none'}); pass the others by name")
        for name, value in zip(cls.positional, args):
            if name in kwargs:
                raise TypeError(f"{cls.__name__} got two values for parameter {name!r}")
            kwargs[name] = value
        defaults = cls.parameter_defaults()
        unknown = sorted(set(kwargs) - set(defaults))
        if unknown:
            raise TypeError(f"{cls.__name__} has no parameter {', '.join(map(repr, unknown))}"
                            f" (parameters: {', '.join(defaults)})")
        for name, default in defaults.items():
            setattr(self, name, kwargs.get(name, default))

    def get_params(self, deep: bool = True) -> dict:
        return {name: getattr(self, name) for name in self.parameter_defaults()}

    def set_params(self, **params) -> "DeclaredEstimator":
        valid = self.parameter_defaults()
        for name, value in params.items():
            if name not in valid:
                raise InputError(f"Unknown parameter {name!r} for {type(self).__name__}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        defaults = self.parameter_defaults()
        changed = {k: v for k, v in self.get_params().items() if v != defaults[k]}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    @classmethod
    def from_hyperparameters(cls, hyperparameters: Mapping[str, Any], **overrides) -> "DeclaredEstimator":
        """The estimator a job's parsed hyperparameters describe (names it does not take are ignored)."""
        params = {attr: hyperparameters[p.name] for attr, p in cls.declared_parameters().items()
                  if p.name in hyperparameters}
        return cls(**{**params, **overrides})

    def check_fitted(self) -> None:
        """NotFittedError unless fit() or load() has run."""
        check_fitted(self, self.fitted_attribute)

    def validated_parameters(self, **context) -> dict:
        """The declared hyperparameters (declaration names) with this estimator's values, checked by
        the declaration: each value's type and range, then its cross-parameter validators.
        `context` supplies the job-only names (`feature_dim=n_features`). An InputError names the
        parameter at fault."""
        cls = type(self)
        values = {p.name: p.default for p in cls.hyperparameters.params}
        values.update({p.name: getattr(self, attr) for attr, p in cls.declared_parameters().items()})
        values.update(context)
        for attr, p in cls.declared_parameters().items():
            if p.required and values[p.name] is None and attr not in cls.notebook_defaults:
                raise InputError(f"{cls.__name__}: parameter {attr} is required")
        try:
            return cls.hyperparameters.check(values)
        except InputError:
            raise
        except ClientError as exc:
            raise InputError(exc.message) from None


class TestScorer(Protocol):
    """Accumulates a metric over the test channel's mini-batches."""

    def update(self, features, labels) -> None: ...

    def result(self, records: int) -> dict[str, float]:
        """The metrics by their printed names (declared metrics of the `test` channel)."""


class StreamingEstimator(DeclaredEstimator, ABC):
    """A core fitted from a stream of mini-batches. See the module docstring.

    Class attributes: `format_name` / `format_version` (the artifact metadata), and `cluster`:
    the job's hosts (`smalgos.distributed.Cluster`). It is `SOLO` (one host: every collective
    returns its input) unless the training driver, on a job across hosts, sets the one it joined
    before `begin()`; a core then merges its state through it inside `partial_fit` / `end_epoch` /
    `finalize`, every host calling the same collectives in the same order, and its `partial_fit`
    takes 0-row batches (a host whose records ran out) without skipping them."""

    format_name: ClassVar[str]
    format_version: ClassVar[int] = 1
    cluster: ClassVar[Cluster] = SOLO

    def passes(self) -> int:
        """Passes over the training data (K-Means: `epochs`; one for the others)."""
        return 1

    @abstractmethod
    def begin(self, n_features: int) -> None:
        """Start a fit on records of `n_features` features (validates the parameters)."""

    @abstractmethod
    def partial_fit(self, X, y=None) -> "StreamingEstimator":
        """Fold one mini-batch in."""

    def end_epoch(self) -> None:
        """Mark the end of a pass over the data."""

    @abstractmethod
    def finalize(self) -> "StreamingEstimator":
        """Turn the accumulated state into the fitted model."""

    def fit(self, X, y=None) -> "StreamingEstimator":
        """The streaming protocol over in-memory data, in mini-batches of `mini_batch_size`."""
        X = checked_features(X, "X")
        if self.uses_labels:
            y = check_labels(y, "y", needed_by=type(self).__name__)
            if y.shape[0] != X.shape[0]:
                raise InputError(f"{X.shape[0]} records but {y.shape[0]} labels")
        self.begin(X.shape[1])
        for _ in range(self.passes()):
            for part in minibatches(X, int(self.mini_batch_size), y if self.uses_labels else None):
                self.partial_fit(*part) if self.uses_labels else self.partial_fit(part)
            self.end_epoch()
        return self.finalize()

    def model_arrays(self) -> dict[str, Any]:
        """The fitted model's arrays by name: checked finite after fitting (the driver, before it
        saves) and after loading (serving, before it serves)."""
        return {}

    def check_finite_model(self, where: str) -> None:
        """InputError naming the arrays of the model that hold NaN or ±inf."""
        bad = [name for name, values in self.model_arrays().items()
               if not np.isfinite(np.asarray(values, dtype=np.float64)).all()]
        if bad:
            raise InputError(f"{where}: the model's {', '.join(bad)} hold NaN or infinite values (the data hold "
                             "values too large for float32, or the fit diverged); no such model is saved or served")

    def training_metrics(self) -> dict[str, float]:
        """Metrics of the `train` channel printed after `finalize` (declared names)."""
        return {}

    def epoch_metrics(self) -> dict[str, float]:
        """Metrics of the pass that `end_epoch` just closed, printed by the driver as per-epoch
        `train` lines (declared with ``per_epoch=True``); {} prints none."""
        return {}

    def test_scorer(self) -> TestScorer | None:
        """What scores the `test` channel with the fitted model, or None."""
        return None

    @abstractmethod
    def save(self, model_dir) -> list[Path]:
        """Write the model's files (never a pickle); return their paths."""

    @classmethod
    @abstractmethod
    def load(cls, model_dir) -> "StreamingEstimator":
        """A fitted estimator from `save()`'s files; ValueError when they are inconsistent."""

    def write_metadata(self, path: Path, fields: Mapping[str, Any]) -> Path:
        return write_metadata(path, self.format_name, self.format_version, fields)

    @classmethod
    def read_metadata(cls, path: Path) -> dict:
        return read_metadata(path, cls.format_name, cls.format_version)


def write_metadata(path: Path, format_name: str, format_version: int, fields: Mapping[str, Any]) -> Path:
    """A model's JSON metadata: `format`, `format_version`, then `fields`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": format_name, "format_version": int(format_version), **fields}
    path.write_text(json.dumps(meta, indent=1) + "\n")
    return path


def read_metadata(path: Path, format_name: str, format_version: int) -> dict:
    """The metadata `write_metadata` wrote; ValueError for another format or a newer version.
    (Metadata written before the convention has no `format`; its version is still checked.)"""
    path = Path(path)
    try:
        meta = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path.name} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{path.name} does not hold a JSON object")
    found = meta.get("format", format_name)
    try:
        version = int(meta.get("format_version", 1))
    except (TypeError, ValueError):
        raise ValueError(f"{path.name}: format_version {meta.get('format_version')!r} is not an integer") from None
    if found != format_name or version > format_version:
        raise ValueError(f"{path.name} describes a {found!r} model of format_version {version}; this version "
                         f"reads {format_name!r} up to format_version {format_version}")
    return meta
