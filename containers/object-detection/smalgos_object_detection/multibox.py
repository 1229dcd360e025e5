"""SSD's training targets and loss (MXNet's `MultiBoxTarget` + the example's loss), batched.

Matching, per image: every ground-truth box takes the anchor that overlaps it most (so none is
left unmatched), then every other anchor whose best IoU with a ground-truth box exceeds
`overlap` (0.5) takes that box. A matched anchor's class target is its box's class + 1 (0 is the
background) and its location target the box's offsets (`boxes.encode`).

Loss: softmax cross-entropy over the positives and the hardest negatives (those with the highest
background loss, `negative_ratio` (3) of them per positive: hard negative mining), plus smooth L1
(β = 1) of the positives' offsets; both divided by the number of positives (at least 1), as
reported separately: `cross_entropy` and `smooth_l1`, AWS's training metric names.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .boxes import encode, iou

OVERLAP = 0.5
NEGATIVE_RATIO = 3


@dataclass
class Targets:
    classes: torch.Tensor  # (batch, anchors) int64: 0 background, c + 1 for class c
    offsets: torch.Tensor  # (batch, anchors, 4)
    positive: torch.Tensor  # (batch, anchors) bool


def match(anchors: torch.Tensor, labels: list[torch.Tensor], overlap: float = OVERLAP) -> Targets:
    """Targets of every anchor for each image's labels ((objects, 5): class, xmin, ymin, xmax, ymax;
    rows with class < 0 are padding, as in AWS's packed labels)."""
    n = anchors.shape[0]
    classes = torch.zeros((len(labels), n), dtype=torch.long, device=anchors.device)
    offsets = torch.zeros((len(labels), n, 4), dtype=anchors.dtype, device=anchors.device)
    for b, label in enumerate(labels):
        label = label[label[:, 0] >= 0]
        if len(label) == 0:
            continue
        overlaps = iou(label[:, 1:5], anchors)  # (objects, anchors)
        best_iou, best_object = overlaps.max(0)
        best_iou[overlaps.argmax(1)] = 2.0  # each object's best anchor is its, whatever the threshold
        best_object[overlaps.argmax(1)] = torch.arange(len(label), device=anchors.device)
        matched = best_iou > overlap
        classes[b, matched] = label[best_object[matched], 0].long() + 1
        offsets[b, matched] = encode(label[best_object[matched], 1:5], anchors[matched])
    return Targets(classes, offsets, classes > 0)


def multibox_loss(class_logits: torch.Tensor, offsets: torch.Tensor, targets: Targets,
                  negative_ratio: int = NEGATIVE_RATIO) -> tuple[torch.Tensor, torch.Tensor]:
    """(cross_entropy, smooth_l1) of predictions (batch, anchors, classes + 1) and (batch, anchors, 4)."""
    ce = F.cross_entropy(class_logits.transpose(1, 2), targets.classes, reduction="none")  # (batch, anchors)
    positive = targets.positive
    positives = positive.sum(1, keepdim=True)
    with torch.no_grad():  # hard negatives: the highest background losses, negative_ratio per positive
        background = ce.masked_fill(positive, -1.0)
        rank = background.argsort(1, descending=True).argsort(1)
        negative = rank < (negative_ratio * positives).clamp(max=positive.shape[1])
        negative &= ~positive
    scale = positives.sum().clamp(min=1).to(ce.dtype)
    cross_entropy = ce[positive | negative].sum() / scale
    smooth_l1 = F.smooth_l1_loss(offsets[positive], targets.offsets[positive], reduction="sum", beta=1.0) / scale
    return cross_entropy, smooth_l1
