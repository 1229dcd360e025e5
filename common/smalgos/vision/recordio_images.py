"""MXNet RecordIO image records (`.rec`, as `im2rec.py` and `mxnet.recordio.pack_img` write them),
`.lst` files with an image folder, and image decoding with Pillow.

A record's payload (inside the RecordIO framing of smalgos.formats.recordio) is the IRHeader
``<IfQQ``: flag (uint32), label (float32), id (uint64), id2 (uint64); when flag > 0, `flag` float32
labels follow the header (a multi-label record, or Object Detection's packed boxes) and the header's
own label is unused; then the encoded image (JPEG, PNG, ...).

    payload = pack(Header(0, 3.0, 7, 0), jpeg_bytes)          # one label
    payload = pack(Header(0, [1, 0, 1], 8, 0), jpeg_bytes)    # three labels (flag becomes 3)
    header, image_bytes = unpack(payload)

`RecordFile` indexes a `.rec` file (offsets of each record, multi-part records joined as the
framing says) so that DataLoader workers read records at random; `read_stream` reads a Pipe mode
stream's records into memory (`RecordList`, the same reading methods); `read_lst` parses a `.lst`.
Errors are ClientErrors naming the file and the record or line.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from smalgos.errors import ClientError
from smalgos.formats.recordio import LENGTH_MASK, MAGIC, MAGIC_BYTES, frame, padded

IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(IR_FORMAT)  # 24
_FRAME = struct.Struct("<II")


@dataclass(frozen=True)
class Header:
    """mxnet.recordio.IRHeader: `label` a float, or a float32 array when `flag` > 0."""

    flag: int
    label: float | np.ndarray
    id: int
    id2: int = 0

    @property
    def labels(self) -> np.ndarray:
        return np.atleast_1d(np.asarray(self.label, np.float32))


def pack(header: Header, image: bytes) -> bytes:
    """The payload of one record, as `mxnet.recordio.pack` makes it: a list or array label sets
    flag to its length and follows the header; a number is the header's own label."""
    label = header.label
    if isinstance(label, (int, float, np.integer, np.floating)):
        head = struct.pack(IR_FORMAT, int(header.flag), float(label), int(header.id), int(header.id2))
        return head + bytes(image)
    labels = np.asarray(label, dtype="<f4").ravel()
    head = struct.pack(IR_FORMAT, labels.size, 0.0, int(header.id), int(header.id2))
    return head + labels.tobytes() + bytes(image)


def unpack(payload: bytes, where: str = "record") -> tuple[Header, bytes]:
    """(Header, encoded image bytes) of one record's payload; a ClientError naming `where` when the
    payload is shorter than its header says."""
    if len(payload) < IR_SIZE:
        raise ClientError(f"{where}: {len(payload)} bytes, shorter than the {IR_SIZE}-byte image record header")
    flag, label, rid, rid2 = struct.unpack_from(IR_FORMAT, payload)
    rest = memoryview(payload)[IR_SIZE:]
    if flag > 0:
        if len(rest) < 4 * flag:
            raise ClientError(f"{where}: header says {flag} labels follow ({4 * flag} bytes), "
                              f"only {len(rest)} bytes remain")
        labels = np.frombuffer(rest[:4 * flag], dtype="<f4").astype(np.float32)
        return Header(flag, labels, rid, rid2), bytes(rest[4 * flag:])
    return Header(flag, float(label), rid, rid2), bytes(rest)


def encode_image(pixels: np.ndarray, fmt: str = "JPEG", quality: int = 95) -> bytes:
    """An (H, W, 3) or (H, W) uint8 array as JPEG/PNG bytes (mxnet's pack_img encodes at quality 95)."""
    from PIL import Image

    buf = io.BytesIO()
    options = {"quality": quality} if fmt == "JPEG" else {}
    Image.fromarray(np.asarray(pixels, np.uint8)).save(buf, format=fmt, **options)
    return buf.getvalue()


def pack_img(header: Header, pixels: np.ndarray, quality: int = 95, img_fmt: str = ".jpg") -> bytes:
    """mxnet.recordio.pack_img: the header, then the image encoded (".jpg" or ".png")."""
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}[img_fmt.lower()]
    return pack(header, encode_image(pixels, fmt, quality))


