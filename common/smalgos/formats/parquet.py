"""`application/x-parquet` (alias `parquet`): Parquet files → dense float32 `Batch`es (training only).

As AWS's XGBoost image reads them: label columns first (``label_size``, default from the caller,
1 for supervised algorithms), every other column a feature, in file order. Numeric and boolean
columns are read; nulls become NaN (missing); any other column type is refused by name.

Parquet keeps its index at the end of a file, so a stream is read whole before decoding. In
Pipe mode one FIFO carries every S3 object of the channel back to back: the stream is split into
its files at their ``PAR1 ... <footer length>PAR1`` boundaries. In File mode each file is one
stream. Within a file, memory beyond the file's bytes stays bounded by one row group batch.

`pyarrow` is imported when the first Parquet byte arrives, never at import time.
"""

from __future__ import annotations

from typing import BinaryIO, Iterator

import numpy as np

from smalgos.errors import ClientError

from .batch import Batch
from .media import MediaType, check_params, int_param

PARQUET = "application/x-parquet"
MAGIC = b"PAR1"


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - the images that declare Parquet install pyarrow
        raise ClientError("application/x-parquet needs pyarrow, which this image does not include") from None
    return pa, pq


def split_files(data: bytes, source: str) -> list[memoryview]:
    """Cut concatenated Parquet files apart (one file → one piece)."""
    view = memoryview(data)
    n = len(data)
    if n < 12 or data[:4] != MAGIC:
        raise ClientError(f"{source}: not a Parquet file (it does not start with 'PAR1')")
    pieces, start = [], 0
    while start < n:
        if data[start:start + 4] != MAGIC:
            raise ClientError(f"{source}: byte {start}: expected the start of a Parquet file ('PAR1')")
        end = None
        pos = data.find(MAGIC, start + 8)
        while pos != -1:
            stop = pos + 4
            footer = int.from_bytes(data[pos - 4:pos], "little")
            if (stop == n or data[stop:stop + 4] == MAGIC) and footer < pos - start - 4:
                end = stop
                break
            pos = data.find(MAGIC, pos + 1)
        if end is None:
            raise ClientError(f"{source}: byte {start}: truncated Parquet file (no footer found)")
        pieces.append(view[start:end])
        start = end
    return pieces


def _column_to_float32(column, name: str, source: str) -> np.ndarray:
    pa, _ = _pyarrow()
    t = column.type
    if pa.types.is_dictionary(t):
        column = column.cast(t.value_type)
        t = column.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
            or pa.types.is_decimal(t)):
        raise ClientError(f"{source}: column {name!r} has type {t}; only numeric and boolean columns can be "
                          "read (encode categories as numbers first)")
    if not pa.types.is_floating(t) or t != pa.float32():
        column = column.cast(pa.float32())
    return column.to_numpy(zero_copy_only=False)


def _table_to_batch(table, label_size: int, source: str) -> Batch:
    n, width = table.num_rows, table.num_columns
    if width <= label_size:
        raise ClientError(f"{source}: {width} column(s), but label_size={label_size} leaves no feature columns "
                          "(labels come first)")
    values = np.empty((n, width), dtype=np.float32)
    for j, name in enumerate(table.column_names):
        values[:, j] = _column_to_float32(table.column(j), name, source)
    if label_size == 0:
        return Batch(values)
    labels = values[:, 0].copy() if label_size == 1 else np.ascontiguousarray(values[:, :label_size])
    return Batch(np.ascontiguousarray(values[:, label_size:]), labels)


class ParquetDecoder:
    media_type = PARQUET
    allowed_params = frozenset({"label_size"})

    def label_size(self, media: MediaType, default_label_size: int) -> int:
        check_params(media, self.allowed_params)
        return int_param(media, "label_size", default_label_size)

    def _files(self, data: bytes, source: str):
        pa, pq = _pyarrow()
        for i, piece in enumerate(split_files(data, source)):
            where = source if i == 0 and len(piece) == len(data) else f"{source} (Parquet file {i})"
            try:
                yield where, pq.ParquetFile(pa.BufferReader(piece))
            except (pa.ArrowException, OSError) as exc:
                raise ClientError(f"{where}: cannot read Parquet: {exc}") from None

    def decode(self, data: bytes, media: MediaType, *, default_label_size: int = 1,
               source: str = "request body") -> Batch:
        k = self.label_size(media, default_label_size)
        parts = [_table_to_batch(f.read(), k, where) for where, f in self._files(data, source)]
        return Batch.concat(parts) if parts else Batch(np.zeros((0, 0), np.float32))

    def iter_batches(self, stream: BinaryIO, media: MediaType, *, default_label_size: int = 1,
                     batch_size: int = 65536, source: str = "input") -> Iterator[Batch]:
        k = self.label_size(media, default_label_size)
        data = stream.read()
        if not data:
            return
        pa, _ = _pyarrow()
        width = None
        for where, f in self._files(data, source):
            try:
                for record_batch in f.iter_batches(batch_size=batch_size):
                    table = pa.Table.from_batches([record_batch])
                    if width is not None and table.num_columns != width:
                        raise ClientError(f"{where}: {table.num_columns} columns, but the files before have {width}")
                    width = table.num_columns
                    yield _table_to_batch(table, k, where)
            except pa.ArrowException as exc:
                raise ClientError(f"{where}: cannot read Parquet: {exc}") from None
