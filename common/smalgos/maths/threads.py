"""CPU threads for small torch work.

Handing a small mini-batch's kernels to several threads costs more than the maths (about 10×
slower for a factorization machine's 256-record step on a busy 2-core machine: 13 s against
0.9 s for 25,000 records), so cores run small steps on one thread:

    with cpu_threads_for(batch_work, device):
        ... one training step ...
"""

from __future__ import annotations

import contextlib

import torch

SMALL_WORK = 1 << 22  # floating-point values a step touches, below which one CPU thread is used


@contextlib.contextmanager
def cpu_threads_for(work: int, device: torch.device, small: int = SMALL_WORK):
    """One CPU thread while `work` (values a step touches) is below `small` on CPU; the previous
    setting is restored afterwards. Nothing changes on CUDA or when one thread is already set."""
    if device.type != "cpu" or work >= small or torch.get_num_threads() == 1:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
