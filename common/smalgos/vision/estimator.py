"""What the vision estimators (Image Classification, Object Detection, Semantic Segmentation) share
beside their networks: construction from the declared hyperparameters, checked by the declaration
(AWS's names and defaults; `num_classes` and `num_training_samples` required, as AWS's), the model
artifact's two files (the network's safetensors, the JSON metadata) and loading them, the
DataLoader's worker count, the best epoch and early stopping (BestEpoch), and the end of a
training job (fit_and_save)."""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Mapping

from smalgos.declaration import Hyperparameters
from smalgos.errors import InputError
from smalgos.estimator import read_metadata
from smalgos.training.neural import EarlyStopping

REQUIRED = ("num_classes", "num_training_samples")
MODEL_FILE = "model.safetensors"
META_FILE = "model.json"
FILES = (MODEL_FILE, META_FILE)
MAX_WORKERS = 8


class VisionEstimator:
    """Subclasses set `hyperparameters` (their declaration's), `format` and `format_version` (their
    metadata's), define `new_network()`, and call `super().__init__(**hp)`, which sets `self.hp`
    (checked values, defaults filled in); they set `random_state` and `data_workers` themselves."""

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

    def data_loader(self, data, batch: int, shuffle: bool, collate, generator=None, workers: int | None = None,
                    drop_last: bool = False):
        """A DataLoader over `data` with `workers` processes (None: the estimator's `data_workers`,
        see `loader_workers`), kept from epoch to epoch; pinned memory for a CUDA device (fit sets
        `self._device`)."""
        import torch

        workers = loader_workers(self.data_workers) if workers is None else workers
        return torch.utils.data.DataLoader(
            data, batch_size=batch, shuffle=shuffle, num_workers=workers, collate_fn=collate, generator=generator,
            drop_last=drop_last, persistent_workers=workers > 0, pin_memory=self._device.type == "cuda")

    def seed_augmentation(self, cluster) -> None:
        """Seed torch's generator, which augmentation draws from in the main process (with
        data_workers=0; the DataLoader seeds its workers itself): random_state on the first host,
        a stream of its own on each other host."""
        import torch

        torch.manual_seed(self.random_state if cluster.rank == 0 else self.random_state * 1000 + cluster.rank)

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


class BestEpoch:
    """The best epoch of a fit by a score to raise (accuracy, mAP, mIOU), its weights kept on the
    CPU, and AWS's early stopping: with early_stopping, after early_stopping_min_epochs, stop once
    early_stopping_patience epochs in a row have not raised the best score by more than
    early_stopping_tolerance of it."""

    def __init__(self, hp: Mapping[str, Any]):
        self.enabled, self.min_epochs = bool(hp["early_stopping"]), int(hp["early_stopping_min_epochs"])
        self.stopper = EarlyStopping(float(hp["early_stopping_tolerance"]), int(hp["early_stopping_patience"]))
        self.score, self.epoch, self.state = -math.inf, 0, None

    def update(self, epoch: int, score: float, net) -> tuple[bool, bool]:
        """(improved, stopping) once epoch `epoch` (from 0) has scored `score`."""
        improved = score > self.score
        if improved:
            self.score, self.epoch = score, epoch
            self.state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        self.stopper.update(-score)
        return improved, self.enabled and epoch + 1 >= self.min_epochs and self.stopper.stop


def loader_workers(requested: int | None) -> int:
    """DataLoader worker processes: `requested`, or (None) one per core less one, up to 8."""
    if requested is not None:
        return int(requested)
    return max(0, min(MAX_WORKERS, (os.cpu_count() or 1) - 1))


def fit_and_save(job, estimator: VisionEstimator, train_set, held, start: Callable, on_epoch: Callable, *,
                 best: str, saved: str) -> None:
    """A vision job's training and its end: fit from `start(job, estimator, scratch)` (a model
    channel's tarball is extracted into `scratch`, which lasts as long as the fit), say where a
    SIGTERM stopped it, log `best` (a format over the estimator, e.g. "… {0.best_epoch_}"), and
    on the master (with one host: it) save the best epoch's network and log `saved` % its path."""
    with tempfile.TemporaryDirectory(prefix="vision-model-") as scratch:
        estimator.fit(train_set, held, initial_state=start(job, estimator, Path(scratch)), callback=on_epoch,
                      should_stop=job.should_stop)
    if job.should_stop():
        job.log.warning("Stopped after epoch %d: keeping the best epoch so far", estimator.epochs_trained_ - 1)
    job.log.info(best.format(estimator))
    cluster = getattr(estimator, "cluster", None)
    if cluster is not None and not cluster.is_master:
        job.log.info("Host %s is not the master (%s): only the master writes the model", cluster.host,
                     cluster.hosts[0])
        return
    estimator.save(job.model_dir)
    job.log.info(saved, job.model_dir / MODEL_FILE)
