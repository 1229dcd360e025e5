"""Checkpoints for managed spot training: `xgboost-checkpoint.<iteration>` after every round.

As AWS's image (checkpointing.py): one file per round in the checkpoint directory (SageMaker
uploads it to S3 and restores it after an interruption), in XGBoost's own format (UBJSON here;
AWS's 1.7-1 image wrote the legacy binary format, which we read too), the newest five kept, a
file SageMaker is still uploading (`<name>.sagemaker-uploading` without `.sagemaker-uploaded`)
left alone until a later round. A restarted job resumes after the newest checkpoint that loads.

Files are written to a temporary name and renamed, so an interruption mid-write never leaves a
truncated checkpoint behind under the real name.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from smalgos.artifacts import write_atomic

log = logging.getLogger("smalgos")

PREFIX = "xgboost-checkpoint"
UPLOADING, UPLOADED = ".sagemaker-uploading", ".sagemaker-uploaded"
MAX_TO_KEEP = 5
_NAME = re.compile(rf"^{re.escape(PREFIX)}\.([0-9]+)$")


def checkpoint_path(directory: Path, iteration: int) -> Path:
    return Path(directory) / f"{PREFIX}.{iteration}"


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """(iteration, path) of every checkpoint file, oldest first."""
    d = Path(directory)
    if not d.is_dir():
        return []
    found = []
    for name in os.listdir(d):
        m = _NAME.match(name)
        if m and (d / name).is_file():
            found.append((int(m.group(1)), d / name))
    return sorted(found)


def load_latest(directory: Path, loader):
    """The newest checkpoint `loader(bytes)` accepts, as (model, iterations done); (None, 0) if none."""
    for iteration, path in reversed(list_checkpoints(directory)):
        try:
            model = loader(path.read_bytes())
        except Exception as exc:  # noqa: BLE001 - a torn or foreign file: try the one before
            log.warning("Checkpoint %s cannot be loaded (%s); trying an older one", path.name, exc)
            continue
        log.info("Resuming from checkpoint %s: %d round(s) already done", path.name, iteration + 1)
        return model, iteration + 1
    return None, 0


class CheckpointWriter:
    """Writes `xgboost-checkpoint.<iteration>` and prunes all but the newest `max_to_keep`."""

    def __init__(self, directory: Path, max_to_keep: int = MAX_TO_KEEP):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_to_keep = max_to_keep
        self._pending: list[Path] = []

    def save(self, iteration: int, data: bytes) -> Path:
        path = checkpoint_path(self.directory, iteration)
        write_atomic(path, lambda tmp: tmp.write_bytes(data))
        self._pending.append(checkpoint_path(self.directory, iteration - self.max_to_keep))
        self._prune()
        return path

    def _prune(self) -> None:
        keep = []
        for path in self._pending:
            if not path.exists():
                continue
            uploading = Path(str(path) + UPLOADING).exists() and not Path(str(path) + UPLOADED).exists()
            if uploading:
                keep.append(path)  # SageMaker is still copying it to S3: try again next round
                continue
            try:
                path.unlink()
            except OSError as exc:
                log.debug("Could not delete old checkpoint %s: %s", path, exc)
        self._pending = keep
