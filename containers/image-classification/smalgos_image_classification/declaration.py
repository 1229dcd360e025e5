"""Image Classification (`image-classification:1`) as SageMaker declares it: hyperparameters,
channels, metrics, serving.

Sources: AWS Developer Guide `image-classification`, `IC-Hyperparameter`, `IC-tuning`; the
console's validators; public job logs (see /work/shared/spec/algorithms-neural.md §7).

- `num_classes` and `num_training_samples` are required; every other name has AWS's default and
  range. `num_layers` 18, 34, 50, 101, 152, 200 are ImageNet-style ResNets, 20, 32, 44, 56, 110
  CIFAR-style ones (smalgos.vision.resnet); `image_shape` is "channels,height,width" (1 or 3
  channels).
- Channels: `train` and `validation` (both required, as AWS's) of MXNet RecordIO image records
  (`application/x-recordio`, one or more `.rec` files), or of image files (`application/x-image`,
  `image/jpeg`, `image/png`) listed by the `.lst` files of `train_lst` / `validation_lst`
  (then `resize` is required, as AWS says); `model` (`application/x-sagemaker-model`): a
  model.tar.gz this image wrote (incremental training) or a torchvision-format ResNet state dict
  (`.safetensors`, or `.pth` / `.pt` read with weights_only). Pipe mode reads RecordIO only
  (FullyReplicated, as AWS): the first epoch's FIFO is read whole into memory and reused every
  epoch. Augmented manifests are not implemented yet.
- Hidden keys of AWS's configuration (`_kvstore`, `_num_gpus`, `_num_kv_servers`,
  `_tuning_objective_metric`) are accepted and dropped.
- Metrics: AWS's regexes over MXNet's log lines `Epoch[k] Train-accuracy=...` and
  `Epoch[k] Validation-accuracy=...` (validation:accuracy is the tuning objective).
- Responses: one image per request → a JSON list of the class probabilities (`application/json`),
  or `{"prediction": [...]}` (`application/jsonlines`).
"""

from __future__ import annotations

import re

from smalgos.declaration import (
    CPU, FILE, FULLY_REPLICATED, GPU, MAXIMIZE, PIPE, Algorithm, Boolean, Categorical, Channel, Float,
    Hyperparameters, Integer, Interval, Metric, Serving, String,
)
from smalgos.errors import ClientError
from smalgos.formats.opaque import IMAGE_TYPES, MODEL, RECORDIO, X_IMAGE

JSON, JSONLINES, TEXT_PLAIN = "application/json", "application/jsonlines", "text/plain"
NUM_LAYERS = (18, 34, 50, 101, 152, 200, 20, 32, 44, 56, 110)
OPTIMIZERS = ("sgd", "adam", "rmsprop", "nag")
AUGMENTATIONS = ("crop", "crop_color", "crop_color_transform")
ACCEPTED_HIDDEN = ("_kvstore", "_num_gpus", "_num_kv_servers", "_tuning_objective_metric")
_UNIT = Interval(0.0, 1.0)

TRAIN_ACCURACY_REGEX = r"Epoch\S* Train-accuracy=(\S*)"
VALIDATION_ACCURACY_REGEX = r"Epoch\S* Validation-accuracy=(\S*)"


