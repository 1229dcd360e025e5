"""Sequence-to-Sequence (`seq2seq:1`) as SageMaker declares it: hyperparameters, channels,
metrics, serving.

Sources: AWS Developer Guide `seq-2-seq`, `seq-2-seq-hyperparameters`, `seq-2-seq-tuning`, and
the example notebook's `create_vocab_proto.py` (see /work/shared/spec/algorithms-neural.md §4).
Standard library only.

- Every hyperparameter is optional, with AWS's default. `rnn_num_hidden` must be even (the first
  encoder layer is bidirectional: half the units each way); `rnn_attention_num_hidden` left
  unset is `rnn_num_hidden`; `max_num_epochs` and `momentum` are unset by default.
- `max_num_batches` is -1 (no limit) or a positive count; `bleu_sample_size` -1 (the whole
  validation set), 0 (no BLEU) or a count; a negative `clip_gradient` disables clipping.
- `optimized_metric=bleu` needs BLEU at checkpoints: `bleu_sample_size` must not be 0.
- `encoder_type` and `decoder_type` mix freely (an RNN encoder under a CNN decoder, and the reverse).
  Beside AWS's `rnn` and `cnn` they take `transformer` (our addition), sized by four hyperparameters
  of Sockeye's names that AWS's image does not have: `transformer_model_size`,
  `transformer_attention_heads`, `transformer_feed_forward_num_hidden`, `transformer_dropout`.
- Channels (all three required, File mode, FullyReplicated): `train` and `validation` of
  recordIO-wrapped protobuf Records (int32 `source` and `target` ids), and `vocab` holding
  `vocab.src.json` and `vocab.trg.json`.
- Metrics: `validation:perplexity`, `validation:accuracy`, `validation:bleu` at every checkpoint,
  the best checkpoint's last.
- Serving: JSON `{"instances": [{"data": "..."}]}`, JSON Lines `{"source": "..."}` and
  recordIO-protobuf of `source` ids in; JSON, JSON Lines and recordIO-protobuf out.
"""

from __future__ import annotations

from smalgos.declaration import (
    CPU, FILE, FULLY_REPLICATED, GPU, MAXIMIZE, MINIMIZE, RECORDIO_PROTOBUF, Algorithm, Boolean, Categorical,
    Channel, Float, Hyperparameters, Integer, Interval, Serving, progress_metric, quality_metric,
    throughput_metric,
)
from smalgos.errors import ClientError

JSON, JSONLINES = "application/json", "application/jsonlines"
VOCAB_SOURCE, VOCAB_TARGET = "vocab.src.json", "vocab.trg.json"
NETWORKS = ("rnn", "cnn", "transformer")  # transformer: ours, beside AWS's two
POSITIVE = Interval(1, None)
SHARE = Interval(0.0, 1.0)


def _check(values: dict) -> None:
    if values["rnn_num_hidden"] % 2:
        raise ClientError(f"Hyperparameter rnn_num_hidden: value {values['rnn_num_hidden']} must be even "
                          "(the first encoder layer is bidirectional: half the units each way)")
    if values["max_num_batches"] is not None and values["max_num_batches"] == 0:
        raise ClientError("Hyperparameter max_num_batches: value 0 is not allowed: -1 (no limit) or a positive "
                          "number of updates")
    if values["optimized_metric"] == "bleu" and values["bleu_sample_size"] == 0:
        raise ClientError("Hyperparameter optimized_metric: bleu needs BLEU at checkpoints: set "
                          "bleu_sample_size to a number of validation sentences, or -1 for all of them")
    size, heads = values["transformer_model_size"], values["transformer_attention_heads"]
    if "transformer" in (values["encoder_type"], values["decoder_type"]) and size % heads:
        raise ClientError(f"Hyperparameters transformer_model_size ({size}) and transformer_attention_heads ({heads}): "
                          "the model size must be a multiple of the number of heads")
    low, high = values["min_num_epochs"], values["max_num_epochs"]
    if low is not None and high is not None and low > high:
        raise ClientError(f"Hyperparameters min_num_epochs ({low}) and max_num_epochs ({high}): the minimum is "
                          "above the maximum")


