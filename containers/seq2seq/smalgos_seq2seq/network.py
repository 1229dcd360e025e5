"""The encoder-decoder network a configuration describes, its initialisation, and its loss.

    net = build_network(config)                 # config: Sockeye-style settings (see `network_config`)
    memory, mask = net.encode(src)              # src (B, S) ids, 0 = padding
    logits, attention = net(src, trg_in)        # teacher forcing
    state = net.decoder.start(memory, mask); net.decoder.step(prev, state)   # one decoding step

Weights (matrices and embeddings) start as `weight_init_type`: `xavier` is MXNet's
Xavier(uniform, factor_type, magnitude = weight_init_scale): U(±√(scale / fan)), fan the input
width (`in`), the output width (`out`) or their mean (`avg`); `uniform` is U(±weight_init_scale).
Biases start at 0, layer norms (the transformer's) as the identity.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .cnn import CNNDecoder, CNNEncoder
from .rnn import RNNDecoder, RNNEncoder
from .transformer import TransformerDecoder, TransformerEncoder
from .vocab import PAD

# The hyperparameters that shape the network (saved with the model).
ARCHITECTURE = (
    "encoder_type", "decoder_type", "num_embed_source", "num_embed_target", "num_layers_encoder",
    "num_layers_decoder", "rnn_cell_type", "rnn_num_hidden", "rnn_attention_type", "rnn_attention_num_hidden",
    "rnn_attention_in_upper_layers", "rnn_decoder_state_init", "rnn_residual_connections",
    "rnn_first_residual_layer", "rnn_decoder_hidden_dropout", "cnn_num_hidden", "cnn_kernel_width_encoder",
    "cnn_kernel_width_decoder", "cnn_activation_type", "cnn_hidden_dropout", "embed_dropout_source",
    "embed_dropout_target", "max_seq_len_source", "max_seq_len_target", "transformer_model_size",
    "transformer_attention_heads", "transformer_feed_forward_num_hidden", "transformer_dropout",
)


def network_config(hp: dict, source_vocab: int, target_vocab: int) -> dict:
    config = {k: hp[k] for k in ARCHITECTURE}
    if config["rnn_attention_num_hidden"] is None:
        config["rnn_attention_num_hidden"] = config["rnn_num_hidden"]
    return {**config, "source_vocab_size": int(source_vocab), "target_vocab_size": int(target_vocab)}


class Seq2SeqNet(nn.Module):
    def __init__(self, c: dict):
        super().__init__()
        if c["encoder_type"] == "rnn":
            self.encoder = RNNEncoder(c["source_vocab_size"], c["num_embed_source"], c["rnn_num_hidden"],
                                      c["num_layers_encoder"], c["rnn_cell_type"], c["embed_dropout_source"],
                                      c["rnn_residual_connections"], c["rnn_first_residual_layer"])
        elif c["encoder_type"] == "transformer":
            self.encoder = TransformerEncoder(c["source_vocab_size"], c["num_embed_source"],
                                              *_transformer(c), c["num_layers_encoder"], c["embed_dropout_source"],
                                              c["transformer_dropout"])
        else:
            self.encoder = CNNEncoder(c["source_vocab_size"], c["num_embed_source"], c["max_seq_len_source"] + 2,
                                      c["cnn_num_hidden"], c["num_layers_encoder"], c["cnn_kernel_width_encoder"],
                                      c["cnn_activation_type"], c["embed_dropout_source"], c["cnn_hidden_dropout"])
        memory = self.encoder.num_hidden
        if c["decoder_type"] == "rnn":
            self.decoder = RNNDecoder(c["target_vocab_size"], c["num_embed_target"], c["rnn_num_hidden"],
                                      c["num_layers_decoder"], c["rnn_cell_type"], memory, c["rnn_attention_type"],
                                      c["rnn_attention_num_hidden"], c["rnn_attention_in_upper_layers"],
                                      c["rnn_decoder_state_init"], c["embed_dropout_target"],
                                      c["rnn_decoder_hidden_dropout"], c["rnn_residual_connections"],
                                      c["rnn_first_residual_layer"])
        elif c["decoder_type"] == "transformer":
            self.decoder = TransformerDecoder(c["target_vocab_size"], c["num_embed_target"], *_transformer(c),
                                              c["num_layers_decoder"], memory, c["embed_dropout_target"],
                                              c["transformer_dropout"])
        else:
            self.decoder = CNNDecoder(c["target_vocab_size"], c["num_embed_target"], c["max_seq_len_target"] + 2,
                                      c["cnn_num_hidden"], c["num_layers_decoder"], c["cnn_kernel_width_decoder"],
                                      c["cnn_activation_type"], memory, c["embed_dropout_target"],
                                      c["cnn_hidden_dropout"])

    def encode(self, src: torch.Tensor):
        mask = src != PAD
        return self.encoder(src, mask), mask

    def forward(self, src: torch.Tensor, trg_in: torch.Tensor):
        memory, mask = self.encode(src)
        return self.decoder(trg_in, memory, mask)


def _transformer(c: dict) -> tuple:
    return (c["transformer_model_size"], c["transformer_attention_heads"], c["transformer_feed_forward_num_hidden"])


def initialise(net: nn.Module, kind: str, scale: float, factor_type: str, generator: torch.Generator) -> None:
    with torch.no_grad():
        for name, p in net.named_parameters():
            if p.dim() < 2:
                p.zero_()
                continue
            if kind == "uniform":
                bound = abs(scale)
            else:
                fan_out, fan_in = p.shape[0], int(p[0].numel())
                fan = {"in": fan_in, "out": fan_out, "avg": (fan_in + fan_out) / 2}[factor_type]
                bound = math.sqrt(abs(scale) / fan)
            p.copy_(torch.empty(p.shape).uniform_(-bound, bound, generator=generator))
        for module in net.modules():  # layer norms start as the identity
            if isinstance(module, nn.LayerNorm):
                module.reset_parameters()


def build_network(config: dict, seed: int = 0, init: tuple = ("xavier", 2.34, "in")) -> Seq2SeqNet:
    torch.manual_seed(seed)
    net = Seq2SeqNet(config)
    initialise(net, *init, generator=torch.Generator().manual_seed(seed))
    return net


def token_loss(logits: torch.Tensor, target: torch.Tensor):
    """Summed cross-entropy over non-pad target positions, their count, and how many argmax got right."""
    flat, gold = logits.reshape(-1, logits.shape[-1]), target.reshape(-1)
    keep = gold != PAD
    nll = F.cross_entropy(flat, gold, ignore_index=PAD, reduction="sum")
    correct = ((flat.argmax(-1) == gold) & keep).sum()
    return nll, keep.sum(), correct
