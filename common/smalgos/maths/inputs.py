"""Checks on what estimators receive, in training and serving alike: one function and one message
per fault, so that a user sees the same words from a notebook, a job's failure file and a 400.

    check_features(x, feature_dim, where)   width against hyperparameter feature_dim; finite values
    check_width(x, feature_dim, where)      the width alone
    checked_features(x, where)              float32 (dense 2-D or CSR) and finite
    conform_width(x, expected, where)       a fitted model's width; narrower sparse rows are padded
    check_finite(x, where, record=...)      no NaN or ±inf among the features; names the first one's record
    check_labels(y, where, ...)             present, one per record, finite, in the predictor's range
    check_fitted(estimator, attribute)      fitted (or loaded) before use

and the layout every core works on (`as_float32`, `minibatches`).
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import scipy.sparse as sp

from ..errors import InputError, NotFittedError


def check_finite(x, where: str, *, allow_nan: bool = False, record: Callable[[int], str] | None = None) -> None:
    """Refuse feature values that are NaN or ±inf (with `allow_nan`, ±inf only: NaN is a missing
    value), naming how many and the first: its record (`record(row)` says where row `row` of `x`
    is, e.g. "line 7 of <file>"; default "record <row + 1>") and its feature column."""
    values = x.data if sp.issparse(x) else np.asarray(x)
    bad = np.isinf(values) if allow_nan else ~np.isfinite(values)
    if not bad.any():
        return
    if sp.issparse(x):
        first = int(np.argmax(bad))
        row, col = int(np.searchsorted(x.indptr, first, side="right")) - 1, int(x.indices[first])
    else:
        row, col = divmod(int(np.argmax(bad)), bad.shape[1]) if bad.ndim == 2 else (int(np.argmax(bad)), 0)
    what, rule = (("infinite", "features must be finite numbers, or NaN for a missing value") if allow_nan else
                  ("NaN or infinite", "every feature must be a finite number"))
    place = record(row) if record is not None else f"record {row + 1}"
    raise InputError(f"{where}: {int(bad.sum())} feature value(s) are {what}, the first in {place} (feature "
                     f"column {col + 1}); {rule}")


def check_features(x, feature_dim: int | None, where: str, widen_sparse: bool = False):
    """Refuse records whose width is not `feature_dim` (None: any width) or that hold NaN or ±inf;
    return them. With `widen_sparse`, narrower sparse rows are widened to `feature_dim` instead
    (Linear Learner reads sparse data whose last features may be absent)."""
    x = check_width(x, feature_dim, where, widen_sparse)
    check_finite(x, where)
    return x


def check_width(x, feature_dim: int | None, where: str, widen_sparse: bool = False):
    """`check_features` without the finite check (a channel read with `check=check_finite` made it)."""
    width = x.shape[1]
    if feature_dim is None or width == feature_dim:
        return x
    if widen_sparse and sp.issparse(x) and width < feature_dim:
        return _widen(x, feature_dim)
    raise InputError(f"{where}: records have {width} features but hyperparameter feature_dim is {feature_dim}")


def _widen(x, width: int) -> sp.csr_matrix:
    """Sparse rows given `width` columns (the missing last ones are zeros)."""
    x = sp.csr_matrix(x)
    return sp.csr_matrix((x.data, x.indices, x.indptr), shape=(x.shape[0], width))


def checked_features(x, where: str):
    """`x` as float32 (dense 2-D or CSR), its values finite."""
    x = as_float32(x)
    check_finite(x, where)
    return x


def conform_width(x, expected: int, where: str = "the request"):
    """`x` with the `expected` number of features, the width a model was trained on.

    Sparse rows may stop before the last feature (LibSVM, sparse JSON and protobuf name only the
    indices they use): they are widened. Anything else of another width is refused, naming both
    counts."""
    width = x.shape[1]
    if width == expected:
        return x
    if sp.issparse(x):
        if width < expected:
            return _widen(x, expected)
        raise InputError(f"Feature count mismatch: the model was trained on {expected} features but {where} has "
                         f"feature index {width - 1} (indices must be below {expected})")
    hint = ("it looks like the label column is included: send only the features" if width == expected + 1
            else "send only the features, without a label column")
    raise InputError(f"Feature count mismatch: the model was trained on {expected} features but {where} has "
                     f"{width} per record ({hint})")


def check_labels(labels, where: str, *, predictor: str | None = None, num_classes: int | None = None,
                 needed_by: str = "this algorithm") -> np.ndarray:
    """One finite float32 label per record, (n,).

    `predictor` "binary_classifier" needs 0 or 1; "multiclass_classifier" integers 0 .. num_classes-1.
    Missing labels (`labels is None`) are refused naming where a label goes."""
    if labels is None:
        raise InputError(f"{where} has no labels: {needed_by} needs one label per record (CSV and Parquet: the"
                         " first column; LibSVM: a line's first value; recordIO-protobuf: label['values'])")
    y = np.asarray(labels, dtype=np.float32)
    if y.ndim == 2:
        if y.shape[1] != 1:
            raise InputError(f"{where}: records carry {y.shape[1]} labels; {needed_by} takes one")
        y = y[:, 0]
    y = y.reshape(-1)
    if not np.isfinite(y).all():
        raise InputError(f"{where}: labels must be finite numbers (found NaN or infinity)")
    if predictor == "binary_classifier":
        bad = (y != 0) & (y != 1)
        if bad.any():
            raise InputError(f"{where}: binary_classifier labels must be 0 or 1; found {float(y[bad][0])!r}")
    elif predictor == "multiclass_classifier":
        bad = (y != np.floor(y)) | (y < 0) | (y >= num_classes)
        if bad.any():
            raise InputError(f"{where}: multiclass_classifier labels must be integers 0 ... num_classes-1 "
                             f"(num_classes={num_classes}); found {float(y[bad][0])!r}")
    return y


def check_fitted(estimator, attribute: str = "n_features_in_") -> None:
    """Refuse to use an estimator before `fit()` or `load()` has set `attribute`."""
    if not hasattr(estimator, attribute):
        raise NotFittedError(f"This {type(estimator).__name__} is not fitted yet: call fit() or load() first")


def as_float32(x):
    """A float32 numpy array or CSR matrix (the layout every core works on)."""
    if sp.issparse(x):
        return sp.csr_matrix(x, dtype=np.float32)
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2:
        raise InputError(f"expected a 2-D feature matrix, got shape {x.shape}")
    return x


def minibatches(x, batch_size: int, y=None) -> Iterator:
    """Consecutive row slices of x (and y) of at most `batch_size` rows."""
    n = x.shape[0]
    for start in range(0, n, batch_size):
        stop = min(n, start + batch_size)
        yield x[start:stop] if y is None else (x[start:stop], y[start:stop])
