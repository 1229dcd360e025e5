"""Object2Vec's records: pairs of token-id sequences, read from JSON Lines training files and from
inference instances, every fault a ClientError naming where it is and which field.

    {"label": 1, "in0": [6, 17, 606, 19], "in1": [16, 21, 13]}

`in0` / `in1` are non-empty lists of integer token ids below the encoder's vocabulary size;
sequences longer than the encoder's `max_seq_len` are cut to it (their first tokens kept). The
label is a class index 0 .. num_classes-1 (softmax) or a finite number (regression).

In memory a side is `Sequences`: ids padded with 0 to the longest sequence, and each one's length
(the networks mask the padding, so its value never matters).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from smalgos.errors import ClientError

SIDES = ("in0", "in1")


@dataclass
class Sequences:
    """Token sequences: `ids` (n, L) int64 padded with 0, `lengths` (n,) int64, each in 1 .. L."""

    ids: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return int(self.lengths.shape[0])

    def take(self, rows: np.ndarray) -> "Sequences":
        """The sequences at `rows`, padded only to the longest of them."""
        lengths = self.lengths[rows]
        width = int(lengths.max()) if lengths.size else 1
        return Sequences(self.ids[rows, :width], lengths)

    @staticmethod
    def concat(parts: list["Sequences"]) -> "Sequences":
        width = max(p.ids.shape[1] for p in parts)
        return Sequences(np.concatenate([np.pad(p.ids, ((0, 0), (0, width - p.ids.shape[1]))) for p in parts]),
                         np.concatenate([p.lengths for p in parts]))


@dataclass
class Pairs:
    """Records of both sides and their labels (None: unlabelled, as requests are)."""

    in0: Sequences
    in1: Sequences
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.in0)

    def take(self, rows: np.ndarray) -> "Pairs":
        return Pairs(self.in0.take(rows), self.in1.take(rows), None if self.labels is None else self.labels[rows])

    @staticmethod
    def concat(parts: list["Pairs"]) -> "Pairs":
        labels = None if any(p.labels is None for p in parts) else np.concatenate([p.labels for p in parts])
        return Pairs(Sequences.concat([p.in0 for p in parts]), Sequences.concat([p.in1 for p in parts]), labels)


@dataclass(frozen=True)
class Side:
    """What one side's token ids must satisfy: ids below `vocab_size` (the hyperparameter named
    `vocab_name`), cut to `max_len`."""

    vocab_size: int
    max_len: int
    vocab_name: str


@dataclass(frozen=True)
class Schema:
    """Both sides' rules and the label's: `num_classes` for softmax, None for regression."""

    sides: tuple[Side, Side]
    num_classes: int | None


def _is_token_list(value) -> bool:
    return type(value) is list and len(value) > 0 and all(type(t) is int for t in value)


def token_fault(value, side: Side) -> str | None:
    """Why `value` is not a token sequence for `side`, or None."""
    if not isinstance(value, list):
        return f"must be a list of token ids, got {_excerpt(value)}"
    if not value:
        return "is empty: at least one token id is needed"
    for j, t in enumerate(value):
        if isinstance(t, bool) or not isinstance(t, int):
            return f"[{j}] is {_excerpt(t)}, not an integer token id"
        if not 0 <= t < side.vocab_size:
            return f"[{j}] is token id {t}, outside 0 .. {side.vocab_name}-1 ({side.vocab_size - 1})"
    return None


def _excerpt(value) -> str:
    return json.dumps(value)[:40]


def label_fault(value, num_classes: int | None) -> str | None:
    """Why `value` is not a label (class index, or finite number for regression), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"must be a {'class index' if num_classes else 'finite number'}, got {_excerpt(value)}"
    if num_classes is not None and (value != int(value) or not 0 <= value < num_classes):
        return f"is {_excerpt(value)}, not a class index 0 .. num_classes-1 ({num_classes - 1})"
    return None


def sequences(lists: list[list[int]], side: Side) -> Sequences:
    """Checked token lists → `Sequences`, each cut to `side.max_len`."""
    lengths = np.fromiter((min(len(v), side.max_len) for v in lists), np.int64, len(lists))
    width = int(lengths.max()) if len(lists) else 1
    ids = np.zeros((len(lists), width), np.int64)
    flat = np.fromiter((t for v in lists for t in v[:side.max_len]), np.int64, int(lengths.sum()))
    ids[np.arange(width)[None, :] < lengths[:, None]] = flat
    return Sequences(ids, lengths)


def check_ids(lists: list, side: Side, where: Callable[[int], str], name: str) -> None:
    """Refuse the first record whose `name` is not a list of ids of `side` (vectorised range check)."""
    for i, v in enumerate(lists):
        if not _is_token_list(v):
            raise ClientError(f'{where(i)}: field "{name}" {token_fault(v, side)}')
    lengths = np.fromiter(map(len, lists), np.int64, len(lists))
    flat = np.fromiter((t for v in lists for t in v), np.int64, int(lengths.sum()))
    bad = np.flatnonzero((flat < 0) | (flat >= side.vocab_size))
    if bad.size:
        i = int(np.searchsorted(np.cumsum(lengths), bad[0], side="right"))
        raise ClientError(f'{where(i)}: field "{name}" {token_fault(lists[i], side)}')


def pairs_of(records: list, schema: Schema, where: Callable[[int], str], labelled: bool = True) -> Pairs:
    """Training records (parsed JSON objects) → `Pairs`; `where(i)` names record i in messages."""
    for i, r in enumerate(records):
        if not isinstance(r, dict):
            raise ClientError(f'{where(i)}: expected an object {{"label": ..., "in0": [...], "in1": [...]}}, '
                              f"got {_excerpt(r)}")
        for name in (("label",) if labelled else ()) + SIDES:
            if name not in r:
                raise ClientError(f'{where(i)}: field "{name}" is missing')
    sides = []
    for name, side in zip(SIDES, schema.sides):
        lists = [r[name] for r in records]
        check_ids(lists, side, where, name)
        sides.append(sequences(lists, side))
    labels = None
    if labelled:
        for i, r in enumerate(records):
            fault = label_fault(r["label"], schema.num_classes)
            if fault:
                raise ClientError(f'{where(i)}: field "label" {fault}')
        labels = np.array([r["label"] for r in records], np.float32)
    return Pairs(sides[0], sides[1], labels)


def parse_lines(data: bytes, where_line: Callable[[int], str]) -> tuple[list, list[int]]:
    """The JSON objects of the non-blank lines of `data` and their 1-based line numbers."""
    lines = data.split(b"\n")
    live = [i for i, line in enumerate(lines) if line.strip()]
    try:
        objs = json.loads(b"[" + b",".join(lines[i] for i in live) + b"]")
        if len(objs) != len(live):
            raise ValueError("a line holds more than one value")
    except (ValueError, UnicodeDecodeError, RecursionError):
        objs = []
        for i in live:
            try:
                objs.append(json.loads(lines[i]))
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                raise ClientError(f"{where_line(i + 1)}: not valid JSON ({exc})") from None
    return objs, [i + 1 for i in live]


def read_pairs(files: Iterable[tuple[str, bytes]], schema: Schema, channel: str) -> Pairs | None:
    """Every record of a channel's JSON Lines files (source name, bytes), or None when it holds none."""
    parts = []
    for source, data in files:
        where_line = lambda n, s=source: f"Channel {channel!r}: {s} line {n}"
        records, numbers = parse_lines(data, where_line)
        if records:
            parts.append(pairs_of(records, schema, lambda i: where_line(numbers[i])))
    return Pairs.concat(parts) if parts else None
