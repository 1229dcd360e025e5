"""LSUV scaling (smalgos.vision.unit_variance): every listed convolution's output on the batch
ends with unit deviation, the weights are only rescaled, and batch norm's statistics are untouched."""
import pytest
import torch
from torch import nn

from smalgos.vision.unit_variance import scale_to_unit_variance


def plain_stack(depth: int = 12) -> nn.Sequential:
    layers, c = [], 3
    for _ in range(depth):
        layers += [nn.Conv2d(c, 16, 3, padding=1), nn.ReLU()]
        c = 16
    return nn.Sequential(*layers, nn.BatchNorm2d(16))


def test_every_convolution_ends_at_unit_deviation_and_only_its_scale_changes():
    torch.manual_seed(0)
    net = plain_stack()
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    before = [c.weight.detach().clone() for c in convs]
    images = torch.randn(8, 3, 16, 16)
    with torch.no_grad():
        faded = net[:-1](images).std().item()
    assert faded < 0.2  # PyTorch's default initialisation: the signal fades through 12 plain layers
    deviations = scale_to_unit_variance(net, convs, images)
    assert deviations == pytest.approx([1.0] * len(convs), abs=0.05)
    assert net[-1].num_batches_tracked.item() == 0 and net.training  # eval while scaling, mode restored
    outputs = []
    hooks = [c.register_forward_hook(lambda _m, _i, o: outputs.append(o.std().item())) for c in convs]
    with torch.no_grad():
        net(images)
    for h in hooks:
        h.remove()
    assert outputs == pytest.approx([1.0] * len(convs), abs=0.05)
    for old, conv in zip(before, convs):
        ratio = conv.weight.detach() / old
        torch.testing.assert_close(ratio, torch.full_like(ratio, ratio.flatten()[0].item()))


def test_a_convolution_that_sees_nothing_is_left_unscaled():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.ReLU(), nn.Conv2d(4, 4, 1))
    with torch.no_grad():
        net[0].weight.zero_()
        net[0].bias.fill_(-1.0)  # ReLU(-1) = 0: the second convolution's input is all zeros
        net[2].bias.zero_()
    before = net[2].weight.detach().clone()
    scale_to_unit_variance(net, [net[2]], torch.randn(4, 3, 5, 5))
    torch.testing.assert_close(net[2].weight, before)
