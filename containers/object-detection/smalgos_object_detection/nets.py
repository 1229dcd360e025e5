"""SSD's networks in plain torch (no torchvision): a base network, extra layers, and one class and
one box convolution per feature map (Liu et al. 2016; AWS's MXNet SSD).

- `vgg-16`: VGG-16's convolutions (smalgos.vision.vgg, torchvision's names under
  `backbone.features.`, so torchvision's ImageNet `vgg16` weights load there), pool3 rounding up,
  conv4_3 L2-normalised with a learnt per-channel scale (initially 20), pool5 3x3 stride 1, fc6 a
  3x3 convolution of 1024 channels dilated by 6, fc7 1x1 of 1024; feature maps conv4_3 and fc7.
- `resnet-50`: smalgos.vision.resnet's ResNet-50 (torchvision's names under `backbone.`); feature
  maps after layer3 (stride 16) and layer4 (stride 32).
- Then extra blocks (1x1 then 3x3 stride 2 for the first two, 3x3 unpadded for the last ones, as
  SSD300's; padded instead where a map is already under 3 cells): six feature maps in all.
Anchors (anchors.py) follow the feature maps' sizes, computed for any `image_shape`.
`width` divides the channel counts of the VGG base, extras and heads (1: the real network).
"""

from __future__ import annotations

import torch
from torch import nn

from smalgos.vision.resnet import resnet
from smalgos.vision.vgg import CONV4_3, vgg16_features

from .anchors import RATIOS, SIZES, boxes_per_cell, ssd_anchors
from .boxes import decode, nms

SCORE_THRESHOLD, NMS_CANDIDATES = 0.01, 400  # MXNet MultiBoxDetection's defaults


def _down(s: int) -> int:
    return (s - 1) // 2 + 1  # 3x3 (or 7x7) stride 2, padded


class L2Norm(nn.Module):
    def __init__(self, channels: int, scale: float = 20.0):
        super().__init__()
        self.scale_weight = nn.Parameter(torch.full((channels,), scale))

    def forward(self, x):
        return nn.functional.normalize(x, dim=1) * self.scale_weight.view(1, -1, 1, 1)


