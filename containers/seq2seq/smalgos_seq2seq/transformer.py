"""A Transformer encoder and decoder (Vaswani et al. 2017, pre-layer-norm as Sockeye 2+), our
addition beside AWS's RNN and ConvS2S: `encoder_type` / `decoder_type` `transformer`, sized by
`transformer_model_size`, `transformer_attention_heads`, `transformer_feed_forward_num_hidden`,
`transformer_dropout` and `num_layers_encoder` / `num_layers_decoder` (Sockeye's names).

Tokens are embedded at `num_embed_*` (mapped to the model size when it differs), scaled by √d and
added to fixed sinusoidal positions. Each decoder layer's cross-attention returns its weights
averaged over the heads; the attention returned is the last layer's.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .cnn import PrefixDecoding


def sinusoids(length: int, d: int, device) -> torch.Tensor:
    pos = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    rate = torch.exp(torch.arange(0, d, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / d))
    out = torch.zeros(length, d, device=device)
    out[:, 0::2] = torch.sin(pos * rate)
    out[:, 1::2] = torch.cos(pos * rate)[:, :d // 2]
    return out


class Embedding(nn.Module):
    def __init__(self, vocab_size: int, num_embed: int, d: int, dropout: float):
        super().__init__()
        self.tokens = nn.Embedding(vocab_size, num_embed)
        self.project = nn.Linear(num_embed, d) if num_embed != d else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.d = d

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.project(self.tokens(ids)) * math.sqrt(self.d)
        return self.dropout(x + sinusoids(ids.shape[1], self.d, ids.device))


class Block(nn.Module):
    """Self-attention (+ cross-attention in the decoder) and a feed-forward layer, each pre-normed
    and residual."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float, cross: bool):
        super().__init__()
        self.self_attention = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm_self = nn.LayerNorm(d)
        self.cross = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True) if cross else None
        self.norm_cross = nn.LayerNorm(d) if cross else None
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ff, d))
        self.norm_ff = nn.LayerNorm(d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x, pad=None, causal=None, memory=None, memory_pad=None):
        h = self.norm_self(x)
        x = x + self.dropout(self.self_attention(h, h, h, key_padding_mask=pad, attn_mask=causal,
                                                 need_weights=False)[0])
        weights = None
        if self.cross is not None:
            h = self.norm_cross(x)
            a, weights = self.cross(h, memory, memory, key_padding_mask=memory_pad, need_weights=True,
                                    average_attn_weights=True)
            x = x + self.dropout(a)
        return x + self.dropout(self.ff(self.norm_ff(x))), weights


class TransformerEncoder(nn.Module):
    def __init__(self, vocab_size: int, num_embed: int, d: int, heads: int, ff: int, num_layers: int,
                 embed_dropout: float, dropout: float):
        super().__init__()
        self.embed = Embedding(vocab_size, num_embed, d, embed_dropout)
        self.layers = nn.ModuleList([Block(d, heads, ff, dropout, cross=False) for _ in range(num_layers)])
        self.norm = nn.LayerNorm(d)
        self.num_hidden = d

    def forward(self, src: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = self.embed(src)
        for layer in self.layers:
            x = layer(x, pad=~mask)[0]
        return self.norm(x) * mask.unsqueeze(-1)


class TransformerDecoder(PrefixDecoding, nn.Module):
    def __init__(self, vocab_size: int, num_embed: int, d: int, heads: int, ff: int, num_layers: int,
                 memory_dim: int, embed_dropout: float, dropout: float):
        super().__init__()
        self.embed = Embedding(vocab_size, num_embed, d, embed_dropout)
        self.memory = nn.Linear(memory_dim, d) if memory_dim != d else nn.Identity()
        self.layers = nn.ModuleList([Block(d, heads, ff, dropout, cross=True) for _ in range(num_layers)])
        self.norm = nn.LayerNorm(d)
        self.output = nn.Linear(d, vocab_size)

    def forward(self, trg_in: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor):
        t = trg_in.shape[1]
        causal = torch.triu(torch.ones(t, t, dtype=torch.bool, device=trg_in.device), 1)
        keys = self.memory(memory)
        x, weights = self.embed(trg_in), None
        for layer in self.layers:
            x, weights = layer(x, causal=causal, memory=keys, memory_pad=~mask)
        return self.output(self.norm(x)), weights
