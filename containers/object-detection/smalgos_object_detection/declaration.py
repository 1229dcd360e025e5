"""Object Detection (`object-detection:1`, MXNet SSD) as SageMaker declares it: hyperparameters,
channels, metrics, serving (/work/shared/spec/algorithms-neural.md §8).

- `num_classes` and `num_training_samples` are required; every other name has AWS's default and
  range. `image_shape`: AWS documents "≥ 300 (300 or 512 recommended)"; this image accepts any
  size from 64 up (small images train on a CPU; below 64 the deepest maps vanish), and 300 or 512
  remain the recommended sizes.
- `freeze_layer_pattern`: a regular expression over the network's parameter names (this image's
  names, e.g. `^backbone\\.features\\.(0|2)\\.`); matching parameters are not trained.
- Channels: `train` and `validation` of MXNet RecordIO records with packed labels
  (`application/x-recordio`, File or Pipe mode; in Pipe mode also an augmented manifest), or of
  JPEG/PNG images (File mode) with `train_annotation` / `validation_annotation` holding one JSON
  annotation per image (AWS's format); `model` (`application/x-sagemaker-model`): a model.tar.gz
  this image wrote (incremental training) or a torchvision-format backbone state dict.
- Metrics: AWS's regexes; the value is in parentheses (`validation mAP <score>=(0.7312)`).
- Responses: `{"prediction": [[class, score, xmin, ymin, xmax, ymax], ...]}` (normalised corners),
  or with Accept `application/json;annotation=1` the annotation JSON in pixels.
"""

from __future__ import annotations

import re

from smalgos.declaration import (
    CPU, FILE, FULLY_REPLICATED, GPU, MAXIMIZE, MINIMIZE, PIPE, Algorithm, Boolean, Categorical, Channel, Float,
    Hyperparameters, Integer, Interval, Metric, Serving, String,
)
from smalgos.errors import ClientError
from smalgos.formats.opaque import IMAGE_TYPES, JPEG, MODEL, PNG, RECORDIO, X_IMAGE

JSON = "application/json"
BASE_NETWORKS = ("vgg-16", "resnet-50")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adadelta")
ACCEPTED_HIDDEN = ("_kvstore", "_num_gpus", "_num_kv_servers", "_tuning_objective_metric")
MIN_IMAGE_SHAPE = 64
_UNIT = Interval(0.0, 1.0)
_OPEN_UNIT = Interval(0.0, 1.0, low_inclusive=False)

VALIDATION_MAP_REGEX = r"#quality_metric: host=\S+, epoch=\S+, validation mAP <score>=\((\S+)\)"
CROSS_ENTROPY_REGEX = r"#quality_metric: host=\S+, epoch=\S+, batch=\S+ train cross_entropy <loss>=\((\S+)\)"
SMOOTH_L1_REGEX = r"#quality_metric: host=\S+, epoch=\S+, batch=\S+ train smooth_l1 <loss>=\((\S+)\)"


def _check(values: dict) -> None:
    pattern = values.get("freeze_layer_pattern")
    if pattern:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ClientError(f"Hyperparameter freeze_layer_pattern: {pattern!r} is not a regular expression "
                              f"({exc})") from None
    shape = values.get("image_shape")
    if shape is not None and shape < MIN_IMAGE_SHAPE:
        raise ClientError(f"Hyperparameter image_shape: {shape} is less than {MIN_IMAGE_SHAPE} "
                          "(AWS recommends 300 or 512)")


