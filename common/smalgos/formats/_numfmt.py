"""Printing float32 values as text: the shortest decimal that reads back to the same float32.

``0.3`` rather than ``0.30000001192092896`` (what Python prints for that float32 widened to a
double), ``1.0`` for integer values. orjson writes numpy float32 arrays that way (Ryu's
shortest round-trip digits, in C, about 5x faster than Python's ``repr`` of widened values);
its notation is JSON's: ``1e-7``, ``3.4028235e38``, ``0.00001``. orjson writes NaN and ±inf as
``null``; `float_strings` puts back the text the caller asks for.
"""

from __future__ import annotations

import numpy as np
import orjson

_OPTS = orjson.OPT_SERIALIZE_NUMPY


def float32_json(values: np.ndarray) -> bytes:
    """A float32 array (any shape) as a JSON array, nested as the array is, NaN/±inf as ``null``."""
    return orjson.dumps(np.ascontiguousarray(values, dtype=np.float32), option=_OPTS)


def float_strings(values: np.ndarray, nonfinite: str | None = None) -> list[str]:
    """Shortest round-trip strings of float32 `values` (flattened, C order).

    `nonfinite`: the text for NaN and ±inf (JSON: ``"null"``); None writes ``nan``/``inf``/``-inf``.
    """
    flat = np.asarray(values, dtype=np.float32).ravel()
    if flat.size == 0:
        return []
    strs = float32_json(flat)[1:-1].decode().split(",")
    if nonfinite != "null":
        for i in np.flatnonzero(~np.isfinite(flat)).tolist():
            strs[i] = nonfinite if nonfinite is not None else repr(float(flat[i]))
    return strs


def row_strings(values: np.ndarray, sep: str, nonfinite: str | None = None,
                brackets: bool = False) -> list[str]:
    """One string per row: a (n,) array's values, or a (n, k) array's rows joined by `sep`."""
    arr = np.asarray(values)
    strs = float_strings(arr, nonfinite)
    if arr.ndim == 1:
        return strs
    k = arr.shape[1]
    rows = [sep.join(strs[i:i + k]) for i in range(0, len(strs), k)] if k else [""] * arr.shape[0]
    return ["[" + r + "]" for r in rows] if brackets else rows
