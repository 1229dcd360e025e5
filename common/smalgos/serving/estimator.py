"""Serving over a fitted estimator (K-Means, PCA, k-NN): request checks and model loading."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, Callable, Iterable

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

    @abstractmethod
    def fields(self, features, accept) -> dict:
        """The answer's fields, each an (n,) or (n, k) array."""


def load_estimator(model_dir: Path | str, files: Iterable[str], load: Callable[[Path], Any], what: str,
                   errors: tuple[type[Exception], ...] = (ValueError, KeyError)) -> Any:
    """`load(model_dir)` once every file in `files` is there; a load failure among `errors` becomes
    a ClientError ("Cannot load the <what> model in <dir>: ...")."""
    model_dir = Path(model_dir)
    for name in files:
        require_file(model_dir, name)
    try:
        return load(model_dir)
    except errors as exc:
        raise ClientError(f"Cannot load the {what} model in {model_dir}: {exc}") from None
