"""Training for Object Detection: the `train` and `validation` channels (RecordIO records with
packed labels, or images with their JSON annotations, or an augmented manifest in Pipe mode), an
optional start from the `model` channel or from ImageNet weights, then the best validation epoch's
network saved.

Lines printed, AWS's (spec §8.4: the value in parentheses), epochs counted from 0, `batch` the
epoch's number of batches:
    #quality_metric: host=algo-1, epoch=0, batch=13 train cross_entropy <loss>=(3.3931)
    #quality_metric: host=algo-1, epoch=0, batch=13 train smooth_l1 <loss>=(2.4817)
    #quality_metric: host=algo-1, epoch=0, validation mAP <score>=(0.7312)
    #progress_metric: host=algo-1, completed 10 % of epochs
    #throughput_metric: host=algo-1, train throughput=215.31 records/second
    Serializing model to /opt/ml/model/model.safetensors
Each metric line is checked against its declared regex when printed.

Starting weights (`model` channel, application/x-sagemaker-model; smalgos.vision.model_channel):
- a model.tar.gz (or its files) this image wrote: incremental training; base_network, num_classes
  (AWS's rule) and the network's width must be the job's (a ClientError names both values);
- a torchvision-format state dict (.safetensors, or .pth / .pt read with weights_only): torchvision's
  `vgg16` (its `features.*`; `classifier.*` left out) or `resnet50` (all but `fc.*`) loads into the
  base network; the extra layers and the heads start new;
- use_pretrained_model=1 (AWS's default) without a model channel: /opt/smalgos/pretrained/
  object-detection/vgg16.safetensors (resnet50 for resnet-50) in an image built with
  `make build ALGO=object-detection PRETRAINED=DIR`; nothing is downloaded, and without either a
  ClientError says how to supply them.

Several hosts train as one job (smalgos.distributed): each takes every size-th image of the
FullyReplicated channels, every step sums the gradients of all hosts' images, the mAP counts all
hosts' validation images; the master writes the model.
"""

from __future__ import annotations

from pathlib import Path

from smalgos.distributed import joined
from smalgos.errors import ClientError
from smalgos.maths.device import pick_device
from smalgos.metrics import log_checked
from smalgos.vision.estimator import fit_and_save
from smalgos.vision.model_channel import WHERE, find_start, mismatch
from smalgos.vision.pretrained import built_in_path, missing_weights, read_state_dict

from .data import DetectionSet, channel_set
from .declaration import ALGORITHM, CROSS_ENTROPY_REGEX, SMOOTH_L1_REGEX, VALIDATION_MAP_REGEX
from .model import META_FILE, MODEL_FILE, EpochReport, ObjectDetector

WEIGHTS = {"vgg-16": "vgg16", "resnet-50": "resnet50"}
BACKBONE_PREFIX = {"vgg-16": "backbone.features.", "resnet-50": "backbone.net."}


