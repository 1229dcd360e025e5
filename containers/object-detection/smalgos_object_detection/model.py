"""Object Detection's core: an SSD (nets.py) trained on DetectionSets, usable from a notebook as
well as by the trainer:

    det = ObjectDetector(num_classes=3, num_training_samples=300, image_shape=128, epochs=10,
                         use_pretrained_model=0)
    det.fit(train_set, validation_set)          # data.DetectionSet
    det.predict([pixels])                       # per image (d, 6): class, score, xmin, ymin, xmax, ymax
    det.save(model_dir); ObjectDetector.load(model_dir)

Training, as AWS's MXNet SSD does it where its documents say:
- targets by matching anchors to boxes, loss softmax cross-entropy with hard negative mining plus
  smooth L1 of the box offsets (multibox.py), reported as `cross_entropy` and `smooth_l1`;
- optimizers by AWS's names (sgd with `momentum`, adam, rmsprop, adadelta), `weight_decay` on
  weights, not biases; the rate multiplied by `lr_scheduler_factor` at each `lr_scheduler_step`;
- from scratch (no pretrained base, no incremental model), the convolutions without batch norm
  (VGG-16's, fc6 / fc7, the extra layers) start scaled to unit output variance on the first
  training images (LSUV, smalgos.vision.unit_variance): AWS starts from ImageNet weights, and from
  He's initialisation alone these plain layers fade the images out (beside a pretrained base the
  scaling was measured to slow learning, so it is left out there);
- parameters whose names match `freeze_layer_pattern` are not trained;
- validation mAP at `overlap_threshold` (evaluation.py) after each epoch, detections after NMS at
  `nms_threshold`; the best epoch's weights are kept; early_stopping: after early_stopping_min_epochs,
  stop once early_stopping_patience epochs in a row have not raised the best mAP by more than
  early_stopping_tolerance of it.
Several hosts (`cluster`, smalgos.distributed) step together: every step sums the gradients of
all hosts' images (smalgos.training.data_parallel), the master's initial network is shared, and
the mAP counts every host's validation images.

`width` (not a hyperparameter) divides the channel counts of the VGG base and the heads: 1 is
SSD itself; tests and small CPUs use a narrower network of the same layout.

The artifact: model.safetensors (state dict, float32) and model.json (architecture, classes,
image shape, normalisation, training summary). No pickle; a non-finite network is never saved.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from smalgos.distributed import SOLO
from smalgos.errors import ClientError, InputError
from smalgos.estimator import write_metadata
from smalgos.training.data_parallel import average_buffers, average_gradients, share_initial_state
from smalgos.training.neural import StepSchedule, decay_groups, optimizer_by_name
from smalgos.vision import transforms
from smalgos.vision.estimator import META_FILE, MODEL_FILE, BestEpoch, VisionEstimator
from smalgos.vision.resnet import load_state_dict
from smalgos.vision.unit_variance import scale_to_unit_variance

from .data import DetectionSet, collate, prepare
from .declaration import HYPERPARAMETERS
from .evaluation import MeanAP
from .multibox import match, multibox_loss
from .nets import SSD, detect

log = logging.getLogger("smalgos")

FORMAT, FORMAT_VERSION = "smalgos-object-detection", 1
LSUV_IMAGES = 8  # training images that the plain convolutions of a network from scratch are scaled on


@dataclass
class EpochReport:
    epoch: int
    cross_entropy: float
    smooth_l1: float
    batches: int
    mean_ap: float | None
    seconds: float
    images: int
    improved: bool
    stopping: bool


class ObjectDetector(VisionEstimator):
    """See the module docstring. Parameters: the declared hyperparameters (AWS's names and
    defaults); `width`, `random_state`, `device` (None: CUDA when there is one), `data_workers`
    (DataLoader worker processes, which decode and augment; None: one per core, less one, up to 8)."""

    hyperparameters, format, format_version = HYPERPARAMETERS, FORMAT, FORMAT_VERSION

    def __init__(self, random_state: int = 0, device: str | None = None, width: int = 1,
                 data_workers: int | None = None, **hp):
        super().__init__(**hp)
        self.random_state, self.device, self.width = int(random_state), device, int(width)
        self.data_workers = data_workers
        self.num_classes, self.image_shape = int(self.hp["num_classes"]), int(self.hp["image_shape"])
        self.base_network = self.hp["base_network"]
        self.net_: SSD | None = None
        self.cluster = SOLO

    def new_network(self) -> SSD:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            try:
                return SSD(self.base_network, self.num_classes, self.image_shape, self.width)
            except ValueError as exc:
                raise ClientError(f"Hyperparameter image_shape: {exc}") from None

    def _frozen(self, net: SSD) -> list[str]:
        pattern = self.hp["freeze_layer_pattern"]
        if not pattern:
            return []
        names = [n for n, p in net.named_parameters() if re.search(pattern, n)]
        for n, p in net.named_parameters():
            if n in names:
                p.requires_grad_(False)
        return names

    def _loader(self, data: DetectionSet, shuffle: bool, generator=None, workers: int | None = None):
        return self.data_loader(data, int(self.hp["mini_batch_size"]), shuffle, collate, generator, workers)

    # -- training ---------------------------------------------------------------------------------

    def fit(self, train: DetectionSet, validation: DetectionSet | None = None, *, initial_state=None,
            callback: Callable[[EpochReport], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> "ObjectDetector":
        """`initial_state`: (state dict, where, prefix) — the whole network's (prefix "") or a
        backbone's (prefix "backbone.features." for VGG-16, "backbone.net." for ResNet-50)."""
        from smalgos.maths.device import pick_device

        hp, cluster = self.hp, self.cluster
        self._device = pick_device(self.device)
        net = self.new_network()
        if initial_state is not None:
            load_into(net, *initial_state)
        frozen = self._frozen(net)
        if frozen:
            log.info("freeze_layer_pattern %r: %d parameter tensors not trained", hp["freeze_layer_pattern"],
                     len(frozen))
        net.to(self._device)
        if initial_state is None and cluster.rank == 0:  # the other hosts take the master's network below
            self._scale_plain_convolutions(net, train)
        share_initial_state(net, cluster)
        anchors = net.anchors
        train = train.with_training(True)
        held = None if validation is None else validation.with_training(False)
        generator = torch.Generator().manual_seed(self.random_state)
        loader = self._loader(train, True, generator)
        held_loader = None if held is None else self._loader(held, False)
        self.seed_augmentation(cluster)
        trainable = [p for p in net.parameters() if p.requires_grad]
        groups = [{**g, "params": [p for p in g["params"] if p.requires_grad]}
                  for g in decay_groups(net, hp["weight_decay"])]
        optimizer = optimizer_by_name(hp["optimizer"], [g for g in groups if g["params"]] or trainable,
                                      float(hp["learning_rate"]), momentum=hp["momentum"])
        schedule = StepSchedule.parse(hp["lr_scheduler_step"], float(hp["lr_scheduler_factor"]))
        needs_two = self.base_network == "resnet-50"  # batch norm cannot train on one image
        best, self.mean_aps_ = BestEpoch(hp), []
        self.epochs_trained_ = 0
        for epoch in range(int(hp["epochs"])):
            started = time.time()
            rate = schedule.rate(float(hp["learning_rate"]), epoch)
            for group in optimizer.param_groups:
                group["lr"] = rate
            net.train()
            sums, batches, seen = np.zeros(2), 0, 0
            for b, batch in enumerate(cluster.lockstep(loader, empty=lambda: None, stop=should_stop)):
                if isinstance(batch, ClientError):
                    raise batch
                usable = batch is not None and (batch[0].shape[0] >= 2 or not needs_two)
                if not usable and not cluster.several:
                    continue
                optimizer.zero_grad(set_to_none=not cluster.several)
                if usable:
                    images, labels = batch[0].to(self._device), batch[1].to(self._device)
                    logits, offsets = net(images)
                    targets = match(anchors, list(labels))
                    ce, l1 = multibox_loss(logits, offsets, targets)
                    loss = ce + l1
                    if not torch.isfinite(loss):
                        raise InputError(f"epoch {epoch} batch {b}: the training loss is not finite (lower "
                                         "learning_rate)")
                    (loss * images.shape[0] if cluster.several else loss).backward()
                if cluster.several and not average_gradients(net, cluster, images.shape[0] if usable else 0):
                    continue
                optimizer.step()
                if usable:
                    sums += (float(ce.detach()), float(l1.detach()))
                    batches += 1
                    seen += images.shape[0]
            average_buffers(net, cluster)
            totals = cluster.sum(np.array([sums[0], sums[1], batches, seen], np.float64))[0]
            if totals[3] == 0:
                raise InputError("the training data gave no batch")
            seconds = time.time() - started
            mean_ap = None if held_loader is None else self._mean_ap(net, held_loader, cluster)
            score = mean_ap if mean_ap is not None else -(totals[0] + totals[1]) / totals[2]
            self.mean_aps_.append(mean_ap)
            improved, stopping = best.update(epoch, score, net)
            self.epochs_trained_ = epoch + 1
            if callback is not None:
                callback(EpochReport(epoch, totals[0] / max(totals[2], 1), totals[1] / max(totals[2], 1),
                                     int(totals[2]), mean_ap, seconds, int(totals[3]), improved, stopping))
            if stopping or should_stop():
                break
        self.best_map_, self.best_epoch_ = best.score, best.epoch
        net.load_state_dict(best.state, strict=False)
        self.net_ = net.eval()
        return self

    def _scale_plain_convolutions(self, net: SSD, train: DetectionSet) -> None:
        """A network from scratch: its convolutions without batch norm scaled to unit output
        variance on the first training images (smalgos.vision.unit_variance)."""
        first = train.with_training(False)
        if not len(first):
            return
        batch = collate([first[i] for i in range(min(len(first), LSUV_IMAGES))])
        if isinstance(batch, ClientError):
            raise batch
        scale_to_unit_variance(net, net.plain_convolutions(), batch[0].to(self._device))

    def mean_ap(self, net: SSD, data: DetectionSet, cluster=SOLO) -> float:
        """mAP at overlap_threshold over `data` (several hosts: each its part, counts pooled)."""
        return self._mean_ap(net, self._loader(data.with_training(False), False, workers=0), cluster)

    def _mean_ap(self, net: SSD, loader, cluster) -> float:
        net.eval()
        metric = MeanAP(self.num_classes, float(self.hp["overlap_threshold"]))
        with torch.no_grad():
            for batch in loader:
                if isinstance(batch, ClientError):
                    raise batch
                images, labels = batch
                logits, offsets = net(images.to(self._device))
                for det, label in zip(detect(logits, offsets, net.anchors, float(self.hp["nms_threshold"])), labels):
                    metric.update(det.cpu(), label)
        if cluster.several:
            metric = pooled(metric, cluster)
        return metric.value()

    # -- inference --------------------------------------------------------------------------------

    def check_fitted(self) -> None:
        if self.net_ is None:
            raise InputError("ObjectDetector is not fitted yet: call fit() or load() first")

    def predict(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Per (H, W, 3) uint8 image, (d, 6) float32 [class, score, xmin, ymin, xmax, ymax] after NMS,
        corners normalised, best first (the image scaled to image_shape × image_shape)."""
        self.check_fitted()
        device = next(self.net_.parameters()).device
        x = torch.stack([prepare(img, self.image_shape) for img in images]).to(device)
        with torch.no_grad():
            logits, offsets = self.net_(x)
            found = detect(logits, offsets, self.net_.anchors, float(self.hp["nms_threshold"]))
        return [d.cpu().numpy().astype(np.float32) for d in found]

    # -- artifacts --------------------------------------------------------------------------------

    def metadata(self) -> dict:
        return {"architecture": {"network": "ssd", "base_network": self.base_network, "width": self.width,
                                 "feature_shapes": [list(s) for s in self.net_.feature_shapes]},
                "num_classes": self.num_classes, "classes": [str(i) for i in range(self.num_classes)],
                "image_shape": self.image_shape,
                "normalisation": {"scale": 1 / 255, "mean": list(transforms.MEAN), "std": list(transforms.STD),
                                  "inference_resize": "to image_shape x image_shape, aspect not kept"},
                "hyperparameters": dict(self.hp),
                "epochs_trained": int(getattr(self, "epochs_trained_", 0)),
                "best_epoch": int(getattr(self, "best_epoch_", 0)),
                "validation_maps": [None if m is None else float(m) for m in getattr(self, "mean_aps_", [])]}

    def save(self, model_dir) -> list[Path]:
        from safetensors.torch import save_file

        self.check_fitted()
        state = {k: v.detach().cpu().float().contiguous() for k, v in self.net_.state_dict().items()}
        bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
        if bad:
            raise InputError(f"the trained network is not finite ({', '.join(bad[:4])}); not saved (lower "
                             "learning_rate)")
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        save_file(state, str(model_dir / MODEL_FILE))
        return [model_dir / MODEL_FILE, write_metadata(model_dir / META_FILE, FORMAT, FORMAT_VERSION,
                                                       self.metadata())]

    @classmethod
    def from_metadata(cls, meta: dict, device: str | None) -> "ObjectDetector":
        return cls(device=device, width=int(meta["architecture"].get("width", 1)), **cls.declared(meta["hyperparameters"]))

    def load_weights(self, net: SSD, state: dict, where: str) -> None:
        load_into(net, state, where, "")


def load_into(net: SSD, state: dict, where: str, prefix: str = "") -> None:
    """`state` (names strict, a ClientError naming `where` otherwise) into `net`'s parameters under
    `prefix`: "" the whole network; a torchvision backbone's otherwise (its `classifier.` / `fc.`
    head left out)."""
    module = net
    for part in filter(None, prefix.rstrip(".").split(".")):
        module = getattr(module, part)
    skip = () if not prefix else ("classifier.", "fc.")
    load_state_dict(module, state, where, skip)


def pooled(metric: MeanAP, cluster) -> MeanAP:
    """Every host's MeanAP counts in one (the same on every host after): its (class, score, hit)
    rows gathered, the ground-truth counts summed."""
    rows = np.array([(c, s, h) for c in range(metric.num_classes)
                     for s, h in zip(metric.scores[c], metric.hits[c])], np.float64).reshape(-1, 3)
    out = MeanAP(metric.num_classes, metric.overlap)
    for part in cluster.gather(rows):
        for c, s, h in part:
            out.scores[int(c)].append(float(s))
            out.hits[int(c)].append(bool(h))
    out.truths = cluster.sum(metric.truths.astype(np.int64))[0].astype(np.int64)
    return out
