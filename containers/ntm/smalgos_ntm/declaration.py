"""Neural Topic Model (`ntm:1`) as SageMaker declares it: hyperparameters, channels, metrics, serving.

Sources: AWS Developer Guide `ntm`, `ntm_hyperparameters`, `ntm-tuning`, `ntm-in-formats`; the
SageMaker Python SDK's `NTM`; the default configuration a public job log prints (see
/work/shared/spec/algorithms-neural.md §6). Standard library only.

- `num_topics` and `feature_dim` (the vocabulary size) are required; every other name has AWS's
  default and range.
- `learning_rate` defaults to **0.01**: the value AWS's image runs with (its default-input.json,
  printed by every job log), where the Developer Guide's table says 0.001. What the image does
  wins over what a page says. With the default optimizer, `adadelta`, the rate is not used at all
  (MXNet's AdaDelta takes none; see smalgos.training.neural).
- `clip_gradient` defaults to infinity (`Inf`, `Infinity` also accepted): no clipping.
- `encoder_layers`: `auto` (two layers, of 3 × num_topics and 2 × num_topics units) or a comma
  list of positive layer widths.
- Hidden keys of AWS's default configuration (`_data_format`, `_kvstore`, `_num_gpus`,
  `_num_kv_servers`) and HPO's `_tuning_objective_metric` are accepted and dropped.
- Channels: `train` (required), `validation` (early stopping on its loss), `test` (the final
  model's loss) of word-count records (recordIO-protobuf dense or sparse, or CSV without a label
  column), and `auxiliary`: `vocab.txt`, one word per line, so that topics print as words.
- Metrics: `train` / `validation` `total_loss` per epoch (the validation one is AWS's tuning
  objective; its last line is the best epoch's), `test:total_loss` of the final model.
- Responses: `topic_weights` per record in JSON `{"predictions": [...]}`, JSON Lines and
  recordIO-protobuf (`label["topic_weights"]`).
"""

from __future__ import annotations

from smalgos.declaration import (
    CPU, FILE, FULLY_REPLICATED, GPU, MINIMIZE, Algorithm, Boolean, Categorical, Channel, Float, FloatOrChoice,
    Hyperparameters, Integer, Interval, Serving, String, progress_metric, quality_metric, throughput_metric,
)

ACTIVATIONS = ("sigmoid", "tanh", "relu")
OPTIMIZERS = ("sgd", "adam", "adagrad", "adadelta", "rmsprop")  # smalgos.training.neural's, by AWS's names
NO_CLIP = ("inf", "infinity")
TEXT_PLAIN = "text/plain"
VOCABULARY_FILE = "vocab.txt"
ACCEPTED_HIDDEN = ("_data_format", "_kvstore", "_num_gpus", "_num_kv_servers", "_tuning_objective_metric")

HYPERPARAMETERS = Hyperparameters(
    params=(
        Integer("num_topics", required=True, range=Interval(2, 1000), doc="number of topics"),
        Integer("feature_dim", required=True, range=Interval(1, 1_000_000), doc="vocabulary size (words per record)"),
        Integer("mini_batch_size", default=256, range=Interval(1, 10_000), doc="documents per training step"),
        Integer("epochs", default=50, range=Interval(1, None), doc="most passes over the training data"),
        String("encoder_layers", default="auto", allow_auto=True, pattern=r"\s*[1-9]\d*(\s*,\s*[1-9]\d*)*\s*",
               doc="encoder widths, comma separated; auto: 3 x num_topics, 2 x num_topics"),
        Categorical("encoder_layers_activation", default="sigmoid", choices=ACTIVATIONS,
                    doc="activation of the encoder's layers"),
        Categorical("optimizer", default="adadelta", choices=OPTIMIZERS, doc="MXNet's optimizer of this name"),
        Float("learning_rate", default=0.01, range=Interval(1e-6, 1.0),
              doc="step size (AWS's image runs 0.01; unused by adadelta)"),
        Float("tolerance", default=0.001, range=Interval(1e-6, 0.1),
              doc="least relative improvement of the loss for an epoch to count as better"),
        Integer("num_patience_epochs", default=3, range=Interval(1, None),
                doc="epochs in a row without enough improvement before training stops"),
        Boolean("batch_norm", default=False, doc="batch normalisation after each encoder layer"),
        Float("rescale_gradient", default=1.0, range=Interval(1e-3, 1.0), doc="gradient multiplier"),
        FloatOrChoice("clip_gradient", default="inf", choices=NO_CLIP, range=Interval(1e-3, None),
                      doc="clip each gradient component to [-c, c]; Inf: no clipping"),
        Float("weight_decay", default=0.0, range=Interval(0.0, 1.0), doc="L2 coefficient"),
        Float("sub_sample", default=1.0, range=Interval(0.0, 1.0, low_inclusive=False),
              doc="share of the training mini-batches used in each epoch"),
    ),
    accept_unknown=ACCEPTED_HIDDEN,
)

_REPLICATED = (FULLY_REPLICATED,)

ALGORITHM = Algorithm(
    name="ntm",
    display_name="NTM",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, doc="word counts, one document per record"),
        Channel("validation", distributions=_REPLICATED, doc="loss every epoch; early stopping on it"),
        Channel("test", distributions=_REPLICATED, doc="the final model's loss (test:total_loss)"),
        Channel("auxiliary", content_types=(TEXT_PLAIN,), distributions=_REPLICATED, input_modes=(FILE,),
                doc=f"{VOCABULARY_FILE}: word i on line i, so that topics print as words"),
    ),
    metrics=(
        quality_metric("validation", "total_loss", MINIMIZE, per_epoch=True),
        quality_metric("train", "total_loss", MINIMIZE, per_epoch=True, tunable=False),
        quality_metric("test", "total_loss", MINIMIZE, tunable=False),
        progress_metric(),
        throughput_metric(),
    ),
    serving=Serving(),  # CSV, JSON, JSON Lines, recordIO in; JSON (default), JSON Lines, recordIO out
    variants=(CPU, GPU),
    supervised=False,
    doc="Neural variational document model (Miao et al. 2016): an encoder to a Gaussian latent, "
        "softmax topic weights, a softmax decoder over the vocabulary.",
)
