"""The RNN encoder and decoder of Sockeye 1, on torch.nn.

Encoder: source embeddings (dropout `embed_dropout_source`) → a bidirectional first layer of
`rnn_num_hidden` / 2 units each way → `num_layers_encoder` − 1 unidirectional layers of
`rnn_num_hidden`; with `rnn_residual_connections`, layer l (1-based) from
`rnn_first_residual_layer` on adds its input to its output (from layer 2: the first layer's input
is an embedding of another width).

Decoder, one step (input feeding, as Sockeye 1):
    x   = [embed(y_{t-1}); h̃_{t-1}]
    s¹  = cell₁(x)                      attention query: s¹ if `rnn_attention_in_upper_layers` and
    sˡ  = cellₗ([sˡ⁻¹; c_t] or sˡ⁻¹)    more than one layer (GNMT), else the top layer's output
    c_t = attention(query, encoder states)
    h̃_t = dropout(tanh(W [s^top; c_t]))   `rnn_decoder_hidden_dropout`
    p   = softmax(W_o h̃_t)
The state starts from the encoder (`rnn_decoder_state_init`): `last` (the top encoder state at
the last source token), `avg` (the mean of the encoder states), each through tanh(Linear) per
layer (and per LSTM cell state), or `zero`.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .attention import Attention

CELLS = {"lstm": (nn.LSTM, nn.LSTMCell), "gru": (nn.GRU, nn.GRUCell)}


def residual_layer(layer: int, residual: bool, first_residual_layer: int) -> bool:
    """Whether 0-based `layer` (of a stack whose layers from the second on keep their width) adds
    its input to its output."""
    return residual and layer >= 1 and layer + 1 >= first_residual_layer


class RNNEncoder(nn.Module):
    def __init__(self, vocab_size: int, num_embed: int, num_hidden: int, num_layers: int, cell: str,
                 embed_dropout: float, residual: bool, first_residual_layer: int):
        super().__init__()
        rnn = CELLS[cell][0]
        self.embed = nn.Embedding(vocab_size, num_embed)
        self.dropout = nn.Dropout(embed_dropout)
        self.layers = nn.ModuleList([rnn(num_embed, num_hidden // 2, batch_first=True, bidirectional=True)] +
                                    [rnn(num_hidden, num_hidden, batch_first=True) for _ in range(num_layers - 1)])
        self.residual = [residual_layer(i, residual, first_residual_layer) for i in range(num_layers)]
        self.num_hidden = num_hidden

    def forward(self, src: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(1).clamp(min=1).cpu()
        x = self.dropout(self.embed(src))
        for layer, residual in zip(self.layers, self.residual):
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, _ = pad_packed_sequence(layer(packed)[0], batch_first=True, total_length=src.shape[1])
            x = out + x if residual else out
        return x * mask.unsqueeze(-1)


class RNNDecoder(nn.Module):
    def __init__(self, vocab_size: int, num_embed: int, num_hidden: int, num_layers: int, cell: str,
                 memory_dim: int, attention_type: str, attention_num_hidden: int, attention_in_upper_layers: bool,
                 state_init: str, embed_dropout: float, hidden_dropout: float, residual: bool,
                 first_residual_layer: int):
        super().__init__()
        cell_class = CELLS[cell][1]
        self.lstm = cell == "lstm"
        self.upper_attention = attention_in_upper_layers and num_layers > 1
        context = memory_dim if self.upper_attention else 0
        self.embed = nn.Embedding(vocab_size, num_embed)
        self.dropout = nn.Dropout(embed_dropout)
        self.cells = nn.ModuleList([cell_class(num_embed + num_hidden, num_hidden)] +
                                   [cell_class(num_hidden + context, num_hidden) for _ in range(num_layers - 1)])
        self.residual = [residual_layer(i, residual, first_residual_layer) for i in range(num_layers)]
        self.attention = Attention(attention_type, num_hidden, memory_dim, attention_num_hidden)
        self.hidden = nn.Linear(num_hidden + memory_dim, num_hidden)
        self.hidden_dropout = nn.Dropout(hidden_dropout)
        self.output = nn.Linear(num_hidden, vocab_size)
        self.state_init = state_init
        if state_init != "zero":
            self.init = nn.ModuleList([nn.Linear(memory_dim, num_hidden)
                                       for _ in range(num_layers * (2 if self.lstm else 1))])
        self.num_hidden, self.num_layers = num_hidden, num_layers

    def start(self, memory: torch.Tensor, mask: torch.Tensor) -> dict:
        b = memory.shape[0]
        if self.state_init == "zero":
            states = [memory.new_zeros(b, self.num_hidden) for _ in range(self.num_layers * (2 if self.lstm else 1))]
        else:
            if self.state_init == "last":
                last = (mask.sum(1) - 1).clamp(min=0)
                summary = memory[torch.arange(b, device=memory.device), last]
            else:
                summary = memory.sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
            states = [torch.tanh(f(summary)) for f in self.init]
        return {"h": states[:self.num_layers], "c": states[self.num_layers:], "feed": memory.new_zeros(b, self.num_hidden),
                "memory": memory, "mask": mask}

    def step(self, prev: torch.Tensor, state: dict):
        memory, mask = state["memory"], state["mask"]
        x = torch.cat([self.dropout(self.embed(prev)), state["feed"]], -1)
        hs, cs = [], []
        context = weights = None
        out = x
        for i, cell in enumerate(self.cells):
            if i == 1 and self.upper_attention:
                context, weights = self.attention(out.unsqueeze(1), memory, mask)
            inp = torch.cat([out, context.squeeze(1)], -1) if i >= 1 and self.upper_attention else out
            if self.lstm:
                h, c = cell(inp, (state["h"][i], state["c"][i]))
                cs.append(c)
            else:
                h = cell(inp, state["h"][i])
            hs.append(h)
            out = h + out if self.residual[i] else h
        if not self.upper_attention:
            context, weights = self.attention(out.unsqueeze(1), memory, mask)
        hidden = self.hidden_dropout(torch.tanh(self.hidden(torch.cat([out, context.squeeze(1)], -1))))
        new = {"h": hs, "c": cs, "feed": hidden, "memory": memory, "mask": mask}
        return self.output(hidden), weights.squeeze(1), new

    def forward(self, trg_in: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor):
        """Teacher forcing: logits (B, T, V) and attention (B, T, S) for the inputs <s> y_1 ... y_{T-1}."""
        state = self.start(memory, mask)
        logits, weights = [], []
        for t in range(trg_in.shape[1]):
            out, w, state = self.step(trg_in[:, t], state)
            logits.append(out)
            weights.append(w)
        return torch.stack(logits, 1), torch.stack(weights, 1)
