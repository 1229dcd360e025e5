"""Checkpoints for SageMaker managed spot training: the full training state after every epoch.

Two files in the checkpoint directory, each written whole beside its place and renamed into it
(`smalgos.artifacts.write_atomic`: temporary names SageMaker's checkpoint sync skips):

    linear-learner-checkpoint.safetensors   W, b, best_W, best_b, state.<optimiser tensor>,
                                            best_value, best_loss, best_threshold, best_epoch
    linear-learner-checkpoint.json          {"fingerprint", "epoch", "finished", "step",
                                             "scheduler_step", "global_best", "bad_epochs"}

The weights file carries its epoch (safetensors metadata): a pair whose files are of different
epochs (a host stopped between the two renames) is ignored. A run resumes from a checkpoint only
when its fingerprint (resolved hyperparameters except
`epochs`, feature_dim, number of models and outputs, seed) is the same.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from smalgos.artifacts import write_atomic

if TYPE_CHECKING:
    from .trainer import _Trainer

log = logging.getLogger("smalgos.linear_learner")

CHECKPOINT_WEIGHTS = "linear-learner-checkpoint.safetensors"
CHECKPOINT_META = "linear-learner-checkpoint.json"


def _jsonable(v):
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
        return None
    return v


def fingerprint(trainer: _Trainer) -> str:
    keep = {k: _jsonable(v) for k, v in trainer.hp.items() if k != "epochs"}
    return json.dumps({"hp": keep, "d": trainer.d, "m": trainer.m, "k": trainer.k, "seed": trainer.seed},
                      sort_keys=True)


def save_checkpoint(trainer: _Trainer, directory: Path, epoch: int, finished: bool) -> None:
    """Everything needed to resume after `epoch`: weights, optimiser state, best copies."""
    from safetensors.numpy import save_file

    best, opt = trainer.best, trainer.optimizer
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {"W": trainer.W, "b": trainer.b, "best_W": best.W, "best_b": best.b,
               **{f"state.{k}": v for k, v in opt.state.items()}}
    arrays = {k: v.detach().cpu().numpy() for k, v in tensors.items()}
    arrays.update(best_value=best.value.astype(np.float64), best_loss=best.loss.astype(np.float64),
                  best_threshold=best.threshold.astype(np.float64),
                  best_epoch=best.epoch.astype(np.int64))
    meta = {"fingerprint": fingerprint(trainer), "epoch": epoch, "finished": finished, "step": opt.steps,
            "scheduler_step": opt.scheduler_step, "global_best": _jsonable(best.global_best),
            "bad_epochs": best.bad_epochs}
    write_atomic(directory / CHECKPOINT_WEIGHTS, lambda tmp: save_file(arrays, str(tmp), metadata={"epoch": str(epoch)}))
    write_atomic(directory / CHECKPOINT_META, lambda tmp: tmp.write_text(json.dumps(meta)))


def restore_checkpoint(trainer: _Trainer, directory: Path) -> int:
    """Resume from a checkpoint of the same configuration; returns the first epoch to run."""
    from safetensors import safe_open
    from safetensors.numpy import load_file

    directory = Path(directory)
    meta_path, weights_path = directory / CHECKPOINT_META, directory / CHECKPOINT_WEIGHTS
    if not meta_path.is_file() or not weights_path.is_file():
        return 0
    try:
        meta = json.loads(meta_path.read_text())
    except ValueError:
        log.warning("Ignoring an unreadable checkpoint in %s", directory)
        return 0
    if meta.get("fingerprint") != fingerprint(trainer):
        log.warning("Ignoring the checkpoint in %s: it belongs to another configuration", directory)
        return 0
    with safe_open(str(weights_path), framework="numpy") as f:
        weights_epoch = (f.metadata() or {}).get("epoch")
    if weights_epoch != str(meta.get("epoch")):
        log.warning("Ignoring the checkpoint in %s: its weights are of epoch %s, its state of epoch %s (a "
                    "checkpoint written halfway)", directory, weights_epoch, meta.get("epoch"))
        return 0
    arrays = load_file(str(weights_path))
    dev = trainer.device
    best, opt = trainer.best, trainer.optimizer
    trainer.W = torch.from_numpy(arrays["W"]).to(dev)
    trainer.b = torch.from_numpy(arrays["b"]).to(dev)
    best.W = torch.from_numpy(arrays["best_W"]).to(dev)
    best.b = torch.from_numpy(arrays["best_b"]).to(dev)
    opt.state = {k[len("state."):]: torch.from_numpy(v).to(dev) for k, v in arrays.items()
                 if k.startswith("state.")}
    best.value, best.loss = arrays["best_value"], arrays["best_loss"]
    best.threshold, best.epoch = arrays["best_threshold"], arrays["best_epoch"]
    opt.steps = int(meta["step"])
    trainer.set_scheduler_step(int(meta["scheduler_step"]))
    gb = meta.get("global_best")
    best.global_best = -np.inf if gb is None else float(gb)
    best.bad_epochs = int(meta["bad_epochs"])
    start = int(meta["epoch"]) + 1
    if meta.get("finished"):
        start = int(trainer.hp["epochs"])
    log.info("Resuming from the checkpoint in %s at epoch %d", directory, start)
    return start
