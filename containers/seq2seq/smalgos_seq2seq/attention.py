"""Attention of the RNN decoder, by `rnn_attention_type` (Sockeye 1's names):

- `dot`: score = q · k (the query projected to the key width when the widths differ);
- `bilinear` (Luong "general"): score = (W q) · k;
- `mlp` (Luong "concat" / Bahdanau): score = v · tanh(W_k k + W_q q), width `rnn_attention_num_hidden`;
- `fixed`: the same weight on every source position (the mean of the source states).

Queries (B, T, Q) against keys (B, S, K) with a mask (B, S) (True: a real token); padded positions
get no weight. Returns the contexts (B, T, K) and the weights (B, T, S), each row summing to 1.
"""

from __future__ import annotations

import torch
from torch import nn

ATTENTION_TYPES = ("dot", "fixed", "mlp", "bilinear")


class Attention(nn.Module):
    def __init__(self, kind: str, query_dim: int, key_dim: int, num_hidden: int):
        super().__init__()
        if kind not in ATTENTION_TYPES:
            raise ValueError(f"unknown attention type {kind!r}: one of {', '.join(ATTENTION_TYPES)}")
        self.kind = kind
        if kind == "dot" and query_dim != key_dim or kind == "bilinear":
            self.query = nn.Linear(query_dim, key_dim, bias=False)
        elif kind == "mlp":
            self.query = nn.Linear(query_dim, num_hidden, bias=False)
            self.key = nn.Linear(key_dim, num_hidden)
            self.score = nn.Linear(num_hidden, 1, bias=False)

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor):
        b, t = query.shape[0], query.shape[1]
        if self.kind == "fixed":
            scores = keys.new_zeros(b, t, keys.shape[1])
        elif self.kind == "mlp":
            hidden = torch.tanh(self.key(keys).unsqueeze(1) + self.query(query).unsqueeze(2))  # (B, T, S, A)
            scores = self.score(hidden).squeeze(-1)
        else:
            q = self.query(query) if hasattr(self, "query") else query
            scores = torch.bmm(q, keys.transpose(1, 2))
        weights = masked_softmax(scores, mask)
        return torch.bmm(weights, keys), weights


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """softmax over the last axis of (B, T, S) scores, padded positions (mask False) at 0."""
    scores = scores.masked_fill(~mask.unsqueeze(1), float("-inf"))
    return torch.softmax(scores, dim=-1)
