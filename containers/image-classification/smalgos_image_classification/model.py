"""Image Classification's core: a ResNet (smalgos.vision.resnet) trained on ImageSets, usable from
a notebook as well as by the trainer:

    clf = ImageClassifier(num_classes=10, num_training_samples=1000, num_layers=20, image_shape="3,32,32",
                          epochs=10, optimizer="adam", learning_rate=0.01)
    clf.fit(train_set, validation_set)           # data.ImageSet (from .rec or .lst + images)
    clf.predict_proba([pixels])                   # (n, num_classes): softmax, or sigmoid (multi_label)
    clf.save(model_dir); ImageClassifier.load(model_dir)

Training, as AWS's MXNet image does it where its documents say:
- optimizers by AWS's names with their parameters: `sgd` (momentum), `nag` (Nesterov momentum),
  `adam` (beta_1, beta_2, eps), `rmsprop` (gamma, eps); `weight_decay` is MXNet's `wd`, L2 on the
  convolution and dense weights and the batch-norm scales, not on biases and batch-norm shifts
  (MXNet's default wd_mult);
- the learning rate multiplied by `lr_scheduler_factor` at each epoch of `lr_scheduler_step`;
- softmax cross-entropy; multi_label=1: sigmoid cross-entropy per class (use_weighted_loss=1: each
  class's positives weighted by its negatives / positives in the training labels);
- accuracy: the share of images whose top class is the label; multi-label: the share of (image,
  class) pairs whose 0.5-thresholded score is right (AWS: "average accuracy across classes");
  top-k accuracy with `top_k` (multi-class);
- training accuracy is the running one over the epoch's batches (MXNet's); validation accuracy of
  the network in evaluation mode after each epoch; the weights of the best validation epoch are kept
  (AWS keeps the best epoch's unless checkpoint_frequency asks for more);
- early_stopping: after at least early_stopping_min_epochs, stop once early_stopping_patience epochs
  in a row have not raised the best validation accuracy by more than early_stopping_tolerance of it;
- precision_dtype=float16: mixed precision (autocast + gradient scaling) on CUDA; float32 on CPU.

The artifact: model.safetensors (the network's state dict, torchvision's names, float32) and
model.json (architecture, classes, image shape, normalisation, training summary). No pickle.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from smalgos.errors import ClientError, InputError
from smalgos.estimator import write_metadata
from smalgos.distributed import SOLO
from smalgos.training.data_parallel import average_buffers, average_gradients, share_initial_state
from smalgos.training.neural import StepSchedule, decay_groups, optimizer_by_name
from smalgos.vision import transforms
from smalgos.vision.estimator import META_FILE, MODEL_FILE, BestEpoch, VisionEstimator
from smalgos.vision.resnet import is_cifar_depth, load_state_dict, resnet

from .data import ImageSet, PreparedBatches, collate
from .declaration import HYPERPARAMETERS, parse_image_shape

log = logging.getLogger("smalgos")

FORMAT, FORMAT_VERSION = "smalgos-image-classification", 1
SPEED_EVERY = 20  # batches between `Epoch[k] Batch [b] Speed: ...` lines (MXNet's Speedometer)


@dataclass
class EpochReport:
    epoch: int  # 0-based, as MXNet prints it
    train: dict  # accuracy (and top_k_accuracy_<k>)
    validation: dict | None
    seconds: float
    images: int
    improved: bool
    stopping: bool


class _Accuracy:
    def __init__(self, multi_label: bool, top_k: int | None):
        self.multi_label, self.top_k = multi_label, top_k
        self.right = self.right_k = self.count = 0

    def update(self, logits: torch.Tensor, labels: torch.Tensor) -> None:
        logits, labels = logits.detach().float(), labels.detach()
        if self.multi_label:
            self.right += int(((logits > 0).float() == labels).sum())
            self.count += labels.numel()
            return
        self.right += int((logits.argmax(1) == labels).sum())
        if self.top_k:
            top = logits.topk(min(self.top_k, logits.shape[1]), dim=1).indices
            self.right_k += int((top == labels[:, None]).any(1).sum())
        self.count += labels.shape[0]

    def combine(self, cluster) -> "_Accuracy":
        """Every host's counts, summed (the same on every host after)."""
        self.right, self.right_k, self.count = (int(round(v)) for v in cluster.sum(
            np.array([self.right, self.right_k, self.count], np.float64))[0])
        return self

    def result(self) -> dict:
        out = {"accuracy": self.right / max(self.count, 1)}
        if self.top_k and not self.multi_label:
            out[f"top_k_accuracy_{self.top_k}"] = self.right_k / max(self.count, 1)
        return out


