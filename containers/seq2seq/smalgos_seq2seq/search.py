"""Decoding: greedy search and batched beam search over any decoder with the step API
(`start(memory, mask) -> state`, `step(prev_ids, state) -> (logits, attention, state)`, states
being dicts of tensors or lists of tensors with the batch first).

Beam search keeps `beam_size` hypotheses per sentence, ranked by their summed log-probabilities;
a hypothesis that emitted </s> is finished and carried on unchanged. The answer is the best of
the beam by log-probability / length (length including </s>): Sockeye 1's default length penalty
(α = 1, β = 0). With `beam_size` 1 this is greedy search.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .vocab import BOS, EOS, PAD


@dataclass
class Hypothesis:
    ids: list[int]                 # without </s>
    attention: list[list[float]]   # one row per id, over the source positions
    score: float                   # log-probability / length


def reorder(state, index: torch.Tensor):
    if isinstance(state, torch.Tensor):
        return state.index_select(0, index)
    if isinstance(state, dict):
        return {k: reorder(v, index) for k, v in state.items()}
    if isinstance(state, list):
        return [reorder(v, index) for v in state]
    return state


def never_pad_or_bos(logp: torch.Tensor) -> torch.Tensor:
    """Log-probabilities with <pad> and <s> ruled out (they are never outputs)."""
    return logp.index_fill(1, torch.tensor([PAD, BOS], device=logp.device), float("-inf"))


def _finish(ids: torch.Tensor, attention: torch.Tensor, scores: torch.Tensor, lengths: list[int],
            src_lengths: list[int]) -> list[Hypothesis]:
    out = []
    for i, n in enumerate(lengths):
        row_ids = ids[i, :n].tolist()
        cut = row_ids.index(EOS) if EOS in row_ids else n
        length = cut + 1 if cut < n else n
        att = attention[i, :cut, :src_lengths[i]].tolist()
        out.append(Hypothesis(row_ids[:cut], att, float(scores[i]) / max(length, 1)))
    return out


@torch.no_grad()
def beam_search(decoder, memory: torch.Tensor, mask: torch.Tensor, beam_size: int, max_lengths: list[int]):
    """The best hypothesis of each sentence (B of them); `max_lengths` caps each output (</s> not counted)."""
    b, s = mask.shape
    k = max(1, int(beam_size))
    device = memory.device
    rows = torch.arange(b, device=device).repeat_interleave(k)
    state = decoder.start(memory.index_select(0, rows), mask.index_select(0, rows))
    limit = max(max_lengths) + 1
    caps = torch.tensor(max_lengths, device=device).repeat_interleave(k)
    scores = torch.zeros(b * k, device=device)
    if k > 1:  # the beam starts as one hypothesis, not k copies of it
        scores.view(b, k)[:, 1:] = float("-inf")
    finished = torch.zeros(b * k, dtype=torch.bool, device=device)
    ids = torch.zeros(b * k, 0, dtype=torch.long, device=device)
    attention = torch.zeros(b * k, 0, s, device=device)
    prev = torch.full((b * k,), BOS, dtype=torch.long, device=device)
    lengths = torch.zeros(b * k, dtype=torch.long, device=device)
    for t in range(limit):
        logits, weights, state = decoder.step(prev, state)
        logp = never_pad_or_bos(torch.log_softmax(logits.float(), -1))
        v = logp.shape[-1]
        forced = (caps <= t) & ~finished  # out of length: </s> now
        logp = torch.where(forced.unsqueeze(1), torch.full_like(logp, float("-inf")).index_fill(1, torch.tensor(
            [EOS], device=device), 0.0), logp)
        # a finished hypothesis continues with </s> at no cost, and only once in the beam
        keep = torch.full_like(logp, float("-inf"))
        keep[:, EOS] = 0.0
        logp = torch.where(finished.unsqueeze(1), keep, logp)
        total = (scores.unsqueeze(1) + logp).view(b, k * v)
        best, flat = total.topk(k, dim=1)
        origin = (flat // v + torch.arange(b, device=device).unsqueeze(1) * k).view(-1)
        token = (flat % v).view(-1)
        scores = best.view(-1)
        was_finished = finished.index_select(0, origin)
        ids = torch.cat([ids.index_select(0, origin), token.unsqueeze(1)], 1)
        attention = torch.cat([attention.index_select(0, origin), weights.index_select(0, origin).unsqueeze(1)], 1)
        lengths = torch.where(was_finished, lengths.index_select(0, origin), lengths.index_select(0, origin) + 1)
        finished = was_finished | (token == EOS)
        state = reorder(state, origin)
        prev = token
        if bool(finished.all()):
            break
    # best of each beam by length-normalised score
    norm = scores / lengths.clamp(min=1).float()
    pick = norm.view(b, k).argmax(1) + torch.arange(b, device=device) * k
    src_lengths = mask.sum(1).tolist()
    return _finish(ids.index_select(0, pick), attention.index_select(0, pick), scores.index_select(0, pick),
                   lengths.index_select(0, pick).tolist(), src_lengths)


@torch.no_grad()
def greedy_search(decoder, memory: torch.Tensor, mask: torch.Tensor, max_lengths: list[int]):
    """Argmax at each step; the same answers as `beam_search` with beam_size 1."""
    b, s = mask.shape
    device = memory.device
    state = decoder.start(memory, mask)
    prev = torch.full((b,), BOS, dtype=torch.long, device=device)
    caps = torch.tensor(max_lengths, device=device)
    scores = torch.zeros(b, device=device)
    finished = torch.zeros(b, dtype=torch.bool, device=device)
    lengths = torch.zeros(b, dtype=torch.long, device=device)
    steps, rows = [], []
    for t in range(max(max_lengths) + 1):
        logits, weights, state = decoder.step(prev, state)
        logp = never_pad_or_bos(torch.log_softmax(logits.float(), -1))
        token = logp.argmax(-1)
        token = torch.where(caps <= t, torch.full_like(token, EOS), token)
        gained = logp.gather(1, token.unsqueeze(1)).squeeze(1)
        gained = torch.where(caps <= t, torch.zeros_like(gained), gained)
        scores = scores + torch.where(finished, torch.zeros_like(gained), gained)
        lengths = lengths + (~finished).long()
        token = torch.where(finished, torch.full_like(token, EOS), token)
        steps.append(token)
        rows.append(weights)
        finished = finished | (token == EOS)
        prev = token
        if bool(finished.all()):
            break
    return _finish(torch.stack(steps, 1), torch.stack(rows, 1), scores, lengths.tolist(), mask.sum(1).tolist())
