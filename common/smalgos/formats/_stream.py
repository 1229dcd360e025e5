"""Helpers shared by the line-based streaming decoders (CSV, JSON Lines, LibSVM)."""

from __future__ import annotations

from typing import BinaryIO, Iterator

from .batch import Batch
from .recordio import read_full


def iter_line_blocks(stream: BinaryIO, chunk_size: int) -> Iterator[bytes]:
    """Chunks of a stream cut just after a newline (the last one may lack it)."""
    pending = b""
    while True:
        chunk = read_full(stream, chunk_size)
        if not chunk:
            if pending:
                yield pending
            return
        buf = pending + chunk if pending else chunk
        cut = buf.rfind(b"\n") + 1
        if cut:
            yield buf[:cut]
            pending = buf[cut:]
        else:
            pending = buf


class RowBuffer:
    """Collects decoded rows and hands them out in batches of exactly `batch_size` (the last less)."""

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.parts: list[Batch] = []
        self.count = 0

    def add(self, batch: Batch) -> None:
        if len(batch):
            self.parts.append(batch)
            self.count += len(batch)

    def full_batches(self) -> Iterator[Batch]:
        while self.count >= self.batch_size:
            merged = Batch.concat(self.parts)
            yield _take(merged, 0, self.batch_size)
            rest = _take(merged, self.batch_size, len(merged))
            self.parts, self.count = ([rest], len(rest)) if len(rest) else ([], 0)

    def rest(self) -> Iterator[Batch]:
        if self.count:
            yield Batch.concat(self.parts)
            self.parts, self.count = [], 0


def _take(b: Batch, start: int, stop: int) -> Batch:
    cut = lambda a: None if a is None else a[start:stop]
    return Batch(b.features[start:stop], cut(b.labels), cut(b.weights))