HYPERPARAMETERS = Hyperparameters(
    params=(
        Integer("num_classes", required=True, range=Interval(1, None), doc="number of object classes"),
        Integer("num_training_samples", required=True, range=Interval(1, None),
                doc="images in the training data"),
        Categorical("base_network", default="vgg-16", choices=BASE_NETWORKS, doc="vgg-16 or resnet-50"),
        Boolean("early_stopping", default=False, doc="stop once validation mAP stops improving"),
        Integer("early_stopping_min_epochs", default=10, range=Interval(1, None),
                doc="epochs before early stopping may stop"),
        Integer("early_stopping_patience", default=5, range=Interval(1, None),
                doc="epochs without improvement before stopping"),
        Float("early_stopping_tolerance", default=0.0, range=_UNIT,
              doc="least relative improvement of validation mAP that counts"),
        Integer("epochs", default=30, range=Interval(1, None), doc="passes over the training data"),
        String("freeze_layer_pattern", default=None, doc="regex over parameter names not to train"),
        Integer("image_shape", default=300, range=Interval(1, None),
                doc="side of the square network input (AWS recommends 300 or 512)"),
        Categorical("kv_store", default=None, choices=("dist_sync", "dist_async"),
                    doc="distributed training mode (hosts train in lockstep here)"),
        Integer("label_width", default=350, range=Interval(1, None),
                doc="most label values of a record (2 header + 5 per object)"),
        Float("learning_rate", default=0.001, range=_OPEN_UNIT,
              doc="initial learning rate"),
        Float("lr_scheduler_factor", default=0.1, range=_UNIT, doc="rate multiplier at each step epoch"),
        String("lr_scheduler_step", default=None, pattern=r"\s*\d+(\s*,\s*\d+)*\s*",
               doc="comma-separated epochs at which the rate is multiplied by lr_scheduler_factor"),
        Integer("mini_batch_size", default=32, range=Interval(1, None), doc="images per step"),
        Float("momentum", default=0.9, range=_OPEN_UNIT, doc="sgd's momentum"),
        Float("nms_threshold", default=0.45, range=_OPEN_UNIT, doc="IoU of non-maximum suppression"),
        Categorical("optimizer", default="sgd", choices=OPTIMIZERS, doc="sgd, adam, rmsprop or adadelta"),
        Float("overlap_threshold", default=0.5, range=_OPEN_UNIT, doc="IoU of a hit in the validation mAP"),
        Integer("use_pretrained_model", default=1, range=Interval(0, 1),
                doc="1: start from ImageNet backbone weights (model channel or the image)"),
        Float("weight_decay", default=0.0005, range=_UNIT, doc="L2 coefficient"),
    ),
    validators=(_check,),
    accept_unknown=ACCEPTED_HIDDEN,
)

_REPLICATED = (FULLY_REPLICATED,)
_DATA_TYPES = (RECORDIO, *IMAGE_TYPES)
_ANNOTATION_TYPES = (JSON, X_IMAGE, JPEG, PNG)  # AWS's notebooks label the JSON channels as images too

ALGORITHM = Algorithm(
    name="object-detection",
    display_name="ObjectDetection",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, content_types=_DATA_TYPES, input_modes=(FILE, PIPE),
                distributions=_REPLICATED, doc="RecordIO records with packed labels (.rec), or JPEG/PNG images"),
        Channel("validation", required=True, content_types=_DATA_TYPES, input_modes=(FILE, PIPE),
                distributions=_REPLICATED, doc="mAP every epoch, early stopping, the best epoch"),
        Channel("train_annotation", content_types=_ANNOTATION_TYPES, input_modes=(FILE,),
                distributions=_REPLICATED, doc="one JSON annotation per train image (field 'file' names it)"),
        Channel("validation_annotation", content_types=_ANNOTATION_TYPES, input_modes=(FILE,),
                distributions=_REPLICATED, doc="one JSON annotation per validation image"),
        Channel("model", content_types=(MODEL,), input_modes=(FILE,), distributions=_REPLICATED,
                doc="a model.tar.gz of this algorithm, or a torchvision-format backbone state dict"),
    ),
    metrics=(
        Metric("validation:mAP", MAXIMIZE, VALIDATION_MAP_REGEX),
        Metric("train:cross_entropy", MINIMIZE, CROSS_ENTROPY_REGEX, tunable=False),
        Metric("train:smooth_l1", MINIMIZE, SMOOTH_L1_REGEX, tunable=False),
    ),
    serving=Serving(content_types=IMAGE_TYPES, accepts=(JSON,), default_accept=JSON),
    variants=(CPU, GPU),
    doc="SSD object detector (Liu et al.) on a VGG-16 or ResNet-50 base network.",
)
