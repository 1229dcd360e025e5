"""SSD's default boxes (MXNet's `MultiBoxPrior`): for each cell of each feature map, one box per
size at aspect ratio 1, then one per further ratio at the first size; centred on the cell, in
normalised corners, ordered cell by cell (row-major) and within a cell as listed.

AWS's SSD (MXNet's example, on which the built-in algorithm rests) uses, for an image of 300:
six feature maps, sizes rising linearly from 0.2 to 0.88 (0.1 on the first) with about the
geometric mean of each size and the next as the second size, and ratios (1, 2, 1/2) on the first and last two maps,
(1, 2, 1/2, 3, 1/3) on the others: 8,732 boxes on a VGG-16 at 300 (38², 19², 10², 5², 3², 1²).
"""

from __future__ import annotations

import math

import torch

SIZES = ((0.1, 0.141), (0.2, 0.272), (0.37, 0.447), (0.54, 0.619), (0.71, 0.79), (0.88, 0.961))
RATIOS = ((1, 2, 0.5), (1, 2, 0.5, 3, 1 / 3), (1, 2, 0.5, 3, 1 / 3), (1, 2, 0.5, 3, 1 / 3), (1, 2, 0.5), (1, 2, 0.5))


def boxes_per_cell(sizes, ratios) -> int:
    return len(sizes) + len(ratios) - 1


def cell_anchors(height: int, width: int, sizes, ratios) -> torch.Tensor:
    """(height · width · boxes_per_cell, 4) corners for one feature map of height × width cells."""
    shapes = [(s, s) for s in sizes] + [(sizes[0] * math.sqrt(r), sizes[0] / math.sqrt(r)) for r in ratios[1:]]
    wh = torch.tensor(shapes, dtype=torch.float32)  # (b, 2): width, height
    cy = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    cx = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    centres = torch.stack(torch.meshgrid(cx, cy, indexing="xy"), dim=-1).reshape(-1, 1, 2)  # row-major cells
    half = wh[None] / 2
    return torch.cat([centres - half, centres + half], dim=-1).reshape(-1, 4)


def ssd_anchors(feature_shapes, sizes=SIZES, ratios=RATIOS) -> torch.Tensor:
    """Every feature map's anchors, concatenated in the order of `feature_shapes` ((h, w) each)."""
    if not (len(feature_shapes) == len(sizes) == len(ratios)):
        raise ValueError(f"{len(feature_shapes)} feature maps but {len(sizes)} sizes and {len(ratios)} ratios")
    return torch.cat([cell_anchors(h, w, s, r) for (h, w), s, r in zip(feature_shapes, sizes, ratios)])