HYPERPARAMETERS = Hyperparameters(
    params=(
        Integer("batch_size", default=64, range=POSITIVE, doc="sentence pairs per update"),
        Integer("beam_size", default=5, range=POSITIVE, doc="beam width of validation BLEU and of inference"),
        Integer("bleu_sample_size", default=0, range=Interval(-1, None),
                doc="validation sentences decoded for BLEU at each checkpoint; -1: all, 0: none"),
        Integer("bucket_width", default=10, range=POSITIVE, doc="step between length buckets"),
        Boolean("bucketing_enabled", default=True, doc="false: every batch unrolled to the maximum lengths"),
        Integer("checkpoint_frequency_num_batches", default=1000, range=POSITIVE,
                doc="updates between checkpoints (validation metrics, early stopping)"),
        Integer("checkpoint_threshold", default=3, range=POSITIVE,
                doc="checkpoints in a row without improvement of optimized_metric before training stops"),
        Float("clip_gradient", default=1.0, doc="clip each gradient component to [-c, c]; negative: no clipping"),
        Categorical("cnn_activation_type", default="glu", choices=("glu", "relu", "softrelu", "sigmoid", "tanh"),
                    doc="activation of the convolutional layers"),
        Float("cnn_hidden_dropout", default=0.0, range=SHARE, doc="dropout between convolutional layers"),
        Integer("cnn_kernel_width_decoder", default=5, range=POSITIVE, doc="kernel width of the CNN decoder"),
        Integer("cnn_kernel_width_encoder", default=3, range=POSITIVE, doc="kernel width of the CNN encoder"),
        Integer("cnn_num_hidden", default=512, range=POSITIVE, doc="CNN encoder and decoder width"),
        Categorical("decoder_type", default="rnn", choices=NETWORKS, doc="rnn, cnn (ConvS2S) or transformer (ours)"),
        Float("embed_dropout_source", default=0.0, range=SHARE, doc="dropout on source embeddings"),
        Float("embed_dropout_target", default=0.0, range=SHARE, doc="dropout on target embeddings"),
        Categorical("encoder_type", default="rnn", choices=NETWORKS, doc="rnn, cnn (ConvS2S) or transformer (ours)"),
        Integer("fixed_rate_lr_half_life", default=10, range=POSITIVE,
                doc="checkpoints until the fixed_rate_* schedules halve the learning rate"),
        Float("learning_rate", default=0.0003, range=Interval(0.0, None, low_inclusive=False),
              doc="initial learning rate"),
        Categorical("loss_type", default="cross-entropy", choices=("cross-entropy",), doc="training loss"),
        Categorical("lr_scheduler_type", default="plateau_reduce",
                    choices=("plateau_reduce", "fixed_rate_inv_t", "fixed_rate_inv_sqrt_t"),
                    doc="learning-rate schedule"),
        Integer("max_num_batches", default=-1, range=Interval(-1, None), doc="most updates; -1: no limit"),
        Integer("max_num_epochs", default=None, range=POSITIVE,
                doc="if set, train exactly this many epochs, improving or not"),
        Integer("max_seq_len_source", default=100, range=POSITIVE, doc="longer sources are truncated"),
        Integer("max_seq_len_target", default=100, range=POSITIVE, doc="longer targets are truncated"),
        Integer("min_num_epochs", default=0, range=Interval(0, None), doc="epochs before early stopping may stop"),
        Float("momentum", default=None, doc="momentum of sgd"),
        Integer("num_embed_source", default=512, range=POSITIVE, doc="source embedding size"),
        Integer("num_embed_target", default=512, range=POSITIVE, doc="target embedding size"),
        Integer("num_layers_decoder", default=1, range=POSITIVE, doc="decoder layers"),
        Integer("num_layers_encoder", default=1, range=POSITIVE, doc="encoder layers"),
        Categorical("optimized_metric", default="perplexity", choices=("perplexity", "accuracy", "bleu"),
                    doc="the validation metric of early stopping and of the best checkpoint"),
        Categorical("optimizer_type", default="adam", choices=("adam", "sgd", "rmsprop"), doc="optimizer"),
        Float("plateau_reduce_lr_factor", default=0.5, range=Interval(0.0, 1.0, low_inclusive=False),
              doc="learning-rate multiplier on a plateau"),
        Integer("plateau_reduce_lr_threshold", default=3, range=POSITIVE,
                doc="checkpoints without improvement before the learning rate is multiplied by the factor"),
        Boolean("rnn_attention_in_upper_layers", default=True,
                doc="feed the attention context to the upper decoder layers (GNMT); needs more than one layer"),
        Integer("rnn_attention_num_hidden", default=None, range=POSITIVE,
                doc="attention width; unset: rnn_num_hidden"),
        Categorical("rnn_attention_type", default="mlp", choices=("dot", "fixed", "mlp", "bilinear"),
                    doc="dot, fixed (uniform), mlp (Luong concat), bilinear (Luong general)"),
        Categorical("rnn_cell_type", default="lstm", choices=("lstm", "gru"), doc="recurrent cell"),
        Categorical("rnn_decoder_state_init", default="last", choices=("last", "avg", "zero"),
                    doc="decoder state from the encoder's last state, its average, or zeros"),
        Integer("rnn_first_residual_layer", default=2, range=POSITIVE,
                doc="first layer with a residual connection"),
        Integer("rnn_num_hidden", default=1024, range=Interval(2, None), doc="RNN width (even)"),
        Boolean("rnn_residual_connections", default=False, doc="residual connections between stacked RNN layers"),
        Float("rnn_decoder_hidden_dropout", default=0.0, range=SHARE,
              doc="dropout on the decoder's context + hidden combination"),
        Categorical("training_metric", default="perplexity", choices=("perplexity", "accuracy"),
                    doc="the training metric printed at checkpoints"),
        Float("weight_decay", default=0.0, range=Interval(0.0, None), doc="L2 coefficient"),
        Float("weight_init_scale", default=2.34, doc="scale of the uniform and xavier initialisations"),
        Categorical("weight_init_type", default="xavier", choices=("uniform", "xavier"), doc="initialisation"),
        Categorical("xavier_factor_type", default="in", choices=("in", "out", "avg"), doc="xavier's fan"),
        # ours (not AWS's): the transformer encoder/decoder type, by Sockeye's names and defaults
        Integer("transformer_model_size", default=512, range=POSITIVE, doc="transformer width (ours)"),
        Integer("transformer_attention_heads", default=8, range=POSITIVE, doc="attention heads (ours)"),
        Integer("transformer_feed_forward_num_hidden", default=2048, range=POSITIVE,
                doc="feed-forward width of the transformer layers (ours)"),
        Float("transformer_dropout", default=0.1, range=SHARE, doc="dropout in the transformer layers (ours)"),
    ),
    validators=(_check,),
    accept_unknown=("_tuning_objective_metric",),
)

