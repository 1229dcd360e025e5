"""Quality metrics of Linear Learner, under the names AWS prints them.

Two parts:

* `calibrate`: binary threshold calibration, vectorised over models (torch). For every model it
  sorts the scores, walks every distinct cut point and returns the best value of the selection
  criterion and the threshold that reaches it. A record is predicted positive when
  `score >= threshold`; thresholds sit half-way between two neighbouring distinct scores.
* Streaming accumulators (numpy) for the final metrics of one model on one channel:
  `BinaryMetrics`, `MulticlassMetrics`, `RegressionMetrics`. Feed them batch by batch and read
  `result()`, a dict from AWS's metric token (`binary_classification_accuracy`, `binary_f_1.000`,
  `multiclass_top_k_accuracy_3`, `mse`, ...) to value. On several hosts each feeds its part of
  the channel, then `merge(cluster)` (every host: a `smalgos.distributed.Cluster`) makes every
  host's accumulator that of the whole channel.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from smalgos.maths.ranking import roc_auc

THRESHOLD_CRITERIA = ("accuracy", "f_beta", "f1", "precision_at_target_recall", "recall_at_target_precision")
LOSS_CRITERIA = ("loss_function", "cross_entropy_loss")

_CHUNK_ELEMENTS = 1 << 25  # bounds calibration memory: (n + 1) x models-per-chunk


def criterion_token(criterion: str) -> str:
    """How the early-stopping line names the criterion (AWS prints `sampled_accuracy`)."""
    return "sampled_" + criterion


def calibrate(scores: torch.Tensor, labels: torch.Tensor, criterion: str, *, beta: float = 1.0,
              target_recall: float = 0.8, target_precision: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Best value of a threshold criterion per model, and the threshold reaching it.

    scores: (n, M) float; labels: (n,) float in {0, 1}. Returns (values (M,), thresholds (M,)) as
    float64 numpy arrays; values are "higher is better".
    """
    if criterion not in THRESHOLD_CRITERIA:
        raise ValueError(f"not a threshold criterion: {criterion}")
    if criterion == "f1":
        criterion, beta = "f_beta", 1.0
    n, m = scores.shape
    if n == 0:
        return np.zeros(m), np.zeros(m)
    step = max(1, _CHUNK_ELEMENTS // (n + 1))
    values, thresholds = [], []
    for start in range(0, m, step):
        v, t = _calibrate_chunk(scores[:, start:start + step], labels, criterion, beta,
                                target_recall, target_precision)
        values.append(v)
        thresholds.append(t)
    return np.concatenate(values), np.concatenate(thresholds)


def _calibrate_chunk(scores, labels, criterion, beta, target_recall, target_precision):
    """`calibrate` for some models, laid out one model a row: (m, n) sorted scores, (m, n + 1) cuts."""
    n, m = scores.shape
    s, ys = _sorted_descending(scores, labels)
    dev = s.device
    zero = torch.zeros(m, 1, dtype=torch.float64, device=dev)
    tp = torch.cat([zero, ys.double().cumsum(1)], dim=1)  # cut k: the first k records predicted positive
    predicted = torch.arange(n + 1, dtype=torch.float64, device=dev)  # k = 0..n, the same for every model
    fp = predicted - tp
    pos = tp[:, -1:]  # (m, 1)
    neg = n - pos
    # cut k is reachable by a threshold only between two distinct scores
    valid = torch.ones(m, n + 1, dtype=torch.bool, device=dev)
    if n > 1:
        valid[:, 1:n] = s[:, :-1] > s[:, 1:]
    unreached = ~valid

    def precision():  # 0 at k = 0, where tp = 0
        return tp / predicted.clamp(min=1)

    def recall():
        return tp / pos.clamp(min=1)

    neg_inf = torch.tensor(-math.inf, dtype=torch.float64, device=dev)
    if criterion == "accuracy":
        value = (tp + (neg - fp)) / n
    elif criterion == "f_beta":
        b2 = beta * beta
        p, r = precision(), recall()
        denom = b2 * p + r
        value = torch.where(denom > 0, (1 + b2) * p * r / denom.clamp(min=1e-300), torch.zeros_like(tp))
    elif criterion == "precision_at_target_recall":
        value = torch.where(recall() >= target_recall, precision(), neg_inf)
    else:  # recall_at_target_precision
        value = torch.where(precision() >= target_precision, recall(), neg_inf)
    value = value.masked_fill_(unreached, -math.inf)
    best = value.argmax(1)
    best_value = value.gather(1, best.view(-1, 1)).squeeze(1)
    unreachable = torch.isinf(best_value)
    if unreachable.any():  # no cut meets the target: fall back to the most precise cut, value 0
        fallback = precision().masked_fill_(unreached, -math.inf).argmax(1)
        best = torch.where(unreachable, fallback, best)
        best_value = torch.where(unreachable, torch.zeros_like(best_value), best_value)
    # threshold for cut k: above every score when k = 0, the last score when k = n, else midpoint
    sd = s.double()
    hi = sd.gather(1, (best - 1).clamp(min=0).view(-1, 1)).squeeze(1)
    lo = sd.gather(1, best.clamp(max=n - 1).view(-1, 1)).squeeze(1)
    thr = (hi + lo) / 2
    thr = torch.where(best == n, lo, thr)
    top = sd[:, 0]
    above = top + torch.maximum(top.abs(), torch.ones_like(top)) * 1e-6
    thr = torch.where(best == 0, above, thr)
    return best_value.cpu().numpy(), thr.cpu().numpy()


def _sorted_descending(scores: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each model's scores (n, m) in descending order, and the labels in the same order: (m, n) each.

    Calibration reads only the positives above cuts between two distinct scores, so the order of
    tied records is free. On CPU, a sort of packed keys — the score's order-preserving integer
    image, times 2, plus the label — sorts scores and labels in one pass of numpy's SIMD sort:
    5 ms for 10,000 records x 32 models, packing included, against 28 ms for torch.sort's CPU
    argsort and the labels' gather. NaN sorts above +inf, as in torch.sort, which sorts on other
    devices."""
    if scores.device.type != "cpu":
        s, order = torch.sort(scores.float().t(), dim=1, descending=True)
        return s, labels.float()[order]
    s = np.ascontiguousarray(scores.float().t().numpy())
    s[np.isnan(s)] = np.nan  # one bit pattern, above +inf's
    key = _ordered_bits(s.view(np.int32)).astype(np.int64) * 2 + (labels.cpu().numpy() > 0.5)
    key.sort(axis=1)
    key = key[:, ::-1]
    ys = (key & 1).astype(np.float32)
    s = _ordered_bits((key >> 1).astype(np.int32)).view(np.float32)
    return torch.from_numpy(s), torch.from_numpy(ys)


def _ordered_bits(bits: np.ndarray) -> np.ndarray:
    """float32 bit patterns (as int32) to integers in the floats' order, and back (an involution):
    negative floats have their magnitude bits flipped."""
    return np.where(bits < 0, bits ^ np.int32(0x7FFFFFFF), bits)


def f_token(prefix: str, beta: float) -> str:
    """AWS writes the F-score's beta with three decimals: `binary_f_1.000`, `macro_f_0.500`."""
    return f"{prefix}_f_{beta:.3f}"


class _Objective:
    _sums: tuple[str, ...] = ()  # accumulated numbers (summed over the hosts)
    _rows: tuple[str, ...] = ()  # lists of per-record arrays (gathered from the hosts)

    def __init__(self, objective: str):
        self.objective = objective
        self.loss_sum = 0.0
        self.count = 0

    def add_loss(self, losses: np.ndarray) -> None:
        self.loss_sum += float(np.sum(losses, dtype=np.float64))
        self.count += int(np.size(losses))

    def objective_value(self) -> float:
        return self.loss_sum / max(self.count, 1)

    def merge(self, cluster) -> None:
        """Every host's records in this accumulator: the numbers summed, the rows gathered."""
        if not cluster.several:
            return
        names = ("loss_sum", "count", *self._sums)
        totals = cluster.sum(*[np.asarray(getattr(self, name), dtype=np.float64) for name in names])
        for name, total in zip(names, totals):
            old = getattr(self, name)
            total = total.reshape(np.shape(old))
            setattr(self, name, total.astype(old.dtype) if isinstance(old, np.ndarray) else type(old)(total))
        if not self.count:  # no host has a record (the same answer on every host)
            return
        for name in self._rows:
            parts = getattr(self, name)
            rows = np.concatenate(cluster.gather(np.concatenate(parts) if parts else np.zeros(0, np.float32)))
            setattr(self, name, [rows] if len(rows) else [])


class BinaryMetrics(_Objective):
    """Accuracy, precision, recall and F at the threshold from exact streaming counts; the ROC AUC
    from the (score, label) rows, all of them up to `auc_rows`, beyond that a uniform sample of
    `auc_rows` of them (reservoir sampling, so memory stays flat as the channel grows: at 10M
    records the rows would be 80 MB, and sorting them several times that; the sample's AUC is
    within about 0.001 of the whole channel's)."""

    _sums = ("tp", "fp", "fn", "tn")
    _rows = ("scores", "labels")
    AUC_ROWS = 1_000_000

    def __init__(self, objective: str, threshold: float, beta: float, auc_rows: int | None = None, seed: int = 0):
        super().__init__(objective)
        self.threshold = threshold
        self.beta = beta
        self.auc_rows = int(auc_rows or self.AUC_ROWS)
        self.tp = self.fp = self.fn = self.tn = 0
        self.scores: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self._held = 0  # rows in scores / labels
        self._seen = 0  # rows fed
        self._rng = np.random.default_rng(seed)

    def update(self, scores: np.ndarray, labels: np.ndarray, losses: np.ndarray) -> None:
        self.add_loss(losses)
        s = np.asarray(scores, dtype=np.float32).ravel()
        y = np.asarray(labels, dtype=np.float32).ravel()
        pred, pos = s >= self.threshold, y > 0.5
        self.tp += int(np.sum(pred & pos))
        self.fp += int(np.sum(pred & ~pos))
        self.fn += int(np.sum(~pred & pos))
        self.tn += int(np.sum(~pred & ~pos))
        room = self.auc_rows - self._held
        if room > 0:  # every row while there is room
            self.scores.append(s[:room].copy())
            self.labels.append(y[:room].copy())
            self._held += min(room, len(s))
            self._seen += min(room, len(s))
            s, y = s[room:], y[room:]
        if len(s):
            self._sample(s, y)

    def _sample(self, s: np.ndarray, y: np.ndarray) -> None:
        """Algorithm R over the rows beyond the first auc_rows: row t (0-based, over all rows fed)
        replaces a random held row with probability auc_rows / (t + 1); later rows win ties."""
        if len(self.scores) > 1:
            self.scores, self.labels = [np.concatenate(self.scores)], [np.concatenate(self.labels)]
        t = self._seen + np.arange(len(s))
        keep = self._rng.random(len(s)) < self.auc_rows / (t + 1)
        slots = self._rng.integers(0, self.auc_rows, int(keep.sum()))
        self.scores[0][slots] = s[keep]
        self.labels[0][slots] = y[keep]
        self._seen += len(s)

    def result(self) -> dict:
        n = self.tp + self.fp + self.fn + self.tn
        if not n:
            return {}
        tp, fp, fn = float(self.tp), float(self.fp), float(self.fn)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        b2 = self.beta ** 2
        f = (1 + b2) * precision * recall / (b2 * precision + recall) if precision + recall else 0.0
        out = {
            self.objective: self.objective_value(),
            "binary_classification_accuracy": (self.tp + self.tn) / n,
            f_token("binary", self.beta): f,
            "precision": precision,
            "recall": recall,
        }
        auc = roc_auc(np.concatenate(self.scores), np.concatenate(self.labels) > 0.5) if self.scores else None
        if auc is not None:
            out["roc_auc_score"] = auc
        return out


class MulticlassMetrics(_Objective):
    _sums = ("confusion", "top_k_hits", "dcg_sum", "log_loss_sum", "n")

    def __init__(self, objective: str, num_classes: int, top_k: int, beta: float):
        super().__init__(objective)
        self.num_classes = num_classes
        self.top_k = top_k
        self.beta = beta
        self.confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
        self.top_k_hits = 0
        self.dcg_sum = 0.0
        self.log_loss_sum = 0.0
        self.n = 0

    def update(self, probabilities: np.ndarray, labels: np.ndarray, losses: np.ndarray) -> None:
        self.add_loss(losses)
        y = np.asarray(labels).astype(np.int64)
        p = np.asarray(probabilities, dtype=np.float64)
        pred = p.argmax(1)
        np.add.at(self.confusion, (y, pred), 1)
        p_true = p[np.arange(len(y)), y]
        rank = 1 + np.sum(p > p_true[:, None], axis=1)  # 1-based rank of the true class
        self.top_k_hits += int(np.sum(rank <= self.top_k))
        self.dcg_sum += float(np.sum(1.0 / np.log2(1.0 + rank)))
        self.log_loss_sum += float(-np.sum(np.log(np.clip(p_true, 1e-15, 1.0))))
        self.n += len(y)

    def result(self) -> dict:
        if self.n == 0:
            return {}
        c = self.confusion.astype(np.float64)
        support = c.sum(1)
        predicted = c.sum(0)
        diag = np.diag(c)
        present = support > 0
        recall = np.divide(diag, support, out=np.zeros_like(diag), where=support > 0)
        precision = np.divide(diag, predicted, out=np.zeros_like(diag), where=predicted > 0)
        b2 = self.beta ** 2
        denom = b2 * precision + recall
        f = np.divide((1 + b2) * precision * recall, denom, out=np.zeros_like(diag), where=denom > 0)
        macro_recall = float(recall[present].mean())
        return {
            self.objective: self.objective_value(),
            "multiclass_accuracy": float(diag.sum() / self.n),
            f"multiclass_top_k_accuracy_{self.top_k}": self.top_k_hits / self.n,
            "dcg": self.dcg_sum / self.n,
            "macro_recall": macro_recall,
            "macro_precision": float(precision[present].mean()),
            f_token("macro", self.beta): float(f[present].mean()),
            "multiclass_balanced_accuracy": macro_recall,
            "multiclass_log_loss": self.log_loss_sum / self.n,
        }


class RegressionMetrics(_Objective):
    _sums = ("se", "ae", "n")

    def __init__(self, objective: str):
        super().__init__(objective)
        self.se = 0.0
        self.ae = 0.0
        self.n = 0

    def update(self, predictions: np.ndarray, labels: np.ndarray, losses: np.ndarray) -> None:
        self.add_loss(losses)
        e = np.asarray(labels, dtype=np.float64) - np.asarray(predictions, dtype=np.float64)
        self.se += float(np.sum(e * e))
        self.ae += float(np.sum(np.abs(e)))
        self.n += e.size

    def result(self) -> dict:
        if self.n == 0:
            return {}
        mse = self.se / self.n
        return {
            self.objective: self.objective_value(),
            "mse": mse,
            "rmse": math.sqrt(mse),
            "absolute_loss": self.ae / self.n,
        }

