"""Object2Vec's torch network: two encoders → comparator → MLP → output layer.

Per pair (in0, in1) of token sequences (ids padded with 0, the padding masked out everywhere, so
that its length never changes a result):

  tokens     x = E(ids)                 E: (vocab_size, token_embedding_dim); one table for both
                                        sides when tied_token_embedding_weight
  encoders   e = enc(x) ∈ R^enc_dim     pooled_embedding: the mean of the tokens' embeddings
                                        hcnn: `layers` stacked convolutions (token_embedding_dim
                                          filters of width cnn_filter_width, ReLU); each layer's
                                          output max-pooled over time; the pools of every layer
                                          (the hierarchy) concatenated
                                        bilstm: a bidirectional LSTM of `layers` layers, hidden size
                                          token_embedding_dim per direction; the last layer's final
                                          forward and backward states concatenated
                                        then a linear projection to enc_dim (none for
                                          pooled_embedding when token_embedding_dim == enc_dim)
  comparator c = [part(e0, e1) for part in comparator_list]: hadamard e0⊙e1, concat [e0; e1],
                 abs_diff |e0 − e1|
  MLP        h = dropout(c); `mlp_layers` × (Linear to mlp_dim, mlp_activation, dropout)
  output     Linear to num_classes logits (softmax, cross-entropy) or to 1 value (regression, MSE)
"""

from __future__ import annotations

import torch
from torch import nn

from .declaration import EncoderSpec

EMBEDDING_INIT_STD = 0.1  # token vectors start small (random parts of rarely seen ids stay small)
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "linear": nn.Identity}


def padding_mask(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(n, L) True where a token is, False on the padding."""
    return torch.arange(ids.shape[1], device=ids.device)[None, :] < lengths[:, None]


class PooledEmbedding(nn.Module):
    def __init__(self, spec: EncoderSpec, enc_dim: int):
        super().__init__()
        dim = spec.token_embedding_dim
        self.project = nn.Linear(dim, enc_dim) if dim != enc_dim else nn.Identity()

    def forward(self, x, mask, lengths):
        pooled = (x * mask[:, :, None]).sum(1) / lengths[:, None].to(x.dtype)
        return self.project(pooled)


class HierarchicalCNN(nn.Module):
    def __init__(self, spec: EncoderSpec, enc_dim: int):
        super().__init__()
        dim = spec.token_embedding_dim
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, spec.cnn_filter_width, padding="same")
                                   for _ in range(spec.layers))
        self.project = nn.Linear(dim * spec.layers, enc_dim)

    def forward(self, x, mask, lengths):
        keep = mask[:, None, :].to(x.dtype)
        h = x.transpose(1, 2) * keep  # (n, dim, L)
        pools = []
        for conv in self.convs:
            h = torch.relu(conv(h)) * keep  # ReLU's output is >= 0: the zeroed padding never wins the max
            pools.append(h.max(dim=2).values)
        return self.project(torch.cat(pools, dim=1))


class BiLSTM(nn.Module):
    def __init__(self, spec: EncoderSpec, enc_dim: int):
        super().__init__()
        dim = spec.token_embedding_dim
        self.lstm = nn.LSTM(dim, dim, num_layers=spec.layers, batch_first=True, bidirectional=True)
        self.project = nn.Linear(2 * dim, enc_dim)

    def forward(self, x, mask, lengths):
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.project(torch.cat([h[-2], h[-1]], dim=1))


ENCODER_CLASSES = {"pooled_embedding": PooledEmbedding, "hcnn": HierarchicalCNN, "bilstm": BiLSTM}


def comparator_width(names: list[str], enc_dim: int) -> int:
    return sum(2 * enc_dim if name == "concat" else enc_dim for name in names)


def compare(e0: torch.Tensor, e1: torch.Tensor, names: list[str]) -> torch.Tensor:
    parts = {"hadamard": lambda: e0 * e1, "concat": lambda: torch.cat([e0, e1], dim=1),
             "abs_diff": lambda: (e0 - e1).abs()}
    return torch.cat([parts[name]() for name in names], dim=1)


class Object2VecNet(nn.Module):
    """See the module docstring. `outputs`: num_classes, or 1 for regression."""

    def __init__(self, specs: tuple[EncoderSpec, EncoderSpec], enc_dim: int, comparators: list[str],
                 mlp_layers: int, mlp_dim: int, mlp_activation: str, dropout: float, outputs: int,
                 tied: bool, sparse: bool):
        super().__init__()
        self.tied, self.comparators = tied, list(comparators)
        self.embed0 = nn.Embedding(specs[0].vocab_size, specs[0].token_embedding_dim, sparse=sparse)
        self.embed1 = None if tied else nn.Embedding(specs[1].vocab_size, specs[1].token_embedding_dim,
                                                     sparse=sparse)
        self.enc0 = ENCODER_CLASSES[specs[0].network](specs[0], enc_dim)
        self.enc1 = ENCODER_CLASSES[specs[1].network](specs[1], enc_dim)
        layers: list[nn.Module] = [nn.Dropout(dropout)]
        width = comparator_width(self.comparators, enc_dim)
        for _ in range(mlp_layers):
            layers += [nn.Linear(width, mlp_dim), ACTIVATIONS[mlp_activation](), nn.Dropout(dropout)]
            width = mlp_dim
        self.mlp = nn.Sequential(*layers)
        self.output = nn.Linear(width, outputs)
        for table in self.tables():
            nn.init.normal_(table.weight, std=EMBEDDING_INIT_STD)

    def tables(self) -> list[nn.Embedding]:
        return [self.embed0] if self.tied else [self.embed0, self.embed1]

    def table(self, side: int) -> nn.Embedding:
        return self.embed0 if side == 0 or self.tied else self.embed1

    def encode(self, side: int, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(n, enc_dim): encoder `side`'s output for the sequences `ids` (n, L) of `lengths`."""
        mask = padding_mask(ids, lengths)
        encoder = self.enc0 if side == 0 else self.enc1
        return encoder(self.table(side)(ids), mask, lengths)

    def forward(self, ids0, len0, ids1, len1) -> torch.Tensor:
        c = compare(self.encode(0, ids0, len0), self.encode(1, ids1, len1), self.comparators)
        return self.output(self.mlp(c))