def parse_image_shape(text: str) -> tuple[int, int, int]:
    """"3,224,224" → (3, 224, 224); a ClientError naming image_shape otherwise."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 3 or not all(re.fullmatch(r"\d+", p) for p in parts):
        raise ClientError(f"Hyperparameter image_shape: {text!r} is not channels,height,width (e.g. 3,224,224)")
    c, h, w = map(int, parts)
    if c not in (1, 3):
        raise ClientError(f"Hyperparameter image_shape: {c} channels in {text!r}; 3 (RGB) or 1 (grey) are read")
    if h < 1 or w < 1:
        raise ClientError(f"Hyperparameter image_shape: height and width of {text!r} must be positive")
    return c, h, w


def _check(values: dict) -> None:
    parse_image_shape(values["image_shape"])
    every, epochs = values.get("checkpoint_frequency"), values.get("epochs")
    if every is not None and epochs is not None and every > epochs:
        raise ClientError(f"Hyperparameter checkpoint_frequency: {every} is more than epochs ({epochs})")
    top_k, classes = values.get("top_k"), values.get("num_classes")
    if top_k is not None and classes is not None and top_k > classes:
        raise ClientError(f"Hyperparameter top_k: {top_k} is more than num_classes ({classes})")
    if values.get("use_weighted_loss") and not values.get("multi_label"):
        raise ClientError("Hyperparameter use_weighted_loss: 1 needs multi_label=1 (it weighs the classes of "
                          "multi-label training)")


HYPERPARAMETERS = Hyperparameters(
    params=(
        Integer("num_classes", required=True, range=Interval(1, None), doc="number of output classes"),
        Integer("num_training_samples", required=True, range=Interval(1, None),
                doc="images in the training data (the learning-rate schedule's epoch length)"),
        Categorical("augmentation_type", default=None, choices=AUGMENTATIONS,
                    doc="crop: random crop and flip; crop_color: and hue/saturation/lightness; "
                        "crop_color_transform: and rotation, shear, aspect ratio"),
        Float("beta_1", default=0.9, range=_UNIT, doc="adam's beta1"),
        Float("beta_2", default=0.999, range=_UNIT, doc="adam's beta2"),
        Integer("checkpoint_frequency", default=None, range=Interval(1, None),
                doc="also keep the weights of every this many epochs (default: the best epoch's only)"),
        Boolean("early_stopping", default=False, doc="stop once validation accuracy stops improving"),
        Integer("early_stopping_min_epochs", default=10, range=Interval(1, None),
                doc="epochs before early stopping may stop"),
        Integer("early_stopping_patience", default=5, range=Interval(1, None),
                doc="epochs without improvement before stopping"),
        Float("early_stopping_tolerance", default=0.0, range=_UNIT,
              doc="least relative improvement of validation accuracy that counts"),
        Integer("epochs", default=30, range=Interval(1, None), doc="passes over the training data"),
        Float("eps", default=1e-8, range=_UNIT, doc="adam's and rmsprop's epsilon"),
        Float("gamma", default=0.9, range=_UNIT, doc="rmsprop's decay"),
        String("image_shape", default="3,224,224", pattern=r"\s*\d+\s*,\s*\d+\s*,\s*\d+\s*",
               doc="channels,height,width of the network's input"),
        Categorical("kv_store", default=None, choices=("dist_sync", "dist_async"),
                    doc="distributed training mode (accepted; one host trains here)"),
        Float("learning_rate", default=0.1, range=_UNIT, doc="initial learning rate"),
        Float("lr_scheduler_factor", default=0.1, range=_UNIT, doc="rate multiplier at each step epoch"),
        String("lr_scheduler_step", default=None, pattern=r"\s*\d+(\s*,\s*\d+)*\s*",
               doc="comma-separated epochs at which the rate is multiplied by lr_scheduler_factor"),
        Integer("mini_batch_size", default=32, range=Interval(1, None), doc="images per step"),
        Float("momentum", default=0.9, range=_UNIT, doc="sgd's and nag's momentum"),
        Integer("multi_label", default=0, range=Interval(0, 1), doc="1: several labels per image"),
        Categorical("num_layers", default=152, choices=NUM_LAYERS, doc="ResNet depth"),
        Categorical("optimizer", default="sgd", choices=OPTIMIZERS, doc="sgd, adam, rmsprop or nag"),
        Categorical("precision_dtype", default="float32", choices=("float32", "float16"),
                    doc="float16: mixed precision on a GPU"),
        Integer("resize", default=None, range=Interval(1, None),
                doc="shorter side of training images before cropping (required with image files)"),
        Integer("top_k", default=None, range=Interval(2, None), doc="also report top-k accuracy"),
        Integer("use_pretrained_model", default=0, range=Interval(0, 1),
                doc="1: start from ImageNet weights (from the model channel or the image)"),
        Integer("use_weighted_loss", default=0, range=Interval(0, 1),
                doc="multi-label only: weigh each class by its frequency"),
        Float("weight_decay", default=0.0001, range=_UNIT, doc="L2 coefficient"),
    ),
    validators=(_check,),
    accept_unknown=ACCEPTED_HIDDEN,
)

_DATA_TYPES = (RECORDIO, *IMAGE_TYPES)
_REPLICATED = (FULLY_REPLICATED,)

ALGORITHM = Algorithm(
    name="image-classification",
    display_name="ImageClassification",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, content_types=_DATA_TYPES, input_modes=(FILE, PIPE),
                distributions=_REPLICATED, doc="RecordIO image records (.rec), or the image files train_lst lists"),
        Channel("validation", required=True, content_types=_DATA_TYPES, input_modes=(FILE, PIPE),
                distributions=_REPLICATED, doc="accuracy every epoch, early stopping, the best epoch"),
        Channel("train_lst", content_types=(X_IMAGE, TEXT_PLAIN), input_modes=(FILE,), distributions=_REPLICATED,
                doc=".lst: index<TAB>label(s)<TAB>path relative to the train channel"),
        Channel("validation_lst", content_types=(X_IMAGE, TEXT_PLAIN), input_modes=(FILE,),
                distributions=_REPLICATED, doc=".lst of the validation images"),
        Channel("model", content_types=(MODEL,), input_modes=(FILE,), distributions=_REPLICATED,
                doc="a model.tar.gz of this algorithm, or a torchvision-format ResNet state dict"),
    ),
    metrics=(
        Metric("validation:accuracy", MAXIMIZE, VALIDATION_ACCURACY_REGEX),
        Metric("train:accuracy", MAXIMIZE, TRAIN_ACCURACY_REGEX, tunable=False),
        Metric("validation:accuracy:epoch", MAXIMIZE, VALIDATION_ACCURACY_REGEX, tunable=False),
        Metric("train:accuracy:epoch", MAXIMIZE, TRAIN_ACCURACY_REGEX, tunable=False),
    ),
    serving=Serving(content_types=IMAGE_TYPES, accepts=(JSON, JSONLINES), default_accept=JSON),
    variants=(CPU, GPU),
    doc="ResNet image classifier (He et al.), multi-class or multi-label, from scratch or from "
        "ImageNet weights.",
)
