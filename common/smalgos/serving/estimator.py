"""Serving over a fitted estimator (K-Means, PCA, k-NN): request checks and model loading."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ..artifacts import require_file
from ..errors import ClientError
from ..formats.batch import Batch
from ..formats.predictions import Predictions
from ..maths.inputs import check_finite, conform_width


class EstimatorModel(ABC):
    """What `model_loader` returns for an estimator with `n_features_in_`: each request's width and
    values are checked, then `fields(features, accept)` gives the answer's per-record fields."""

    def __init__(self, estimator):
        self.estimator = estimator

    def predict(self, batch: Batch, accept=None) -> Predictions:
        self.estimator.check_fitted()
        features = conform_width(batch.features, self.estimator.n_features_in_)
        check_finite(features, "Request")
        return Predictions(self.fields(features, accept))

    def warm_up(self) -> None:
        """One prediction on one record of zeros at the model's width (run by each serving worker
        before it serves: a model that cannot predict is not served)."""
        self.predict(Batch(np.zeros((1, int(self.estimator.n_features_in_)), dtype=np.float32)))

    @abstractmethod
    def fields(self, features, accept) -> dict:
        """The answer's fields, each an (n,) or (n, k) array."""


def load_estimator(model_dir: Path | str, files: Iterable[str], load: Callable[[Path], Any], what: str,
                   errors: tuple[type[Exception], ...] = (ValueError, KeyError)) -> Any:
    """`load(model_dir)` once every file in `files` is there (inside `model_dir`, symlinks
    resolved); a load failure among `errors` -- and, for every algorithm, a safetensors error (a
    truncated or corrupt file) or a JSON one -- becomes a ClientError ("Cannot load the <what>
    model in <dir>: <file>: ..."), the file named when the message does not name it already."""
    import json

    from safetensors import SafetensorError

    model_dir = Path(model_dir)
    files = tuple(files)
    for name in files:
        require_file(model_dir, name)
    try:
        estimator = load(model_dir)
    except (*errors, SafetensorError, json.JSONDecodeError) as exc:
        message = (f"missing field or tensor {exc}" if type(exc) is KeyError
                   else str(exc) or type(exc).__name__)
        if not any(Path(name).name in message for name in files):
            if isinstance(exc, SafetensorError):
                suspects = [n for n in files if n.endswith(".safetensors")] or list(files)
            elif isinstance(exc, json.JSONDecodeError):
                suspects = [n for n in files if n.endswith(".json")] or list(files)
            else:
                suspects = list(files)
            message = f"{' / '.join(suspects)}: {message}" if suspects else message
        raise ClientError(f"Cannot load the {what} model in {model_dir}: {message}") from None
    check = getattr(estimator, "check_finite_model", None)
    if check is not None:
        check(f"Cannot load the {what} model in {model_dir}")
    return estimator
