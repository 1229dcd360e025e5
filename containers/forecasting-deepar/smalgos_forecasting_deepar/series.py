"""DeepAR's series records: JSON Lines (`.json`, `.json.gz`) and Parquet files, and the same
objects in inference requests, checked against AWS's rules.

A record is an object with `start` (`YYYY-MM-DD HH:MM:SS` or a date, no time zone; in Parquet a
timestamp column too), `target` (numbers, `null` / `"NaN"` / Parquet `nan` for gaps), and
optionally `cat` (non-negative integers) and `dynamic_feat` (arrays of finite numbers, one value per
time point, at least len(target) + `future` of them). Other fields are ignored. Every fault is a
ClientError naming where (file and line, Parquet row, or request instance) and the field.
"""

from __future__ import annotations

import datetime
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import orjson
import pandas as pd

from smalgos.channels import _open_maybe_gzip, data_files
from smalgos.errors import ClientError
from smalgos.formats.media import JSON, JSONLINES

from .declaration import AUTO, IGNORE, PARQUET

log = logging.getLogger("smalgos")

MIN_OBSERVATIONS = 300  # AWS: the training series must hold at least 300 observations in all
SKIPPED_NAMES = ("_SUCCESS",)  # Spark's marker file; dot files are skipped by data_files
JSON_SUFFIXES, PARQUET_SUFFIXES = (".json", ".json.gz", ".jsonl"), (".parquet",)
_MISSING = ("nan",)  # target gaps spelt as strings (AWS: "NaN"), compared lower-cased


@dataclass
class Series:
    """One decoded record. `target` is float32 with NaN for gaps; `dynamic_feat` float32
    (features × time), cut to len(target) + the `future` asked for; `where` names the record."""

    start: pd.Timestamp
    target: np.ndarray
    cat: tuple[int, ...] | None
    dynamic_feat: np.ndarray | None
    where: str

    @property
    def observations(self) -> int:
        return int(np.count_nonzero(~np.isnan(self.target)))


# -- one record -------------------------------------------------------------------------------


def decode_record(obj: Any, where: str, future: int = 0) -> Series:
    """Check one record (a parsed JSON object or Parquet row) and decode it. `future`: how many
    values past the target each `dynamic_feat` series needs (0 in training, prediction_length at
    inference)."""
    if not isinstance(obj, dict):
        raise ClientError(f"{where}: expected a JSON object with start and target, got {type(obj).__name__}")
    for name in ("start", "target"):
        if obj.get(name) is None:
            raise ClientError(f"{where}: field {name!r} is missing")
    target = _target(obj["target"], where)
    cat = None if obj.get("cat") is None else _cat(obj["cat"], where)
    feat = None if obj.get("dynamic_feat") is None else _dynamic_feat(obj["dynamic_feat"], where, len(target) + future)
    return Series(_start(obj["start"], where), target, cat, feat, where)


def _start(value: Any, where: str) -> pd.Timestamp:
    if isinstance(value, (datetime.date, np.datetime64)):  # Parquet's timestamp and date columns
        stamp = pd.Timestamp(value)
    elif isinstance(value, str):
        try:
            stamp = pd.Timestamp(value.strip())
        except (ValueError, OverflowError) as exc:
            raise ClientError(f"{where}: field 'start' {value!r} is not a timestamp such as "
                              f"'2012-01-30 00:00:00' ({exc})") from None
    else:
        raise ClientError(f"{where}: field 'start' must be a string 'YYYY-MM-DD HH:MM:SS', got {value!r}")
    if stamp is pd.NaT or pd.isna(stamp):
        raise ClientError(f"{where}: field 'start' {value!r} is not a timestamp")
    if stamp.tzinfo is not None:
        raise ClientError(f"{where}: field 'start' {value!r} carries a time zone; DeepAR's start has none")
    return stamp


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _target(values: Any, where: str) -> np.ndarray:
    if not isinstance(values, (list, tuple, np.ndarray)):
        raise ClientError(f"{where}: field 'target' must be an array of numbers, got {type(values).__name__}")
    if len(values) == 0:
        raise ClientError(f"{where}: field 'target' is empty")
    out = np.empty(len(values), dtype=np.float32)
    for i, v in enumerate(values):
        if v is None or (isinstance(v, str) and v.strip().lower() in _MISSING):
            out[i] = np.nan
        elif _number(v) and not math.isinf(v):
            out[i] = v  # a float NaN (Parquet's nan) is a gap too
        else:
            raise ClientError(f"{where}: field 'target' value {i} is {v!r}: expected a finite number, "
                              "or null / \"NaN\" for a missing value")
    return out


