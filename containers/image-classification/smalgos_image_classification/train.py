"""Training for Image Classification: the `train` and `validation` channels (RecordIO image records,
or image files with their `.lst` channels), an optional start from the `model` channel or from
ImageNet weights, then the best validation epoch's network saved.

Lines printed, MXNet Module's (spec §7.4), epochs counted from 0:
    Epoch[0] Batch [20]	Speed: 114.166 samples/sec	accuracy=0.005580	top_k_accuracy_2=0.011161
    Epoch[0] Train-accuracy=0.637171
    Epoch[0] Train-top_k_accuracy_2=0.811161            with top_k
    Epoch[0] Time cost=20.103
    Epoch[0] Validation-accuracy=0.773047
    Epoch[0] Validation-top_k_accuracy_2=0.900391       with top_k
    Saved checkpoint to "/opt/ml/model/model.safetensors"
AWS's metric regexes (`Epoch\\S* Train-accuracy=(\\S*)`, `Epoch\\S* Validation-accuracy=(\\S*)`) read
the accuracy lines; each is checked against its declared regex when printed.

Where the starting weights come from (`model` channel, application/x-sagemaker-model):
- a model.tar.gz (or its files) this image wrote: incremental training; num_layers, num_classes,
  image_shape and multi_label must be the job's (a ClientError names both values);
- a torchvision-format ResNet state dict (`*.safetensors`, or `*.pth` / `*.pt`, read with
  torch.load(weights_only=True)): every tensor but the `fc.` head loaded, names strict (a ClientError
  lists missing and unexpected keys), the head new — AWS's transfer learning;
- use_pretrained_model=1 without a model channel: `/opt/smalgos/pretrained/image-classification/
  resnet<num_layers>.safetensors` inside the image (`make build ALGO=image-classification
  PRETRAINED=DIR` puts it there; smalgos.vision.pretrained); nothing is downloaded, and without
  either a ClientError says how to supply the weights.
AWS's own MXNet artifacts (`*-symbol.json`, `*.params`) cannot be read (there is no MXNet here).

Several hosts train as one job (smalgos.distributed; AWS's image uses MXNet's kvstore): each takes
every size-th image of the FullyReplicated channels, starts from the master's network, and every
step averages the gradients of all hosts' images (smalgos.training.data_parallel); batch-norm
statistics are averaged each epoch and the accuracies counted over all hosts, so every host prints
the same lines. The master writes the model.
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
from smalgos.vision.resnet import is_cifar_depth

from .data import ImageSet, channel_set
from .declaration import ALGORITHM, TRAIN_ACCURACY_REGEX, VALIDATION_ACCURACY_REGEX, parse_image_shape
from .model import META_FILE, MODEL_FILE, EpochReport, ImageClassifier

def _settings(num_layers, num_classes, image_shape, multi_label) -> dict:
    return {"num_layers": int(num_layers), "num_classes": int(num_classes),
            "image_shape": ",".join(map(str, image_shape)), "multi_label": int(bool(multi_label))}


def initial_state(job, clf: ImageClassifier, scratch: Path):
    """(state dict, where, skip prefixes) to start from, or None (random initialisation)."""
    hp = job.hyperparameters
    pretrained = bool(hp["use_pretrained_model"])
    if pretrained and is_cifar_depth(clf.num_layers):
        raise ClientError(f"Hyperparameter use_pretrained_model: pretrained weights exist for num_layers 18, 34, "
                          f"50, 101, 152 and 200 only, not the CIFAR-style {clf.num_layers}")
    channel = job.channel("model")
    if channel is None:
        if not pretrained:
            return None
        name = f"resnet{clf.num_layers}"
        path = built_in_path(ALGORITHM.name, name)
        if not path.is_file():
            raise missing_weights(ALGORITHM.name, name, f"num_layers={clf.num_layers}")
        job.log.info("Loading pretrained weights from %s (the fc head is new)", path)
        return read_state_dict(path, "Pretrained weights"), f"Pretrained weights {path}", ("fc.",)
    kind, path = find_start(channel, scratch, META_FILE, MODEL_FILE)
    if kind == "model":
        try:
            meta = ImageClassifier.read_meta(path)
        except (ValueError, KeyError) as exc:
            raise ClientError(f"{WHERE}: {META_FILE}: {exc}") from None
        mismatch(_settings(meta["architecture"]["num_layers"], meta["num_classes"], meta["image_shape"],
                           meta["multi_label"]),
                 _settings(clf.num_layers, clf.num_classes, clf.image_shape, clf.multi_label))
        job.log.info("Incremental training from the model in the model channel (%s)", path)
        return read_state_dict(path / MODEL_FILE, WHERE), f"{WHERE}: {MODEL_FILE}", ()
    job.log.info("Transfer learning from the state dict %s (every layer but the fc head)", path.name)
    return read_state_dict(path, WHERE), f"{WHERE}: {path.name}", ("fc.",)


def train(job) -> None:
    hp = job.hyperparameters
    channels = parse_image_shape(hp["image_shape"])[0]
    for name in ("train", "validation"):
        ctype = job.channel(name).content_type
        if ctype != "application/x-recordio" and hp["resize"] is None:
            raise ClientError(f"Hyperparameter resize is required with image files (channel {name!r} is {ctype}): "
                              "the shorter side the images are scaled to before cropping")
    clf = ImageClassifier.from_hyperparameters(hp)
    device = pick_device(clf.device)
    with joined(job.resources, want_cuda=device.type == "cuda") as cluster:
        clf.cluster = cluster
        _train(job, clf, device, channels)


def _shares(job, name: str, data: ImageSet, cluster) -> ImageSet:
    """This host's images of a channel: with several hosts (FullyReplicated, the only distribution
    AWS's image takes: every host holds all), every size-th image from the rank-th."""
    if cluster.several and job.channel(name).config.distribution == "FullyReplicated":
        return data.part(cluster.rank, cluster.size)
    return data


