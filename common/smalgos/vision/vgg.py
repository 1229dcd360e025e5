"""VGG-16's convolutions in plain torch with torchvision's parameter names (`features.N.weight`),
so that torchvision's ImageNet `vgg16` state dict loads into `features` (its `classifier.` tensors
are not used). `width` divides every channel count (1: VGG-16 itself; larger: a narrower network
of the same shape, for small images and CPUs).

    features = vgg16_features(width=1, ceil_pool3=True)   # nn.Sequential, torchvision's indices
    CONV4_3 = 22                                           # index of conv4_3's ReLU
"""

from __future__ import annotations

from torch import nn

# torchvision's cfg "D": numbers are 3x3 conv widths, "M" a 2x2 max pool
VGG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
CONV4_3 = 22  # features[22] is the ReLU after conv4_3 (SSD's first feature map)


def vgg16_features(width: int = 1, in_channels: int = 3, ceil_pool3: bool = False,
                   last_pool: bool = True) -> nn.Sequential:
    """torchvision's `vgg16().features`; `ceil_pool3`: the third pool rounds up (SSD's, so 300 → 38);
    `last_pool=False` leaves out pool5 (SSD replaces it)."""
    layers: list[nn.Module] = []
    pools = 0
    for v in VGG16:
        if v == "M":
            pools += 1
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=ceil_pool3 and pools == 3))
            continue
        out = max(1, int(v) // int(width))
        layers += [nn.Conv2d(in_channels, out, 3, padding=1), nn.ReLU(inplace=True)]
        in_channels = out
    if not last_pool:
        layers.pop()
    net = nn.Sequential(*layers)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(m.bias)
    return net
