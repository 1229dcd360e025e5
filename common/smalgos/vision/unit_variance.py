"""Data-dependent initialisation of plain convolution stacks (no batch norm) trained from scratch:
LSUV (Mishkin & Matas, "All you need is a good init", 2016). Each convolution in turn, in the
order the network runs them, has its weights divided by the standard deviation of its output on
a batch of training images, until that output's deviation is within `tolerance` of 1.

Why: SSD's VGG-16 and extra layers have no batch norm, and AWS trains them from ImageNet weights.
From a random start (He's initialisation on the base) the signal fades layer after layer, the
deeper feature maps carry almost nothing (fc7's output varies ~1e-3 between images, the last
map's ~3e-6), and the detector settles on "all background". Scaled to unit variance, every map
starts with the images in it.

    scale_to_unit_variance(net, [conv, ...], images)   # in place; returns the output deviations
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


def scale_to_unit_variance(net: nn.Module, convolutions: Sequence[nn.Conv2d], images: torch.Tensor,
                           tolerance: float = 0.05, tries: int = 10) -> list[float]:
    """Scale each of `convolutions` (modules of `net`) so that its output on `images` has standard
    deviation 1; biases are left as they are. One forward pass: each convolution, as the pass
    reaches it, is rescaled on the input it got and hands on its new output, so the layers after it
    see the scaled network. Returns each one's final deviation, in the order the pass met them. A
    convolution whose output does not vary (a dead input) is left unscaled."""
    deviations: list[float] = []
    inside: list[nn.Module] = []

    def rescale(conv, inputs, out):
        if inside:  # the convolution re-run below
            return None
        for _ in range(tries):
            std = float(out.float().std())
            if not std > 1e-12 or abs(std - 1.0) < tolerance:
                break
            conv.weight.div_(std)
            inside.append(conv)
            try:
                out = conv(*inputs)
            finally:
                inside.pop()
        deviations.append(float(out.float().std()))
        return out

    hooks = [conv.register_forward_hook(rescale) for conv in convolutions]
    was_training = net.training
    net.eval()  # a batch-norm layer elsewhere must not move its running statistics here
    try:
        with torch.no_grad():
            net(images)
    finally:
        for hook in hooks:
            hook.remove()
        net.train(was_training)
    return deviations
