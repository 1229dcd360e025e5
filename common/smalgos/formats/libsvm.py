"""`text/libsvm` (alias `text/x-libsvm`): ``<label>[:<weight>] <index>:<value> ...`` per line → CSR.

Parsed in bulk: token edges, and each token's colons and the newlines after it, are found with
numpy byte operations (one pass each, no search); the structure of every token is checked at once
(label: 0 or 1 colon; feature: exactly one, with text on both sides); and all numbers are read by
one C call: Arrow's reader over the text with one number per line where pyarrow is installed, else
`np.fromstring` with colons turned into spaces. The first token of a line is always its label, as
XGBoost reads the format.

Indices: ``zero_based=True`` keeps them, ``False`` subtracts 1 (0 is then an error), ``"auto"``
(the default) shifts by 1 when the smallest index in the data is >= 1 (XGBoost's rule). When
streaming, "auto" is settled by the first chunk that has features and kept (a later index 0 in
data read as 1-based is then an error). Width = largest index + 1. Instance
weights (``label:weight``) go to `Batch.weights` (1.0 for lines without one; None when no line
has one). Blank lines are
skipped; line numbers in messages count them.

Streaming, where numba is installed (the XGBoost image), blocks of 64 KiB or more are first read by
a one-pass compiled kernel (`_libsvm_kernel`), two at a time in threads (it releases the GIL);
a block it declines (anything outside its strict grammar) is parsed here as before, on the
caller's thread, so results, error messages and Arrow's SIGTERM handling stay the same. Small
request bodies never import numba.
"""

from __future__ import annotations

import functools
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, Iterator, Literal

import numpy as np
import scipy.sparse as sp

from smalgos.errors import ClientError

from ._arrow import numbers_per_line
from ._stream import RowBuffer, iter_line_blocks
from .batch import Batch
from .media import LIBSVM, TEXT_PARAMS, MediaType, check_params

ZeroBased = bool | Literal["auto"]
_SEPARATOR = np.zeros(256, bool)
_SEPARATOR[[9, 10, 13, 32]] = True  # tab, newline, carriage return, space
_SPACE_TABLE = bytes.maketrans(b":\t\r", b"   ")
_NEWLINE_TABLE = bytes.maketrans(b": \t\r", b"\n\n\n\n")  # one number per line, for Arrow
KERNEL_MIN_BLOCK = 1 << 16   # smaller blocks: not worth numba's import (~0.6 s, once)
_WORKERS = 2
_IN_FLIGHT = 4               # blocks read ahead of the one being merged: memory stays flat


def parse_libsvm(data: bytes, *, zero_based: ZeroBased = "auto", source: str = "request body",
                 first_line: int = 1) -> tuple[Batch, bool]:
    """Parse LibSVM text → (Batch with CSR features, labels, weights or None; whether shifted)."""
    if not data.strip():
        return Batch(sp.csr_matrix((0, 0), dtype=np.float32), np.zeros(0, np.float32)), False
    if not data.endswith(b"\n"):
        data += b"\n"
    u = np.frombuffer(data, np.uint8)
    # Tokens are the runs of non-separator bytes: their edges alternate start, end (data ends in \n).
    sep = _SEPARATOR[u].view(np.int8)
    edges = np.flatnonzero(sep[1:] != sep[:-1]) + 1
    if not sep[0]:
        edges = np.concatenate(([0], edges))
    tstart, tend = edges[0::2], edges[1::2]               # tend exclusive
    # Per token, from its start to the next token's: the newlines (after it) and the colons (its own:
    # separators hold none), each one pass over the bytes.
    gaps = np.add.reduceat(u == 10, tstart, dtype=np.int32)
    ncolon = np.add.reduceat(u == 58, tstart, dtype=np.int32)
    tline = np.empty(tstart.size, np.int64)               # 0-based line of each token (blank lines count)
    tline[0] = data.count(b"\n", 0, int(tstart[0]))
    np.cumsum(gaps[:-1], out=tline[1:])
    tline[1:] += tline[0]
    first = np.ones(tstart.size, bool)                    # the line's first token: its label
    first[1:] = gaps[:-1] > 0
    ncolons = int(ncolon.sum())

    def fail(t: int, why: str) -> ClientError:
        text = data[tstart[t]:tend[t]].decode("utf-8", "replace")
        shown = text if len(text) <= 40 else text[:37] + "..."
        return ClientError(f"{source}: line {first_line + int(tline[t])}: token {shown!r} {why}")

    bad = np.flatnonzero(np.where(first, ncolon > 1, ncolon != 1))
    if bad.size:
        t = int(bad[0])
        raise fail(t, "is not '<label>[:<weight>]'" if first[t] else "is not '<index>:<value>'")
    edge = (ncolon == 1) & ((u[tstart] == 58) | (u[tend - 1] == 58))  # one colon at most (checked above)
    if edge.any():
        raise fail(int(np.flatnonzero(edge)[0]), "has an empty part around ':'")
    want = tstart.size + ncolons
    nums = numbers_per_line(data.translate(_NEWLINE_TABLE))
    if nums is None:  # no pyarrow, or a token that is not a number (found and named below)
        try:
            nums = np.fromstring(data.translate(_SPACE_TABLE), dtype=np.float64, sep=" ")
        except ValueError:
            nums = None
    if nums is None or nums.size != want:
        raise _find_bad_number(data, tstart, tend, fail)
    pos = np.cumsum(ncolon + 1) - (ncolon + 1)          # first number of each token
    feat = ~first
    idx = nums[pos[feat]]
    val = nums[pos[feat] + 1]
    labels = nums[pos[first]].astype(np.float32)
    weighted = first & (ncolon == 1)
    weights = None
    if weighted.any():
        weights = np.ones(labels.size, np.float32)
        weights[np.flatnonzero(weighted[first])] = nums[pos[weighted] + 1]
    ftok = np.flatnonzero(feat)
    nonint = np.flatnonzero((idx != np.floor(idx)) | (idx < 0) | (idx >= 2**62))
    if nonint.size:
        raise fail(int(ftok[nonint[0]]), "has an index that is not a non-negative integer")
    cols = idx.astype(np.int64)
    shifted = False
    if zero_based == "auto":
        shifted = bool(cols.size) and int(cols.min()) >= 1
    elif not zero_based:
        zero = np.flatnonzero(cols == 0)
        if zero.size:
            raise fail(int(ftok[zero[0]]), "has index 0, but indices were declared 1-based")
        shifted = True
    if shifted:
        cols = cols - 1
    row = np.cumsum(first)[feat] - 1                     # row of each feature token
    n = labels.size
    counts = np.bincount(row, minlength=n)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    width = int(cols.max()) + 1 if cols.size else 0
    feats = sp.csr_matrix((val.astype(np.float32), cols, indptr), shape=(n, width))
    return Batch(feats, labels, weights), shifted