class VGGBase(nn.Module):
    def __init__(self, width: int = 1):
        super().__init__()
        self.features = vgg16_features(width, ceil_pool3=True, last_pool=False)
        c = max(1, 1024 // width)
        self.norm4 = L2Norm(max(1, 512 // width))
        self.fc = nn.Sequential(nn.MaxPool2d(3, 1, 1), nn.Conv2d(max(1, 512 // width), c, 3, padding=6, dilation=6),
                                nn.ReLU(inplace=True), nn.Conv2d(c, c, 1), nn.ReLU(inplace=True))
        self.channels = (max(1, 512 // width), c)

    @staticmethod
    def sizes(s: int) -> tuple[int, int]:
        s = s // 2 // 2
        s = -(-s // 2)  # pool3 rounds up
        return s, s // 2

    def forward(self, x):
        x = self.features[:CONV4_3 + 1](x)
        first = self.norm4(x)
        return [first, self.fc(self.features[CONV4_3 + 1:](x))]


class ResNetBase(nn.Module):
    def __init__(self, width: int = 1):
        super().__init__()
        net = resnet(50, 1)
        del net.fc, net.avgpool
        self.net = net
        self.channels = (1024, 2048)

    @staticmethod
    def sizes(s: int) -> tuple[int, int]:
        s = _down(_down(_down(_down(s))))  # conv1, maxpool, layer2, layer3
        return s, _down(s)

    def forward(self, x):
        n = self.net
        x = n.layer2(n.layer1(n.maxpool(n.relu(n.bn1(n.conv1(x))))))
        x = n.layer3(x)
        return [x, n.layer4(x)]

    def named_backbone(self):
        return self.net


class SSD(nn.Module):
    def __init__(self, base_network: str, num_classes: int, image_shape: int, width: int = 1):
        super().__init__()
        self.num_classes = int(num_classes)
        self.backbone = VGGBase(width) if base_network == "vgg-16" else ResNetBase(width)
        sizes = list(self.backbone.sizes(int(image_shape)))
        channels = list(self.backbone.channels)
        self.extras = nn.ModuleList()
        for i, (mid, out) in enumerate(((256, 512), (128, 256), (128, 256), (128, 256))):
            mid, out = max(1, mid // width), max(1, out // width)
            s = sizes[-1]
            if i < 2:
                conv, s = nn.Conv2d(mid, out, 3, stride=2, padding=1), _down(s)
            elif s >= 3:
                conv, s = nn.Conv2d(mid, out, 3), s - 2
            else:
                conv = nn.Conv2d(mid, out, 3, padding=1)
            self.extras.append(nn.Sequential(nn.Conv2d(channels[-1], mid, 1), nn.ReLU(inplace=True), conv,
                                             nn.ReLU(inplace=True)))
            sizes.append(s)
            channels.append(out)
        if min(sizes) < 1:
            raise ValueError(f"image_shape {image_shape} is too small for {base_network}")
        per_cell = [boxes_per_cell(s, r) for s, r in zip(SIZES, RATIOS)]
        self.class_heads = nn.ModuleList(nn.Conv2d(c, a * (self.num_classes + 1), 3, padding=1)
                                         for c, a in zip(channels, per_cell))
        self.box_heads = nn.ModuleList(nn.Conv2d(c, a * 4, 3, padding=1) for c, a in zip(channels, per_cell))
        for m in [*self.extras.modules(), *self.class_heads, *self.box_heads]:
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        self.feature_shapes = [(s, s) for s in sizes]
        self.register_buffer("anchors", ssd_anchors(self.feature_shapes), persistent=False)

    def plain_convolutions(self) -> list[nn.Conv2d]:
        """The convolutions, in forward order, that no batch norm follows (VGG-16's base, fc6 / fc7,
        the extra layers; not the heads): the ones scaled for training from scratch."""
        parts = ([self.backbone] if isinstance(self.backbone, VGGBase) else []) + [self.extras]
        return [m for part in parts for m in part.modules() if isinstance(m, nn.Conv2d)]

    def forward(self, x):
        """(class logits (batch, anchors, classes + 1), box offsets (batch, anchors, 4))."""
        maps = self.backbone(x)
        for extra in self.extras:
            maps.append(extra(maps[-1]))
        b = x.shape[0]
        logits = [h(m).permute(0, 2, 3, 1).reshape(b, -1, self.num_classes + 1) for h, m in zip(self.class_heads, maps)]
        offsets = [h(m).permute(0, 2, 3, 1).reshape(b, -1, 4) for h, m in zip(self.box_heads, maps)]
        return torch.cat(logits, 1), torch.cat(offsets, 1)


def detect(logits: torch.Tensor, offsets: torch.Tensor, anchors: torch.Tensor, nms_threshold: float,
           score_threshold: float = SCORE_THRESHOLD, candidates: int = NMS_CANDIDATES) -> list[torch.Tensor]:
    """MXNet's MultiBoxDetection per image: each anchor's best object class (softmax), scores above
    `score_threshold`, the `candidates` best through per-class NMS, boxes clipped to the image.
    Returns per image a (d, 6) tensor [class, score, xmin, ymin, xmax, ymax], best first."""
    probs = torch.softmax(logits.float(), -1)[..., 1:]
    out = []
    for p, o in zip(probs, offsets.float()):
        score, cls = p.max(-1)
        keep = score > score_threshold
        boxes = decode(o[keep], anchors[keep]).clamp(0, 1)
        score, cls = score[keep], cls[keep]
        kept = nms(boxes, score, cls, nms_threshold, candidates)
        out.append(torch.cat([cls[kept, None].float(), score[kept, None], boxes[kept]], 1))
    return out
