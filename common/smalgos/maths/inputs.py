"""Feature matrices as the algorithms receive them: width checks and mini-batch iteration."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import scipy.sparse as sp

from ..errors import ClientError


def check_features(x, feature_dim: int | None, where: str) -> None:
    """Refuse records whose width is not `feature_dim` (None: any width) or that hold NaN or ±inf."""
    width = x.shape[1]
    if feature_dim is not None and width != feature_dim:
        raise ClientError(
            f"{where}: records have {width} features but hyperparameter feature_dim is {feature_dim}")
    values = x.data if sp.issparse(x) else x
    if not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise ClientError(f"{where}: {bad} feature value(s) are NaN or infinite; every feature must be a finite number")


def as_float32(x):
    """A float32 numpy array or CSR matrix (the layout every core works on)."""
    if sp.issparse(x):
        return sp.csr_matrix(x, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"expected a 2-D feature matrix, got shape {x.shape}")
    return x


def minibatches(x, batch_size: int, y=None) -> Iterator:
    """Consecutive row slices of x (and y) of at most `batch_size` rows."""
    n = x.shape[0]
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        yield x[start:stop] if y is None else (x[start:stop], y[start:stop])
