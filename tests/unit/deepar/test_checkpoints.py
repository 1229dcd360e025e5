"""DeepAR's checkpoint files (torch and safetensors only: no gluonts needed): a whole checkpoint
resumes, one of another configuration or written halfway is ignored, and no temporary file stays."""
import json

import torch

from smalgos_forecasting_deepar import checkpoints


def write(directory, epoch, key="k"):
    torch.manual_seed(epoch)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    best = {k: v.detach().clone() for k, v in net.state_dict().items()}
    checkpoints.save(directory, key, epoch, False, net, (0.5, epoch, best), opt, None)
    return net


def test_a_whole_checkpoint_resumes_with_its_weights_and_optimizer(tmp_path):
    net = write(tmp_path, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [checkpoints.WEIGHTS, checkpoints.OPTIMIZER, checkpoints.META])  # no temporary file left
    resume = checkpoints.restore(tmp_path, "k")
    assert resume.next_epoch == 5 and resume.best_epoch == 4
    torch.testing.assert_close(resume.weights["weight"], net.weight.detach())
    assert resume.optimizer["state"] and resume.scheduler is None


def test_another_configuration_or_a_checkpoint_written_halfway_is_ignored(tmp_path, caplog):
    write(tmp_path, 4)
    assert checkpoints.restore(tmp_path, "other") is None and "another configuration" in caplog.text
    meta = tmp_path / checkpoints.META
    meta.write_text(json.dumps({**json.loads(meta.read_text()), "epoch": 3}))  # the state of the epoch before
    assert checkpoints.restore(tmp_path, "k") is None
    assert "written halfway (its files are of epochs deepar-checkpoint.json 3, deepar-checkpoint.safetensors 4" \
        in caplog.text
