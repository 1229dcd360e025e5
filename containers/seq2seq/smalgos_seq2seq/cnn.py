"""The convolutional encoder and decoder of ConvS2S (Gehring et al. 2017), as Sockeye 1 offers
them, on torch.nn.

Both: token embeddings plus learned position embeddings (dropout `embed_dropout_*`), a linear map
to `cnn_num_hidden`, then layers of
    y = act(conv(dropout(h)))        `cnn_activation_type`: glu (the convolution gives 2 × width,
    h = (y + h) · √½                 halved by the gate), relu, softrelu, sigmoid, tanh
with dropout `cnn_hidden_dropout`. The encoder's convolutions (width `cnn_kernel_width_encoder`)
see both sides and zero the padded positions; the decoder's (`cnn_kernel_width_decoder`) are causal,
and each decoder layer attends to the encoder states (dot product of (W y + g) · √½ with them,
g the target embedding; the context added to y, scaled by √½). The attention returned is the
last layer's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import masked_softmax

ACTIVATIONS = {"relu": F.relu, "softrelu": F.softplus, "sigmoid": torch.sigmoid, "tanh": torch.tanh}
HALF = math.sqrt(0.5)


class ConvLayer(nn.Module):
    def __init__(self, width: int, kernel: int, activation: str, causal: bool, dropout: float):
        super().__init__()
        self.glu = activation == "glu"
        self.act = None if self.glu else ACTIVATIONS[activation]
        self.conv = nn.Conv1d(width, 2 * width if self.glu else width, kernel)
        self.pad = (kernel - 1, 0) if causal else ((kernel - 1) // 2, kernel // 2)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """(B, T, C) → (B, T, C), before the residual."""
        y = self.conv(F.pad(self.dropout(h).transpose(1, 2), self.pad)).transpose(1, 2)
        return F.glu(y, dim=-1) if self.glu else self.act(y)


class Embedding(nn.Module):
    """Tokens plus learned positions, then dropout and a linear map to the convolutions' width."""

    def __init__(self, vocab_size: int, num_embed: int, max_len: int, width: int, dropout: float):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, num_embed)
        self.positions = nn.Embedding(max_len, num_embed)
        self.dropout = nn.Dropout(dropout)
        self.project = nn.Linear(num_embed, width)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(ids.shape[1], device=ids.device).clamp(max=self.positions.num_embeddings - 1)
        return self.project(self.dropout(self.tokens(ids) + self.positions(pos)))


class CNNEncoder(nn.Module):
    def __init__(self, vocab_size: int, num_embed: int, max_len: int, width: int, num_layers: int, kernel: int,
                 activation: str, embed_dropout: float, hidden_dropout: float):
        super().__init__()
        self.embed = Embedding(vocab_size, num_embed, max_len, width, embed_dropout)
        self.layers = nn.ModuleList([ConvLayer(width, kernel, activation, False, hidden_dropout)
                                     for _ in range(num_layers)])
        self.num_hidden = width

    def forward(self, src: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        keep = mask.unsqueeze(-1).to(torch.float32)
        h = self.embed(src) * keep
        for layer in self.layers:
            h = (layer(h) + h) * HALF * keep
        return h


class PrefixDecoding:
    """The step API (search.py) of a decoder that reads the whole target prefix at once (`forward`)."""

    def start(self, memory: torch.Tensor, mask: torch.Tensor) -> dict:
        return {"prefix": memory.new_zeros(memory.shape[0], 0, dtype=torch.long), "memory": memory, "mask": mask}

    def step(self, prev: torch.Tensor, state: dict):
        """The next position's logits given every target token so far (recomputed: no cache)."""
        prefix = torch.cat([state["prefix"], prev.unsqueeze(1)], 1)
        logits, weights = self.forward(prefix, state["memory"], state["mask"])
        return logits[:, -1], weights[:, -1], {**state, "prefix": prefix}


class CNNDecoder(PrefixDecoding, nn.Module):
    def __init__(self, vocab_size: int, num_embed: int, max_len: int, width: int, num_layers: int, kernel: int,
                 activation: str, memory_dim: int, embed_dropout: float, hidden_dropout: float):
        super().__init__()
        self.embed = Embedding(vocab_size, num_embed, max_len, width, embed_dropout)
        self.memory = nn.Linear(memory_dim, width) if memory_dim != width else nn.Identity()
        self.layers = nn.ModuleList([ConvLayer(width, kernel, activation, True, hidden_dropout)
                                     for _ in range(num_layers)])
        self.queries = nn.ModuleList([nn.Linear(width, width) for _ in range(num_layers)])
        self.dropout = nn.Dropout(hidden_dropout)
        self.output = nn.Linear(width, vocab_size)

    def forward(self, trg_in: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor):
        g = self.embed(trg_in)
        keys = self.memory(memory)
        h = g
        weights = None
        for layer, query in zip(self.layers, self.queries):
            y = layer(h)
            weights = masked_softmax(torch.bmm((query(y) + g) * HALF, keys.transpose(1, 2)), mask)
            y = (y + torch.bmm(weights, keys)) * HALF
            h = (y + h) * HALF
        return self.output(self.dropout(h)), weights
