"""Training for Semantic Segmentation: images and masks from the four channels (or augmented
manifests in Pipe mode), an optional start from the `model` channel or from ImageNet weights,
then the best validation epoch's network saved.

Lines printed, AWS's (spec §9.4: "." separators, a trailing " ."), epochs counted from 0:
    #label_map train :{'scale': 1}
    LRScheduler setup: iters per epoch: 91, num_epochs 10
    #progress_notice. epoch: 0, iterations: 20 speed: 55.57 samples/sec learning_rate: 0.000098
    #quality_metric. host: algo-1, epoch: 0, train loss: 1.4757 .
    #throughput_metric. host: algo-1, epoch: 0, train throughput: 55.04 samples/sec.
    #quality_metric. host: algo-1, epoch: 0, validation pixel_accuracy: 0.8473 .
    #quality_metric. host: algo-1, epoch: 0, validation mIOU: 0.5064 .
    #throughput_metric. host: algo-1, epoch: 0, validation throughput: 80.12 samples/sec.
    #progress_metric: host=algo-1, completed 10 % of epochs
    Serializing model to /opt/ml/model/model.safetensors
Each metric line is checked against its declared regex when printed.

Starting weights (`model` channel, application/x-sagemaker-model):
- a model.tar.gz (or its files) this image wrote: incremental training; backbone, algorithm,
  crop_size and num_classes must be the job's (a ClientError names both values);
- a torchvision-format state dict (.safetensors, or .pth / .pt read with weights_only): an ImageNet
  ResNet's (its fc left out) or a torchvision segmentation model's `backbone.*` tensors load into
  the backbone; the decoders start new (AWS: "decoders never pretrained");
- use_pretrained_model=True (AWS's default) without a model channel:
  /opt/smalgos/pretrained/semantic-segmentation/resnet50.safetensors (resnet101 for resnet-101) in
  a derived image; nothing is downloaded, and without either a ClientError says how to supply them.
AWS trains this algorithm on one instance: a job of several hosts is refused.
"""

from __future__ import annotations

from pathlib import Path

from smalgos.errors import ClientError
from smalgos.maths.device import pick_device
from smalgos.metrics import log_checked
from smalgos.vision.estimator import fit_and_save
from smalgos.vision.model_channel import WHERE, find_start, mismatch
from smalgos.vision.pretrained import built_in_path, missing_weights, read_state_dict

from .data import channel_set
from .declaration import (
    MIOU_REGEX, PIXEL_ACCURACY_REGEX, TRAIN_LOSS_REGEX, TRAIN_THROUGHPUT_REGEX, VALIDATION_THROUGHPUT_REGEX,
)
from .model import META_FILE, MODEL_FILE, EpochReport, Segmenter
from .nets import BACKBONES

ALGO = "semantic-segmentation"


def _backbone_state(state: dict) -> dict:
    """A torchvision segmentation model's backbone.* tensors (prefix dropped), else the state as it is."""
    inner = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    return inner or state


def initial_state(job, seg: Segmenter, scratch: Path):
    """(state dict, where, "net" or "backbone") to start from, or None (random initialisation)."""
    channel = job.channel("model")
    if channel is None:
        if not job.hyperparameters["use_pretrained_model"]:
            return None
        name = f"resnet{BACKBONES[seg.backbone]}"
        path = built_in_path(ALGO, name)
        if not path.is_file():
            raise missing_weights(ALGO, name, f"backbone={seg.backbone}")
        job.log.info("Loading pretrained backbone weights from %s (the decoders are new)", path)
        return _backbone_state(read_state_dict(path, "Pretrained weights")), f"Pretrained weights {path}", "backbone"
    kind, path = find_start(channel, scratch, META_FILE, MODEL_FILE)
    if kind == "model":
        try:
            meta = Segmenter.read_meta(path)
        except (ValueError, KeyError) as exc:
            raise ClientError(f"{WHERE}: {META_FILE}: {exc}") from None
        arch = meta.get("architecture", {})
        mismatch({"backbone": arch.get("backbone"), "algorithm": arch.get("algorithm"),
                  "crop_size": meta.get("crop_size"), "num_classes": meta.get("num_classes")},
                 {"backbone": seg.backbone, "algorithm": seg.algorithm, "crop_size": seg.crop,
                  "num_classes": seg.num_classes})
        job.log.info("Incremental training from the model in the model channel (%s)", path)
        return read_state_dict(path / MODEL_FILE, WHERE), f"{WHERE}: {MODEL_FILE}", "net"
    job.log.info("Backbone weights from the state dict %s (the decoders are new)", path.name)
    return _backbone_state(read_state_dict(path, WHERE)), f"{WHERE}: {path.name}", "backbone"


