"""smalgos.training.neural: optimisers by AWS's names with their parameters, weight decay that
spares biases, and the vision algorithms' step schedule."""

import pytest
import torch

from smalgos.errors import ClientError
from smalgos.training.neural import StepSchedule, decay_groups, optimizer_by_name


def test_optimizers_by_name_carry_their_parameters():
    w = [torch.nn.Parameter(torch.zeros(2))]
    nag = optimizer_by_name("nag", w, 0.1, 1e-4, momentum=0.9)
    assert isinstance(nag, torch.optim.SGD) and nag.defaults["nesterov"] and nag.defaults["momentum"] == 0.9
    sgd = optimizer_by_name("sgd", w, 0.1)
    assert not sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.0
    adam = optimizer_by_name("adam", w, 0.01, betas=(0.8, 0.99), eps=1e-6)
    assert adam.defaults["betas"] == (0.8, 0.99) and adam.defaults["eps"] == 1e-6
    assert optimizer_by_name("adam", w, 0.01).defaults["eps"] == 1e-8  # MXNet's default
    rms = optimizer_by_name("rmsprop", w, 0.01, rho=0.95)
    assert rms.defaults["alpha"] == 0.95 and rms.defaults["eps"] == 1e-8
    assert optimizer_by_name("adadelta", w, 0.5).defaults["lr"] == 1.0  # MXNet's AdaDelta takes no rate
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        optimizer_by_name("lbfgs", w, 0.1)


def test_decay_groups_spare_biases_and_batch_norm_shifts():
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    decayed, plain = decay_groups(net, 5e-4)
    assert decayed["weight_decay"] == 5e-4 and plain["weight_decay"] == 0.0
    assert {id(p) for p in decayed["params"]} == {id(net[0].weight), id(net[1].weight)}
    assert {id(p) for p in plain["params"]} == {id(net[0].bias), id(net[1].bias)}
    opt = optimizer_by_name("sgd", decay_groups(net, 5e-4), 0.1, momentum=0.9)
    assert [g["weight_decay"] for g in opt.param_groups] == [5e-4, 0.0]


def test_step_schedule():
    s = StepSchedule.parse("2, 5", 0.1)
    assert [round(s.rate(1.0, e), 6) for e in range(7)] == [1, 1, 0.1, 0.1, 0.1, 0.01, 0.01]
    assert StepSchedule.parse(None, 0.1).rate(0.5, 100) == 0.5
    with pytest.raises(ClientError, match=r"lr_scheduler_step: '5, 3' must list positive epochs in increasing"):
        StepSchedule.parse("5, 3", 0.1)
