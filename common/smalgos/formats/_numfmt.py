"""Printing float32 values as text: the shortest decimal that reads back to the same float32.

``0.3`` rather than ``0.30000001192092896`` (what Python prints for that float32 widened to a
double), ``1.0`` for integer values. Done without a per-value numpy scalar call: a
vectorised pass at precision p rounds every still-unresolved value to p significant digits
as a float64 ``m / 10**k`` (m an integer, 10**k exact, so the division is correctly rounded and
its Python repr is that short decimal) and keeps those that convert back to the same float32;
the least such p is found by a vectorised binary search (4 passes).
The strings themselves then come from ``float.__repr__`` mapped in C over a list.
"""

from __future__ import annotations

import math
import struct

import numpy as np

_EXACT_POW10 = 22  # 10**k is an exact float64 for 0 <= k <= 22
_SMALL = 48        # below this many values the per-value loop beats the vectorised passes
_F32 = struct.Struct("<f")


def _shortest_one(v: float) -> float:
    """The same rounding as the vectorised path, on one value (float32 widened to a float)."""
    if v == 0 or not math.isfinite(v):
        return v
    e = math.floor(math.log10(abs(v)))
    for p in range(1, 10):
        k = p - 1 - e
        if abs(k) > _EXACT_POW10:
            continue
        scale = 10.0 ** abs(k)
        cand = round(v * scale) / scale if k >= 0 else round(v / scale) * scale
        if _F32.unpack(_F32.pack(cand))[0] == v:
            return float(cand)
    return float(np.format_float_scientific(np.float32(v), unique=True, trim="0"))


def shortest_float64(values: np.ndarray) -> np.ndarray:
    """float64 copies of float32 `values` whose ``repr`` is the shortest round-trip decimal."""
    x32 = np.asarray(values, dtype=np.float32)
    flat32 = x32.ravel()
    out = flat32.astype(np.float64)
    if out.size < _SMALL:
        return np.array([_shortest_one(v) for v in out.tolist()], np.float64).reshape(x32.shape)
    with np.errstate(all="ignore"):
        todo = np.flatnonzero(np.isfinite(out) & (out != 0))
        v = out[todo]
        target = flat32[todo]
        e = np.floor(np.log10(np.abs(v))).astype(np.int64)

        def rounded(p):
            k = p - 1 - e
            scale = np.power(10.0, np.abs(np.clip(k, -_EXACT_POW10, _EXACT_POW10)))
            up = k >= 0
            m = np.rint(np.where(up, v * scale, v / scale))
            cand = np.where(up, m / scale, m * scale)
            return cand, (np.abs(k) <= _EXACT_POW10) & (cand.astype(np.float32) == target)

        # "p digits read back" only gets truer as p grows: binary-search the least p in 1..9
        lo = np.ones(todo.size, np.int64)
        hi = np.full(todo.size, 9, np.int64)
        while True:
            open_ = lo < hi
            if not open_.any():
                break
            mid = (lo + hi) // 2
            _, good = rounded(mid)
            hi = np.where(open_ & good, mid, hi)
            lo = np.where(open_ & ~good, mid + 1, lo)
        cand, good = rounded(hi)
        out[todo[good]] = cand[good]
        todo = todo[~good]
    for i in todo.tolist():  # |exponent| beyond 10**22 (subnormals, huge values): rare
        out[i] = float(np.format_float_scientific(flat32[i], unique=True, trim="0"))
    return out.reshape(x32.shape)


def float_strings(values: np.ndarray, nonfinite: str | None = None) -> list[str]:
    """Shortest round-trip strings of float32 `values` (flattened, C order).

    `nonfinite`: the text for NaN and ±inf (JSON: ``"null"``); None keeps Python's
    ``nan``/``inf``/``-inf``.
    """
    nice = shortest_float64(values).ravel()
    strs = list(map(float.__repr__, nice.tolist()))
    if nonfinite is not None:
        bad = np.flatnonzero(~np.isfinite(nice))
        for i in bad.tolist():
            strs[i] = nonfinite
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