def train(job) -> None:
    hp, log = job.hyperparameters, job.log
    job.require_one_host("Semantic Segmentation", "AWS trains it on one GPU instance")
    seg = Segmenter.from_hyperparameters(hp)
    device = pick_device(seg.device)
    if device.type != "cuda":
        log.warning("Training on CPU: SageMaker trains semantic-segmentation on GPU instances only (P2, P3, G4dn, "
                    "G5); this CPU image trains for local use and small data")
        if hp["precision_dtype"] == "float16":
            log.info("precision_dtype=float16: mixed precision runs on CUDA only; training in float32 on CPU")
    if hp["syncbn"]:
        log.info("syncbn=True: one device trains here, so batch norm is synchronised trivially")
    train_set = channel_set(job, "train", seg.num_classes)
    held = channel_set(job, "validation", seg.num_classes)
    if len(train_set) != hp["num_training_samples"]:
        log.warning("num_training_samples is %d but the train channel holds %d images", hp["num_training_samples"],
                    len(train_set))
    log.info("%s/%s (output stride 8, auxiliary FCN head on layer3 weighted 0.5), %d classes, crop_size %d, "
             "%d training and %d validation images, on %s", seg.algorithm, seg.backbone, seg.num_classes, seg.crop,
             len(train_set), len(held), device)
    iters = max(1, int(hp["num_training_samples"]) // int(hp["mini_batch_size"]))
    log.info("LRScheduler setup: iters per epoch: %d, num_epochs %d", iters, hp["epochs"])
    host = job.metrics.host

    def on_epoch(r: EpochReport) -> None:
        head = f"host: {host}, epoch: {r.epoch}"
        log_checked(job.log, TRAIN_LOSS_REGEX, f"#quality_metric. {head}, train loss: {r.train_loss:.4f} .")
        log_checked(job.log, TRAIN_THROUGHPUT_REGEX, f"#throughput_metric. {head}, train throughput: "
                                           f"{r.images / max(r.train_seconds, 1e-9):.2f} samples/sec.")
        if r.miou is not None:
            log_checked(job.log, PIXEL_ACCURACY_REGEX, f"#quality_metric. {head}, validation pixel_accuracy: "
                                             f"{r.pixel_accuracy:.4f} .")
            log_checked(job.log, MIOU_REGEX, f"#quality_metric. {head}, validation mIOU: {r.miou:.4f} .")
            log_checked(job.log, VALIDATION_THROUGHPUT_REGEX, f"#throughput_metric. {head}, validation throughput: "
                                                    f"{r.validation_images / max(r.validation_seconds, 1e-9):.2f} "
                                                    "samples/sec.")
        if r.improved:
            log.info("Best validation mIOU so far (epoch %d)", r.epoch)
        job.metrics.progress(100.0 * (r.epoch + 1) / hp["epochs"])
        if r.stopping:
            log.info("Early stopping: validation mIOU has not improved by more than %g for %d epochs",
                     hp["early_stopping_tolerance"], hp["early_stopping_patience"])

    fit_and_save(job, seg, train_set, held, initial_state, on_epoch,
                 best="Best validation mIOU {0.best_miou_:.4f} at epoch {0.best_epoch_}",
                 saved="Serializing model to %s")
