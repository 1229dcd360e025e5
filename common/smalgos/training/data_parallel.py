"""Data-parallel training of a torch network across hosts (smalgos.distributed's `Cluster`):
every host starts from the master's weights, each step sums every host's gradients and divides
them by the examples of every host (one step of the whole job's batch), and the batch-norm
statistics each host gathered are averaged. On one host every call is a no-op or a plain mean.

    share_initial_state(net, cluster)
    for batch in cluster.lockstep(batches, empty=...):
        (per_example_loss.sum()).backward()             # summed, not averaged, over this host's batch
        if average_gradients(net, cluster, len(batch)):  # False: no host had an example
            optimizer.step()
    average_buffers(net, cluster)                        # once an epoch
"""

from __future__ import annotations


def share_initial_state(net, cluster) -> None:
    """Every tensor of `net`'s state dict (parameters and buffers) set to the master's."""
    if not cluster.several:
        return
    import torch

    for t in net.state_dict().values():
        t.copy_(torch.from_numpy(cluster.broadcast(t.detach().cpu().numpy()).reshape(t.shape)).to(t.device))


def average_gradients(net, cluster, examples: int) -> float:
    """The gradients of `net` (of this host's summed losses over its `examples`) summed over every
    host, in one exchange, and divided by the examples of every host; returns that total (0: no
    host had any, the gradients are left as they were and no step should be taken). A parameter
    without a gradient takes part with zeros, so every host sends the same tensors."""
    import torch

    params = [p for p in net.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    count = torch.tensor([float(examples)], device=params[0].device if params else "cpu")
    cluster.sum_tensors_([p.grad for p in params] + [count])
    total = float(count[0])
    if total > 0:
        for p in params:
            p.grad.div_(total)
    return total


def average_buffers(net, cluster) -> None:
    """The floating-point buffers of `net` (batch norm's running mean and variance) averaged over
    the hosts, each of which gathered them on its own batches."""
    if not cluster.several:
        return
    import torch

    for name, t in net.named_buffers():
        if t.is_floating_point():
            t.copy_(torch.from_numpy(cluster.sum(t.detach().cpu().numpy())[0] / cluster.size).to(t.device))
