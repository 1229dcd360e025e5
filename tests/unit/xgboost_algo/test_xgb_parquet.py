"""`application/x-parquet` decoder (common/smalgos/formats/parquet.py)."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smalgos.errors import ClientError
from smalgos.formats.media import parse_media_type
from smalgos.formats.parquet import ParquetDecoder, split_files

MEDIA = parse_media_type("application/x-parquet")


def pq_bytes(table, row_group_size=2) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=row_group_size)
    return buf.getvalue()


T1 = pa.table({"y": [1.0, 0.0, 1.0], "a": pa.array([1, None, 3], pa.int32()), "b": [True, False, True],
               "c": pa.array([0.5, 1.5, 2.5], pa.float64())})
T2 = pa.table({"y": [7.0], "a": pa.array([9], pa.int32()), "b": [False], "c": pa.array([4.0], pa.float64())})


def test_label_first_nulls_are_nan_types_cast():
    b = ParquetDecoder().decode(pq_bytes(T1), MEDIA, default_label_size=1, source="s")
    np.testing.assert_array_equal(b.labels, [1, 0, 1])
    assert b.features.dtype == np.float32 and b.features.flags.c_contiguous
    np.testing.assert_array_equal(b.features, [[1, 1, 0.5], [np.nan, 0, 1.5], [3, 1, 2.5]])
    assert ParquetDecoder().decode(pq_bytes(T1), parse_media_type("application/x-parquet; label_size=0"),
                                   default_label_size=1, source="s").labels is None


def test_concatenated_files_as_in_pipe_mode():
    data = pq_bytes(T1) + pq_bytes(T2)
    assert len(split_files(data, "s")) == 2
    batches = list(ParquetDecoder().iter_batches(io.BytesIO(data), MEDIA, default_label_size=1, batch_size=2,
                                                 source="fifo"))
    assert [len(b) for b in batches] == [2, 1, 1]
    assert np.concatenate([b.labels for b in batches]).tolist() == [1, 0, 1, 7]


def test_bad_input_is_named():
    with pytest.raises(ClientError, match="not a Parquet file"):
        ParquetDecoder().decode(b"1,2,3\n" * 5, MEDIA, default_label_size=1, source="part-3")
    with pytest.raises(ClientError, match="truncated"):
        ParquetDecoder().decode(pq_bytes(T1)[:-10], MEDIA, default_label_size=1, source="s")
    strings = pa.table({"y": [1.0], "city": ["Paris"]})
    with pytest.raises(ClientError, match="column 'city'"):
        ParquetDecoder().decode(pq_bytes(strings), MEDIA, default_label_size=1, source="s")
    with pytest.raises(ClientError, match="unsupported parameter 'header'"):
        ParquetDecoder().decode(pq_bytes(T1), parse_media_type("application/x-parquet; header=1"),
                                default_label_size=1, source="s")
