"""Semantic Segmentation (`semantic-segmentation:1`) as SageMaker declares it: hyperparameters,
channels, metrics, serving.

Sources: AWS Developer Guide `semantic-segmentation`, `segmentation-hyperparameters`,
`semantic-segmentation-tuning`; the container's default-input.json in a public notebook log
(see /work/shared/spec/algorithms-neural.md §9).

- `num_classes` (2-254) and `num_training_samples` are required; every other name has AWS's
  default and range. `crop_size` is rounded up to a multiple of 8 (the backbone's output stride).
  `lr_scheduler_step` is required iff lr_scheduler=step.
- Hidden keys of AWS's configuration (`_aux_loss`, `_aux_weight`, `_hybrid`, ...) are accepted and
  dropped; the auxiliary loss is always on with weight 0.5 (AWS's defaults for them).
- Channels: train / validation (JPEG or PNG images) and train_annotation / validation_annotation
  (PNG masks of the same basename), all four required; label_map (train_label_map.json,
  validation_label_map.json) and model (incremental training, or a torchvision backbone state
  dict) optional. Pipe mode: an augmented manifest (application/x-recordio, RecordIO-wrapped;
  the image's source-ref then its mask's -ref) in train and validation, no annotation channels.
- Metrics: AWS's regexes over its `#quality_metric. host: algo-1, epoch: 0, validation mIOU: 0.5064 .`
  lines (validation:mIOU is the tuning objective).
- Responses: Accept image/png (the default): a PNG mask of class ids, the input's size;
  application/x-recordio-protobuf (or application/x-protobuf): the class probabilities.
"""

from __future__ import annotations

import re

from smalgos.declaration import (
    CPU, FILE, FULLY_REPLICATED, GPU, MAXIMIZE, MINIMIZE, PIPE, Algorithm, Boolean, Categorical, Channel, Float,
    Hyperparameters, Integer, Interval, Metric, Serving, String,
)
from smalgos.errors import ClientError
from smalgos.formats.media import RECORDIO_PROTOBUF
from smalgos.formats.opaque import IMAGE_TYPES, MODEL, PNG, PROTOBUF, RECORDIO, X_IMAGE

from .nets import ALGORITHMS, BACKBONES

JSON = "application/json"
OPTIMIZERS = ("adam", "adagrad", "nag", "rmsprop", "sgd")
SCHEDULERS = ("poly", "cosine", "step")
ACCEPTED_HIDDEN = ("_aux_loss", "_aux_weight", "_hybrid", "_augmentation_type", "_workers", "_kvstore",
                   "_logging_frequency", "_num_gpus", "_tuning_objective_metric")
_UNIT = Interval(0.0, 1.0)

TRAIN_LOSS_REGEX = r"train loss: (\S+)"
MIOU_REGEX = r"validation mIOU: (\S+)"
PIXEL_ACCURACY_REGEX = r"pixel_accuracy: (\S+)"
TRAIN_THROUGHPUT_REGEX = r"train throughput: (\S+)"
VALIDATION_THROUGHPUT_REGEX = r"validation throughput: (\S+)"


