"""`Batch`: the in-memory form of records, shared by every reader, the trainers and the server."""

from __future__ import annotations

from dataclasses import dataclass

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
