"""DeepAR's training checkpoints, written after every epoch when the job configures checkpoints
(`checkpointconfig.json`), and the resume from them.

Files in the checkpoint directory (each written to a temporary name and renamed, so a job stopped
mid-write leaves the previous checkpoint whole):
- `deepar-checkpoint.safetensors`: the network's weights now (`model.*`) and at its best epoch
  (`best.*`);
- `deepar-checkpoint-optimizer.pt`: Adam's and the learning-rate scheduler's state, plain tensors and
  numbers, read back with `torch.load(weights_only=True)`;
- `deepar-checkpoint.json`: the epoch it was written after, the best epoch and its loss, whether
  training had finished, and the fingerprint of the configuration (hyperparameters and network):
  a checkpoint of another configuration is ignored, with a warning.
Each file carries the epoch it was written after (the weights in their safetensors metadata, the
optimizer file beside its states): three files of different epochs (a job stopped between the
renames) are ignored as a whole, with a warning, rather than mixed.

A resumed job continues with the next epoch, the same best-epoch record and early-stopping count;
the windows it samples differ from the uninterrupted job's (the sampler's state is not kept).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from smalgos.artifacts import write_atomic

log = logging.getLogger("smalgos")

WEIGHTS, OPTIMIZER, META = "deepar-checkpoint.safetensors", "deepar-checkpoint-optimizer.pt", "deepar-checkpoint.json"


def fingerprint(hyperparameters: dict, network: dict) -> str:
    text = json.dumps({"hyperparameters": hyperparameters, "network": network}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Resume:
    """A checkpoint's contents: the epoch to start with and the states to load."""

    next_epoch: int
    finished: bool
    best_loss: float | None
    best_epoch: int | None
    weights: dict[str, torch.Tensor]
    best_weights: dict[str, torch.Tensor] | None
    optimizer: dict
    scheduler: dict | None


def save(directory: Path, key: str, epoch: int, finished: bool, model: torch.nn.Module,
         best: tuple[float, int, dict[str, torch.Tensor]] | None, optimizer, scheduler) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if best is not None:
        tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in best[2].items()})
    meta = {"fingerprint": key, "epoch": epoch, "finished": finished,
            "best_loss": None if best is None else best[0], "best_epoch": None if best is None else best[1]}
    states = {"optimizer": optimizer.state_dict(), "scheduler": None if scheduler is None else scheduler.state_dict(),
              "epoch": epoch}
    write_atomic(directory / WEIGHTS, lambda p: save_file(tensors, str(p), metadata={"epoch": str(epoch)}))
    write_atomic(directory / OPTIMIZER, lambda p: torch.save(states, p))
    write_atomic(directory / META, lambda p: p.write_text(json.dumps(meta)))


def restore(directory: Path, key: str) -> Resume | None:
    """The checkpoint in `directory` when it is whole and of this configuration, else None."""
    directory = Path(directory)
    paths = [directory / name for name in (META, WEIGHTS, OPTIMIZER)]
    if not all(p.is_file() for p in paths):
        return None
    try:
        meta = json.loads(paths[0].read_text())
        tensors = load_file(str(paths[1]))
        with safe_open(str(paths[1]), framework="pt") as f:
            weights_epoch = (f.metadata() or {}).get("epoch")
        states = torch.load(paths[2], map_location="cpu", weights_only=True)
    except Exception as exc:  # a torn or foreign file: start afresh rather than fail the job
        log.warning("Ignoring the unreadable checkpoint in %s: %s", directory, exc)
        return None
    if meta.get("fingerprint") != key:
        log.warning("Ignoring the checkpoint in %s: it belongs to another configuration", directory)
        return None
    epochs = {META: str(meta.get("epoch")), WEIGHTS: weights_epoch, OPTIMIZER: str(states.get("epoch"))}
    if len(set(epochs.values())) != 1:
        log.warning("Ignoring the checkpoint in %s: a checkpoint written halfway (its files are of epochs %s)",
                    directory, ", ".join(f"{name} {e}" for name, e in epochs.items()))
        return None
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")} or None
    return Resume(next_epoch=int(meta["epoch"]) + 1, finished=bool(meta["finished"]), best_loss=meta["best_loss"],
                  best_epoch=meta["best_epoch"], weights=weights, best_weights=best,
                  optimizer=states["optimizer"], scheduler=states["scheduler"])
