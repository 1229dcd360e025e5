"""ResNets of the depths SageMaker's Image Classification takes (`num_layers`), in plain torch,
with torchvision's module and parameter names, so that a torchvision-format state dict (an
ImageNet `resnet50-*.pth`, or its safetensors copy) loads as it is.

    net = resnet(50, num_classes=10)              # ImageNet-style: conv1 7x7/2, max pool, 4 stages
    net = resnet(20, num_classes=10)              # CIFAR-style: conv1 3x3, 3 stages of 16/32/64
    load_state_dict(net, state, "model channel: resnet50.pth", skip=("fc.",))

ImageNet-style depths (torchvision's ResNet v1.5: the stride in the 3x3 convolution of a
Bottleneck): 18 and 34 of BasicBlocks [2,2,2,2] / [3,4,6,3]; 50, 101, 152 and 200 of
Bottlenecks [3,4,6,3] / [3,4,23,3] / [3,8,36,3] / [3,24,36,3] (200 as MXNet's and He et al.'s
pre-activation paper count it; torchvision has no 200). Names: conv1, bn1, layer1..layer4 of
blocks `conv1/bn1/conv2/bn2(/conv3/bn3)` and `downsample.0` (1x1 conv) / `downsample.1` (its batch
norm), fc.

CIFAR-style depths 20, 32, 44, 56, 110 (He et al. 2016 §4.2): (depth - 2) / 6 BasicBlocks in each of
three stages of 16, 32 and 64 channels (stride 1, 2, 2) after a 3x3 conv1 of 16 channels, no max
pool; downsampling shortcuts are 1x1 conv + batch norm (torchvision's `downsample`), the same names
as above with layer1..layer3 and no layer4. The depth alone picks the style: AWS's two depth sets
are disjoint (its doc: 18-200 "for large images", 20-110 "for small images").
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from smalgos.errors import ClientError

IMAGENET_DEPTHS = {18: ("basic", (2, 2, 2, 2)), 34: ("basic", (3, 4, 6, 3)),
                   50: ("bottleneck", (3, 4, 6, 3)), 101: ("bottleneck", (3, 4, 23, 3)),
                   152: ("bottleneck", (3, 8, 36, 3)), 200: ("bottleneck", (3, 24, 36, 3))}
CIFAR_DEPTHS = (20, 32, 44, 56, 110)
DEPTHS = tuple(sorted(IMAGENET_DEPTHS)) + CIFAR_DEPTHS


def conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 dilation: int = 1):
        super().__init__()
        self.conv1 = conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """torchvision's ResNet layout; `cifar=True` is the 3-stage small-image stem and widths.

    `replace_stride_with_dilation` (torchvision's, for Bottleneck ResNets): three flags for
    layer2..layer4; a stage flagged keeps its input resolution (stride 1) and dilates its 3x3
    convolutions instead, the first block by the dilation reached before the stage, the others by
    the stage's (so (False, True, True) gives output stride 8, the segmentation backbone)."""

    def __init__(self, block: type, layers: Sequence[int], num_classes: int, in_channels: int = 3,
                 cifar: bool = False, replace_stride_with_dilation: Sequence[bool] = (False, False, False)):
        super().__init__()
        self.cifar = cifar
        dilate = tuple(bool(d) for d in replace_stride_with_dilation)
        if len(dilate) != 3:
            raise ValueError("replace_stride_with_dilation takes three flags (layer2, layer3, layer4)")
        if any(dilate) and (cifar or block is not Bottleneck):
            raise ValueError("dilation is for Bottleneck ImageNet-style ResNets (depth 50 and more)")
        self.dilation = 1
        widths = (16, 32, 64) if cifar else (64, 128, 256, 512)
        self.inplanes = widths[0]
        if cifar:
            self.conv1 = conv3x3(in_channels, widths[0])
        else:
            self.conv1 = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if cifar else nn.MaxPool2d(3, stride=2, padding=1)
        for i, (width, blocks) in enumerate(zip(widths, layers), 1):
            setattr(self, f"layer{i}", self._stage(block, width, blocks, 1 if i == 1 else 2,
                                                   i > 1 and dilate[i - 2]))
        self.stages = len(widths)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stage(self, block: type, planes: int, blocks: int, stride: int, dilate: bool = False) -> nn.Sequential:
        previous = self.dilation
        if dilate:
            self.dilation *= stride
            stride = 1
        extra = {} if block is not Bottleneck else {"dilation": previous}
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, **extra)]
        self.inplanes = planes * block.expansion
        if block is Bottleneck:
            extra = {"dilation": self.dilation}
        layers += [block(self.inplanes, planes, **extra) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def features(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return torch.flatten(self.avgpool(x), 1)

    def forward(self, x):
        return self.fc(self.features(x))


def is_cifar_depth(num_layers: int) -> bool:
    return int(num_layers) in CIFAR_DEPTHS


def resnet(num_layers: int, num_classes: int, in_channels: int = 3,
           replace_stride_with_dilation: Sequence[bool] = (False, False, False)) -> ResNet:
    """The ResNet of AWS's `num_layers` (see the module docstring); a ClientError for another depth.
    `replace_stride_with_dilation`: see ResNet (Bottleneck depths only)."""
    num_layers = int(num_layers)
    if num_layers in IMAGENET_DEPTHS:
        kind, layers = IMAGENET_DEPTHS[num_layers]
        return ResNet(BasicBlock if kind == "basic" else Bottleneck, layers, num_classes, in_channels,
                      replace_stride_with_dilation=replace_stride_with_dilation)
    if num_layers in CIFAR_DEPTHS:
        n = (num_layers - 2) // 6
        return ResNet(BasicBlock, (n, n, n), num_classes, in_channels, cifar=True)
    raise ClientError(f"Hyperparameter num_layers: {num_layers} is not a supported depth; supported: "
                      f"{', '.join(map(str, DEPTHS))}")


def _listed(keys: Sequence[str], most: int = 8) -> str:
    keys = sorted(keys)
    more = f" and {len(keys) - most} more" if len(keys) > most else ""
    return ", ".join(keys[:most]) + more


def load_state_dict(net: nn.Module, state: Mapping[str, torch.Tensor], where: str,
                    skip: Sequence[str] = ()) -> list[str]:
    """Load a torchvision-format `state` into `net`, names strict: a missing or unexpected key, or a
    tensor of another shape, is a ClientError naming `where` and the keys. Keys starting with a
    prefix of `skip` (e.g. "fc." to keep a fresh head) are left out on both sides; BatchNorm's
    `num_batches_tracked` may be absent (older torchvision files lack it). Returns the keys loaded."""
    own = net.state_dict()
    skipped = lambda k: any(k.startswith(p) for p in skip)  # noqa: E731
    wanted = {k for k in own if not skipped(k)}
    given = {k for k in state if not skipped(k)}
    missing = sorted(k for k in wanted - given if not k.endswith("num_batches_tracked"))
    unexpected = sorted(given - wanted)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys: {_listed(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_listed(unexpected)}")
        raise ClientError(f"{where}: the state dict does not fit this network ({'; '.join(parts)})")
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})" for k in sorted(given)
             if tuple(state[k].shape) != tuple(own[k].shape)]
    if wrong:
        raise ClientError(f"{where}: tensors of another shape: {_listed(wrong, 4)}")
    merged = dict(own)
    for k in given:
        merged[k] = state[k].to(own[k].dtype)
    net.load_state_dict(merged, strict=True)
    return sorted(given)
