"""Boxes as SSD handles them: corners (xmin, ymin, xmax, ymax), normalised to [0, 1] by the image's
width and height as AWS's labels and answers are, in torch tensors of shape (..., 4).

    iou(a, b)                       (n, m) intersection over union of every pair
    encode(boxes, anchors)          regression targets of matched boxes against their anchors
    decode(offsets, anchors)        the boxes those offsets stand for (encode's inverse)
    nms(boxes, scores, classes, t)  indices kept by greedy non-maximum suppression per class

`encode` / `decode` use the centre-size parameterisation of the SSD paper with MXNet's variances
(0.1, 0.1, 0.2, 0.2), as MXNet's `MultiBoxTarget` / `MultiBoxDetection` do.
"""

from __future__ import annotations

import numpy as np
import torch

VARIANCES = (0.1, 0.1, 0.2, 0.2)


def to_centres(boxes: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) of corner boxes."""
    wh = boxes[..., 2:] - boxes[..., :2]
    return torch.cat([boxes[..., :2] + wh / 2, wh], dim=-1)


def to_corners(centres: torch.Tensor) -> torch.Tensor:
    """Corner boxes of (cx, cy, w, h)."""
    half = centres[..., 2:] / 2
    return torch.cat([centres[..., :2] - half, centres[..., :2] + half], dim=-1)


def area(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[..., 2] - boxes[..., 0]).clamp(min=0) * (boxes[..., 3] - boxes[..., 1]).clamp(min=0)


def iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(n, m) IoU of boxes a (n, 4) against b (m, 4); 0 where both are empty."""
    low = torch.maximum(a[:, None, :2], b[None, :, :2])
    high = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (high - low).clamp(min=0).prod(-1)
    union = area(a)[:, None] + area(b)[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))


def encode(boxes: torch.Tensor, anchors: torch.Tensor, variances=VARIANCES) -> torch.Tensor:
    """Offsets (dx, dy, dw, dh) of `boxes` against `anchors` (both (..., 4) corners, same shape)."""
    g, a = to_centres(boxes), to_centres(anchors)
    v = torch.tensor(variances, dtype=boxes.dtype, device=boxes.device)
    centre = (g[..., :2] - a[..., :2]) / a[..., 2:] / v[:2]
    size = torch.log(g[..., 2:].clamp(min=1e-12) / a[..., 2:]) / v[2:]
    return torch.cat([centre, size], dim=-1)


def decode(offsets: torch.Tensor, anchors: torch.Tensor, variances=VARIANCES) -> torch.Tensor:
    """Corner boxes of `offsets` against `anchors` (encode's inverse)."""
    a = to_centres(anchors)
    v = torch.tensor(variances, dtype=offsets.dtype, device=offsets.device)
    centre = offsets[..., :2] * v[:2] * a[..., 2:] + a[..., :2]
    size = torch.exp(offsets[..., 2:] * v[2:]) * a[..., 2:]
    return to_corners(torch.cat([centre, size], dim=-1))


def nms(boxes: torch.Tensor, scores: torch.Tensor, classes: torch.Tensor, threshold: float,
        candidates: int | None = None) -> torch.Tensor:
    """Greedy non-maximum suppression within each class: in order of decreasing score, a box is kept
    unless a kept box of its class overlaps it by more than `threshold` (IoU). Only the `candidates`
    highest-scoring boxes take part (MXNet's `nms_topk`; None: all). Returns the kept indices,
    highest score first.

    One IoU matrix of the candidates (boxes of different classes moved apart so that they never
    overlap), then one pass down it: each box still standing suppresses the later boxes its row
    marks, a vector operation per kept box."""
    if boxes.numel() == 0:
        return torch.zeros(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    if candidates is not None:
        order = order[:int(candidates)]
    span = float(boxes.max() - boxes.min()) + 1.0  # farther than any two boxes lie apart
    spread = (classes[order] - classes.min()).to(boxes.dtype) * span
    overlaps = (iou(boxes[order] + spread[:, None], boxes[order] + spread[:, None]) > threshold).cpu().numpy()
    n = len(order)
    standing = np.ones(n, dtype=bool)
    for i in range(n):
        if standing[i]:
            later = overlaps[i, i + 1:]
            standing[i + 1:] &= ~later
    return order[torch.from_numpy(np.flatnonzero(standing)).to(order.device)]