def _find_bad_number(data, tstart, tend, fail) -> ClientError:
    for t in range(tstart.size):
        for part in data[tstart[t]:tend[t]].split(b":"):
            try:
                float(part)
            except ValueError:
                return fail(t, "holds something that is not a number")
            if b"_" in part:
                return fail(t, "holds something that is not a number")
    return ClientError("cannot parse LibSVM data")


class LibSVMDecoder:
    media_type = LIBSVM
    allowed_params: frozenset[str] = TEXT_PARAMS

    def decode(self, data: bytes, media: MediaType, *, default_label_size: int = 1,
               source: str = "request body", zero_based: ZeroBased = "auto") -> Batch:
        check_params(media, self.allowed_params)
        return parse_libsvm(data, zero_based=zero_based, source=source)[0]

    def iter_batches(self, stream: BinaryIO, media: MediaType, *, default_label_size: int = 1,
                     batch_size: int = 1000, source: str = "input", zero_based: ZeroBased = "auto",
                     chunk_size: int = 1 << 20) -> Iterator[Batch]:
        check_params(media, self.allowed_params)
        rows = RowBuffer(batch_size)
        blocks = _scanned_blocks(stream, chunk_size)
        try:
            for block, line, scanned in blocks:
                found = None if scanned is None else _from_scan(scanned.result(), zero_based)
                batch, shifted = found or parse_libsvm(block, zero_based=zero_based, source=source,
                                                       first_line=line)
                if zero_based == "auto" and batch.num_features:
                    zero_based = not shifted   # settled by the first data, kept for the rest
                rows.add(batch)
                yield from rows.full_batches()
        finally:
            blocks.close()  # shuts the pool down, also when the consumer stops early
        yield from rows.rest()


@functools.cache
def _kernel():
    """The compiled block scanner, or None without numba."""
    try:
        from . import _libsvm_kernel
    except ImportError:
        return None
    return _libsvm_kernel.scan


def _scan(block: bytes):
    return _kernel()(np.frombuffer(block, np.uint8), block.count(b":"), block.count(b"\n") + 1)


def _scanned_blocks(stream: BinaryIO, chunk_size: int) -> Iterator[tuple[bytes, int, Future | None]]:
    """(block, its first line, the kernel's scan of it or None), in stream order. The stream is read
    here, on the caller's thread (Pipe mode's stop checks, SIGTERM handlers: the main thread); the
    scans run in a pool, at most `_IN_FLIGHT` ahead of the caller, shut down when this generator ends
    or is closed (an error, a stopped job, a consumer that stops early)."""
    pool = None
    ahead: deque = deque()
    line = 1
    try:
        for block in iter_line_blocks(stream, chunk_size):
            scanned = None
            if len(block) >= KERNEL_MIN_BLOCK and _kernel() is not None:
                pool = pool or ThreadPoolExecutor(_WORKERS, thread_name_prefix="libsvm")
                scanned = pool.submit(_scan, block)
            ahead.append((block, line, scanned))
            line += block.count(b"\n")
            while len(ahead) > (_IN_FLIGHT if scanned else 0):
                yield ahead.popleft()
        while ahead:
            yield ahead.popleft()
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def _from_scan(scanned, zero_based: ZeroBased) -> tuple[Batch, bool] | None:
    """The kernel's scan as `parse_libsvm` would return it; None where that parser must look (the
    kernel declined, or an index 0 in 1-based data: its message names the token)."""
    ok, labels, weights, weighted, indptr, cols, vals, n, nnz = scanned
    if not ok:
        return None
    if not n:
        return Batch(sp.csr_matrix((0, 0), dtype=np.float32), np.zeros(0, np.float32)), False
    cols, vals = cols[:nnz], vals[:nnz]
    shifted = False
    if zero_based == "auto":
        shifted = bool(nnz) and int(cols.min()) >= 1
    elif not zero_based:
        if nnz and int(cols.min()) == 0:
            return None
        shifted = True
    if shifted:
        cols -= 1
    width = int(cols.max()) + 1 if nnz else 0
    feats = sp.csr_matrix((vals, cols, indptr[:n + 1]), shape=(n, width))
    return Batch(feats, labels[:n], weights[:n] if weighted else None), shifted