def crop_size(value: int) -> int:
    """crop_size rounded up to a multiple of 8, as AWS documents."""
    return -(-int(value) // 8) * 8


def parse_steps(text: str | None) -> list[int]:
    """"10, 20" → [10, 20] (epochs, increasing); a ClientError naming lr_scheduler_step otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    if not all(re.fullmatch(r"\d+", p) for p in parts):
        raise ClientError(f"Hyperparameter lr_scheduler_step: {text!r} is not a comma-separated list of epochs "
                          "(e.g. \"10, 20\")")
    steps = [int(p) for p in parts]
    if steps != sorted(set(steps)) or steps[0] < 1:
        raise ClientError(f"Hyperparameter lr_scheduler_step: {text!r} must be increasing positive epochs")
    return steps


def _check(values: dict) -> None:
    scheduler, step = values.get("lr_scheduler"), values.get("lr_scheduler_step")
    if scheduler == "step":
        if step is None:
            raise ClientError("Hyperparameter lr_scheduler_step is required with lr_scheduler=step (e.g. \"10, 20\")")
        parse_steps(step)
    elif step is not None:
        raise ClientError(f"Hyperparameter lr_scheduler_step is given but lr_scheduler is {scheduler!r}; "
                          "it is read with lr_scheduler=step only")


HYPERPARAMETERS = Hyperparameters(
    params=(
        Integer("num_classes", required=True, range=Interval(2, 254), doc="classes, background included"),
        Integer("num_training_samples", required=True, range=Interval(1, None),
                doc="images in the training data (the learning-rate schedule's epoch length)"),
        Categorical("backbone", default="resnet-50", choices=tuple(BACKBONES), doc="the encoder"),
        Boolean("use_pretrained_model", default=True,
                doc="start the backbone from ImageNet weights (model channel or the image; none are downloaded)"),
        Categorical("algorithm", default="fcn", choices=ALGORITHMS, doc="the decoder: fcn, psp or deeplab"),
        Integer("base_size", default=520, range=Interval(17, None),
                doc="long side scaled to base_size x U(0.5, 2.0) before cropping"),
        Integer("crop_size", default=240, range=Interval(17, None),
                doc="side of the random square training crop (rounded up to a multiple of 8)"),
        Boolean("early_stopping", default=False, doc="stop once validation mIOU stops improving"),
        Integer("early_stopping_min_epochs", default=5, range=Interval(1, None),
                doc="epochs before early stopping may stop"),
        Integer("early_stopping_patience", default=4, range=Interval(1, None),
                doc="epochs without improvement before stopping"),
        Float("early_stopping_tolerance", default=0.0, range=_UNIT,
              doc="least relative improvement of validation mIOU that counts"),
        Integer("epochs", default=10, range=Interval(1, None), doc="passes over the training data"),
        Float("gamma1", default=0.9, range=_UNIT, doc="rmsprop's decay of the squared gradients"),
        Float("gamma2", default=0.9, range=_UNIT, doc="rmsprop's momentum"),
        Float("learning_rate", default=0.001, range=Interval(0.0, 1.0, low_inclusive=False), doc="initial learning rate"),
        Categorical("lr_scheduler", default="poly", choices=SCHEDULERS, doc="poly, cosine or step"),
        Float("lr_scheduler_factor", default=0.1, range=_UNIT, doc="rate multiplier at each step (step only)"),
        String("lr_scheduler_step", default=None, doc="comma-separated epochs of the steps (lr_scheduler=step)"),
        Integer("mini_batch_size", default=16, range=Interval(1, None), doc="images per step"),
        Float("momentum", default=0.9, range=Interval(0.0, 1.0, low_inclusive=False), doc="sgd's and nag's momentum"),
        Categorical("optimizer", default="sgd", choices=OPTIMIZERS, doc="adam, adagrad, nag, rmsprop or sgd"),
        Boolean("syncbn", default=False, doc="batch-norm statistics synchronised across the host's GPUs"),
        Integer("validation_mini_batch_size", default=16, range=Interval(1, None), doc="images per validation step"),
        Float("weight_decay", default=0.0001, range=Interval(0.0, 1.0, low_inclusive=False, high_inclusive=False),
              doc="L2 coefficient"),
        Categorical("precision_dtype", default="float32", choices=("float32", "float16"),
                    doc="float16: mixed precision on a GPU"),
    ),
    validators=(_check,),
    accept_unknown=ACCEPTED_HIDDEN,
)

_IMAGES = (*IMAGE_TYPES, RECORDIO)
_REPLICATED = (FULLY_REPLICATED,)

ALGORITHM = Algorithm(
    name="semantic-segmentation",
    display_name="SemanticSegmentation",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, content_types=_IMAGES, input_modes=(FILE, PIPE), distributions=_REPLICATED,
                doc="JPEG/PNG images, or (Pipe) an augmented manifest of image + mask"),
        Channel("validation", required=True, content_types=_IMAGES, input_modes=(FILE, PIPE),
                distributions=_REPLICATED, doc="mIOU and pixel accuracy every epoch, the best epoch"),
        Channel("train_annotation", content_types=(PNG, X_IMAGE, "image/jpeg"), input_modes=(FILE,),
                distributions=_REPLICATED, doc="PNG masks of the train images (same basename)"),
        Channel("validation_annotation", content_types=(PNG, X_IMAGE, "image/jpeg"), input_modes=(FILE,),
                distributions=_REPLICATED, doc="PNG masks of the validation images"),
        Channel("label_map", content_types=(JSON, X_IMAGE, PNG, "image/jpeg"), input_modes=(FILE,),
                distributions=_REPLICATED, doc="train_label_map.json / validation_label_map.json"),
        Channel("model", content_types=(MODEL,), input_modes=(FILE,), distributions=_REPLICATED,
                doc="a model.tar.gz of this algorithm, or a torchvision-format ResNet state dict"),
    ),
    metrics=(
        Metric("validation:mIOU", MAXIMIZE, MIOU_REGEX),
        Metric("validation:pixel_accuracy", MAXIMIZE, PIXEL_ACCURACY_REGEX),
        Metric("train:loss", MINIMIZE, TRAIN_LOSS_REGEX, tunable=False),
        Metric("train:throughput", MAXIMIZE, TRAIN_THROUGHPUT_REGEX, tunable=False),
        Metric("validation:throughput", MAXIMIZE, VALIDATION_THROUGHPUT_REGEX, tunable=False),
    ),
    serving=Serving(content_types=IMAGE_TYPES, accepts=(PNG, RECORDIO_PROTOBUF, PROTOBUF), default_accept=PNG),
    variants=(CPU, GPU),
    doc="Per-pixel classification: a dilated ResNet-50/101 with an FCN, PSP or DeepLabV3 decoder.",
)