def _cat(values: Any, where: str) -> tuple[int, ...]:
    if not isinstance(values, (list, tuple, np.ndarray)):
        raise ClientError(f"{where}: field 'cat' must be an array of non-negative integers, got {values!r}")
    out = []
    for i, v in enumerate(values):
        if not _number(v) or not float(v).is_integer() or v < 0:
            raise ClientError(f"{where}: field 'cat' value {i} is {v!r}: categories are non-negative integers")
        out.append(int(v))
    return tuple(out)


def _dynamic_feat(values: Any, where: str, needed: int) -> np.ndarray:
    if not isinstance(values, (list, tuple, np.ndarray)) or any(
            not isinstance(f, (list, tuple, np.ndarray)) for f in values):
        raise ClientError(f"{where}: field 'dynamic_feat' must be an array of arrays of numbers")
    out = np.empty((len(values), needed), dtype=np.float32)
    for j, feature in enumerate(values):
        if len(feature) < needed:
            raise ClientError(f"{where}: field 'dynamic_feat' series {j} has {len(feature)} values but needs at "
                              f"least {needed} (one per target point, and at inference prediction_length more)")
        for i, v in enumerate(feature[:needed]):
            if not _number(v) or not math.isfinite(v):
                raise ClientError(f"{where}: field 'dynamic_feat' series {j} value {i} is {v!r}: dynamic "
                                  "features must be finite numbers (no missing values)")
            out[j, i] = v
    return out


# -- files and channels -----------------------------------------------------------------------


def _json_records(path: Path, where: str) -> Iterator[tuple[Any, str]]:
    with open(path, "rb", buffering=0) as raw:
        stream = _open_maybe_gzip(raw, f"{where}: {path}")
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            place = f"{path}: line {number}"
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                try:
                    obj = json.loads(line)  # the standard parser also reads NaN literals
                except ValueError:
                    raise ClientError(f"{where}: {place} is not valid JSON ({exc})") from None
            yield obj, place


