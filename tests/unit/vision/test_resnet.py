"""ResNets of AWS's depths: output shapes, torchvision's parameter names and counts, strict loading."""
import pytest
import torch
from safetensors.torch import load_file, save_file

from smalgos.errors import ClientError
from smalgos.vision.resnet import CIFAR_DEPTHS, load_state_dict, resnet


def params(net):
    return sum(p.numel() for p in net.parameters())


@pytest.mark.parametrize("depth, size", [(18, 32), (34, 32), (50, 64), (20, 16), (32, 8), (56, 12)])
def test_output_shape_for_several_depths(depth, size):
    net = resnet(depth, num_classes=7).eval()
    with torch.no_grad():
        assert net(torch.zeros(2, 3, size, size)).shape == (2, 7)


def test_parameter_counts_and_names_are_torchvision_s():
    # torchvision.models.resnet18() / resnet50(): 11,689,512 and 25,557,032 parameters
    r18, r50 = resnet(18, 1000), resnet(50, 1000)
    assert params(r18) == 11_689_512 and params(r50) == 25_557_032
    keys = set(r50.state_dict())
    for key in ("conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight", "layer1.0.downsample.1.bias",
                "layer4.2.conv3.weight", "layer4.2.bn3.num_batches_tracked", "fc.weight", "fc.bias"):
        assert key in keys, key
    assert "layer1.0.conv3.weight" not in r18.state_dict() and "layer2.0.downsample.0.weight" in r18.state_dict()


def test_cifar_depths_have_three_stages_of_16_32_64():
    for depth in CIFAR_DEPTHS[:2]:
        net = resnet(depth, 10)
        n = (depth - 2) // 6
        assert not hasattr(net, "layer4") and len(net.layer1) == n
        assert net.conv1.weight.shape == (16, 3, 3, 3) and net.fc.weight.shape == (10, 64)
        assert net.layer3[0].downsample[0].weight.shape == (64, 32, 1, 1)
    assert resnet(200, 5).layer2.__len__() == 24  # [3, 24, 36, 3]
    assert resnet(20, 2, in_channels=1).conv1.weight.shape == (16, 1, 3, 3)


def test_unknown_depth_is_refused_by_name():
    with pytest.raises(ClientError, match="num_layers: 19 is not a supported depth; supported: 18, 34, 50"):
        resnet(19, 10)


def test_state_dict_round_trip_through_safetensors(tmp_path):
    torch.manual_seed(0)
    a = resnet(20, 4).eval()
    with torch.no_grad():
        for p in a.parameters():
            p.add_(0.01 * torch.randn_like(p))
    save_file({k: v.contiguous() for k, v in a.state_dict().items()}, str(tmp_path / "w.safetensors"))
    b = resnet(20, 4).eval()
    loaded = load_state_dict(b, load_file(str(tmp_path / "w.safetensors")), "w.safetensors")
    assert len(loaded) == len(a.state_dict())
    x = torch.randn(3, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))


def test_mismatched_names_and_shapes_are_client_errors():
    state = resnet(18, 10).state_dict()
    bad = dict(state)
    del bad["layer1.0.conv1.weight"]
    bad["layer9.weight"] = torch.zeros(1)
    with pytest.raises(ClientError) as info:
        load_state_dict(resnet(18, 10), bad, "model channel: r18.pth")
    assert info.value.message == ("model channel: r18.pth: the state dict does not fit this network "
                                  "(missing keys: layer1.0.conv1.weight; unexpected keys: layer9.weight)")
    shapes = r"^x: tensors of another shape: fc.bias \(10,\) \(expected \(3,\)\), fc.weight \(10, 512\)"
    with pytest.raises(ClientError, match=shapes):
        load_state_dict(resnet(18, 3), state, "x")
    # the head skipped (transfer learning), and num_batches_tracked may be absent (old torchvision files)
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    net = resnet(18, 3)
    head = net.fc.weight.clone()
    load_state_dict(net, old, "x", skip=("fc.",))
    assert torch.equal(net.fc.weight, head) and torch.equal(net.conv1.weight, state["conv1.weight"])
