"""Mean average precision, AWS's `validation:mAP` for Object Detection (MXNet SSD's `MApMetric`).

Per class, detections of every image in decreasing score: one is a true positive when its IoU with
a ground-truth box of its class in its image that no earlier detection took is at least
`overlap_threshold` (the hyperparameter; 0.5), else a false positive. AP is the area under the
precision–recall curve with precision made monotone (VOC 2010 and later: every point, not 11);
mAP the mean over the classes that have ground truth.

    m = MeanAP(num_classes, overlap_threshold)
    m.update(detections, labels)   # per image: (d, 6) class, score, corners; (g, 5) class, corners
    m.value()
"""

from __future__ import annotations

import numpy as np
import torch

from .boxes import iou


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]  # the envelope: best precision at this recall or beyond
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


class MeanAP:
    def __init__(self, num_classes: int, overlap_threshold: float = 0.5):
        self.num_classes, self.overlap = int(num_classes), float(overlap_threshold)
        self.scores: list[list[float]] = [[] for _ in range(self.num_classes)]
        self.hits: list[list[bool]] = [[] for _ in range(self.num_classes)]
        self.truths = np.zeros(self.num_classes, dtype=np.int64)

    def update(self, detections, labels) -> None:
        """One image: detections (d, 6) [class, score, xmin, ymin, xmax, ymax] and its ground truth
        (g, 5) [class, xmin, ymin, xmax, ymax] (rows of class < 0 are padding)."""
        det = torch.as_tensor(detections, dtype=torch.float32).reshape(-1, 6)
        gt = torch.as_tensor(labels, dtype=torch.float32).reshape(-1, 5)
        det, gt = det[det[:, 0] >= 0], gt[gt[:, 0] >= 0]
        for c in range(self.num_classes):
            truth = gt[gt[:, 0] == c, 1:]
            self.truths[c] += len(truth)
            mine = det[det[:, 0] == c]
            if len(mine) == 0:
                continue
            mine = mine[torch.argsort(mine[:, 1], descending=True, stable=True)]
            overlaps = (iou(mine[:, 2:], truth) if len(truth) else torch.zeros((len(mine), 0))).numpy()
            taken = np.zeros(len(truth), dtype=bool)
            hits = np.zeros(len(mine), dtype=bool)
            if overlaps.shape[1]:
                best, best_iou = overlaps.argmax(1), overlaps.max(1)
                for i in np.flatnonzero(best_iou >= self.overlap):  # only detections that can hit
                    if not taken[best[i]]:
                        taken[best[i]] = hits[i] = True
            self.scores[c].extend(mine[:, 1].tolist())
            self.hits[c].extend(hits.tolist())

    def per_class(self) -> list[float | None]:
        """Each class's AP (None for a class without ground truth)."""
        out: list[float | None] = []
        for c in range(self.num_classes):
            if self.truths[c] == 0:
                out.append(None)
                continue
            order = np.argsort(-np.asarray(self.scores[c]), kind="stable")
            hits = np.asarray(self.hits[c], dtype=bool)[order]
            tp, fp = np.cumsum(hits), np.cumsum(~hits)
            recall = tp / self.truths[c]
            precision = tp / np.maximum(tp + fp, 1)
            out.append(average_precision(recall, precision) if len(hits) else 0.0)
        return out

    def value(self) -> float:
        aps = [a for a in self.per_class() if a is not None]
        return float(np.mean(aps)) if aps else 0.0
