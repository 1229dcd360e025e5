"""Object2Vec (`object2vec:1`) as SageMaker declares it: hyperparameters, channels, metrics, serving.

Sources: AWS Developer Guide `object2vec`, `object2vec-hyperparameters`, `object2vec-tuning`,
`object2vec-training-formats`, `object2vec-inference-formats`, `object2vec-encoder-embeddings`;
the SageMaker Python SDK's `Object2Vec` validators (see /work/shared/spec/algorithms-neural.md §5).
Standard library only.

- `enc0_max_seq_len` and `enc0_vocab_size` are required. `enc1_network=enc0` (the default) gives
  the second encoder enc0's architecture and settings (network, layers, filter width, token
  embedding size, pretrained files) with weights of its own; `enc1_vocab_size` and
  `enc1_max_seq_len` then default to enc0's. With any other `enc1_network` both are required.
- `epochs` defaults to 30 (the Developer Guide's table; the console shows 20). `mlp_layers` is
  0–10 as the Developer Guide says (the SDK's validator says 1–10): 0 feeds the comparator straight
  to the output layer. `negative_sampling_rate` is 0–100 (the SDK's range).
- `comparator_list`: a comma list of `hadamard`, `concat`, `abs_diff`, each at most once, in the
  order the comparator concatenates them.
- `tied_token_embedding_weight` needs both encoders' vocabularies and token embeddings of one size.
- `token_embedding_storage_type=row_sparse` trains the token embeddings with sparse row gradients
  (only the rows a mini-batch touches are updated: MXNet's lazy update): optimizer `adam`
  (torch's SparseAdam, lazy Adam), `adagrad` or `sgd` only.
- `early_stopping_tolerance` is an absolute reduction of the validation loss.
- Hidden keys of AWS's configuration (`_kvstore`, `_num_gpus`, `_num_kv_servers`) and HPO's
  `_tuning_objective_metric` are accepted and dropped.
- Channels: `train` (required), `validation`, `test` of JSON Lines `{"label", "in0", "in1"}`;
  `auxiliary` holding the vocabulary (JSON `{"word": id}`) and pretrained embedding (GloVe text)
  files named by `enc*_vocab_file` / `enc*_pretrained_embedding_file`. File mode only.
- Metrics: accuracy and cross_entropy (softmax) or mean_squared_error (regression), per epoch on
  `train` and `validation`, and once on `test`.
- Serving: JSON and JSON Lines in and out (serve.py): pairs get `scores`, one side `embeddings`.
"""

from __future__ import annotations

from dataclasses import dataclass

from smalgos.declaration import (
    AUTO, CPU, FILE, FULLY_REPLICATED, GPU, MAXIMIZE, MINIMIZE, SHARDED, Algorithm, Boolean, Categorical, Channel,
    Float, Hyperparameters, Integer, Interval, Serving, String, progress_metric, quality_metric, throughput_metric,
)
from smalgos.errors import ClientError

JSON, JSONLINES, TEXT_PLAIN = "application/json", "application/jsonlines", "text/plain"
ENCODERS = ("hcnn", "bilstm", "pooled_embedding")
SAME_AS_ENC0 = "enc0"
COMPARATORS = ("hadamard", "concat", "abs_diff")
SOFTMAX, MSE = "softmax", "mean_squared_error"
OPTIMIZERS = ("adadelta", "adagrad", "adam", "sgd", "rmsprop")
SPARSE_OPTIMIZERS = ("adam", "adagrad", "sgd")
ROW_SPARSE = "row_sparse"
ACCEPTED_HIDDEN = ("_kvstore", "_num_gpus", "_num_kv_servers", "_tuning_objective_metric")
_COMPARATOR_PATTERN = r"\s*({0})(\s*,\s*({0}))*\s*".format("|".join(COMPARATORS))
_FILE_NAME = r"[A-Za-z0-9._]*"
ENCODER_SIDES = ("enc0", "enc1")


def comparators(value: str) -> list[str]:
    """`comparator_list`'s names, in order."""
    return [p.strip() for p in str(value).split(",") if p.strip()]


def _encoder_params(side: str) -> tuple:
    required = side == "enc0"
    return (
        Integer(f"{side}_max_seq_len", required=required, range=Interval(1, 5000),
                doc="longest token sequence read (longer ones are cut)"
                    + ("" if required else "; default enc0's when enc1_network is enc0")),
        Integer(f"{side}_vocab_size", required=required, range=Interval(2, 3_000_000),
                doc="token ids are 0 .. vocab_size-1" + ("" if required else "; default enc0's when enc1_network is enc0")),
        Integer(f"{side}_cnn_filter_width", default=3, range=Interval(1, 9), doc="hcnn: convolution width"),
        Boolean(f"{side}_freeze_pretrained_embedding", default=True,
                doc="keep the pretrained token embeddings fixed while training"),
        Integer(f"{side}_layers", default="auto", allow_auto=True, range=Interval(1, 4),
                doc="hcnn: convolution layers, bilstm: LSTM layers; auto: hcnn 4, bilstm 1"),
        String(f"{side}_pretrained_embedding_file", default="", pattern=_FILE_NAME,
               doc="GloVe-format text file in the auxiliary channel (word v1 ... vd per line)"),
        Integer(f"{side}_token_embedding_dim", default=300, range=Interval(2, 1000), doc="token embedding size"),
        String(f"{side}_vocab_file", default="", pattern=_FILE_NAME,
               doc='JSON {"word": id} in the auxiliary channel: which row each pretrained vector fills'),
    )


