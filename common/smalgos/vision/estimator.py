"""What the vision estimators (Image Classification, Object Detection, Semantic Segmentation) share
beside their networks: construction from the declared hyperparameters, checked by the declaration
(AWS's names and defaults; `num_classes` and `num_training_samples` required, as AWS's), the model
artifact's two files (the network's safetensors, the JSON metadata) and loading them, and the
DataLoader's worker count."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

from smalgos.declaration import Hyperparameters
from smalgos.errors import InputError
from smalgos.estimator import read_metadata

REQUIRED = ("num_classes", "num_training_samples")
MODEL_FILE = "model.safetensors"
META_FILE = "model.json"
FILES = (MODEL_FILE, META_FILE)
MAX_WORKERS = 8


class VisionEstimator:
    """Subclasses set `hyperparameters` (their declaration's), `format` and `format_version` (their
    metadata's), define `new_network()`, and call `super().__init__(**hp)`, which sets `self.hp`
    (checked values, defaults filled in)."""

    hyperparameters: Hyperparameters
    format: str
    format_version: int

    def __init__(self, **hp):
        defaults = {p.name: p.default for p in self.hyperparameters.params}
        unknown = sorted(set(hp) - set(defaults))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no parameter {', '.join(map(repr, unknown))}")
        values = {**defaults, **hp}
        for name in REQUIRED:
            if values[name] is None:
                raise InputError(f"{type(self).__name__}: parameter {name} is required")
        self.hp = self.hyperparameters.check(values)

    @classmethod
    def declared(cls, hyperparameters: Mapping[str, Any]) -> dict:
        """The declared ones among `hyperparameters` (a job's, or a saved model's)."""
        names = {p.name for p in cls.hyperparameters.params}
        return {k: v for k, v in hyperparameters.items() if k in names}

    @classmethod
    def from_hyperparameters(cls, hyperparameters: Mapping[str, Any], **overrides):
        """The estimator a job's parsed hyperparameters describe."""
        return cls(**cls.declared(hyperparameters), **overrides)

    @classmethod
    def read_meta(cls, model_dir) -> dict:
        return read_metadata(Path(model_dir) / META_FILE, cls.format, cls.format_version)

    @classmethod
    def from_metadata(cls, meta: dict, device: str | None):
        """The unfitted estimator a saved model's metadata describes."""
        return cls(device=device, **cls.declared(meta["hyperparameters"]))

    def load_weights(self, net, state: dict, where: str) -> None:
        from smalgos.vision.resnet import load_state_dict

        load_state_dict(net, state, where)

    @classmethod
    def load(cls, model_dir, device: str | None = None):
        """The fitted estimator of a model directory this image wrote (names and shapes checked)."""
        from safetensors.torch import load_file

        from smalgos.maths.device import pick_device

        model_dir = Path(model_dir)
        meta = cls.read_meta(model_dir)
        est = cls.from_metadata(meta, device)
        net = est.new_network()
        est.load_weights(net, load_file(str(model_dir / MODEL_FILE)), str(model_dir / MODEL_FILE))
        est.net_ = net.to(pick_device(device)).eval()
        est.epochs_trained_, est.best_epoch_ = int(meta.get("epochs_trained", 0)), int(meta.get("best_epoch", 0))
        return est


def loader_workers(requested: int | None) -> int:
    """DataLoader worker processes: `requested`, or (None) one per core less one, up to 8."""
    if requested is not None:
        return int(requested)
    return max(0, min(MAX_WORKERS, (os.cpu_count() or 1) - 1))
