"""What the vision benchmarks share (bench_image_classification, bench_semantic_segmentation,
bench_object_detection): a job run in-process through the /opt/ml contract with its log kept,
and the bare torch loop that is each job's peer, the same network, loss and optimiser stepping
over tensors already decoded and prepared in memory."""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))
from algo_helpers import train_job  # noqa: E402

from smalgos.logs import setup_logging  # noqa: E402


def logged_job(algorithm: str, folder: Path, hp: dict, channels: dict, files: dict) -> tuple[str, float]:
    """(the job's log and metric lines, its seconds); a failed job ends the benchmark with its failure."""
    setup_logging()  # the job's console handler, made first so that it keeps the real stdout
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    logging.getLogger("smalgos").addHandler(handler)
    started = time.time()
    try:
        with contextlib.redirect_stdout(buf):  # the #…_metric lines (written to stdout as they come)
            job, rc = train_job(algorithm, folder, hp, channels, files)
    finally:
        logging.getLogger("smalgos").removeHandler(handler)
    if rc:
        raise SystemExit(job.failure)
    return buf.getvalue(), time.time() - started


def bare_loop(net: torch.nn.Module, optimizer: torch.optim.Optimizer, loss: Callable[[torch.Tensor, Sequence], torch.Tensor],
              images: torch.Tensor, targets: Sequence, batch: int, epochs: int, smallest: int = 1) -> float:
    """Images/s of `epochs` passes over `images` in shuffled batches of `batch` (a batch under
    `smallest` images skipped, as the job does): loss(net(images), targets) → backward → step;
    `targets` a tensor (indexed by the batch) or a list (the batch's items in a list)."""
    net.train()
    started, seen = time.time(), 0
    for _ in range(epochs):
        order = torch.randperm(len(images))
        for i in range(0, len(images), batch):
            idx = order[i:i + batch]
            if len(idx) < smallest:
                continue
            picked = targets[idx] if torch.is_tensor(targets) else [targets[j] for j in idx.tolist()]
            value = loss(net(images[idx]), picked)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            seen += len(idx)
    return seen / (time.time() - started)
