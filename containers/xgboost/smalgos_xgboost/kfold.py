"""k-fold cross-validation (AWS's hidden `_kfold` and `_num_cv_round` hyperparameters).

The train and validation channels are joined into one table and split into `_kfold` folds,
`_num_cv_round` times over (stratified by label for classification: `num_class` set or a
`binary:` objective). One model is boosted per fold, evaluated on that fold's held-out rows, and
saved as `xgboost-model-<i>`; serving averages them (or votes) as AWS's image does. After each
round of k folds, and once more over all rounds when there are several, a line in XGBoost's
evaluation shape gives each metric's mean over the folds' last round:
``[<num_round>]\\ttrain-rmse:0.41\\tvalidation-rmse:0.44``. Out-of-fold predictions go to
`/opt/ml/output/data/predictions.csv`: the label, then the mean probability of the predicted class
(for `multi:softmax`/`binary:hinge`, which predict classes: the share of the repeats that voted
for it) and the most frequent predicted label (classification), or the mean prediction
(regression), one row per record. With early stopping, a fold's metrics are those of its best
round, the round its saved model ends at.

Unlike AWS's image, which shuffles without a seed, folds follow the `seed` hyperparameter (0 by
default), so a job can be repeated exactly.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from smalgos.errors import ClientError

log = logging.getLogger("smalgos")

PREDICTIONS_FILE = "predictions.csv"
VOTED = ("multi:softmax", "binary:hinge")  # objectives that predict a class, not probabilities


def is_classification(objective: str, num_class: int | None) -> bool:
    return bool(num_class) or objective.startswith("binary:")


def fold_indices(labels: np.ndarray, k: int, repeats: int, stratify: bool,
                 seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(train rows, held-out rows) for k folds, `repeats` times over, each repeat freshly shuffled.
    Stratified: every class is dealt round-robin over the folds, so each fold holds its share."""
    n = len(labels)
    if n < k:
        raise ClientError(f"_kfold={k} needs at least {k} records; the train and validation channels hold {n}")
    rng = np.random.default_rng(seed)
    for _ in range(repeats):
        fold_of = np.empty(n, np.int64)
        if stratify:
            offset = 0
            for cls in np.unique(labels):
                rows = rng.permutation(np.flatnonzero(labels == cls))
                fold_of[rows] = (offset + np.arange(rows.size)) % k
                offset += rows.size  # the next class starts where this one stopped: folds stay even
        else:
            fold_of[rng.permutation(n)] = np.arange(n) % k
        for f in range(k):
            held = fold_of == f
            yield np.flatnonzero(~held), np.flatnonzero(held)


def mean_report(num_round: int, fold_results: list[list[tuple[str, str, float]]]) -> str:
    """The fold-mean line: for each metric, train then validation, as AWS's image prints it."""
    names: list[str] = []
    for data, metric, _ in fold_results[0]:
        if data == "train" and metric not in names:
            names.append(metric)
    line = f"[{num_round}]"
    for metric in names:
        for data in ("train", "validation"):
            values = [v for results in fold_results for d, m, v in results if d == data and m == metric]
            if values:
                line += f"\t{data}-{metric}:{np.mean(values):.5f}"
    return line