def _train(job, clf: ImageClassifier, device, channels: int) -> None:
    hp, log, cluster = job.hyperparameters, job.log, clf.cluster
    if device.type != "cuda":
        log.warning("Training on CPU: SageMaker trains image-classification on GPU instances only (P2, P3, G4dn, "
                    "G5); this CPU image trains for local use and small data")
        if hp["precision_dtype"] == "float16":
            log.info("precision_dtype=float16: mixed precision runs on CUDA only; training in float32 on CPU")
    train_set = channel_set(job, "train", clf.num_classes, clf.multi_label, channels)
    held = channel_set(job, "validation", clf.num_classes, clf.multi_label, channels)
    if len(train_set) != hp["num_training_samples"] and not cluster.several:
        log.warning("num_training_samples is %d but the train channel holds %d images", hp["num_training_samples"],
                    len(train_set))
    train_set, held = _shares(job, "train", train_set, cluster), _shares(job, "validation", held, cluster)
    if cluster.several:
        log.info("Host %s (rank %d of %d) trains on %d images and validates on %d; every step averages the "
                 "gradients of all hosts", cluster.host, cluster.rank, cluster.size, len(train_set), len(held))
    log.info("ResNet-%d (%s-style), %d classes%s, image_shape %s, %d training and %d validation images, on %s",
             clf.num_layers, "CIFAR" if is_cifar_depth(clf.num_layers) else "ImageNet", clf.num_classes,
             " (multi-label)" if clf.multi_label else "", hp["image_shape"], len(train_set), len(held), device)

    def on_epoch(r: EpochReport) -> None:
        for key, value in r.train.items():
            text = f"Epoch[{r.epoch}] Train-{key}={value:.6f}"
            log_checked(job.log, TRAIN_ACCURACY_REGEX, text) if key == "accuracy" else log.info("%s", text)
        log.info("Epoch[%d] Time cost=%.3f", r.epoch, r.seconds)
        for key, value in (r.validation or {}).items():
            text = f"Epoch[{r.epoch}] Validation-{key}={value:.6f}"
            log_checked(job.log, VALIDATION_ACCURACY_REGEX, text) if key == "accuracy" else log.info("%s", text)
        job.metrics.progress(100.0 * (r.epoch + 1) / hp["epochs"])
        job.metrics.throughput(r.images / max(r.seconds, 1e-9))
        if r.stopping:
            log.info("Early stopping: validation accuracy has not improved by more than %g for %d epochs",
                     hp["early_stopping_tolerance"], hp["early_stopping_patience"])

    fit_and_save(job, clf, train_set, held, initial_state, on_epoch,
                 best="Best validation accuracy {0.best_accuracy_:.6f} at epoch {0.best_epoch_}",
                 saved='Saved checkpoint to "%s"')
