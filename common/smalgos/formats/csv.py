"""`text/csv`: numbers only, no header, label columns first (``label_size``, default from the caller).

Parsing is a C reader with no per-row Python, over the whole body or, when streaming, over
chunks cut at line ends: numpy's `np.loadtxt` for small bodies (it starts fast); from
`LARGE_BODY` bytes up, Arrow's multi-threaded reader where pyarrow is installed (the XGBoost
image), else pandas' C parser. A whole plain file (File-mode channels, `read_csv_file`) is one
pandas read of its path, twice as fast as the same bytes in chunks. Lines of more than
`WIDE_COLUMNS` fields, whose per-column cost makes those readers slow (one line of 1M fields: 38 s
in Arrow), are read as one column of numbers once the fields of every line are counted (bytes
operations): a body's cost is then linear in its bytes whatever its width. Choices:

- empty fields are missing values: NaN (as XGBoost reads them); so are ``nan``/``NaN`` fields;
  ``inf``/``-inf`` are read as such;
- blank lines (and lines of only spaces) are skipped wherever they are (so a trailing newline or
  several are fine); line numbers in messages still count them; ``\\r\\n`` line ends are fine;
- spaces around a number are tolerated; quotes, a header row, ``true``/``false`` or any other text
  are not (pandas reads a column of ``true``/``false`` as 1/0: its reads are checked for them);
- a UTF-8 byte order mark at the start of a body, file or stream (Excel writes one) is skipped;
  anywhere else it is text, refused;
- a failed parse is diagnosed again in numpy (column counts per line, vectorised) and then
  field by field, to name the 1-based line and column of the first fault.

The encoder writes one record per line: each field's values in order, comma-joined, as the
shortest text that reads back to the same float32 (``nan``/``inf`` kept as such).
"""

from __future__ import annotations

import io
import re
from typing import BinaryIO, Iterator

import numpy as np

from smalgos.errors import ClientError

from ._arrow import arrow_csv, float_table, numbers_per_line
from ._numfmt import float_strings
from .batch import Batch
from .media import CSV, TEXT_PARAMS, MediaType, check_params, int_param
from .predictions import DEFAULT_ROOT_KEY, Predictions
from ._stream import RowBuffer, iter_line_blocks

DEFAULT_CHUNK = 4 << 20
LARGE_BODY = 48 << 10  # measured crossover: below it np.loadtxt starts faster, above it pandas wins
# Above this many fields a line, Arrow's and pandas' per-column costs dominate (1.8 MB of 10,000
# columns: Arrow 0.65 s, pandas 0.94 s, as one column 0.06 s; at 1,000 columns all three ~0.05 s).
WIDE_COLUMNS = 1000
BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark


_WHITE_LINE = re.compile(rb"(?m)^[ \t]+$")


def _normalise(data: bytes) -> bytes:
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n")
    if b"\n " in data or b"\n\t" in data or data[:1] in (b" ", b"\t"):
        data = _WHITE_LINE.sub(b"", data)  # a line of only spaces is blank, as pandas reads whole files
    # empty fields → nan (",," twice for runs of them; then at line starts and ends)
    if b",," in data:
        data = data.replace(b",,", b",nan,").replace(b",,", b",nan,")
    if b"\n," in data:
        data = data.replace(b"\n,", b"\nnan,")
    if b",\n" in data:
        data = data.replace(b",\n", b",nan\n")
    if data.startswith(b","):
        data = b"nan" + data
    if data.endswith(b","):
        data += b"nan"
    return data


def parse_csv(data: bytes, *, label_size: int = 0, source: str = "request body",
              first_line: int = 1, expected_columns: int | None = None) -> Batch:
    """Parse CSV bytes into a `Batch` (features float32 (n, d), labels (n,)/(n, k)/None).

    `first_line` is the line number of the first line of `data` in its source and
    `expected_columns` the width already seen there (streaming), both for messages.
    """
    if first_line == 1:
        data = _skip_bom(data)
    values = _parse_matrix(data, source=source, first_line=first_line, expected=expected_columns)
    return _split_labels(values, label_size, source, first_line)


def _skip_bom(data: bytes) -> bytes:
    """`data` without the UTF-8 byte order mark it starts with, if any (only at the start of a body,
    file or stream: anywhere else the mark is refused as text)."""
    return data[len(BOM):] if data.startswith(BOM) else data


