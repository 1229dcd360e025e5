"""DeepAR's series reader: JSON Lines (plain and gzip) and Parquet channels, AWS's record rules, and
every fault a ClientError naming the file, line (or row) and field."""
import gzip
import json
import logging

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from smalgos.errors import ClientError
from smalgos_forecasting_deepar.series import (
    MIN_OBSERVATIONS, check_categories, check_enough_observations, decode_record, observations, read_series,
    resolve_cardinality, resolve_num_dynamic_feat,
)

RECORDS = [
    {"start": "2012-01-30 00:00:00", "target": [1.0, None, 3, "NaN", 5.5], "cat": [0, 2],
     "dynamic_feat": [[0.1, 0.2, 0.3, 0.4, 0.5, 9.0]]},
    {"start": "1999-01-30", "target": [2.0, 1.0, 0.5], "cat": [1, 0], "dynamic_feat": [[1, 0, 1]], "id": "x"},
]


def write_lines(path, records, opener=open):
    path.parent.mkdir(parents=True, exist_ok=True)
    with opener(path, "wt") as f:
        for r in records:
            f.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
    return path


def one_error(tmp_path, line, name="bad.json"):
    write_lines(tmp_path / "train" / name, [RECORDS[1], line])
    with pytest.raises(ClientError) as info:
        read_series(tmp_path / "train", "train")
    return str(info.value)


def check_decoded(series):
    a, b = series
    assert a.start == pd.Timestamp("2012-01-30") and b.start == pd.Timestamp("1999-01-30")
    np.testing.assert_array_equal(a.target, np.array([1, np.nan, 3, np.nan, 5.5], dtype=np.float32))
    assert a.target.dtype == np.float32 and a.observations == 3 and b.observations == 3
    assert a.cat == (0, 2) and b.cat == (1, 0)
    # training keeps one feature value per target point (the extra, future value is cut)
    np.testing.assert_array_equal(a.dynamic_feat, np.array([[0.1, 0.2, 0.3, 0.4, 0.5]], dtype=np.float32))
    np.testing.assert_array_equal(b.dynamic_feat, [[1, 0, 1]])


def test_json_lines_plain_and_gzip_in_subdirectories(tmp_path):
    write_lines(tmp_path / "train" / "a.json", RECORDS[:1])
    write_lines(tmp_path / "train" / "sub" / "b.json.gz", RECORDS[1:], opener=gzip.open)
    write_lines(tmp_path / "train" / "_SUCCESS", ["not json"])
    write_lines(tmp_path / "train" / ".hidden.json", ["not json"])
    series = read_series(tmp_path / "train", "train")
    check_decoded(series)
    assert series[0].where == f"Channel 'train': {tmp_path}/train/a.json: line 1"


def test_blank_lines_count_in_line_numbers(tmp_path):
    write_lines(tmp_path / "train" / "a.json", [RECORDS[1], "", '{"start": "2020-01-01", "target": [1, true]}'])
    with pytest.raises(ClientError, match=r"a.json: line 3: field 'target' value 1 is True"):
        read_series(tmp_path / "train", "train")


def test_parquet_with_datetime_start(tmp_path):
    (tmp_path / "train").mkdir()
    table = pa.table({
        "start": pa.array([pd.Timestamp("2012-01-30"), pd.Timestamp("1999-01-30")], pa.timestamp("s")),
        "target": [[1.0, None, 3.0, float("nan"), 5.5], [2.0, 1.0, 0.5]],
        "cat": [[0, 2], [1, 0]],
        "dynamic_feat": [[[0.1, 0.2, 0.3, 0.4, 0.5, 9.0]], [[1.0, 0.0, 1.0]]],
    })
    pq.write_table(table, tmp_path / "train" / "part-0.parquet", compression="snappy")
    check_decoded(read_series(tmp_path / "train", "train"))


def test_parquet_string_start_gzip_compressed(tmp_path):
    (tmp_path / "test").mkdir()
    pq.write_table(pa.table({"start": ["2020-03-01 05:00:00"], "target": [[1.0, 2.0]]}),
                   tmp_path / "test" / "x.parquet", compression="gzip")
    (s,) = read_series(tmp_path / "test", "test")
    assert s.start == pd.Timestamp("2020-03-01 05:00") and s.cat is None and s.dynamic_feat is None