def backbone_state(base_network: str, state: dict) -> dict:
    """torchvision's vgg16 keys `features.N.*` → `N.*` (its classifier dropped); resnet50's as they are."""
    if base_network == "vgg-16":
        return {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    return state


def initial_state(job, det: ObjectDetector, scratch: Path):
    """(state dict, where, prefix) to start from (ObjectDetector.fit), or None (random initialisation)."""
    channel = job.channel("model")
    name = WEIGHTS[det.base_network]
    if channel is None:
        if not job.hyperparameters["use_pretrained_model"]:
            return None
        path = built_in_path(ALGORITHM.name, name)
        if not path.is_file():
            raise missing_weights(ALGORITHM.name, name, f"base_network={det.base_network}")
        job.log.info("Loading pretrained base network weights from %s (extra layers and heads are new)", path)
        state = backbone_state(det.base_network, read_state_dict(path, "Pretrained weights"))
        return state, f"Pretrained weights {path}", BACKBONE_PREFIX[det.base_network]
    kind, path = find_start(channel, scratch, META_FILE, MODEL_FILE)
    if kind == "model":
        try:
            meta = ObjectDetector.read_meta(path)
        except (ValueError, KeyError) as exc:
            raise ClientError(f"{WHERE}: {META_FILE}: {exc}") from None
        mismatch({"base_network": meta["architecture"]["base_network"], "num_classes": meta["num_classes"],
                  "width": meta["architecture"].get("width", 1)},
                 {"base_network": det.base_network, "num_classes": det.num_classes, "width": det.width})
        job.log.info("Incremental training from the model in the model channel (%s)", path)
        return read_state_dict(path / MODEL_FILE, WHERE), f"{WHERE}: {MODEL_FILE}", ""
    job.log.info("Base network weights from the state dict %s (extra layers and heads are new)", path.name)
    return (backbone_state(det.base_network, read_state_dict(path, WHERE)), f"{WHERE}: {path.name}",
            BACKBONE_PREFIX[det.base_network])


def train(job) -> None:
    det = ObjectDetector.from_hyperparameters(job.hyperparameters)
    device = pick_device(det.device)
    with joined(job.resources, want_cuda=device.type == "cuda") as cluster:
        det.cluster = cluster
        _train(job, det, device)


def _share(job, name: str, data: DetectionSet, cluster) -> DetectionSet:
    several = cluster.several and job.channel(name).config.distribution == "FullyReplicated"
    return data.part(cluster.rank, cluster.size) if several else data


def _train(job, det: ObjectDetector, device) -> None:
    hp, log, cluster = job.hyperparameters, job.log, det.cluster
    if device.type != "cuda":
        log.warning("Training on CPU: SageMaker trains object-detection on GPU instances only (P2, P3, G4dn, G5); "
                    "this CPU image trains for local use and small data")
    if hp["kv_store"] and not cluster.several:
        log.info("kv_store=%s: one host trains, so there is nothing to synchronise", hp["kv_store"])
    sets = [channel_set(job, name, det.num_classes, int(hp["label_width"]), det.image_shape)
            for name in ("train", "validation")]
    if len(sets[0]) != hp["num_training_samples"] and not cluster.several:
        log.warning("num_training_samples is %d but the train channel holds %d images", hp["num_training_samples"],
                    len(sets[0]))
    train_set, held = _share(job, "train", sets[0], cluster), _share(job, "validation", sets[1], cluster)
    log.info("SSD on %s, %d classes, image_shape %d, %d training and %d validation images, on %s",
             det.base_network, det.num_classes, det.image_shape, len(train_set), len(held), device)
    head = f"host={job.metrics.host}"

    def on_epoch(r: EpochReport) -> None:
        where = f"#quality_metric: {head}, epoch={r.epoch}"
        log_checked(job.log, CROSS_ENTROPY_REGEX, f"{where}, batch={r.batches} train cross_entropy <loss>=({r.cross_entropy:.4f})")
        log_checked(job.log, SMOOTH_L1_REGEX, f"{where}, batch={r.batches} train smooth_l1 <loss>=({r.smooth_l1:.4f})")
        if r.mean_ap is not None:
            log_checked(job.log, VALIDATION_MAP_REGEX, f"{where}, validation mAP <score>=({r.mean_ap:.4f})")
        if r.improved:
            log.info("Best validation mAP so far (epoch %d)", r.epoch)
        job.metrics.progress(100.0 * (r.epoch + 1) / hp["epochs"])
        job.metrics.throughput(r.images / max(r.seconds, 1e-9))
        if r.stopping:
            log.info("Early stopping: validation mAP has not improved by more than %g for %d epochs",
                     hp["early_stopping_tolerance"], hp["early_stopping_patience"])

    fit_and_save(job, det, train_set, held, initial_state, on_epoch,
                 best="Best validation mAP {0.best_map_:.4f} at epoch {0.best_epoch_}", saved="Serializing model to %s")
