"""Labelled text for BlazingText's supervised tests and bench: a generated set in which only word
order tells the labels apart, so that word bigrams (word_ngrams=2) must beat single words."""
from __future__ import annotations

import numpy as np

VOCAB = [f"w{i}" for i in range(150)]


def order_set(n: int, seed: int, noise: float = 0.0, length: int = 12) -> list[list[str]]:
    """Lines of `length` random words holding "not good" (label a) or "good not" (label b): the
    same words either way, so only their order (a word bigram) tells the labels apart; `noise` is
    the share of labels flipped at random."""
    rng = np.random.default_rng(seed)
    lines = []
    for _ in range(n):
        words = list(rng.choice(VOCAB, length))
        a = rng.random() < 0.5
        i = int(rng.integers(0, length - 1))
        words[i:i + 2] = ["not", "good"] if a else ["good", "not"]
        label = "__label__a" if a != (rng.random() < noise) else "__label__b"
        lines.append([label, *words])
    return lines


def as_text(lines) -> bytes:
    """Token lists as text/plain: one line each, tokens separated by spaces."""
    return "".join(" ".join(line) + "\n" for line in lines).encode()