def _parse_matrix(data: bytes, *, source: str, first_line: int, expected: int | None) -> np.ndarray:
    first = _first_line(data)
    if first is None:
        return np.zeros((0, expected or 0), np.float32)
    if data.startswith(BOM):  # not at the start of its source (that one is skipped): Arrow and pandas would skip it
        raise _diagnose(_normalise(data), source, first_line, expected, "byte order mark")
    width = data.count(b",", *first) + 1
    if width > WIDE_COLUMNS:
        norm = _normalise(data)
        values = _parse_wide(norm, width)
        if values is None or (expected is not None and width != expected):
            raise _diagnose(norm, source, first_line, expected, "not a clean numeric table")
        return values
    if len(data) >= LARGE_BODY:
        values = _parse_large(data)
        if values is not None:
            if expected is not None and values.shape[1] != expected:
                raise _diagnose(_normalise(data), source, first_line, expected, "width changed")
            return values
    norm = _normalise(data)
    try:
        values = np.loadtxt(io.BytesIO(norm), delimiter=",", dtype=np.float32, ndmin=2,
                            comments=None, encoding="latin1")
    except ValueError as e:
        raise _diagnose(norm, source, first_line, expected, str(e)) from None
    if expected is not None and values.shape[0] and values.shape[1] != expected:
        raise _diagnose(norm, source, first_line, expected, "width changed")
    return values


def _first_line(data: bytes) -> tuple[int, int] | None:
    """(start, end) of the first line that is not blank; None if every line is."""
    start = 0
    while True:
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        if data[start:end].strip():
            return start, end
        if end >= len(data):
            return None
        start = end + 1


def _parse_large(data: bytes) -> np.ndarray | None:
    """A clean numeric table read in C: Arrow's multi-threaded reader where pyarrow is installed (1.6x
    pandas on one core, 2.6x on two), else pandas'. None when `data` is not one (the caller diagnoses)."""
    if arrow_csv() is not None:
        start, end = _first_line(data)  # type: ignore[misc]  (the caller skipped blank bodies)
        return float_table(data, data.count(b",", start, end) + 1)
    return _pandas_table(io.BytesIO(data), lambda: data.count(b","), lambda: _has_bool_letters(data))


