"""The shapes Linear Learner's epoch sources come in (Batch objects or (X, y[, w]) tuples), read
into checked blocks with the project's shared validators (`smalgos.maths.inputs`).

A block's values are checked finite once, and its width apart (`check_width`). The finite check
is a pass over the block, about a tenth of the time of a 1000-record, 100-feature, 32-model step,
so a source whose features were checked before (`prechecked`: `fit` checks its arrays whole, a
job's channels check each block as they decode it, naming the file and record) is not checked
again every epoch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

import numpy as np

from smalgos.formats.batch import Batch, head
from smalgos.maths.inputs import as_float32, check_labels, check_width, checked_features

if TYPE_CHECKING:
    from .model import EpochSource


LINEAR_LEARNER = "Linear Learner"
TRAINING_DATA = "The training data"


def prechecked(source: EpochSource) -> EpochSource:
    """`source`, marked as yielding features already checked finite: its blocks are only made
    float32 and checked for width."""
    source.features_checked = True
    return source


def _features(f, where: str, source: EpochSource):
    """A block's features as float32 (dense 2-D or CSR), checked finite unless `source` is `prechecked`."""
    return as_float32(f) if getattr(source, "features_checked", False) else checked_features(f, where)


def _unpack(raw) -> tuple:
    """(features, labels, weights) from a Batch-like object or an (X, y[, w]) tuple."""
    if isinstance(raw, tuple):
        if len(raw) == 2:
            return raw[0], raw[1], None
        return raw[0], raw[1], raw[2]
    return raw.features, getattr(raw, "labels", None), getattr(raw, "weights", None)


def _read_first(source: EpochSource, n: int, d: int | None) -> tuple | None:
    """The first `n` training records of a source as (X, y), or None when it holds none.

    Reads one pass and closes it early. Features are checked (`_features`) and given `d` columns
    (without `d`, those of the first batch); labels are not checked here, only flattened to one per
    record."""

    def checked() -> Iterator[Batch]:
        width = d
        it = iter(source())
        try:
            for raw in it:
                f, y, _ = _unpack(raw)
                if y is None:
                    check_labels(y, TRAINING_DATA, needed_by=LINEAR_LEARNER)
                f = check_width(_features(f, TRAINING_DATA, source), width, TRAINING_DATA, widen_sparse=True)
                width = f.shape[1]
                yield Batch(f, np.asarray(y, dtype=np.float32).reshape(len(y), -1)[:, 0])
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    sample = head(checked(), n)
    return None if sample is None else (sample.features, sample.labels)


def _blocks(source: EpochSource, what: str, size: int, d: int, predictor: str,
            num_classes: int | None) -> Iterator[tuple]:
    """One pass over `source` as validated (X, y, w) blocks of at most `size` records."""
    where = f"The {what}"
    for raw in source():
        f, y, w = _unpack(raw)
        f = check_width(_features(f, where, source), d, where, widen_sparse=True)
        y = check_labels(y, where, predictor=predictor, num_classes=num_classes, needed_by=LINEAR_LEARNER)
        n = f.shape[0]
        if n == 0:
            continue
        for start in range(0, n, size):
            stop = min(n, start + size)
            if start == 0 and stop == n:
                yield f, y, w
            else:
                yield f[start:stop], y[start:stop], None if w is None else w[start:stop]
