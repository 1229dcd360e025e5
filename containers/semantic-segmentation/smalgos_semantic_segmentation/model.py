"""Semantic Segmentation's core: a dilated ResNet with an FCN, PSP or DeepLabV3 decoder (nets.py)
trained on SegmentationSets, usable from a notebook as well as by the trainer:

    seg = Segmenter(num_classes=3, num_training_samples=200, algorithm="psp", crop_size=32,
                    base_size=40, use_pretrained_model=False, optimizer="adam")
    seg.fit(train_set, validation_set)            # data.SegmentationSet
    seg.predict_proba(pixels)                      # (num_classes, H, W) softmax, the image's size
    seg.predict_mask(pixels)                       # (H, W) uint8 class ids
    seg.save(model_dir); Segmenter.load(model_dir)

Training, as GluonCV's (AWS's image) where the documents say:
- loss: softmax cross-entropy over the pixels, 255 ignored, plus 0.5 x the auxiliary FCN head's on
  layer3 (AWS's hidden _aux_loss=True, _aux_weight=0.5);
- optimizers by AWS's names: sgd / nag (momentum, weight_decay: "sgd only", as AWS's table says,
  so the other optimizers take neither), adam, adagrad, rmsprop (gamma1: the squared-gradient
  decay, gamma2: the momentum of MXNet's centred RMSProp);
- lr_scheduler, per iteration over `iters per epoch` = num_training_samples // mini_batch_size (at
  least 1) and `epochs`: poly lr x (1 - it/total)^0.9, cosine lr x (1 + cos(pi it/total)) / 2;
  step (per epoch): lr x lr_scheduler_factor^(steps passed);
- after each epoch the validation pixel accuracy (right / labelled pixels) and mIOU (intersection
  over union per class from the confusion matrix of all validation pixels, averaged over the
  classes present in the labels or the prediction); the best-mIOU epoch's weights are kept;
- early_stopping: after early_stopping_min_epochs, stop once early_stopping_patience epochs in a row
  have not raised the best mIOU by more than early_stopping_tolerance of it (relative).
The artifact: model.safetensors (the network's state dict, torchvision's names) and model.json
(architecture, classes, crop size, normalisation, hyperparameters). No pickle.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from smalgos.errors import InputError, NotFittedError
from smalgos.estimator import write_metadata
from smalgos.training.neural import decay_groups, optimizer_by_name, set_learning_rate
from smalgos.vision import transforms
from smalgos.vision.estimator import META_FILE, MODEL_FILE, BestEpoch, VisionEstimator
from smalgos.vision.resnet import load_state_dict

from .data import IGNORE, SegmentationSet, TrainTransform, ValTransform, collate
from .declaration import HYPERPARAMETERS, crop_size, parse_steps
from .nets import SegmentationNet

log = logging.getLogger("smalgos")

FORMAT, FORMAT_VERSION = "smalgos-semantic-segmentation", 1
AUX_WEIGHT = 0.5
LOG_EVERY = 20  # iterations between `#progress_notice` lines (AWS's _logging_frequency)


@dataclass
class EpochReport:
    epoch: int  # 0-based, as AWS prints it
    train_loss: float
    train_seconds: float
    images: int
    pixel_accuracy: float | None
    miou: float | None
    validation_seconds: float
    validation_images: int
    improved: bool
    stopping: bool


class Confusion:
    """Pixel counts per (label, prediction) pair, 255 left out."""

    def __init__(self, num_classes: int):
        self.n = num_classes
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        pred, labels = logits.argmax(1).flatten().cpu(), labels.flatten().cpu()
        keep = labels != IGNORE
        index = labels[keep] * self.n + pred[keep]
        self.matrix += torch.bincount(index, minlength=self.n * self.n).view(self.n, self.n)

    def pixel_accuracy(self) -> float:
        return float(self.matrix.diag().sum()) / max(int(self.matrix.sum()), 1)

    def miou(self) -> float:
        m = self.matrix.double()
        inter = m.diag()
        union = m.sum(0) + m.sum(1) - inter
        present = union > 0
        return float((inter[present] / union[present]).mean()) if bool(present.any()) else 0.0


class Schedule:
    """The learning rate at each iteration (see the module docstring)."""

    def __init__(self, hp: dict):
        self.kind, self.base = hp["lr_scheduler"], float(hp["learning_rate"])
        self.iters_per_epoch = max(1, int(hp["num_training_samples"]) // int(hp["mini_batch_size"]))
        self.epochs = int(hp["epochs"])
        self.total = self.iters_per_epoch * self.epochs
        self.factor = float(hp["lr_scheduler_factor"])
        self.steps = parse_steps(hp["lr_scheduler_step"]) if self.kind == "step" else []

    def rate(self, iteration: int, epoch: int) -> float:
        t = min(iteration, self.total) / self.total
        if self.kind == "poly":
            return self.base * (1 - t) ** 0.9
        if self.kind == "cosine":
            return self.base * (1 + math.cos(math.pi * t)) / 2
        return self.base * self.factor ** sum(1 for s in self.steps if epoch >= s)


class Segmenter(VisionEstimator):
    """See the module docstring. Parameters: the declared hyperparameters (AWS's names and
    defaults); `random_state`, `device` (None: CUDA when there is one), `data_workers` (DataLoader
    worker processes; None: one per core, less one, up to 8)."""

    hyperparameters, format, format_version = HYPERPARAMETERS, FORMAT, FORMAT_VERSION

    def __init__(self, random_state: int = 0, device: str | None = None, data_workers: int | None = None, **hp):
        super().__init__(**hp)
        self.random_state, self.device, self.data_workers = int(random_state), device, data_workers
        self.num_classes = int(self.hp["num_classes"])
        self.crop = crop_size(self.hp["crop_size"])
        self.backbone, self.algorithm = self.hp["backbone"], self.hp["algorithm"]
        self.net_: torch.nn.Module | None = None

    def new_network(self) -> SegmentationNet:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            return SegmentationNet(self.backbone, self.algorithm, self.num_classes)

    def _loader(self, data: SegmentationSet, batch: int, train: bool, generator=None):
        return self.data_loader(data, batch, train, collate, generator, drop_last=train and len(data) > batch)

    def _optimizer(self, net):
        hp = self.hp
        name, sgd = hp["optimizer"], hp["optimizer"] in ("sgd", "nag")
        opt = optimizer_by_name(name, decay_groups(net, hp["weight_decay"] if sgd else 0.0),
                                float(hp["learning_rate"]), momentum=hp["momentum"], rho=hp["gamma1"])
        if name == "rmsprop":  # MXNet's centred RMSProp: gamma2 is its momentum
            for group in opt.param_groups:
                group["momentum"], group["centered"] = float(hp["gamma2"]), True
        return opt

    # -- training ---------------------------------------------------------------------------------

    def fit(self, train: SegmentationSet, validation: SegmentationSet | None = None, *, initial_state=None,
            callback: Callable[[EpochReport], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> "Segmenter":
        """Train on `train`; `validation` picks the best epoch and drives early stopping.
        `initial_state`: (state dict, where, "net" or "backbone") to start from."""
        from smalgos.maths.device import pick_device

        hp = self.hp
        self._device = pick_device(self.device)
        net = self.new_network()
        if initial_state is not None:
            state, where, part = initial_state
            if part == "backbone":
                load_state_dict(net.backbone, state, where, skip=("fc.",))
            else:
                load_state_dict(net, state, where)
        net.to(self._device)
        train.transform = TrainTransform(self.crop, int(hp["base_size"]))
        if validation is not None:
            validation.transform = ValTransform(self.crop)
        generator = torch.Generator().manual_seed(self.random_state)
        train_loader = self._loader(train, int(hp["mini_batch_size"]), True, generator)
        held_loader = None if validation is None else \
            self._loader(validation, int(hp["validation_mini_batch_size"]), False)
        optimizer = self._optimizer(net)
        schedule = Schedule(hp)
        self.schedule_ = schedule
        amp = hp["precision_dtype"] == "float16" and self._device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        best, iteration = BestEpoch(hp), 0
        self.epochs_trained_, self.best_epoch_ = 0, 0
        torch.manual_seed(self.random_state)
        for epoch in range(int(hp["epochs"])):
            started, losses, seen = time.time(), [], 0
            net.train()
            tick, tick_seen = time.time(), 0
            for images, labels in train_loader:
                if images.shape[0] < 2:  # batch norm cannot train on one image
                    continue
                rate = schedule.rate(iteration, epoch)
                set_learning_rate(optimizer, rate)
                images, labels = images.to(self._device, non_blocking=True), labels.to(self._device)
                optimizer.zero_grad(set_to_none=True)
                with torch.autocast(self._device.type, dtype=torch.float16, enabled=amp):
                    out = net(images)
                    loss = F.cross_entropy(out["out"].float(), labels, ignore_index=IGNORE)
                    if "aux" in out:
                        loss = loss + AUX_WEIGHT * F.cross_entropy(out["aux"].float(), labels, ignore_index=IGNORE)
                if not torch.isfinite(loss):
                    raise InputError(f"epoch {epoch}, iteration {iteration}: the training loss is not finite "
                                     "(lower learning_rate); no model is saved")
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                losses.append(float(loss.detach()))
                seen += images.shape[0]
                tick_seen += images.shape[0]
                iteration += 1
                if iteration % LOG_EVERY == 0:
                    now = time.time()
                    log.info("#progress_notice. epoch: %d, iterations: %d speed: %.2f samples/sec learning_rate: %f",
                             epoch, iteration, tick_seen / max(now - tick, 1e-9), rate)
                    tick, tick_seen = now, 0
                if should_stop():
                    break
            if seen == 0:
                raise InputError("the training data gave no batch of two or more images (batch norm needs two)")
            train_seconds = time.time() - started
            accuracy = miou = None
            held_started = time.time()
            if held_loader is not None:
                confusion = self.evaluate_loader(net, held_loader)
                accuracy, miou = confusion.pixel_accuracy(), confusion.miou()
            held_seconds = time.time() - held_started
            score = miou if miou is not None else -float(np.mean(losses))
            improved, stopping = best.update(epoch, score, net)
            self.epochs_trained_ = epoch + 1
            if callback is not None:
                callback(EpochReport(epoch, float(np.mean(losses)), train_seconds, seen, accuracy, miou, held_seconds,
                                     0 if validation is None else len(validation), improved, stopping))
            if stopping or should_stop():
                break
        self.best_miou_, self.best_epoch_ = best.score, best.epoch
        net.load_state_dict(best.state)
        for name, value in best.state.items():
            if value.is_floating_point() and not bool(torch.isfinite(value).all()):
                raise InputError(f"the trained weights hold non-finite values ({name}); no model is saved "
                                 "(lower learning_rate)")
        self.net_ = net.eval()
        return self

    def evaluate_loader(self, net, loader) -> Confusion:
        net.eval()
        confusion = Confusion(self.num_classes)
        with torch.no_grad():
            for images, labels in loader:
                confusion.update(net(images.to(self._device))["out"], labels)
        return confusion

    def score(self, data: SegmentationSet) -> dict:
        """{"pixel_accuracy", "mIOU"} of the fitted network on `data`, each image whole (as served)."""
        self.check_fitted()
        confusion = Confusion(self.num_classes)
        from smalgos.vision.recordio_images import decode_image

        for image, labels, name in zip(data.images, data.masks, data.names):
            probs = self.predict_proba(decode_image(image, name))
            confusion.update(torch.from_numpy(probs)[None], torch.from_numpy(labels.astype(np.int64)))
        return {"pixel_accuracy": confusion.pixel_accuracy(), "mIOU": confusion.miou()}

    # -- prediction -------------------------------------------------------------------------------

    def check_fitted(self) -> None:
        if self.net_ is None:
            raise NotFittedError("This Segmenter is not fitted yet: call fit() or load() first")

    def predict_proba(self, image: np.ndarray) -> np.ndarray:
        """(num_classes, H, W) float32 softmax probabilities of one (H, W, 3) uint8 image, at its
        own size (the whole image, normalised; the logits upsampled to it)."""
        self.check_fitted()
        device = next(self.net_.parameters()).device
        x = transforms.normalise(transforms.to_tensor(image))[None].to(device)
        with torch.no_grad():
            logits = self.net_(x)["out"].float()
        return torch.softmax(logits, 1)[0].cpu().numpy().astype(np.float32)

    def predict_mask(self, image: np.ndarray) -> np.ndarray:
        return self.predict_proba(image).argmax(0).astype(np.uint8)

    # -- artifacts --------------------------------------------------------------------------------

    def metadata(self) -> dict:
        return {"architecture": {"algorithm": self.algorithm, "backbone": self.backbone, "output_stride": 8,
                                 "aux_classifier": True, "state_dict_names": "torchvision"},
                "num_classes": self.num_classes, "classes": [str(i) for i in range(self.num_classes)],
                "crop_size": self.crop, "ignore_label": IGNORE,
                "normalisation": {"scale": 1 / 255, "mean": list(transforms.MEAN), "std": list(transforms.STD),
                                  "inference": "the whole image at its size"},
                "hyperparameters": dict(self.hp),
                "epochs_trained": int(getattr(self, "epochs_trained_", 0)),
                "best_epoch": int(getattr(self, "best_epoch_", 0)),
                "best_mIOU": float(getattr(self, "best_miou_", float("nan")))}

    def save(self, model_dir) -> list[Path]:
        from safetensors.torch import save_file

        self.check_fitted()
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}
        save_file(state, str(model_dir / MODEL_FILE))
        return [model_dir / MODEL_FILE, write_metadata(model_dir / META_FILE, FORMAT, FORMAT_VERSION, self.metadata())]
