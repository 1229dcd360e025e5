"""`application/json` and `application/jsonlines`, in the request and response shapes of AWS's
first-party algorithms.

Requests (one instance per record):
    JSON:       ``{"instances": [<instance>, ...]}``, or one ``<instance>`` alone as the whole
                body (one record; beyond AWS's documented forms, which always wrap it)
    JSON Lines: one ``<instance>`` per line (blank lines skipped)
    <instance>: ``{"features": [1.5, 16.0]}``
                ``{"data": {"features": [1.5, 16.0]}}``  (the DG's "simple numeric vector"
                data element, which AWS's SDK would otherwise convert for you)
                ``{"data": {"features": {"values": [1.5, 16.0]}}}``
                ``{"data": {"features": {"keys": [3, 7], "shape": [2000], "values": [1.5, 2.0]}}}``
The forms may be mixed; if any instance is sparse the batch is CSR. Other keys of an instance
(``"configuration"``, a ``"label"``) are ignored: these are inference formats. A malformed
instance is a `ClientError` naming it and the key path at fault (``"data"."features"."values"[2]``).

Responses: JSON ``{"<root_key>": [{"<field>": value, ...}, ...]}`` (``json.dumps`` spacing; the
root key is given to the encoder, the algorithm's `json_root_key`),
JSON Lines one ``{...}`` per line, each line ending in ``\\n``. Values are float32 printed as the
shortest text that reads back the same (``0.3``, ``1.0``); NaN and ±inf, which JSON cannot
carry, are written ``null``.
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO, Callable, Iterator

import numpy as np
import scipy.sparse as sp

from smalgos.errors import ClientError

from ._numfmt import float_strings, row_strings
from ._stream import RowBuffer, iter_line_blocks
from .batch import Batch
from .media import JSON, JSONLINES, TEXT_PARAMS, MediaType, check_params
from .predictions import DEFAULT_ROOT_KEY, Predictions

_TOO_DEEP = "{}: JSON nested too deeply to read (instances are objects of flat lists of numbers)"
_FORMS = ('{"features": [...]}, {"data": {"features": [...]}} or {"data": {"features": {"values": [...]}}} '
          '(sparse: {"data": {"features": {"keys": [...], "shape": [d], "values": [...]}}})')
_DATA_FEATURES = '"data"."features"'
_INSTANCE_KEYS = ("features", "data")


def _number_list(value: Any, where: str, what: str) -> np.ndarray:
    if not isinstance(value, list):
        raise ClientError(f"{where}: {what} must be a list of numbers, got {type(value).__name__}")
    arr = _numeric_array(value)
    if arr is None or arr.ndim != 1:
        for j, v in enumerate(value):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ClientError(f"{where}: {what}[{j}] is {_excerpt(v)}, not a number")
        raise ClientError(f"{where}: {what} must be a flat list of numbers")
    return arr.astype(np.float64)


def _excerpt(value: Any) -> str:
    try:
        return json.dumps(value)[:40]
    except RecursionError:  # nested nearly as deep as the decoder allows
        return "a deeply nested " + type(value).__name__


def _numeric_array(value: list) -> np.ndarray | None:
    """`value` as an int or float array, or None (strings, null, booleans, ragged nesting).

    np.array() without a dtype keeps strings and all-boolean lists recognisable (it would turn
    "1.5" into 1.5 when asked for floats); a boolean among numbers still reads as 0/1.
    """
    try:
        arr = np.array(value)
    except (TypeError, ValueError):
        return None
    if arr.dtype.kind not in "iuf" and not (arr.size == 0 and arr.dtype.kind in "fO"):
        return None
    return arr


def _instance(inst: Any, where: str):
    """→ ("dense", values) or ("sparse", values, keys, width)."""
    if not isinstance(inst, dict):
        raise ClientError(f"{where}: expected an object {_FORMS}, got {type(inst).__name__}")
    if "features" in inst:
        return ("dense", _number_list(inst["features"], where, '"features"'))
    if "data" not in inst:
        raise ClientError(f'{where}: no "features" and no "data" field; expected {_FORMS}')
    data = inst["data"]
    if not isinstance(data, dict) or "features" not in data:
        got = f"an object with keys {_excerpt(list(data))}" if isinstance(data, dict) else _excerpt(data)
        raise ClientError(f'{where}: "data" must hold a "features" object or list, got {got}; expected {_FORMS}')
    feats = data["features"]
    if isinstance(feats, list):   # the "simple numeric vector" data element
        return ("dense", _number_list(feats, where, _DATA_FEATURES))
    if not isinstance(feats, dict):
        raise ClientError(f'{where}: {_DATA_FEATURES} must be a list of numbers or an object with '
                          f'"values", got {type(feats).__name__}')
    if "values" not in feats:
        raise ClientError(f'{where}: {_DATA_FEATURES} has no "values" field')
    values = _number_list(feats["values"], where, f'{_DATA_FEATURES}."values"')
    if "keys" not in feats:
        return ("dense", values)
    keys = _number_list(feats["keys"], where, f'{_DATA_FEATURES}."keys"')
    if "shape" not in feats:
        raise ClientError(f'{where}: sparse features ("keys") without a "shape"')
    shape = _number_list(feats["shape"], where, f'{_DATA_FEATURES}."shape"')
    if keys.size != values.size:
        raise ClientError(f'{where}: {keys.size} "keys" but {values.size} "values"')
    if shape.size == 0 or (shape < 0).any() or (shape != np.floor(shape)).any():
        raise ClientError(f'{where}: "shape" must be a list of non-negative integers')
    width = int(np.prod(shape))
    if keys.size and ((keys != np.floor(keys)).any() or keys.min() < 0 or keys.max() >= width):
        bad = keys[(keys != np.floor(keys)) | (keys < 0) | (keys >= width)][0]
        raise ClientError(f'{where}: key {bad:g} is not an integer in [0, {width})')
    return ("sparse", values, keys.astype(np.int64), width)


def instances_to_batch(instances: list, where: Callable[[int], str]) -> Batch:
    """Instances (parsed JSON) → `Batch`; `where(i)` names instance i in messages."""
    n = len(instances)
    if n == 0:
        return Batch(np.zeros((0, 0), np.float32))
    # fast path: every instance {"features": [numbers]} of one length
    if all(type(x) is dict and type(x.get("features")) is list for x in instances):
        arr = _numeric_array([x["features"] for x in instances])
        if arr is not None and arr.ndim == 2:
            return Batch(arr.astype(np.float32))
    parsed = [_instance(x, where(i)) for i, x in enumerate(instances)]
    if all(p[0] == "dense" for p in parsed):
        d = parsed[0][1].size
        for i, p in enumerate(parsed):
            if p[1].size != d:
                raise ClientError(f"{where(i)}: {p[1].size} features, but {where(0)} has {d} "
                                  "(dense instances must all have the same length)")
        return Batch(np.array([p[1] for p in parsed], dtype=np.float32).reshape(n, d))
    width = max(p[3] if p[0] == "sparse" else p[1].size for p in parsed)
    counts = np.array([p[1].size for p in parsed], np.int64)
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(counts, out=indptr[1:])
    data = np.concatenate([p[1] for p in parsed]).astype(np.float32)
    cols = np.concatenate([p[2] if p[0] == "sparse" else np.arange(p[1].size) for p in parsed])
    return Batch(sp.csr_matrix((data, cols.astype(np.int64), indptr), shape=(n, width)))


def decode_json(data: bytes, *, source: str = "request body") -> Batch:
    if not data.strip():       # like every decoder here: an empty body is zero records
        return Batch(np.zeros((0, 0), np.float32))
    try:
        obj = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise ClientError(f"{source}: not valid JSON ({e})") from None
    except RecursionError:
        raise ClientError(_TOO_DEEP.format(source)) from None
    if isinstance(obj, dict) and "instances" not in obj and any(k in obj for k in _INSTANCE_KEYS):
        return instances_to_batch([obj], lambda i: source)   # one instance alone: one record
    if not isinstance(obj, dict) or "instances" not in obj:
        raise ClientError(f'{source}: expected {{"instances": [...]}} with each instance {_FORMS}')
    instances = obj["instances"]
    if not isinstance(instances, list):
        raise ClientError(f'{source}: "instances" must be a list')
    return instances_to_batch(instances, lambda i: f"{source}: instance {i}")


def decode_jsonlines(data: bytes, *, source: str = "request body", first_line: int = 1) -> Batch:
    lines = data.split(b"\n")
    live = [i for i, line in enumerate(lines) if line.strip()]
    where = lambda k: f"{source}: line {first_line + live[k]}"
    if not live:
        return Batch(np.zeros((0, 0), np.float32))
    try:
        instances = json.loads(b"[" + b",".join(lines[i] for i in live) + b"]")
    except (ValueError, UnicodeDecodeError, RecursionError):
        instances = None   # find the line at fault one by one
    if instances is None or len(instances) != len(live):
        instances = []
        for k, i in enumerate(live):
            try:
                instances.append(json.loads(lines[i]))
            except (ValueError, UnicodeDecodeError) as e:
                raise ClientError(f"{where(k)}: not valid JSON ({e})") from None
            except RecursionError:
                raise ClientError(_TOO_DEEP.format(where(k))) from None
    return instances_to_batch(instances, where)


class JSONDecoder:
    media_type = JSON
    allowed_params = TEXT_PARAMS

    def decode(self, data: bytes, media: MediaType, *, default_label_size: int = 0,
               source: str = "request body") -> Batch:
        check_params(media, self.allowed_params)
        return decode_json(data, source=source)

    def iter_batches(self, stream: BinaryIO, media: MediaType, *, default_label_size: int = 0,
                     batch_size: int = 1000, source: str = "input") -> Iterator[Batch]:
        # one JSON document: read whole, then hand out in batches
        check_params(media, self.allowed_params)
        batch = decode_json(stream.read(), source=source)
        rows = RowBuffer(batch_size)
        rows.add(batch)
        yield from rows.full_batches()
        yield from rows.rest()


class JSONLinesDecoder:
    media_type = JSONLINES
    allowed_params = TEXT_PARAMS

    def decode(self, data: bytes, media: MediaType, *, default_label_size: int = 0,
               source: str = "request body") -> Batch:
        check_params(media, self.allowed_params)
        return decode_jsonlines(data, source=source)

    def iter_batches(self, stream: BinaryIO, media: MediaType, *, default_label_size: int = 0,
                     batch_size: int = 1000, source: str = "input",
                     chunk_size: int = 1 << 20) -> Iterator[Batch]:
        check_params(media, self.allowed_params)
        rows = RowBuffer(batch_size)
        line = 1
        for block in iter_line_blocks(stream, chunk_size):
            rows.add(decode_jsonlines(block, source=source, first_line=line))
            line += block.count(b"\n")
            yield from rows.full_batches()
        yield from rows.rest()


def _record_strings(predictions: Predictions) -> list[str]:
    n = len(predictions)
    fields = predictions.float32_fields()
    if n == 0 or not fields:
        return ["{}"] * n
    cols = []
    for arr in fields.values():
        if arr.ndim == 1:
            cols.append(float_strings(arr, "null"))
        else:
            cols.append(row_strings(arr, ", ", "null", brackets=True))
    template = "{" + ", ".join(json.dumps(k).replace("%", "%%") + ": %s" for k in fields) + "}"
    return [template % vals for vals in zip(*cols)]


class JSONEncoder:
    media_type = JSON

    def encode(self, predictions: Predictions, *, root_key: str = DEFAULT_ROOT_KEY) -> bytes:
        """``{"<root_key>": [record, ...]}``; the key is the algorithm's (`Serving.json_root_key`)."""
        rows = _record_strings(predictions)
        return (f"{{{json.dumps(root_key)}: [" + ", ".join(rows) + "]}").encode()


class JSONLinesEncoder:
    media_type = JSONLINES

    def encode(self, predictions: Predictions, *, root_key: str = DEFAULT_ROOT_KEY) -> bytes:
        """One JSON object per line (no root: `root_key` is ignored)."""
        rows = _record_strings(predictions)
        return ("\n".join(rows) + "\n").encode() if rows else b""
