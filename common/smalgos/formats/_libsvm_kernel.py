"""A one-pass numba kernel for LibSVM blocks (optional: `libsvm.py` uses it where numba is installed).

It accepts a strict subset of what `parse_libsvm` accepts and gives bit-identical results on it:
numbers ``[+-]?(digits(.digits?)?|.digits)([eE][+-]?digits)?`` whose value is exact by one rounding
(Clinger's fast path: integer mantissa <= 2^53, |decimal exponent| <= 22, one float64 multiply or
divide, then float32: the float64-then-float32 rounding of the numpy path), indices of at most 15
digits (exact in the float64 the numpy path reads them as). On anything else it declines, and the
caller re-parses the block with `parse_libsvm`, which gives the same result or today's error.

Eager signatures: compiled, or loaded from numba's cache (``__pycache__`` beside this file), on
import. ``python -m smalgos.formats._libsvm_kernel`` writes that cache at image build time and does
nothing where numba is not installed.
"""

import sys

if __name__ == "__main__":
    try:
        import numba  # noqa: F401
    except ImportError:
        sys.exit(0)  # an image without numba keeps the numpy parser: nothing to compile
    import smalgos.formats._libsvm_kernel  # noqa: F401 - compiled under its real name, as libsvm.py loads it
    sys.exit(0)

import numba as nb
import numpy as np
from numba import types

_POW10 = np.array([10.0 ** k for k in range(23)])  # exact in float64 up to 10^22
_TWO53 = 1 << 53
_BYTES = types.Array(types.uint8, 1, "C", readonly=True)  # np.frombuffer of bytes
_F32, _I64 = types.float32[::1], types.int64[::1]


@nb.njit(types.Tuple((types.float64, types.boolean, types.int64))(_BYTES, types.int64),
         nogil=True, cache=True)
def _number(u, i):  # pragma: no cover - compiled
    """The number at u[i:]: (value, True, where it ends) when it is in the fast grammar and exact by
    one rounding, else (0, False, _). The caller checks what follows it."""
    n = u.size
    neg = False
    if i < n and (u[i] == 43 or u[i] == 45):  # + -
        neg = u[i] == 45
        i += 1
    m = np.uint64(0)
    nd = 0          # significant digits in m (leading zeros are not)
    ndig = 0        # mantissa digits seen
    scale = 0
    frac = False
    while i < n:
        c = u[i]
        if 48 <= c <= 57:
            if nd > 0 or c != 48:
                nd += 1
                if nd > 17:
                    return 0.0, False, i
            m = m * np.uint64(10) + np.uint64(c - 48)
            ndig += 1
            if frac:
                scale -= 1
        elif c == 46 and not frac:  # .
            frac = True
        else:
            break
        i += 1
    if ndig == 0:
        return 0.0, False, i
    if i < n and (u[i] == 101 or u[i] == 69):  # e E
        i += 1
        eneg = False
        if i < n and (u[i] == 43 or u[i] == 45):
            eneg = u[i] == 45
            i += 1
        e = 0
        edig = 0
        while i < n and 48 <= u[i] <= 57:
            e = e * 10 + (u[i] - 48)
            edig += 1
            if e > 1000:
                return 0.0, False, i
            i += 1
        if edig == 0:
            return 0.0, False, i
        scale += -e if eneg else e
    if m > np.uint64(_TWO53):
        return 0.0, False, i
    v = float(m)
    if m != 0:
        if scale < -22 or scale > 22:
            return 0.0, False, i
        if scale < 0:
            v = v / _POW10[-scale]
        elif scale > 0:
            v = v * _POW10[scale]  # m and 10^k exact: one correctly rounded multiply
    return (-v if neg else v), True, i


@nb.njit(types.boolean(_BYTES, types.int64), nogil=True, cache=True, inline="always")
def _ends(u, j):  # pragma: no cover - compiled
    """A token ends at j: the end of the block or a separator (space, tab, CR, LF)."""
    return j == u.size or u[j] == 32 or u[j] == 10 or u[j] == 9 or u[j] == 13


@nb.njit(types.Tuple((types.boolean, _F32, _F32, types.boolean, _I64, _I64, _F32, types.int64, types.int64))(
    _BYTES, types.int64, types.int64), nogil=True, cache=True)
def scan(u, ncolon, nlines):  # pragma: no cover - compiled
    """Block bytes → (ok, labels, weights, any weight, indptr, raw indices, values, rows, nnz); arrays
    sized by the caller's counts of colons and lines, to be cut to rows / nnz. ok False: declined
    (every `break` below: the loop's `else` is the clean end of the block)."""
    n = u.size
    labels = np.empty(nlines, np.float32)
    weights = np.ones(nlines, np.float32)
    indptr = np.zeros(nlines + 1, np.int64)
    cols = np.empty(ncolon, np.int64)
    vals = np.empty(ncolon, np.float32)
    nrows = 0
    nnz = 0
    anyw = False
    first = True   # the next token starts a line: its label
    i = 0
    while i < n:
        c = u[i]
        if c == 10:
            if not first:
                indptr[nrows] = nnz
                first = True
            i += 1
            continue
        if c == 32 or c == 9 or c == 13:
            i += 1
            continue
        if first:  # <label>[:<weight>]
            if nrows >= nlines:
                break
            v, ok, j = _number(u, i)
            if ok and j < n and u[j] == 58:
                w, ok, j = _number(u, j + 1)
                weights[nrows] = w
                anyw = True
            if not (ok and _ends(u, j)):
                break
            labels[nrows] = v
            nrows += 1
            first = False
        else:      # <index>:<value>
            k = i
            idx = 0
            while k < n and 48 <= u[k] <= 57:
                idx = idx * 10 + (u[k] - 48)
                k += 1
            if k == i or k - i > 15 or k == n or u[k] != 58 or nnz >= ncolon:
                break
            v, ok, j = _number(u, k + 1)
            if not (ok and _ends(u, j)):
                break
            cols[nnz] = idx
            vals[nnz] = v
            nnz += 1
        i = j
    else:
        if not first:
            indptr[nrows] = nnz
        return True, labels, weights, anyw, indptr, cols, vals, nrows, nnz
    return False, labels, weights, anyw, indptr, cols, vals, nrows, nnz