def test_extension_or_content_type(tmp_path):
    write_lines(tmp_path / "train" / "data.txt", RECORDS)
    with pytest.raises(ClientError, match=r"cannot tell the format of .*data.txt: name it .json, .json.gz or "
                                          r".parquet, or set the channel's ContentType"):
        read_series(tmp_path / "train", "train")
    check_decoded(read_series(tmp_path / "train", "train", "application/jsonlines"))
    (tmp_path / "p").mkdir()
    pq.write_table(pa.table({"start": ["2020-03-01"], "target": [[1.0]]}), tmp_path / "p" / "noext")
    assert len(read_series(tmp_path / "p", "train", "application/x-parquet")) == 1


def test_gzip_found_by_its_bytes_without_the_extension(tmp_path):
    write_lines(tmp_path / "train" / "data", RECORDS, opener=gzip.open)
    check_decoded(read_series(tmp_path / "train", "train", "application/jsonlines"))


def test_corrupt_gzip_and_parquet_name_the_file(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "a.json.gz").write_bytes(gzip.compress(
        b'{"start": "2020-01-01", "target": [1, 2, 3]}\n' * 500)[:60])
    with pytest.raises(ClientError, match=r"Channel 'train': .*/a.json.gz: corrupt or truncated gzip data"):
        read_series(tmp_path / "train", "train")
    (tmp_path / "train" / "a.json.gz").unlink()
    (tmp_path / "train" / "b.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(ClientError, match=r"b.parquet is not a readable Parquet file"):
        read_series(tmp_path / "train", "train")


@pytest.mark.parametrize("line,message", [
    ('{"start": "2020-01-01", "target": [1, 2', r"line 2 is not valid JSON"),
    ('[1, 2, 3]', r"line 2: expected a JSON object with start and target, got list"),
    ('{"target": [1, 2]}', r"line 2: field 'start' is missing"),
    ('{"start": "2020-01-01"}', r"line 2: field 'target' is missing"),
    ('{"start": "yesterday", "target": [1]}', r"line 2: field 'start' 'yesterday' is not a timestamp"),
    ('{"start": "2020-01-01 00:00:00+02:00", "target": [1]}', r"line 2: field 'start' .* carries a time zone"),
    ('{"start": 20200101, "target": [1]}', r"line 2: field 'start' must be a string"),
    ('{"start": "2020-01-01", "target": []}', r"line 2: field 'target' is empty"),
    ('{"start": "2020-01-01", "target": 3}', r"line 2: field 'target' must be an array of numbers"),
    ('{"start": "2020-01-01", "target": [1, "x"]}', r"line 2: field 'target' value 1 is 'x'"),
    ('{"start": "2020-01-01", "target": [1, Infinity]}', r"line 2: field 'target' value 1 is inf"),
    ('{"start": "2020-01-01", "target": [1], "cat": [0, -1]}', r"line 2: field 'cat' value 1 is -1"),
    ('{"start": "2020-01-01", "target": [1], "cat": [0.5, 1]}', r"line 2: field 'cat' value 0 is 0.5"),
    ('{"start": "2020-01-01", "target": [1], "cat": 3}', r"line 2: field 'cat' must be an array"),
    ('{"start": "2020-01-01", "target": [1, 2], "cat": [1, 0], "dynamic_feat": [[1, null]]}',
     r"line 2: field 'dynamic_feat' series 0 value 1 is None: dynamic features must be finite numbers"),
    ('{"start": "2020-01-01", "target": [1, 2], "cat": [1, 0], "dynamic_feat": [[1, "NaN"]]}',
     r"line 2: field 'dynamic_feat' series 0 value 1 is 'NaN'"),
    ('{"start": "2020-01-01", "target": [1, 2, 3], "cat": [1, 0], "dynamic_feat": [[1, 2]]}',
     r"line 2: field 'dynamic_feat' series 0 has 2 values but needs at least 3"),
    ('{"start": "2020-01-01", "target": [1, 2], "cat": [1, 0], "dynamic_feat": [1, 2]}',
     r"line 2: field 'dynamic_feat' must be an array of arrays"),
    ('{"start": "2020-01-01", "target": [1, 2], "cat": [1], "dynamic_feat": [[1, 2]]}',
     r"line 2: field 'cat' has 1 values but .*line 1 has 2: every record needs the same number"),
    ('{"start": "2020-01-01", "target": [1, 2], "cat": [1, 0]}',
     r"line 2: field 'dynamic_feat' has 0 values but .*line 1 has 1"),
    ('{"start": "2020-01-01", "target": [1, 2], "cat": [1, 0], "dynamic_feat": [[1, 2], [3, 4]]}',
     r"line 2: field 'dynamic_feat' has 2 values but .*line 1 has 1"),
])
def test_aws_rules_name_file_line_and_field(tmp_path, line, message):
    text = one_error(tmp_path, line)
    assert text.startswith(f"Channel 'train': {tmp_path}/train/bad.json: line 2") and __import__("re").search(
        message, text), text


def test_nan_literal_target_is_a_gap(tmp_path):
    write_lines(tmp_path / "train" / "a.json", ['{"start": "2020-01-01", "target": [1, NaN, 3]}'])
    (s,) = read_series(tmp_path / "train", "train")
    assert np.isnan(s.target[1]) and s.observations == 2


def test_empty_channel(tmp_path):
    (tmp_path / "train").mkdir()
    write_lines(tmp_path / "train" / "_SUCCESS", [""])
    with pytest.raises(ClientError, match="Channel 'train': no series found"):
        read_series(tmp_path / "train", "train")
    with pytest.raises(ClientError, match="directory .* does not exist"):
        read_series(tmp_path / "nope", "train")


def test_inference_needs_future_features():
    record = {"start": "2020-01-01", "target": [1.0, 2.0], "dynamic_feat": [[1, 2, 3]]}
    with pytest.raises(ClientError, match=r"instance 0: field 'dynamic_feat' series 0 has 3 values but needs at "
                                          r"least 4 \(one per target point, and at inference prediction_length"):
        decode_record(record, "instance 0", future=2)
    s = decode_record({**record, "dynamic_feat": [[1, 2, 3, 4, 5]]}, "instance 0", future=2)
    np.testing.assert_array_equal(s.dynamic_feat, [[1, 2, 3, 4]])


def series_of(*records):
    return [decode_record(r, f"line {i + 1}") for i, r in enumerate(records)]


def test_cardinality_auto_ignore_and_declared(caplog):
    data = series_of(*RECORDS)
    assert resolve_cardinality(data, "auto", "train.json") == [2, 3]
    assert resolve_cardinality(data, "ignore", "train.json") == []
    assert resolve_cardinality(data, [4, 3], "train.json") == [4, 3]
    with pytest.raises(ClientError, match=r"line 1: field 'cat' value 1 is 2, a category the model does not know "
                                          r"\(cardinality 2: 0 to 1\)"):
        resolve_cardinality(data, [2, 2], "train.json")
    with pytest.raises(ClientError, match=r"Hyperparameter cardinality: \[3\] names 1 categorical field\(s\) but "
                                          r"line 1 has 2"):
        resolve_cardinality(data, [3], "train.json")
    plain = series_of({"start": "2020-01-01", "target": [1.0]})
    with caplog.at_level(logging.INFO, logger="smalgos"):
        assert resolve_cardinality(plain, "auto", "/opt/ml/input/data/train/train.json") == []
    assert ("[cardinality=auto] `cat` field was NOT found in the file `/opt/ml/input/data/train/train.json` and "
            "will NOT be used for training.") in caplog.text


def test_unseen_category_at_inference():
    (s,) = series_of({"start": "2020-01-01", "target": [1.0], "cat": [1, 3]})
    check_categories(s, [2, 4])
    with pytest.raises(ClientError, match=r"line 1: field 'cat' value 1 is 3, a category the model does not know"):
        check_categories(s, [2, 3])
    with pytest.raises(ClientError, match=r"line 1: field 'cat' has 2 value\(s\) but the model was trained with 1"):
        check_categories(s, [2])


def test_num_dynamic_feat(caplog):
    data = series_of(*RECORDS)
    assert resolve_num_dynamic_feat(data, "auto", "f") == 1
    assert resolve_num_dynamic_feat(data, "ignore", "f") == 0
    assert resolve_num_dynamic_feat(data, 1, "f") == 1
    with pytest.raises(ClientError, match="Hyperparameter num_dynamic_feat: 2 but line 1 has 1"):
        resolve_num_dynamic_feat(data, 2, "f")
    with caplog.at_level(logging.INFO, logger="smalgos"):
        assert resolve_num_dynamic_feat(series_of({"start": "2020-01-01", "target": [1.0]}), "auto", "f.json") == 0
    assert "[num_dynamic_feat=auto] `dynamic_feat` field was NOT found in the file `f.json`" in caplog.text


def test_at_least_300_observations():
    enough = series_of(*[{"start": "2020-01-01", "target": [1.0] * 100 + [None]} for _ in range(3)])
    assert observations(enough) == 300
    check_enough_observations(observations(enough))
    short = enough[:2] + series_of({"start": "2020-01-01", "target": [1.0] * 99 + ["NaN"] * 5})
    with pytest.raises(ClientError, match=f"hold 299 observations in all; DeepAR needs at least {MIN_OBSERVATIONS}"):
        check_enough_observations(observations(short))