def _parquet_records(path: Path, where: str) -> Iterator[tuple[Any, str]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - the image has pyarrow
        raise ClientError(f"{where}: reading Parquet needs pyarrow, which this image does not include") from None
    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as exc:  # pyarrow's errors have no common base worth naming
        raise ClientError(f"{where}: {path} is not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    for number, row in enumerate(rows, start=1):
        yield row, f"{path}: row {number}"


def file_format(path: Path, content_type: str | None, where: str) -> str:
    """JSONLINES or PARQUET, from the name (`.json`, `.json.gz`, `.parquet`), else the channel's
    ContentType."""
    name = path.name.lower()
    if name.endswith(JSON_SUFFIXES):
        return JSONLINES
    if name.endswith(PARQUET_SUFFIXES):
        return PARQUET
    if content_type in (JSONLINES, JSON):
        return JSONLINES
    if content_type == PARQUET:
        return PARQUET
    raise ClientError(f"{where}: cannot tell the format of {path}: name it .json, .json.gz or .parquet, "
                      "or set the channel's ContentType (json or parquet)")


def read_series(root: Path, channel: str, content_type: str | None = None) -> list[Series]:
    """Every record under `root` (a channel's directory, read recursively; dot files and `_SUCCESS`
    skipped), decoded and checked as training data, in file order."""
    where = f"Channel {channel!r}"
    if not root.is_dir():
        raise ClientError(f"{where}: directory {root} does not exist")
    series: list[Series] = []
    for path in data_files(root):
        if path.name in SKIPPED_NAMES:
            continue
        reader = _parquet_records if file_format(path, content_type, where) == PARQUET else _json_records
        for obj, place in reader(path, where):
            series.append(decode_record(obj, f"{where}: {place}"))
    if not series:
        raise ClientError(f"{where}: no series found under {root}")
    check_consistent(series)
    return series


def check_consistent(series: Sequence[Series]) -> None:
    """Every record has the same number of `cat` values and of `dynamic_feat` series (none counts
    as zero), as AWS requires."""
    first = series[0]
    for s in series[1:]:
        for field, count in (("cat", _cat_count), ("dynamic_feat", _feat_count)):
            if count(s) != count(first):
                raise ClientError(f"{s.where}: field {field!r} has {count(s)} values but {first.where} has "
                                  f"{count(first)}: every record needs the same number")


def _cat_count(s: Series) -> int:
    return 0 if s.cat is None else len(s.cat)


def _feat_count(s: Series) -> int:
    return 0 if s.dynamic_feat is None else s.dynamic_feat.shape[0]


def observations(series: Sequence[Series]) -> int:
    """The observed (not missing) target values of `series`."""
    return sum(s.observations for s in series)


def check_enough_observations(total: int, channel: str = "train") -> None:
    """AWS's floor: at least MIN_OBSERVATIONS observed target values over all training series
    (`total`, of every host's series)."""
    if total < MIN_OBSERVATIONS:
        raise ClientError(f"Channel {channel!r}: the series hold {total} observations in all; DeepAR needs at "
                          f"least {MIN_OBSERVATIONS}")


# -- cardinality and num_dynamic_feat ----------------------------------------------------------


def resolve_cardinality(series: Sequence[Series], declared: Any, source: str) -> list[int]:
    """The categories of each `cat` field the model uses ([]: none), from `cardinality`:
    `ignore`, `auto` (one more than the largest value seen), or a list the data must fit."""
    count = _cat_count(series[0])
    if declared == IGNORE:
        return []
    if declared == AUTO:
        if count == 0:
            log.info("[cardinality=auto] `cat` field was NOT found in the file `%s` and will NOT be used for "
                     "training.", source)
            return []
        return [1 + max(s.cat[i] for s in series) for i in range(count)]  # type: ignore[index]
    if count != len(declared):
        raise ClientError(f"Hyperparameter cardinality: {declared} names {len(declared)} categorical field(s) "
                          f"but {series[0].where} has {count} `cat` value(s)")
    for s in series:
        check_categories(s, declared)
    return list(declared)


def check_categories(s: Series, cardinality: Sequence[int]) -> None:
    """Each of the record's categories lies below its field's cardinality (was seen in training)."""
    if _cat_count(s) != len(cardinality):
        raise ClientError(f"{s.where}: field 'cat' has {_cat_count(s)} value(s) but the model was trained with "
                          f"{len(cardinality)}")
    for i, (value, size) in enumerate(zip(s.cat or (), cardinality)):
        if value >= size:
            raise ClientError(f"{s.where}: field 'cat' value {i} is {value}, a category the model does not "
                              f"know (cardinality {size}: 0 to {size - 1})")


def resolve_num_dynamic_feat(series: Sequence[Series], declared: Any, source: str) -> int:
    """How many `dynamic_feat` series the model uses (0: none), from `num_dynamic_feat`."""
    count = _feat_count(series[0])
    if declared == IGNORE:
        return 0
    if declared == AUTO:
        if count == 0:
            log.info("[num_dynamic_feat=auto] `dynamic_feat` field was NOT found in the file `%s` and will NOT "
                     "be used for training.", source)
        return count
    if count != declared:
        raise ClientError(f"Hyperparameter num_dynamic_feat: {declared} but {series[0].where} has {count} "
                          "`dynamic_feat` series")
    return count