def _columns_per_line(u: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The number of comma-separated fields of each line (see `_line_table`), vectorised."""
    commas = np.flatnonzero(u == 44)
    return np.diff(np.searchsorted(commas, np.stack([starts, ends], 1).ravel()))[0::2] + 1


def _parse_wide(norm: bytes, width: int) -> np.ndarray | None:
    """A normalised table of `width` (many) columns, read as one column of numbers after counting the
    fields of every line: linear in the bytes, where Arrow and pandas pay per column. None when some
    line has another width or some field is not a number (the caller diagnoses)."""
    u, starts, ends = _line_table(norm)
    live = ends > starts  # blank lines are empty once normalised
    if not np.all(_columns_per_line(u, starts, ends)[live] == width):
        return None
    rows = int(np.count_nonzero(live))
    flat = norm.replace(b",", b"\n")
    if arrow_csv() is not None:
        column = numbers_per_line(flat)
    else:
        column = _pandas_table(io.BytesIO(flat), lambda: 0, lambda: _has_bool_letters(flat))
    if column is None or column.size != rows * width:  # e.g. a field of spaces, which a reader skips
        return None
    return column.astype(np.float32).reshape(rows, width)


_NAN_TEXT = ["", "nan", "NaN", "NAN", "-nan", "+nan"]  # numpy's and Arrow's readers take these as NaN
# pandas reads a column of only true/false (any case) as 1/0, which no other reader accepts. Every
# such word has a u or an l, which no number or NaN/inf text that pandas reads has.
_BOOL_LETTERS = (b"u", b"U", b"l", b"L")


def _has_bool_letters(data: bytes) -> bool:
    return any(letter in data for letter in _BOOL_LETTERS)


def _pandas_table(source, count_commas, has_bool_letters) -> np.ndarray | None:
    import pandas as pd

    try:
        frame = pd.read_csv(source, header=None, dtype=np.float32, engine="c",
                            skip_blank_lines=True, keep_default_na=False, na_values=_NAN_TEXT,
                            quoting=3, comment=None)  # quoting=3: csv.QUOTE_NONE
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    if has_bool_letters():  # a column of true/false read as 1/0: decline, the caller names the cell
        return None
    values = frame.to_numpy(dtype=np.float32)
    # pandas pads a short line with NaN (a longer one fails above). Without any NaN there is no
    # short line; with some, a body whose comma count is exactly rows * (width - 1) has none.
    n, width = values.shape
    if np.isnan(values).any() and count_commas() != n * (width - 1):
        return None
    return values


def read_csv_file(path, *, label_size: int = 0) -> Batch | None:
    """A whole plain (not gzip) CSV file in one pass of pandas' reader, which is about twice as fast
    from a path as over chunks of bytes. None when it is not a clean numeric table: the caller then
    streams it through `CSVDecoder.iter_batches`, whose messages name the line and column at fault.
    Wide files (first line over `WIDE_COLUMNS` fields) are streamed too: pandas pays per column."""
    with open(path, "rb") as f:
        head = _skip_bom(f.read(1 << 20))  # pandas skips the mark too
    first = _first_line(head)
    if first is not None and head.count(b",", *first) >= WIDE_COLUMNS:
        return None
    values = _pandas_table(str(path), lambda: _count_byte(path, b","), lambda: _file_has_bool_letters(path))
    if values is None or values.shape[0] == 0 or values.shape[1] <= label_size:
        return None  # the streaming path reads it again and says what is wrong
    return _split_labels(values, label_size, str(path), 1)


def _count_byte(path, byte: bytes, chunk: int = 64 << 20) -> int:
    count = 0
    with open(path, "rb") as f:
        while block := f.read(chunk):
            count += block.count(byte)
    return count


def _file_has_bool_letters(path, chunk: int = 8 << 20) -> bool:
    """`_has_bool_letters` over a file (memchr speed: 0.05 s a 230 MB file beyond reading it)."""
    with open(path, "rb") as f:
        while block := f.read(chunk):
            if _has_bool_letters(block):
                return True
    return False


def _split_labels(values: np.ndarray, label_size: int, source: str, first_line: int) -> Batch:
    n, width = values.shape
    if label_size == 0:
        return Batch(np.ascontiguousarray(values))
    if n == 0:
        empty = np.zeros((0,) if label_size == 1 else (0, label_size), np.float32)
        return Batch(np.zeros((0, max(width - label_size, 0)), np.float32), empty)
    if width <= label_size:
        raise ClientError(f"{source}: line {first_line}: {width} columns, but label_size={label_size} "
                          "leaves no feature columns (labels come first)")
    labels = values[:, 0] if label_size == 1 else values[:, :label_size]
    return Batch(np.ascontiguousarray(values[:, label_size:]), np.ascontiguousarray(labels))


def _line_table(data: bytes):
    """(starts, ends) of each line of `data` (ends exclusive, newline dropped)."""
    u = np.frombuffer(data, np.uint8)
    nl = np.flatnonzero(u == 10)
    ends = np.append(nl, len(data)) if (not len(data) or data[-1:] != b"\n") else nl
    starts = np.empty_like(ends)
    if ends.size:
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    return u, starts, ends


_BLANK_BYTES = np.frombuffer(b" \t\r\n", np.uint8)


def _non_blank_lines(data: bytes) -> np.ndarray:
    """For each line of `data`, whether it holds more than spaces, tabs and a line end (a record)."""
    u, starts, ends = _line_table(data)
    text = np.concatenate(([0], np.cumsum(~np.isin(u, _BLANK_BYTES))))
    return text[ends] > text[starts]


def _diagnose(data: bytes, source: str, first_line: int, expected: int | None, why: str) -> ClientError:
    u, starts, ends = _line_table(data)
    cols = _columns_per_line(u, starts, ends)
    blank = ends == starts
    live = np.flatnonzero(~blank)
    if live.size:
        ref_line = first_line + int(live[0])
        want = expected if expected is not None else int(cols[live[0]])
        bad = live[cols[live] != want]
        if bad.size:
            i = int(bad[0])
            where = f"line {ref_line} has" if expected is None else "the lines before have"
            return ClientError(f"{source}: line {first_line + i} has {int(cols[i])} columns, but "
                               f"{where} {want} (every line must have the same number of fields)")
    # widths agree: find the first field that is not a number
    for i in live.tolist():
        line = data[starts[i]:ends[i]]
        fields = line.split(b",")
        for j, field in _suspect_fields(fields, b"_" in line):
            if not _is_number(field):
                text = field.decode("utf-8", "replace")
                shown = text if len(text) <= 40 else text[:37] + "..."
                return ClientError(f"{source}: line {first_line + i}, column {j + 1}: {shown!r} is "
                                   "not a number")
    return ClientError(f"{source}: cannot parse CSV ({why})")


def _suspect_fields(fields: list[bytes], underscores: bool, run: int = 1024) -> Iterator[tuple[int, bytes]]:
    """(index, field) of `fields` that `_is_number` must look at: those of each run of `run` fields that
    `float` does not read in one C loop, or that hold an underscore (which `float` accepts): a wide line
    costs C time, not a Python call per field."""
    for start in range(0, len(fields), run):
        part = fields[start:start + run]
        try:
            for _ in map(float, part):
                pass
            if not (underscores and b"_" in b",".join(part)):
                continue
        except ValueError:
            pass
        yield from enumerate(part, start)


def _is_number(field: bytes) -> bool:
    if b"_" in field:
        return False
    try:
        float(field)
    except ValueError:
        return False
    return True


class CSVDecoder:
    media_type = CSV
    allowed_params = frozenset({"label_size"}) | TEXT_PARAMS

    def label_size(self, media: MediaType, default_label_size: int) -> int:
        check_params(media, self.allowed_params)
        return int_param(media, "label_size", default_label_size)

    def decode(self, data: bytes, media: MediaType, *, default_label_size: int = 0,
               source: str = "request body") -> Batch:
        k = self.label_size(media, default_label_size)
        return parse_csv(data, label_size=k, source=source)

    def read_file(self, path, media: MediaType, *, default_label_size: int = 0) -> Batch | None:
        """Every record of one plain file at once, or None to stream it instead (see `read_csv_file`)."""
        return read_csv_file(path, label_size=self.label_size(media, default_label_size))

    def iter_batches(self, stream: BinaryIO, media: MediaType, *, default_label_size: int = 0,
                     batch_size: int = 1000, source: str = "input",
                     chunk_size: int = DEFAULT_CHUNK) -> Iterator[Batch]:
        k = self.label_size(media, default_label_size)
        rows = RowBuffer(batch_size)
        width = None
        line = 1
        for block in iter_line_blocks(stream, chunk_size):
            if line == 1:
                block = _skip_bom(block)
            values = _parse_matrix(block, source=source, first_line=line, expected=width)
            if values.shape[0]:
                width = values.shape[1]
                rows.add(_split_labels(values, k, source, line))
            line += block.count(b"\n")
            yield from rows.full_batches()
        yield from rows.rest()

    def line_of_record(self, stream: BinaryIO, index: int, chunk_size: int = DEFAULT_CHUNK) -> int | None:
        """The 1-based line of record `index` (0-based) of a CSV stream, blank lines counted as
        `iter_batches`' messages count them; None when the stream holds fewer records."""
        line = 1
        seen = 0
        for block in iter_line_blocks(stream, chunk_size):
            if line == 1:
                block = _skip_bom(block)
            live = np.flatnonzero(_non_blank_lines(block))
            if seen + len(live) > index:
                return line + int(live[index - seen])
            seen += len(live)
            line += block.count(b"\n")
        return None


class CSVEncoder:
    """One line per record: every field's values, comma-joined."""

    media_type = CSV

    def encode(self, predictions: Predictions, *, root_key: str = DEFAULT_ROOT_KEY) -> bytes:
        """`root_key` is ignored: CSV has no root."""
        n = len(predictions)
        if n == 0:
            return b""
        mats = [a.reshape(n, -1) for a in predictions.float32_fields().values()]
        table = np.concatenate(mats, axis=1) if len(mats) > 1 else mats[0]
        k = table.shape[1]
        strs = float_strings(table)
        if k == 1:
            return ("\n".join(strs) + "\n").encode()
        return "".join(",".join(strs[i:i + k]) + "\n" for i in range(0, len(strs), k)).encode()