class OutOfFoldPredictions:
    """Collects every fold's predictions on its held-out rows and writes them as one CSV."""

    def __init__(self, labels: np.ndarray, repeats: int, objective: str, num_class: int | None):
        self.labels = np.asarray(labels, np.float64)
        self.objective = objective
        self.classification = is_classification(objective, num_class)
        self.predicted = np.zeros((len(labels), repeats))
        self.probability = np.zeros((len(labels), repeats)) if self.classification else None
        self.seen = np.zeros(len(labels), np.int64)

    def record(self, rows: np.ndarray, predictions: np.ndarray) -> None:
        repeat = self.seen[rows]
        if self.classification:
            label, prob = self._label_and_probability(predictions)
            self.predicted[rows, repeat] = label
            self.probability[rows, repeat] = prob  # type: ignore[index]
        else:
            self.predicted[rows, repeat] = predictions
        self.seen[rows] += 1

    def _label_and_probability(self, predictions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if predictions.ndim > 1:  # multi:softprob: the most probable class and its probability
            label = predictions.argmax(axis=1)
            return label, predictions[np.arange(len(label)), label]
        if self.objective in VOTED:  # the class itself; its "probability" is its share of the votes (table)
            return predictions, np.zeros_like(predictions)
        threshold = 0.0 if self.objective == "binary:logitraw" else 0.5  # a margin, or p(class 1)
        return (predictions > threshold).astype(np.float64), predictions

    def table(self) -> np.ndarray:
        columns = [self.labels]
        if self.classification:
            label = _mode_per_row(self.predicted)
            if self.objective in VOTED:
                columns.append((self.predicted == label[:, None]).mean(axis=1))
            else:
                columns.append(self.probability.mean(axis=1))  # type: ignore[union-attr]
            columns.append(label)
        else:
            columns.append(self.predicted.mean(axis=1))
        return np.column_stack(columns)

    def save(self, output_data_dir: Path) -> Path:
        output_data_dir.mkdir(parents=True, exist_ok=True)
        path = output_data_dir / PREDICTIONS_FILE
        np.savetxt(path, self.table(), delimiter=",", fmt="%f")
        log.info("Out-of-fold predictions written to %s", path)
        return path


def _mode_per_row(values: np.ndarray) -> np.ndarray:
    """The most frequent value of each row (the smallest among ties, as scipy.stats.mode); rows hold
    one vote per repeat, so the (rows, repeats, repeats) comparison stays small."""
    votes = (values[:, :, None] == values[:, None, :]).sum(axis=2)
    top = votes == votes.max(axis=1, keepdims=True)
    return np.where(top, values, np.inf).min(axis=1)


def cross_validate(plan, data, fit: Callable, to_dmatrix: Callable, output_data_dir: Path,
                   printer: Callable[[str], None], should_stop: Callable[[], bool]) -> list:
    """Boost one model per fold with `fit(plan, dtrain, dheld, printer=...)` (early-stopped models come
    back cut at their best round); return the models in fold order."""
    from .train import parse_eval  # train imports this module

    k, repeats = plan.kfold, plan.num_cv_round
    classification = is_classification(plan.objective, plan.num_class)
    log.info("Run %d-round of %d-fold cross validation with %d rows", repeats, k, len(data))
    dall = to_dmatrix(data)
    recorder = OutOfFoldPredictions(data.labels, repeats, plan.objective, plan.num_class)
    boosters, results = [], []
    seed = int(plan.params.get("seed") or 0)
    for i, (train_rows, held_rows) in enumerate(fold_indices(data.labels, k, repeats, classification, seed)):
        if should_stop():
            log.warning("Stopping cross validation after %d fold(s): SIGTERM received", i)
            break
        log.info("Train cross validation fold %d", i % k + 1)
        lines: list[str] = []

        def capture(line: str) -> None:
            printer(line)
            lines.append(line)

        dheld = dall.slice(held_rows)
        booster = fit(plan, dall.slice(train_rows), dheld, printer=capture)
        boosters.append(booster)
        best = booster.attr("best_iteration")  # early stopping: the model ends at its best round
        kept = lines[int(best)] if best is not None and int(best) < len(lines) else (lines[-1] if lines else None)
        results.append(parse_eval(kept) if kept else [])
        recorder.record(held_rows, booster.predict(dheld))
        if len(boosters) % k == 0 and results[-1]:
            log.info("The metrics of round %d cross validation", len(boosters) // k)
            printer(mean_report(plan.num_round, results[-k:]))
    if len(boosters) == k * repeats:
        recorder.save(output_data_dir)
        if repeats > 1 and results[0]:
            log.info("The overall metrics of %d-round cross validation", repeats)
            printer(mean_report(plan.num_round, results))
    return boosters