class ImageClassifier(VisionEstimator):
    """See the module docstring. Parameters: the declared hyperparameters (AWS's names and
    defaults); `random_state` (weights, shuffling, augmentation), `device` (None: CUDA when there is
    one) and `data_workers` (DataLoader worker processes; None: one per core, less one, up to 8)."""

    hyperparameters, format, format_version = HYPERPARAMETERS, FORMAT, FORMAT_VERSION

    def __init__(self, random_state: int = 0, device: str | None = None, data_workers: int | None = None, **hp):
        super().__init__(**hp)
        self.random_state, self.device, self.data_workers = int(random_state), device, data_workers
        self.image_shape = parse_image_shape(self.hp["image_shape"])
        self.num_classes, self.num_layers = int(self.hp["num_classes"]), int(self.hp["num_layers"])
        self.multi_label = bool(self.hp["multi_label"])
        self.net_: torch.nn.Module | None = None
        self.cluster = SOLO  # the hosts training as one job (the trainer sets it; smalgos.distributed)

    # -- the network ------------------------------------------------------------------------------

    def new_network(self) -> torch.nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.random_state)
            return resnet(self.num_layers, self.num_classes, self.image_shape[0])

    def transforms(self):
        shape, resize = self.image_shape, self.hp["resize"]
        return (transforms.TrainTransform(shape, resize, self.hp["augmentation_type"]),
                transforms.EvalTransform(shape, resize))

    def _loader(self, data: ImageSet, shuffle: bool, generator: torch.Generator | None):
        batch = int(self.hp["mini_batch_size"])
        if PreparedBatches.fits(data, self.image_shape):
            return PreparedBatches(self.data_loader(data, batch, False, collate), batch, shuffle, generator)
        return self.data_loader(data, batch, shuffle, collate, generator)

    # -- training ---------------------------------------------------------------------------------

    def fit(self, train: ImageSet, validation: ImageSet | None = None, *, initial_state=None,
            callback: Callable[[EpochReport], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> "ImageClassifier":
        """Train on `train`; `validation` picks the best epoch and drives early stopping.
        `initial_state`: (state dict, where, skip prefixes) to start from (pretrained or incremental)."""
        from smalgos.maths.device import pick_device

        hp = self.hp
        self._device = pick_device(self.device)
        net = self.new_network()
        if initial_state is not None:
            state, where, skip = initial_state
            load_state_dict(net, state, where, skip)
        net.to(self._device)
        cluster = self.cluster
        share_initial_state(net, cluster)  # several hosts: every one starts from the master's network
        train_t, eval_t = self.transforms()
        train.transform, held = train_t, validation
        if held is not None:
            held.transform = eval_t
        generator = torch.Generator().manual_seed(self.random_state)
        train_loader = self._loader(train, True, generator)
        held_loader = None if held is None else self._loader(held, False, None)
        optimizer = optimizer_by_name(hp["optimizer"], decay_groups(net, hp["weight_decay"]), float(hp["learning_rate"]),
                                      momentum=hp["momentum"], betas=(hp["beta_1"], hp["beta_2"]), eps=hp["eps"],
                                      rho=hp["gamma"])
        schedule = StepSchedule.parse(hp["lr_scheduler_step"], float(hp["lr_scheduler_factor"]))
        loss_fn = self._loss(train)
        amp = hp["precision_dtype"] == "float16" and self._device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=amp)
        best, self.checkpoints_ = BestEpoch(hp), {}
        self.epochs_trained_, self.accuracies_ = 0, []
        self.seed_augmentation(cluster)
        for epoch in range(int(hp["epochs"])):
            started = time.time()
            rate = schedule.rate(float(hp["learning_rate"]), epoch)
            for group in optimizer.param_groups:
                group["lr"] = rate
            net.train()
            acc, seen, tick, tick_seen = _Accuracy(self.multi_label, hp["top_k"]), 0, time.time(), 0
            # several hosts step together: a host whose batches have run out takes part with none
            for b, batch in enumerate(cluster.lockstep(train_loader, empty=lambda: None, stop=should_stop)):
                if isinstance(batch, ClientError):
                    raise batch
                # batch norm cannot train on one image
                usable = batch is not None and batch[0].shape[0] >= 2
                if not usable and not cluster.several:
                    continue
                optimizer.zero_grad(set_to_none=not cluster.several)
                if usable:
                    images, labels = batch[0].to(self._device, non_blocking=True), batch[1].to(self._device)
                    with torch.autocast(self._device.type, dtype=torch.float16, enabled=amp):
                        logits = net(images)
                        loss = loss_fn(logits.float(), labels)
                    # several hosts: the batch's summed loss, divided below by every host's images
                    scaler.scale(loss * images.shape[0] if cluster.several else loss).backward()
                    if not torch.isfinite(loss):
                        raise InputError(f"Epoch[{epoch}] Batch [{b}]: the training loss is not finite (lower "
                                         "learning_rate)")
                if cluster.several and not average_gradients(net, cluster, images.shape[0] if usable else 0):
                    continue
                scaler.step(optimizer)
                scaler.update()
                if not usable:
                    continue
                acc.update(logits, labels)
                seen += images.shape[0]
                tick_seen += images.shape[0]
                if (b + 1) % SPEED_EVERY == 0:
                    now = time.time()
                    terms = "\t".join(f"{k}={v:.6f}" for k, v in acc.result().items())
                    log.info("Epoch[%d] Batch [%d]\tSpeed: %.3f samples/sec\t%s", epoch, b + 1,
                             tick_seen / max(now - tick, 1e-9), terms)
                    tick, tick_seen = now, 0
            average_buffers(net, cluster)  # several hosts: batch norm's statistics of every host's batches
            acc.combine(cluster)
            seen = int(cluster.sum(np.array([seen], np.int64))[0][0])
            if seen == 0:
                raise InputError("the training data gave no batch of two or more images")
            seconds = time.time() - started
            held_result = None if held_loader is None else self.evaluate_loader(net, held_loader, cluster)
            score = (held_result or acc.result())["accuracy"]
            self.accuracies_.append(score)
            improved, stopping = best.update(epoch, score, net)
            every = hp["checkpoint_frequency"]
            if every and (epoch + 1) % every == 0:
                self.checkpoints_[epoch] = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
            self.epochs_trained_ = epoch + 1
            if callback is not None:
                callback(EpochReport(epoch, acc.result(), held_result, seconds, seen, improved, stopping))
            if stopping or should_stop():
                break
        self.best_accuracy_, self.best_epoch_ = best.score, best.epoch
        net.load_state_dict(best.state)
        self.net_ = net.eval()
        return self

    def _loss(self, train: ImageSet):
        if not self.multi_label:
            return torch.nn.CrossEntropyLoss()
        weight = None
        if self.hp["use_weighted_loss"]:
            positives = train.labels.sum(0)
            weight = torch.from_numpy(((len(train) - positives) / np.maximum(positives, 1)).astype(np.float32))
            weight = weight.to(self._device)
        return torch.nn.BCEWithLogitsLoss(pos_weight=weight)

    def evaluate_loader(self, net, loader, cluster=SOLO) -> dict:
        """Accuracy over `loader`'s images; with several hosts, each evaluates its own part and the
        counts are summed."""
        net.eval()
        acc = _Accuracy(self.multi_label, self.hp["top_k"])
        with torch.no_grad():
            for batch in loader:
                if isinstance(batch, ClientError):
                    raise batch
                images, labels = batch
                acc.update(net(images.to(self._device)), labels.to(self._device))
        return acc.combine(cluster).result()

    def score(self, data: ImageSet) -> dict:
        """Accuracy (and top-k accuracy) of the fitted network on `data`."""
        self.check_fitted()
        data.transform = self.transforms()[1]
        return self.evaluate_loader(self.net_, self._loader(data, False, None))

    # -- prediction -------------------------------------------------------------------------------

    def check_fitted(self) -> None:
        if self.net_ is None:
            from smalgos.errors import NotFittedError

            raise NotFittedError("This ImageClassifier is not fitted yet: call fit() or load() first")

    def predict_proba(self, images: list[np.ndarray]) -> np.ndarray:
        """(n, num_classes) float32 probabilities of (H, W, C) uint8 images, each scaled to image_shape
        (aspect not kept, no crop, as AWS serves): softmax, or per-class sigmoid when multi_label."""
        self.check_fitted()
        prepare = transforms.InferenceTransform(self.image_shape)
        device = next(self.net_.parameters()).device
        x = torch.stack([prepare(img) for img in images]).to(device)
        with torch.no_grad():
            logits = self.net_(x).float()
        probs = torch.sigmoid(logits) if self.multi_label else torch.softmax(logits, 1)
        return probs.cpu().numpy().astype(np.float32)

    # -- artifacts --------------------------------------------------------------------------------

    def metadata(self) -> dict:
        return {"architecture": {"network": "resnet", "num_layers": self.num_layers,
                                 "style": "cifar" if is_cifar_depth(self.num_layers) else "imagenet",
                                 "state_dict_names": "torchvision"},
                "num_classes": self.num_classes, "classes": [str(i) for i in range(self.num_classes)],
                "multi_label": self.multi_label, "image_shape": list(self.image_shape),
                "normalisation": {"scale": 1 / 255, "mean": list(transforms.MEAN), "std": list(transforms.STD),
                                  "inference_resize": "to image_shape, aspect not kept, no crop"},
                "hyperparameters": {k: v for k, v in self.hp.items()},
                "epochs_trained": int(getattr(self, "epochs_trained_", 0)),
                "best_epoch": int(getattr(self, "best_epoch_", 0)),
                "best_accuracy": float(getattr(self, "best_accuracy_", float("nan"))),
                "validation_accuracies": [float(a) for a in getattr(self, "accuracies_", [])]}

    def save(self, model_dir) -> list[Path]:
        from safetensors.torch import save_file

        self.check_fitted()
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}
        save_file(state, str(model_dir / MODEL_FILE))
        written = [model_dir / MODEL_FILE]
        for epoch, ckpt in sorted(getattr(self, "checkpoints_", {}).items()):
            path = model_dir / f"image-classification-{epoch + 1:04d}.safetensors"
            save_file({k: v.contiguous() for k, v in ckpt.items()}, str(path))
            written.append(path)
        written.append(write_metadata(model_dir / META_FILE, FORMAT, FORMAT_VERSION, self.metadata()))
        return written
