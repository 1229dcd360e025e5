"""The three segmentation networks of SageMaker's Semantic Segmentation, in plain torch, named as
torchvision's segmentation models name their parameters, so that a torchvision backbone (or a
whole torchvision FCN / DeepLabV3 state dict) loads:

    backbone.*        a ResNet-50/101 (smalgos.vision.resnet) with layer3 and layer4 dilated
                      (replace_stride_with_dilation=(False, True, True): output stride 8), no fc
    classifier.*      the decoder on layer4 (2048 channels):
                        fcn     torchvision's FCNHead: 3x3 conv to 512, BN, ReLU, dropout 0.1, 1x1 conv
                        deeplab torchvision's DeepLabHead: ASPP (1x1, 3x3 at rates 12, 24, 36, image
                                pooling; 256 each, projected to 256, dropout 0.5), 3x3 conv, BN, ReLU,
                                1x1 conv
                        psp     pyramid pooling (bins 1, 2, 3, 6, each a 1x1 conv to 512 + BN + ReLU,
                                upsampled and concatenated with the input: 4096 channels), then
                                3x3 conv to 512, BN, ReLU, dropout 0.1, 1x1 conv (GluonCV's PSPHead
                                design; its exact names are not torchvision's, there is none)
    aux_classifier.*  an FCNHead on layer3 (1024 channels), trained with weight 0.5 (AWS's hidden
                      _aux_loss=True, _aux_weight=0.5), not used in prediction
Logits are upsampled bilinearly to the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from smalgos.vision.resnet import resnet

ALGORITHMS = ("fcn", "psp", "deeplab")
BACKBONES = {"resnet-50": 50, "resnet-101": 101}
ASPP_RATES = (12, 24, 36)
PSP_BINS = (1, 2, 3, 6)


def _conv_bn_relu(cin: int, cout: int, kernel: int, dilation: int = 1) -> list[nn.Module]:
    pad = 0 if kernel == 1 else dilation
    return [nn.Conv2d(cin, cout, kernel, padding=pad, dilation=dilation, bias=False), nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True)]


class FCNHead(nn.Sequential):
    def __init__(self, cin: int, num_classes: int):
        inter = cin // 4
        super().__init__(*_conv_bn_relu(cin, inter, 3), nn.Dropout(0.1), nn.Conv2d(inter, num_classes, 1))


class _ImagePooling(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.AdaptiveAvgPool2d(1), *_conv_bn_relu(cin, cout, 1))

    def forward(self, x):
        return F.interpolate(super().forward(x), size=x.shape[-2:], mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    def __init__(self, cin: int, rates=ASPP_RATES, cout: int = 256):
        super().__init__()
        branches = [nn.Sequential(*_conv_bn_relu(cin, cout, 1))]
        branches += [nn.Sequential(*_conv_bn_relu(cin, cout, 3, r)) for r in rates]
        branches.append(_ImagePooling(cin, cout))
        self.convs = nn.ModuleList(branches)
        self.project = nn.Sequential(*_conv_bn_relu(len(branches) * cout, cout, 1), nn.Dropout(0.5))

    def forward(self, x):
        return self.project(torch.cat([branch(x) for branch in self.convs], 1))


class DeepLabHead(nn.Sequential):
    def __init__(self, cin: int, num_classes: int):
        super().__init__(ASPP(cin), *_conv_bn_relu(256, 256, 3), nn.Conv2d(256, num_classes, 1))


class PyramidPooling(nn.Module):
    def __init__(self, cin: int, bins=PSP_BINS):
        super().__init__()
        self.bins = tuple(bins)
        self.stages = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), *_conv_bn_relu(cin, cin // len(bins), 1))
                                    for b in self.bins)

    def forward(self, x):
        size = x.shape[-2:]
        return torch.cat([x] + [F.interpolate(stage(x), size=size, mode="bilinear", align_corners=False)
                                for stage in self.stages], 1)


class PSPHead(nn.Sequential):
    def __init__(self, cin: int, num_classes: int):
        inter = cin // 4
        super().__init__(PyramidPooling(cin), *_conv_bn_relu(cin * 2, inter, 3), nn.Dropout(0.1),
                         nn.Conv2d(inter, num_classes, 1))


HEADS = {"fcn": FCNHead, "psp": PSPHead, "deeplab": DeepLabHead}


class SegmentationNet(nn.Module):
    """backbone + classifier (+ aux_classifier); forward gives {"out": logits[, "aux": logits]} at
    the input's size ("aux" while training and `aux` is on)."""

    def __init__(self, backbone: str, algorithm: str, num_classes: int, aux: bool = True):
        super().__init__()
        self.backbone = resnet(BACKBONES[backbone], 1, replace_stride_with_dilation=(False, True, True))
        self.backbone.fc = None  # torchvision's IntermediateLayerGetter keeps no fc either
        self.classifier = HEADS[algorithm](2048, num_classes)
        self.aux_classifier = FCNHead(1024, num_classes) if aux else None

    def forward(self, x):
        size = x.shape[-2:]
        b = self.backbone
        y = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        y = b.layer2(b.layer1(y))
        mid = b.layer3(y)
        out = {"out": F.interpolate(self.classifier(b.layer4(mid)), size=size, mode="bilinear", align_corners=False)}
        if self.training and self.aux_classifier is not None:
            out["aux"] = F.interpolate(self.aux_classifier(mid), size=size, mode="bilinear", align_corners=False)
        return out
