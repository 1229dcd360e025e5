"""Metrics AWS's image adds to XGBoost's own (accuracy, f1, r2, ...), computed with numpy.

AWS computed these with scikit-learn in a `custom_metric` function (metrics/custom_metrics.py);
the values here equal scikit-learn's (same averaging, zero when a ratio's denominator is zero,
instance weights not applied, as there). Classification metrics turn predictions into labels the
way AWS's image does: argmax of a probability vector, `margin > 0` for `binary:logitraw`,
`p > 0.5` for probabilities, the value itself for `binary:hinge` / `multi:softmax`.
"""

from __future__ import annotations

import numpy as np

REGRESSION = ("mse", "r2")


def to_labels(preds: np.ndarray, objective: str, num_class: int | None) -> np.ndarray:
    p = np.asarray(preds)
    if num_class and p.ndim == 1 and p.size == len(p) and objective == "multi:softprob":
        p = p.reshape(-1, num_class)
    if p.ndim == 2:
        return p.argmax(axis=1).astype(np.float64)
    if objective == "binary:logitraw":
        return (p > 0).astype(np.float64)
    if objective in ("binary:logistic", "reg:logistic"):
        return (p > 0.5).astype(np.float64)
    return np.rint(p).astype(np.float64)


def _confusion(y: np.ndarray, yhat: np.ndarray):
    classes = np.union1d(y, yhat)
    tp = np.array([np.sum((yhat == c) & (y == c)) for c in classes], dtype=np.float64)
    pred = np.array([np.sum(yhat == c) for c in classes], dtype=np.float64)
    true = np.array([np.sum(y == c) for c in classes], dtype=np.float64)
    return classes, tp, pred, true


def _div(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b != 0)


def _prf(y, yhat, average: str):
    classes, tp, pred, true = _confusion(y, yhat)
    if average == "binary":
        i = np.searchsorted(classes, 1.0)
        if i >= len(classes) or classes[i] != 1.0:
            return 0.0, 0.0, 0.0
        tp, pred, true = tp[i:i + 1], pred[i:i + 1], true[i:i + 1]
    elif average == "micro":
        tp, pred, true = tp.sum(keepdims=True), pred.sum(keepdims=True), true.sum(keepdims=True)
    precision, recall = _div(tp, pred), _div(tp, true)
    f1 = _div(2 * tp, pred + true)
    return float(precision.mean()), float(recall.mean()), float(f1.mean())


def compute(name: str, y: np.ndarray, preds: np.ndarray, objective: str, num_class: int | None) -> float:
    y = np.asarray(y, dtype=np.float64).ravel()
    if name in REGRESSION:
        p = np.asarray(preds, dtype=np.float64).ravel()
        if name == "mse":
            return float(np.mean((y - p) ** 2))
        ss_res = np.sum((y - p) ** 2)
        ss_tot = np.sum((y - y.mean()) ** 2)
        return float(1.0 - ss_res / ss_tot) if ss_tot != 0 else (1.0 if ss_res == 0 else 0.0)
    yhat = to_labels(preds, objective, num_class)
    if name == "accuracy":
        return float(np.mean(yhat == y))
    if name == "balanced_accuracy":
        classes = np.unique(y)
        return float(np.mean([np.mean(yhat[y == c] == c) for c in classes]))
    average = {"f1": "macro", "f1_macro": "macro", "f1_binary": "binary", "precision": "binary",
               "recall": "binary", "precision_macro": "macro", "recall_macro": "macro",
               "precision_micro": "micro", "recall_micro": "micro"}[name]
    precision, recall, f1 = _prf(y, yhat, average)
    return {"f": f1, "p": precision, "r": recall}[name[0]]


def make_custom_metric(names: list[str], objective: str, num_class: int | None):
    """An XGBoost `custom_metric`-style function: (predictions, DMatrix) -> [(name, value), ...]."""

    def metric(preds, dmatrix):
        y = dmatrix.get_label()
        return [(n, compute(n, y, preds, objective, num_class)) for n in names]

    return metric
