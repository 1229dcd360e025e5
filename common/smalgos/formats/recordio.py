"""RecordIO framing (MXNet / dmlc-core), as used by SageMaker's recordIO-protobuf and `.rec` files.

A record is ``uint32 magic 0xCED7230A`` + ``uint32 lrec`` + data + zero padding to a multiple of
4 bytes, little-endian. ``lrec = cflag << 29 | length``; ``cflag`` 0 is a whole record, 1/2/3 the
first/middle/last part of a record that the writer split where the data held the magic at an
aligned position. Readers here join such parts with the magic re-inserted between them.

- `frame`, `write_record`, `frame_records`: writers (cflag 0, like the SageMaker SDK).
- `split_records`: a bytes buffer → `Split` (payload offsets and lengths as numpy arrays) in bulk;
  fast paths for uniform record sizes and for clean record chains, a checked loop otherwise.
- `iter_record_blocks` / `iter_records`: the same over a stream (a file, a Pipe-mode FIFO, a
  socket) with chunked reads, no seeking and memory bounded by a chunk plus one record.

Errors are `ClientError`s naming the source, the record index (0-based) and the byte offset.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import BinaryIO, Iterable, Iterator

import numpy as np

from smalgos.errors import ClientError

MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", MAGIC)
LENGTH_MASK = (1 << 29) - 1
DEFAULT_CHUNK = 1 << 20
_HEADER = struct.Struct("<II")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")


def padded(length: int) -> int:
    """`length` rounded up to a multiple of 4."""
    return (length + 3) & ~3


def frame(payload: bytes, cflag: int = 0) -> bytes:
    """One framed record: magic, ``cflag << 29 | len``, payload, zero padding to 4 bytes."""
    n = len(payload)
    if n > LENGTH_MASK:
        raise ValueError(f"record of {n} bytes is over the 2^29-1 byte limit of one RecordIO part")
    return _HEADER.pack(MAGIC, (cflag << 29) | n) + bytes(payload) + _PAD[n & 3]


def write_record(f: BinaryIO, payload: bytes) -> None:
    """Write one record to a binary file object (byte-identical to the SDK's `_write_recordio`)."""
    f.write(frame(payload))


def frame_records(payloads: Iterable[bytes]) -> bytes:
    """Frame many payloads back to back into one buffer."""
    return b"".join(frame(p) for p in payloads)


@dataclass
class Split:
    """Records found in a buffer: payload `i` is ``buf[offsets[i] : offsets[i] + lengths[i]]``.

    `end` is the number of bytes of the original buffer consumed (the end of the last complete
    record); `first_index` the index of record 0 in its source, for messages. When a buffer held
    multi-part records, `buf` is a new buffer of whole records (framed, cflag 0).
    """

    buf: bytes
    offsets: np.ndarray
    lengths: np.ndarray
    end: int
    first_index: int = 0
    base_offset: int = 0

    def __len__(self) -> int:
        return int(self.offsets.shape[0])

    def payload(self, i: int) -> bytes:
        o = int(self.offsets[i])
        return bytes(self.buf[o:o + int(self.lengths[i])])

    def payloads(self) -> list[bytes]:
        return [self.payload(i) for i in range(len(self))]

    def slice(self, start: int, stop: int) -> "Split":
        return Split(self.buf, self.offsets[start:stop], self.lengths[start:stop], self.end,
                     self.first_index + start, self.base_offset)

    @property
    def uniform_stride(self) -> int | None:
        """The distance between consecutive payloads if constant (and lengths equal), else None."""
        n = len(self)
        if n == 0:
            return None
        if n == 1:
            return 8 + padded(int(self.lengths[0]))
        s = int(self.offsets[1] - self.offsets[0])
        if (self.lengths[0] == self.lengths).all() and (np.diff(self.offsets) == s).all():
            return s
        return None


def split_records(buf: bytes | bytearray | memoryview, *, source: str = "request body",
                  partial: bool = False, first_index: int = 0, base_offset: int = 0) -> Split:
    """Find the records of `buf` in bulk.

    partial=False: the buffer must hold whole records only (a truncated tail is a `ClientError`).
    partial=True:  stop before an incomplete tail (streaming); `Split.end` says where.
    `first_index` / `base_offset` place the buffer in its source for error messages.
    """
    if not isinstance(buf, bytes):
        buf = bytes(buf)
    size = len(buf)
    empty = np.zeros(0, np.int64)
    if size == 0:
        return Split(buf, empty, empty, 0, first_index, base_offset)
    args = (source, first_index, base_offset)
    if size >= 8:
        magic, lrec = _HEADER.unpack_from(buf, 0)
        if magic == MAGIC and lrec >> 29 == 0:
            got = _split_uniform(buf, lrec, partial, args)
            if got is not None:
                return got
            got = _split_chain(buf, partial, args)
            if got is not None:
                return got
    return _split_loop(buf, partial, args)


def _split_uniform(buf: bytes, length: int, partial: bool, args) -> Split | None:
    stride = 8 + padded(length)
    size = len(buf)
    n = size // stride
    if n == 0 or (not partial and n * stride != size):
        return None
    words = np.frombuffer(buf, dtype="<u4", count=n * stride // 4).reshape(n, stride // 4)
    if not ((words[:, 0] == MAGIC).all() and (words[:, 1] == length).all()):
        return None
    offsets = np.arange(n, dtype=np.int64) * stride + 8
    return Split(buf, offsets, np.full(n, length, np.int64), n * stride, args[1], args[2])


def _split_chain(buf: bytes, partial: bool, args) -> Split | None:
    """Every aligned magic word starts a record and they chain exactly: no loop needed."""
    size = len(buf)
    nw = size // 4
    words = np.frombuffer(buf, dtype="<u4", count=nw)
    cand = np.flatnonzero(words == MAGIC)
    if cand.size == 0 or cand[0] != 0:
        return None
    if cand[-1] + 1 >= nw:  # a header cut after the magic: only a partial tail may look so
        if not partial:
            return None
        cand = cand[:-1]
        if cand.size == 0:
            return None
    lrec = words[cand + 1].astype(np.int64)
    if (lrec >> 29).any():
        return None
    nxt = cand + 2 + ((lrec + 3) >> 2)
    if cand.size > 1 and not (nxt[:-1] == cand[1:]).all():
        return None
    if nxt[-1] * 4 > size:
        if not partial:
            return None
        cand, lrec, nxt = cand[:-1], lrec[:-1], nxt[:-1]
    elif not partial and nxt[-1] * 4 != size:
        return None
    end = int(nxt[-1]) * 4 if cand.size else 0
    return Split(buf, cand * 4 + 8, lrec, end, args[1], args[2])


def _split_loop(buf: bytes, partial: bool, args) -> Split:
    source, first_index, base_offset = args
    size = len(buf)
    offsets: list[int] = []
    lengths: list[int] = []
    joined: list[bytes] | None = None  # set once a multi-part record shows up
    parts: list[bytes] | None = None   # parts of the multi-part record being read
    part_start = 0                     # byte offset and index where that record began
    part_index = 0
    pos = 0
    end = 0
    index = first_index
    unpack = _HEADER.unpack_from
    while pos < size:
        where = f"{source}: record index {index} at byte offset {base_offset + pos}"
        if size - pos < 8:
            if partial:
                break
            raise ClientError(f"{where}: truncated record header ({size - pos} bytes left, 8 needed)")
        magic, lrec = unpack(buf, pos)
        if magic != MAGIC:
            raise ClientError(f"{where}: bad RecordIO magic 0x{magic:08x} (expected 0x{MAGIC:08x})")
        length, cflag = lrec & LENGTH_MASK, lrec >> 29
        stop = pos + 8 + padded(length)
        if pos + 8 + length > size:
            if partial:
                break
            raise ClientError(f"{where}: truncated record: header gives {length} bytes, "
                              f"only {size - pos - 8} remain")
        data_at = pos + 8
        if cflag == 0:
            if parts is not None:
                raise ClientError(f"{where}: whole record inside a multi-part record begun at "
                                  f"record index {part_index}")
            if joined is None:
                offsets.append(data_at)
                lengths.append(length)
            else:
                joined.append(buf[data_at:data_at + length])
            end = min(stop, size)
        elif cflag == 1:
            if parts is not None:
                raise ClientError(f"{where}: multi-part record begun again before the previous "
                                  f"one (record index {part_index}) ended")
            if joined is None:
                joined = [buf[o:o + n] for o, n in zip(offsets, lengths)]
            parts, part_start, part_index = [buf[data_at:data_at + length]], pos, index
        elif cflag in (2, 3):
            if parts is None:
                raise ClientError(f"{where}: continuation part (cflag {cflag}) with no first part")
            parts.append(buf[data_at:data_at + length])
            if cflag == 3:
                joined.append(MAGIC_BYTES.join(parts))  # type: ignore[union-attr]
                parts = None
                end = min(stop, size)
        else:
            raise ClientError(f"{where}: bad continuation flag {cflag} in length word 0x{lrec:08x}")
        pos = stop
        index += 1
    if parts is not None and not partial:
        raise ClientError(f"{source}: record index {part_index} at byte offset "
                          f"{base_offset + part_start}: multi-part record not finished by the end "
                          "of the data")
    if joined is None:
        return Split(buf, np.asarray(offsets, np.int64), np.asarray(lengths, np.int64), end,
                     first_index, base_offset)
    rebuilt = frame_records(joined)
    inner = split_records(rebuilt, source=source)
    return Split(rebuilt, inner.offsets, inner.lengths, end, first_index, base_offset)


def read_full(stream: BinaryIO, n: int) -> bytes:
    """Read `n` bytes, or fewer only at end of stream (raw FIFOs and sockets return short reads)."""
    data = stream.read(n)
    if not data:
        return b""
    if len(data) >= n:
        return bytes(data)
    buf = bytearray(data)
    while len(buf) < n:
        more = stream.read(n - len(buf))
        if not more:
            break
        buf += more
    return bytes(buf)


def iter_record_blocks(stream: BinaryIO, *, source: str, max_records: int | None = None,
                       chunk_size: int = DEFAULT_CHUNK) -> Iterator[Split]:
    """Read `stream` in chunks (no seek) and yield `Split`s of `max_records` records each.

    Only the last block may be shorter (and blocks holding joined multi-part records). Memory
    stays within about one block plus one chunk, whatever the stream's length; a record bigger
    than a chunk is read whole before it is yielded.
    """
    pending = b""
    consumed = 0    # bytes of the stream before `pending`
    index = 0       # records of the stream before `pending`
    want = chunk_size
    eof = False
    while not eof:
        chunk = read_full(stream, want)
        eof = not chunk
        buf = pending + chunk if pending else chunk
        if not buf:
            break
        split = split_records(buf, source=source, partial=not eof, first_index=index,
                              base_offset=consumed)
        n = len(split)
        joined = split.buf is not buf
        if max_records and not eof and not joined:
            full = n - n % max_records
            cut = int(split.offsets[full]) - 8 if full < n else split.end
        else:
            full, cut = n, split.end
        step = max_records or full or 1
        for start in range(0, full, step):
            yield split.slice(start, min(full, start + step))
        index += _physical_count(buf, cut) if joined else full
        pending = buf[cut:]
        consumed += cut
        want = chunk_size
        if max_records and n > full:   # read about what the missing records need
            want = max(want, int(split.end / n * (max_records - (n - full))) + 8)
        if len(pending) >= 8:          # and at least the rest of a big first record
            _, lrec = _HEADER.unpack_from(pending, 0)
            want = max(want, 8 + padded(lrec & LENGTH_MASK) - len(pending))


def _physical_count(buf: bytes, cut: int) -> int:
    pos, count = 0, 0
    while pos < cut:
        _, lrec = _HEADER.unpack_from(buf, pos)
        pos += 8 + padded(lrec & LENGTH_MASK)
        count += 1
    return count


def iter_records(stream: BinaryIO, *, source: str, chunk_size: int = DEFAULT_CHUNK) -> Iterator[bytes]:
    """Yield each record's payload (multi-part records joined) from a stream."""
    for block in iter_record_blocks(stream, source=source, chunk_size=chunk_size):
        buf = block.buf
        for o, n in zip(block.offsets.tolist(), block.lengths.tolist()):
            yield bytes(buf[o:o + n])


def read_records(data: bytes, *, source: str = "request body") -> list[bytes]:
    """All payloads of a buffer (multi-part records joined)."""
    return split_records(data, source=source).payloads()