def _check_encoders(hp: dict) -> None:
    if hp.get("enc1_network") != SAME_AS_ENC0:
        missing = [n for n in ("enc1_vocab_size", "enc1_max_seq_len") if hp.get(n) is None]
        if missing:
            raise ClientError(f"Hyperparameter{'s' if len(missing) > 1 else ''} {' and '.join(missing)} "
                              f"{'are' if len(missing) > 1 else 'is'} required when enc1_network is "
                              f"{hp.get('enc1_network')} (only enc1_network=enc0 takes enc0's)")
    for side in ENCODER_SIDES:
        if hp.get(f"{side}_pretrained_embedding_file") and not hp.get(f"{side}_vocab_file"):
            raise ClientError(f"Hyperparameter {side}_pretrained_embedding_file needs {side}_vocab_file: the "
                              "vocabulary file says which token id each pretrained vector belongs to")


def _check_tied(hp: dict) -> None:
    if not hp.get("tied_token_embedding_weight"):
        return
    same = hp.get("enc1_network") == SAME_AS_ENC0
    for name in ("vocab_size", "token_embedding_dim"):
        a = hp.get(f"enc0_{name}")
        b = hp.get(f"enc1_{name}")
        b = a if (b is None or (same and name == "token_embedding_dim")) else b
        if a is not None and a != b:
            raise ClientError(f"Hyperparameter tied_token_embedding_weight=true needs one token embedding table for "
                              f"both encoders: enc0_{name} ({a}) and enc1_{name} ({b}) must be equal")


def _check_comparators(hp: dict) -> None:
    names = comparators(hp.get("comparator_list") or "")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ClientError(f"Hyperparameter comparator_list: {', '.join(twice)} listed more than once")


def _check_sparse(hp: dict) -> None:
    if hp.get("token_embedding_storage_type") == ROW_SPARSE and hp.get("optimizer") not in SPARSE_OPTIMIZERS:
        raise ClientError(f"Hyperparameter token_embedding_storage_type=row_sparse trains with sparse row "
                          f"gradients, which optimizer {hp.get('optimizer')} does not take: use one of "
                          f"{', '.join(SPARSE_OPTIMIZERS)}")


HYPERPARAMETERS = Hyperparameters(
    params=(
        *_encoder_params("enc0"),
        Categorical("enc0_network", default="hcnn", choices=ENCODERS, doc="the encoder of in0"),
        *_encoder_params("enc1"),
        Categorical("enc1_network", default=SAME_AS_ENC0, choices=(SAME_AS_ENC0,) + ENCODERS,
                    doc="the encoder of in1; enc0: enc0's architecture and settings, weights of its own"),
        Integer("enc_dim", default=4096, range=Interval(4, 10_000), doc="size of each encoder's output"),
        Integer("bucket_width", default=0, range=Interval(0, 100),
                doc="0: off; else mini-batches of sequences whose lengths fall in one bucket of this width"),
        String("comparator_list", default="hadamard, concat, abs_diff", pattern=_COMPARATOR_PATTERN,
               doc="what the comparator concatenates: hadamard (e0*e1), concat ([e0; e1]), abs_diff (|e0-e1|)"),
        Float("dropout", default=0.0, range=Interval(0.0, 1.0), doc="dropout rate of the MLP's layers"),
        Integer("early_stopping_patience", default=3, range=Interval(1, 5),
                doc="epochs without enough improvement of the validation loss before training stops"),
        Float("early_stopping_tolerance", default=0.01, range=Interval(1e-6, 0.1),
              doc="least reduction of the validation loss for an epoch to count as better"),
        Integer("epochs", default=30, range=Interval(1, 100), doc="most passes over the training data"),
        Float("learning_rate", default=0.0004, range=Interval(1e-6, 1.0), doc="step size"),
        Integer("mini_batch_size", default=32, range=Interval(1, 10_000), doc="pairs per training step"),
        Categorical("mlp_activation", default="linear", choices=("tanh", "relu", "linear"),
                    doc="activation of the MLP's hidden layers"),
        Integer("mlp_dim", default=512, range=Interval(2, 10_000), doc="width of the MLP's hidden layers"),
        Integer("mlp_layers", default=2, range=Interval(0, 10), doc="hidden layers of the MLP"),
        Integer("negative_sampling_rate", default=0, range=Interval(0, 100),
                doc="negative pairs (in1 of another record, label 0) made for each pair"),
        Integer("num_classes", default=2, range=Interval(2, 30), doc="classes of a softmax output (labels 0 .. k-1)"),
        Categorical("optimizer", default="adam", choices=OPTIMIZERS, doc="MXNet's optimizer of this name"),
        Categorical("output_layer", default=SOFTMAX, choices=(SOFTMAX, MSE),
                    doc="softmax: classification (cross-entropy); mean_squared_error: regression"),
        Boolean("tied_token_embedding_weight", default=False, doc="one token embedding table for both encoders"),
        Categorical("token_embedding_storage_type", default="dense", choices=("dense", ROW_SPARSE),
                    doc="row_sparse: sparse row gradients for the token embeddings (adam, adagrad, sgd)"),
        Float("weight_decay", default=0.0, range=Interval(0.0, 10_000.0), doc="L2 coefficient"),
    ),
    validators=(_check_encoders, _check_tied, _check_comparators, _check_sparse),
    accept_unknown=ACCEPTED_HIDDEN,
)