_ONE_FILE_SET = dict(input_modes=(FILE,), distributions=(FULLY_REPLICATED,))

ALGORITHM = Algorithm(
    name="seq2seq",
    display_name="seq2seq",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, content_types=(RECORDIO_PROTOBUF,), **_ONE_FILE_SET,
                doc="recordIO-protobuf Records: int32 source and target ids"),
        Channel("validation", required=True, content_types=(RECORDIO_PROTOBUF,), **_ONE_FILE_SET,
                doc="as train: checkpoint metrics and early stopping"),
        Channel("vocab", required=True, content_types=(JSON, RECORDIO_PROTOBUF), **_ONE_FILE_SET,
                doc=f"{VOCAB_SOURCE} and {VOCAB_TARGET}: {{token: id}}, <pad>=0 <unk>=1 <s>=2 </s>=3"),
    ),
    metrics=(
        quality_metric("validation", "perplexity", MINIMIZE, per_epoch=True),
        quality_metric("validation", "accuracy", MAXIMIZE, per_epoch=True),
        quality_metric("validation", "bleu", MAXIMIZE, per_epoch=True),
        quality_metric("train", "perplexity", MINIMIZE, per_epoch=True, tunable=False),
        quality_metric("train", "accuracy", MAXIMIZE, per_epoch=True, tunable=False),
        progress_metric(),
        throughput_metric(),
    ),
    serving=Serving(content_types=(JSON, JSONLINES, RECORDIO_PROTOBUF),
                    accepts=(JSON, JSONLINES, RECORDIO_PROTOBUF), default_accept=JSON),
    variants=(CPU, GPU),
    doc="Encoder-decoder with attention (Sockeye 1's RNN and ConvS2S models) with beam search.",
)