def decode_image(data: bytes, where: str, channels: int = 3) -> np.ndarray:
    """Encoded image bytes → (H, W, channels) uint8 (RGB, or L for one channel); a ClientError
    naming `where` when Pillow cannot read them."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img = img.convert("RGB" if channels == 3 else "L")
            arr = np.array(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ClientError(f"{where}: the image cannot be decoded ({type(exc).__name__}: {exc})") from None
    return arr if arr.ndim == 3 else arr[:, :, None]


def write_rec(path: Path, payloads: Sequence[bytes]) -> None:
    """A `.rec` file of these payloads (whole records, cflag 0)."""
    with open(path, "wb") as f:
        for p in payloads:
            f.write(frame(p))


class RecordFile:
    """The records of one `.rec` file, indexed once (no `.idx` needed) and read by position.

    Safe to use from DataLoader workers: each process opens its own file handle on first read."""

    def __init__(self, path: Path | str, source: str | None = None):
        self.path = Path(path)
        self.source = source or str(self.path)
        self.parts: list[tuple[tuple[int, int], ...]] = self._index()
        self._fd: int | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.parts)

    def _index(self) -> list[tuple[tuple[int, int], ...]]:
        records, pending = [], None
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            pos, index = 0, 0
            while pos < size:
                where = f"{self.source}: record index {index} at byte offset {pos}"
                head = f.read(8)
                if len(head) < 8:
                    raise ClientError(f"{where}: truncated record header ({len(head)} bytes left, 8 needed)")
                magic, lrec = _FRAME.unpack(head)
                if magic != MAGIC:
                    raise ClientError(f"{where}: bad RecordIO magic 0x{magic:08x} (expected 0x{MAGIC:08x}): "
                                      "not an MXNet RecordIO (.rec) file")
                length, cflag = lrec & LENGTH_MASK, lrec >> 29
                if pos + 8 + length > size:
                    raise ClientError(f"{where}: truncated record: header gives {length} bytes, "
                                      f"only {size - pos - 8} remain")
                part = (pos + 8, length)
                if cflag == 0:
                    if pending is not None:
                        raise ClientError(f"{where}: whole record inside an unfinished multi-part record")
                    records.append((part,))
                elif cflag == 1:
                    pending = [part]
                elif cflag in (2, 3) and pending is not None:
                    pending.append(part)
                    if cflag == 3:
                        records.append(tuple(pending))
                        pending = None
                else:
                    raise ClientError(f"{where}: bad continuation flag {cflag}")
                pos += 8 + padded(length)
                f.seek(pos)
                index += 1
        if pending is not None:
            raise ClientError(f"{self.source}: multi-part record not finished by the end of the file")
        return records

    def payload(self, i: int) -> bytes:
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        return MAGIC_BYTES.join(os.pread(self._fd, n, o) for o, n in self.parts[i])

    def head(self, i: int, n: int) -> bytes:
        """The first `n` bytes of record `i`'s payload (its IRHeader and labels), without the image."""
        parts = self.parts[i]
        if len(parts) > 1:
            return self.payload(i)[:n]
        if self._fd is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        offset, length = parts[0]
        return os.pread(self._fd, min(n, length), offset)

    def header(self, i: int, where: str) -> Header:
        """Record `i`'s IRHeader, its labels read too."""
        head = self.head(i, IR_SIZE)
        if len(head) == IR_SIZE:
            flag = struct.unpack_from("<I", head)[0]
            if flag > 0:
                head = self.head(i, IR_SIZE + 4 * flag)
        return unpack(head, where)[0]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_fd"] = state["_pid"] = None
        return state


class RecordList:
    """Records held in memory (a Pipe mode stream read whole), with RecordFile's reading methods."""

    def __init__(self, payloads: list[bytes], source: str):
        self.payloads, self.source = payloads, source

    def __len__(self) -> int:
        return len(self.payloads)

    def payload(self, i: int) -> bytes:
        return self.payloads[i]

    def header(self, i: int, where: str) -> Header:
        return unpack(self.payloads[i], where)[0]


def read_stream(stream, source: str) -> RecordList:
    """Every record of a stream (a Pipe mode FIFO), multi-part records joined, in memory."""
    from smalgos.formats.recordio import iter_records

    return RecordList(list(iter_records(stream, source=source)), source)


@dataclass(frozen=True)
class ListEntry:
    index: int
    labels: np.ndarray  # float32, one or more
    path: str
    line: int


def read_lst(path: Path | str, source: str | None = None) -> list[ListEntry]:
    """The entries of a `.lst` file: `index<TAB>label[<TAB>label...]<TAB>relative/path` per line
    (blank lines skipped). A ClientError names the file and line of a malformed entry or of an
    index given twice."""
    path = Path(path)
    source = source or str(path)
    entries, seen = [], {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ClientError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        where = f"{source} line {n}"
        if len(fields) < 3:
            raise ClientError(f"{where}: expected index<TAB>label(s)<TAB>image path, found {len(fields)} "
                              "tab-separated field(s)")
        try:
            index = int(fields[0].strip())
        except ValueError:
            raise ClientError(f"{where}: index {fields[0]!r} is not an integer") from None
        try:
            labels = np.array([float(v) for v in fields[1:-1]], np.float32)
        except ValueError:
            raise ClientError(f"{where}: labels {fields[1:-1]!r} are not numbers") from None
        image = fields[-1].strip()
        if not image:
            raise ClientError(f"{where}: the image path (last field) is empty")
        if index in seen:
            raise ClientError(f"{where}: index {index} is also on line {seen[index]} (indices must be unique)")
        seen[index] = n
        entries.append(ListEntry(index, labels, image, n))
    if not entries:
        raise ClientError(f"{source}: the list file holds no entries")
    return entries