_REPLICATED = (FULLY_REPLICATED,)
_DATA = dict(content_types=(JSONLINES,), input_modes=(FILE,), distributions=(FULLY_REPLICATED, SHARDED))


def _quality(kind: str) -> tuple:
    if kind == MSE:
        pairs = (("mean_squared_error", MINIMIZE),)
    else:
        pairs = (("accuracy", MAXIMIZE), ("cross_entropy", MINIMIZE))
    return tuple(m for name, direction in pairs for m in (
        quality_metric("validation", name, direction, per_epoch=True),
        quality_metric("test", name, direction),
        quality_metric("train", name, direction, per_epoch=True, tunable=False)))


ALGORITHM = Algorithm(
    name="object2vec",
    display_name="Object2Vec",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, doc='JSON Lines {"label": 1, "in0": [ids], "in1": [ids]}', **_DATA),
        Channel("validation", doc="metrics every epoch; early stopping on its loss", **_DATA),
        Channel("test", doc="the final model's metrics", **_DATA),
        Channel("auxiliary", content_types=(JSON, TEXT_PLAIN), distributions=_REPLICATED, input_modes=(FILE,),
                doc="vocabulary (JSON) and pretrained embedding (GloVe text) files named by enc*_vocab_file "
                    "and enc*_pretrained_embedding_file"),
    ),
    metrics=(*_quality(SOFTMAX), *_quality(MSE), progress_metric(), throughput_metric()),
    serving=Serving(content_types=(JSON, JSONLINES), accepts=(JSON, JSONLINES)),
    variants=(CPU, GPU),
    doc="Two encoders (pooled embedding, hierarchical CNN or BiLSTM) of token sequences, a comparator "
        "and an MLP to class probabilities or a regression value; the encoders also serve embeddings.",
)


# ---------------------------------------------------------------------------------------------
# Each encoder's settings, as the hyperparameters resolve them
# ---------------------------------------------------------------------------------------------

AUTO_LAYERS = {"hcnn": 4, "bilstm": 1, "pooled_embedding": 1}  # enc*_layers=auto (pooled_embedding has none)
ARCHITECTURE = ("network", "layers", "cnn_filter_width", "token_embedding_dim", "freeze_pretrained_embedding",
                "pretrained_embedding_file", "vocab_file")


@dataclass(frozen=True)
class EncoderSpec:
    """One encoder's settings: enc1's are enc0's architecture when enc1_network is enc0."""

    network: str
    vocab_size: int
    max_seq_len: int
    token_embedding_dim: int
    layers: int
    cnn_filter_width: int
    freeze_pretrained_embedding: bool
    pretrained_embedding_file: str
    vocab_file: str

    def describe(self) -> dict:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def encoder_spec(hp: dict, side: str) -> EncoderSpec:
    """The settings of encoder `side` ("enc0" or "enc1") from parsed hyperparameters."""
    source = "enc0" if side == "enc1" and hp["enc1_network"] == SAME_AS_ENC0 else side
    values = {name: hp[f"{source}_{name}"] for name in ARCHITECTURE}
    if values["layers"] == AUTO:
        values["layers"] = AUTO_LAYERS[values["network"]]
    for name in ("vocab_size", "max_seq_len"):
        own = hp.get(f"{side}_{name}")
        values[name] = own if own is not None else hp[f"enc0_{name}"]
    return EncoderSpec(**values)


def ignored_enc1_settings(hp: dict) -> list[str]:
    """enc1 architecture hyperparameters set apart from enc0's but unused, enc1_network being enc0."""
    if hp["enc1_network"] != SAME_AS_ENC0:
        return []
    return [f"enc1_{name}" for name in ARCHITECTURE[1:]
            if hp[f"enc1_{name}"] != HYPERPARAMETERS[f"enc1_{name}"].default and hp[f"enc1_{name}"] != hp[f"enc0_{name}"]]
