"""`Batch`: the in-memory form of records, shared by every reader, the trainers and the server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import scipy.sparse as sp

Features = np.ndarray | sp.csr_matrix


@dataclass
class Batch:
    """A block of records.

    features: (n, d) float32 dense array or scipy CSR matrix (float32).
    labels:   (n,) float32 for one label per record, (n, k) for `label_size=k` > 1, or None.
    weights:  (n,) float32 per-record weights (XGBoost `csv_weights`), or None.
    """

    features: Features
    labels: np.ndarray | None = None
    weights: np.ndarray | None = None

    def __len__(self) -> int:
        return self.features.shape[0]

    @property
    def num_features(self) -> int:
        return self.features.shape[1]

    @property
    def is_sparse(self) -> bool:
        return sp.issparse(self.features)

    def dense_features(self) -> np.ndarray:
        f = self.features
        return np.asarray(f.toarray() if sp.issparse(f) else f, dtype=np.float32)

    def slice(self, start: int, stop: int) -> "Batch":
        """Records start .. stop-1."""
        return Batch(self.features[start:stop], None if self.labels is None else self.labels[start:stop],
                     None if self.weights is None else self.weights[start:stop])

    def take(self, rows: np.ndarray) -> "Batch":
        """The records at the indices `rows`, in that order."""
        return Batch(self.features[rows], None if self.labels is None else self.labels[rows],
                     None if self.weights is None else self.weights[rows])

    @staticmethod
    def concat(batches: list["Batch"]) -> "Batch":
        if not batches:
            raise ValueError("no batches to concatenate")
        if len(batches) == 1:
            return batches[0]
        if any(b.is_sparse for b in batches):
            width = max(b.num_features for b in batches)
            feats = sp.vstack(
                [sp.csr_matrix(b.features, shape=(len(b), width)) if b.is_sparse
                 else sp.csr_matrix(np.pad(b.features, ((0, 0), (0, width - b.num_features))))
                 for b in batches], format="csr", dtype=np.float32)
        else:
            feats = np.concatenate([b.features for b in batches], axis=0)

        def cat(name):
            parts = [getattr(b, name) for b in batches]
            if all(p is None for p in parts):
                return None
            if any(p is None for p in parts):
                if name != "weights":
                    raise ValueError(f"cannot concatenate batches where only some have {name}")
                # a batch without weights weighs each record 1 (LibSVM lines without ":weight")
                parts = [np.ones(len(b), np.float32) if p is None else p
                         for b, p in zip(batches, parts)]
            return np.concatenate(parts, axis=0)

        return Batch(feats, cat("labels"), cat("weights"))


def head(batches: Iterable[Batch], n: int) -> Batch | None:
    """The first `n` records of a stream of batches, as one batch (None if it holds none). The
    stream is closed as soon as `n` are read (Pipe mode: the rest of the FIFO is never read)."""
    taken: list[Batch] = []
    count = 0
    it = iter(batches)
    try:
        for batch in it:
            taken.append(batch)
            count += len(batch)
            if count >= n:
                break
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()
    if not taken:
        return None
    merged = Batch.concat(taken)
    return merged.slice(0, min(n, len(merged)))
