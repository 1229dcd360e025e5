"""FM's quality metrics under the names AWS prints them, accumulated mini-batch by mini-batch.

    regressor          rmse
    binary_classifier  binary_classification_accuracy, binary_classification_cross_entropy (log
                       loss) and binary_f_1.000 (F1), the first and last at threshold 0.5 on
                       sigmoid(ŷ)

Sums stay on the model's device (no host sync per batch) and are read once by `result()`.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from smalgos.maths.device import to_numpy

from .declaration import F_BETA_TOKEN


def residual(raw: torch.Tensor, y: torch.Tensor, predictor_type: str) -> torch.Tensor:
    """∂loss/∂ŷ per record: log loss on sigmoid(ŷ) (binary), ½(ŷ − y)² (regressor)."""
    return torch.sigmoid(raw) - y if predictor_type == "binary_classifier" else raw - y


class Tally:
    """Running sums for one channel (or one training pass)."""

    def __init__(self, predictor_type: str):
        self.binary = predictor_type == "binary_classifier"
        self.n = 0
        self._sums: torch.Tensor | None = None

    def update(self, raw: torch.Tensor, y: torch.Tensor) -> None:
        """Fold in raw FM outputs ŷ (n,) and their labels (n,)."""
        raw, y = raw.double(), y.double()
        if self.binary:
            predicted = raw >= 0  # sigmoid(ŷ) >= 0.5
            positive = y > 0.5
            sums = torch.stack([
                (predicted == positive).sum(), (F.softplus(raw) - y * raw).sum(),  # correct, log loss
                (predicted & positive).sum(), predicted.sum(), positive.sum()])      # tp, predicted, actual
        else:
            sums = ((raw - y) ** 2).sum().reshape(1)
        self._sums = sums.double() if self._sums is None else self._sums + sums
        self.n += int(y.shape[0])

    def merged(self, cluster) -> "Tally":
        """Every host's sums as one tally, the same on every host (this one on one host)."""
        if not cluster.several:
            return self
        sums = np.zeros(5 if self.binary else 1) if self._sums is None else to_numpy(self._sums, np.float64)
        sums, n = cluster.sum(sums, np.array([self.n], np.int64))
        merged = Tally("binary_classifier" if self.binary else "regressor")
        merged._sums, merged.n = torch.from_numpy(sums), int(n[0])
        return merged

    def result(self) -> dict[str, float]:
        if not self.n:
            return {}
        s = self._sums.tolist()
        if not self.binary:
            return {"rmse": math.sqrt(s[0] / self.n)}
        correct, log_loss, tp, predicted, actual = s
        f1 = 2 * tp / (predicted + actual) if predicted + actual else 0.0
        return {"binary_classification_accuracy": correct / self.n,
                "binary_classification_cross_entropy": log_loss / self.n,
                F_BETA_TOKEN: f1}
