"""`application/x-recordio-protobuf`: SageMaker's `Record` messages in RecordIO framing.

Reading is done in bulk, never record by record in Python, in three tiers:

1. *template*: records of one size with one layout (what a writer of a dense float32/float64
   matrix produces) differ only in their value bytes. Record 0 is parsed, every other record's
   non-value bytes are compared with it in one 2-D numpy comparison, and the values are a strided
   view of the buffer.
2. *lockstep*: records laid out as the SageMaker SDK writes them (features["values"] as a
   Float32/Float64/Int32 tensor with optional keys and shape, an optional label["values"]) of any
   sizes are walked all at once, one numpy step per protobuf field; the value, key and shape bytes
   are then gathered and decoded (packed varints included) in bulk.
3. *general*: anything else that is a valid `Record` (other field orders, uid/metadata, extra
   map entries) is parsed by the protobuf runtime record by record.

All three end in the same checks, so an error reads the same whatever tier found it.

Writers (`dense_to_recordio`, `sparse_to_recordio`, `write_dense`, `write_sparse`) are byte for byte
the SDK's `write_numpy_to_dense_tensor` / `write_spmatrix_to_sparse_tensor`; `RecordIOProtobufEncoder`
writes responses the way AWS's first-party algorithms do: one Record per row, `features` empty,
each output in the `label` map as a Float32Tensor.
"""

from __future__ import annotations

import io
import struct
from typing import BinaryIO, Iterator

import numpy as np
import scipy.sparse as sp

from smalgos.errors import ClientError

from . import recordio
from .batch import Batch
from .media import RECORDIO_PROTOBUF, MediaType, check_params
from .predictions import DEFAULT_ROOT_KEY, Predictions

_F32, _F64, _I32 = 0x12, 0x1A, 0x3A          # Value.float32_tensor (2), float64 (3), int32 (7)
_TAG_NAMES = {_F32: "Float32", _F64: "Float64", _I32: "Int32"}
_VALUES_KEY = b"\x0a\x06values"               # map entry field 1 (key) = "values"
_VALUES_KEY_ARR = np.frombuffer(_VALUES_KEY, np.uint8)
_SMALL_BATCH = 16                             # fewer records than this: parse them one by one


# --------------------------------------------------------------------------------------------
# varints


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _read_varints_at(u8: np.ndarray, pos: np.ndarray, max_bytes: int = 5):
    """Varints starting at each of `pos`: (values int64, byte counts, unterminated mask)."""
    top = u8.size - 1
    b = u8[np.minimum(pos, top)]
    val = (b & 0x7F).astype(np.int64)
    nb = np.ones(pos.size, np.int64)
    cont = np.flatnonzero(b >= 0x80)
    shift = 7
    while cont.size and shift < 7 * max_bytes:
        b = u8[np.minimum(pos[cont] + nb[cont], top)]
        val[cont] |= (b & 0x7F).astype(np.int64) << shift
        nb[cont] += 1
        cont = cont[b >= 0x80]
        shift += 7
    bad = np.zeros(pos.size, bool)
    bad[cont] = True
    return val, nb, bad


def _decode_packed_varints(data: np.ndarray, low32: bool = False):
    """All varints of a byte array: (values int64, positions of their last bytes).

    `low32` keeps the low 32 bits as a signed int32 (how int32 fields are encoded, negatives
    taking 10 bytes). Bytes after the last final byte are ignored: the caller checks that every
    region ends on a final byte.
    """
    ends = np.flatnonzero(data < 0x80)
    if ends.size == 0:
        return np.zeros(0, np.int64), ends
    begins = np.empty_like(ends)
    begins[0] = 0
    begins[1:] = ends[:-1] + 1
    lens = ends - begins + 1
    longest = int(lens.max())
    if longest > (10 if low32 else 9):
        raise OverflowError
    if longest <= 2:                          # values < 16384: the common case for keys
        last = data[ends].astype(np.int64)
        if longest == 1:
            return last, ends
        prev = (data[ends - 1] & 0x7F).astype(np.int64)
        return np.where(lens == 2, (last << 7) | prev, last), ends
    val = (data[begins] & 0x7F).astype(np.uint64)
    idx = np.flatnonzero(lens > 1)
    place = 1
    while idx.size and (place < 5 or not low32):
        val[idx] |= (data[begins[idx] + place] & 0x7F).astype(np.uint64) << np.uint64(7 * place)
        place += 1
        idx = idx[lens[idx] > place]
    if low32:
        return (val & np.uint64(0xFFFFFFFF)).astype(np.uint32).view(np.int32).astype(np.int64), ends
    if (val >> np.uint64(63)).any():
        raise OverflowError
    return val.view(np.int64), ends


def _count_in_regions(positions: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """How many of the sorted `positions` fall in each region [bounds[i], bounds[i+1])."""
    return np.diff(np.searchsorted(positions, bounds))


def _gather(u8: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """The bytes of the (non-overlapping, increasing) regions, concatenated, as uint8."""
    lens = ends - starts
    nz = lens > 0
    if not nz.any():
        return np.zeros(0, np.uint8)
    s, e = starts[nz], ends[nz]
    if s.size == 1:
        return u8[int(s[0]):int(e[0])]
    if int(lens.sum()) * 8 < u8.size:        # few bytes: index them directly
        offs = np.cumsum(lens[nz]) - lens[nz]
        idx = np.repeat(s - offs, lens[nz]) + np.arange(int(lens[nz].sum()))
        return u8[idx]
    # a mask of the regions, made by repeating alternate gap/region flags over their lengths
    lo, hi = int(s[0]), int(e[-1])
    runs = np.empty(2 * s.size - 1, np.int64)
    runs[0::2] = e - s
    runs[1::2] = s[1:] - e[:-1]
    flags = np.zeros(runs.size, bool)
    flags[0::2] = True
    return u8[lo:hi][np.repeat(flags, runs)]


# --------------------------------------------------------------------------------------------
# the flat form every tier produces, and the checks that turn it into a Batch


class _Flat:
    """Per-batch flat arrays: values of all records concatenated, and per-record counts."""

    __slots__ = ("fvals", "fcounts", "keys", "kcounts", "shape_d", "has_shape", "lvals", "lcounts")

    def __init__(self, fvals, fcounts, keys, kcounts, shape_d, has_shape, lvals, lcounts):
        self.fvals, self.fcounts = fvals, fcounts
        self.keys, self.kcounts = keys, kcounts
        self.shape_d, self.has_shape = shape_d, has_shape
        self.lvals, self.lcounts = lvals, lcounts


def _where(source: str, split: recordio.Split, i: int) -> str:
    return (f"{source}: record index {split.first_index + i} "
            f"at byte offset {split.base_offset + int(split.offsets[i]) - 8}")


def _build_batch(flat: _Flat, split: recordio.Split, source: str) -> Batch:
    n = len(split)
    fcounts = flat.fcounts
    has_keys = flat.kcounts > 0
    sparse = bool(has_keys.any()) or bool((flat.has_shape & (fcounts == 0)).any())
    if not sparse:
        d = int(fcounts[0]) if n else 0
        bad = np.flatnonzero(fcounts != d)
        if bad.size:
            i = int(bad[0])
            raise ClientError(f"{_where(source, split, i)}: {int(fcounts[i])} feature values, but record "
                              f"index {split.first_index} has {d} (dense records must all have the same "
                              "length)")
        features = np.asarray(flat.fvals, np.float32).reshape(n, d)
    else:
        mismatch = np.flatnonzero(has_keys & (flat.kcounts != fcounts))
        if mismatch.size:
            i = int(mismatch[0])
            raise ClientError(f"{_where(source, split, i)}: {int(flat.kcounts[i])} keys but "
                              f"{int(fcounts[i])} values in its sparse features")
        noshape = np.flatnonzero(has_keys & ~flat.has_shape)
        if noshape.size:
            i = int(noshape[0])
            raise ClientError(f"{_where(source, split, i)}: sparse features (keys) without a shape; "
                              "a sparse tensor must give its shape")
        implicit = ~has_keys & (fcounts > 0)
        width = 0
        if flat.has_shape.any():
            width = int(flat.shape_d[flat.has_shape].max())
        if implicit.any():
            width = max(width, int(fcounts[implicit].max()))
        if implicit.any():
            cols = np.empty(int(fcounts.sum()), np.int64)
            row_of = np.repeat(np.arange(n), fcounts)
            from_keys = has_keys[row_of]
            cols[from_keys] = flat.keys
            starts = np.cumsum(fcounts) - fcounts
            within = np.arange(cols.size) - starts[row_of]
            cols[~from_keys] = within[~from_keys]
        else:
            cols = np.asarray(flat.keys, np.int64)
        limit = np.repeat(np.where(flat.has_shape, flat.shape_d, width), fcounts)
        out = np.flatnonzero(cols >= limit)
        if out.size:
            j = int(out[0])
            i = int(np.searchsorted(np.cumsum(fcounts), j, side="right"))
            raise ClientError(f"{_where(source, split, i)}: key {int(cols[j])} is outside the shape "
                              f"[{int(flat.shape_d[i])}] of its sparse features")
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(fcounts, out=indptr[1:])
        idx_type = np.int32 if width < 2**31 and cols.size < 2**31 else np.int64
        features = sp.csr_matrix((np.asarray(flat.fvals, np.float32), cols.astype(idx_type),
                                  indptr.astype(idx_type)), shape=(n, width))
    labels = None
    if flat.lcounts is not None:
        has = flat.lcounts > 0
        if has.any():
            if not has.all():
                i, j = int(np.flatnonzero(~has)[0]), int(np.flatnonzero(has)[0])
                raise ClientError(f"{_where(source, split, i)}: no label, but record index "
                                  f"{split.first_index + j} has one (labels must be on all records or none)")
            k = int(flat.lcounts[0])
            bad = np.flatnonzero(flat.lcounts != k)
            if bad.size:
                i = int(bad[0])
                raise ClientError(f"{_where(source, split, i)}: {int(flat.lcounts[i])} label values, but "
                                  f"record index {split.first_index} has {k}")
            lv = np.asarray(flat.lvals, np.float32)
            labels = lv if k == 1 else lv.reshape(n, k)
    return Batch(features, labels)


# --------------------------------------------------------------------------------------------
# tier 2: lockstep scan of SDK-shaped records


class _Irregular(Exception):
    """The records are not all in the SDK's layout: use the general path."""


class _Scanner:
    """Vectorised checks over many records at once: every method reads the same field position
    in all records and clears `ok` for those whose bytes do not fit the SDK's layout."""

    def __init__(self, u8: np.ndarray, n: int):
        self.u8, self.top = u8, u8.size - 1
        self.ok = np.ones(n, bool)

    def at(self, pos):
        return self.u8[np.minimum(pos, self.top)]

    def need(self, pos, tag, limit):
        self.ok &= self.at(pos) == tag
        length, nb, bad = _read_varints_at(self.u8, pos + 1)
        self.ok &= ~bad
        begin = pos + 1 + nb
        end = begin + length
        self.ok &= end <= limit
        return begin, end

    def optional(self, pos, tag, limit):
        present = (pos < limit) & (self.at(pos) == tag)
        length, nb, bad = _read_varints_at(self.u8, pos + 1)
        self.ok &= ~(present & bad)
        begin = np.where(present, pos + 1 + nb, pos)
        end = np.where(present, begin + length, pos)
        self.ok &= end <= limit
        return begin, end, end

    def values_key(self, pos):
        idx = np.minimum(pos[:, None] + np.arange(8), self.top)
        self.ok &= (self.u8[idx] == _VALUES_KEY_ARR).all(axis=1)
        return pos + 8

    def tensor_tag(self, pos):
        tag = self.at(pos)
        self.ok &= (tag == _F32) | (tag == _F64) | (tag == _I32)
        return tag


def _scan(u8: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> dict:
    sc = _Scanner(u8, starts.size)
    # features: 0A len { 0A 06 "values"  12 len { T len { [0A vals] [12 keys] [1A shape] } } }
    f_begin, f_end = sc.need(starts, 0x0A, ends)
    pos = sc.values_key(f_begin)
    v_begin, v_end = sc.need(pos, 0x12, f_end)
    ftag = sc.tensor_tag(v_begin)
    t_begin, t_end = sc.need(v_begin, ftag, v_end)
    vals_b, vals_e, pos = sc.optional(t_begin, 0x0A, t_end)
    keys_b, keys_e, pos = sc.optional(pos, 0x12, t_end)
    shp_b, shp_e, pos = sc.optional(pos, 0x1A, t_end)
    sc.ok &= (pos == t_end) & (t_end == v_end) & (v_end == f_end)
    # label (optional): 12 len { 0A 06 "values" 12 len { T len { 0A vals } } }
    has_label = (f_end < ends) & (sc.at(f_end) == 0x12)
    result = dict(ftag=ftag, vals=(vals_b, vals_e), keys=(keys_b, keys_e), shape=(shp_b, shp_e),
                  has_label=has_label)
    sc.ok &= has_label | (f_end == ends)
    if has_label.any():
        sub = np.flatnonzero(has_label)
        inner = _scan_label(u8, f_end[sub], ends[sub])
        if inner is None:
            raise _Irregular
        n = starts.size
        ltag, lb, le = np.zeros(n, np.uint8), np.zeros(n, np.int64), np.zeros(n, np.int64)
        ltag[sub], lb[sub], le[sub] = inner
        result.update(ltag=ltag, lvals=(lb, le))
    if not sc.ok.all():
        raise _Irregular
    if not (ftag == ftag[0]).all():
        raise _Irregular
    return result


def _scan_label(u8, starts, ends):
    sc = _Scanner(u8, starts.size)
    l_begin, l_end = sc.need(starts, 0x12, ends)
    v_begin, v_end = sc.need(sc.values_key(l_begin), 0x12, l_end)
    tag = sc.tensor_tag(v_begin)
    t_begin, t_end = sc.need(v_begin, tag, v_end)
    vb, ve = sc.need(t_begin, 0x0A, t_end)
    sc.ok &= (ve == t_end) & (t_end == v_end) & (v_end == l_end) & (l_end == ends)
    if not sc.ok.all() or not (tag == tag[0]).all():
        return None
    return tag, vb, ve


def _tensor_values(u8, begin, end, tag, split, source, what):
    """Decode the packed values of tensors of type `tag` in regions → (float32 values, counts)."""
    lens = end - begin
    data = _gather(u8, begin, end)
    if tag == _I32:
        vals, last = _decode_packed_varints(data, low32=True)
        _check_varint_regions(data, last, lens, split, source, what)
        counts = _count_in_regions(last, np.concatenate([[0], np.cumsum(lens)]))
        return vals.astype(np.float32), counts
    width = 4 if tag == _F32 else 8
    bad = np.flatnonzero(lens % width)
    if bad.size:
        i = int(bad[0])
        raise ClientError(f"{_where(source, split, i)}: {what} of {int(lens[i])} bytes is not a "
                          f"whole number of {_TAG_NAMES[int(tag)]} values")
    vals = data.view("<f4" if width == 4 else "<f8")
    return vals.astype(np.float32), lens // width


def _check_varint_regions(data, last, lens, split, source, what):
    ends = np.cumsum(lens)
    nz = np.flatnonzero(lens > 0)
    if nz.size == 0:
        return
    final = data[ends[nz] - 1]
    bad = np.flatnonzero(final >= 0x80)
    if bad.size:
        i = int(nz[bad[0]])
        raise ClientError(f"{_where(source, split, i)}: {what} ends inside a varint")


def _flat_from_scan(u8, scan, split, source) -> _Flat:
    n = len(split)
    ftag = int(scan["ftag"][0])
    fvals, fcounts = _tensor_values(u8, *scan["vals"], ftag, split, source, "features")
    kb, ke = scan["keys"]
    klens = ke - kb
    if klens.any():
        kdata = _gather(u8, kb, ke)
        try:
            keys, last = _decode_packed_varints(kdata)
        except OverflowError:
            raise _Irregular from None
        _check_varint_regions(kdata, last, klens, split, source, "keys")
        kcounts = _count_in_regions(last, np.concatenate([[0], np.cumsum(klens)]))
    else:
        keys, kcounts = np.zeros(0, np.int64), np.zeros(n, np.int64)
    sb, se = scan["shape"]
    slens = se - sb
    has_shape = slens > 0
    shape_d = np.zeros(n, np.int64)
    if has_shape.any():
        sdata = _gather(u8, sb, se)
        try:
            dims, last = _decode_packed_varints(sdata)
        except OverflowError:
            raise _Irregular from None
        _check_varint_regions(sdata, last, slens, split, source, "shape")
        scounts = _count_in_regions(last, np.concatenate([[0], np.cumsum(slens)]))
        if (scounts[has_shape] == 1).all():
            shape_d[has_shape] = dims
        else:
            firsts = (np.cumsum(scounts) - scounts)[has_shape]
            shape_d[has_shape] = np.multiply.reduceat(dims, firsts)
    lvals = lcounts = None
    if "ltag" in scan:
        has = scan["has_label"]
        lb, le = scan["lvals"]
        ltags = scan["ltag"][has]
        if not (ltags == ltags[0]).all():
            raise _Irregular
        lvals, lcounts = _tensor_values(u8, lb, le, int(ltags[0]),
                                        split, source, "label")
        lcounts = np.where(has, lcounts, 0)
    return _Flat(fvals, fcounts, keys, kcounts, shape_d, has_shape, lvals, lcounts)


# --------------------------------------------------------------------------------------------
# tier 1: template (uniform dense records)


class _Template:
    """The layout of records of one size (tier 1): where in a record (framing included) its value
    regions lie, and the bytes around them, which every record of the layout repeats."""

    def __init__(self, row: np.ndarray, regions: list[tuple[int, int, int]]):
        self.row, self.regions = row, regions      # regions: (begin, end, tensor tag), sorted
        self.stride = row.size
        fixed, cut = [], 0
        for begin, end, _ in regions + [(self.stride, self.stride, 0)]:
            if begin > cut:
                fixed.append((cut, begin))
            cut = max(cut, end)
        self.fixed = fixed                          # the (begin, end) spans outside the values

    @classmethod
    def of(cls, u8: np.ndarray, split: recordio.Split) -> "_Template | None":
        """The layout of `split`'s record 0, when values are float tensors without keys."""
        scan0 = _scan(u8, split.offsets[:1], split.offsets[:1] + split.lengths[:1])
        ftag = int(scan0["ftag"][0])
        if ftag == _I32 or scan0["keys"][1][0] != scan0["keys"][0][0]:
            return None
        if "ltag" in scan0 and int(scan0["ltag"][0]) == _I32:
            return None
        row0 = int(split.offsets[0]) - 8
        regions = [(int(scan0["vals"][0][0]) - row0, int(scan0["vals"][1][0]) - row0, ftag)]
        if "ltag" in scan0:
            regions.append((int(scan0["lvals"][0][0]) - row0, int(scan0["lvals"][1][0]) - row0,
                            int(scan0["ltag"][0])))
        if any((end - begin) % (4 if tag == _F32 else 8) for begin, end, tag in regions):
            return None
        stride = 8 + recordio.padded(int(split.lengths[0]))
        return cls(u8[row0:row0 + stride].copy(), sorted(regions))

    def decode(self, u8: np.ndarray, split: recordio.Split) -> Batch | None:
        """`split`'s records as a Batch when every one has this layout, else None."""
        n = len(split)
        row0 = int(split.offsets[0]) - 8
        if split.uniform_stride != self.stride or row0 + n * self.stride > u8.size:
            return None
        rows = u8[row0:row0 + n * self.stride].reshape(n, self.stride)
        for begin, end in self.fixed:
            if not (rows[:, begin:end] == self.row[begin:end]).all():
                return None
        out = []   # features, then the label: a Record's field 1 precedes its field 2
        for begin, end, tag in self.regions:
            width = 4 if tag == _F32 else 8
            view = np.ndarray((n, (end - begin) // width), dtype="<f4" if width == 4 else "<f8",
                              buffer=split.buf, offset=row0 + begin, strides=(self.stride, width))
            out.append(np.array(view, dtype=np.float32, order="C"))
        labels = None
        if len(out) > 1:
            labels = out[1][:, 0] if out[1].shape[1] == 1 else out[1]
        return Batch(out[0], labels)


# --------------------------------------------------------------------------------------------
# tier 3: the protobuf runtime


def _flat_general(split: recordio.Split, source: str) -> _Flat:
    from google.protobuf.message import DecodeError

    from .record_pb2 import Record

    n = len(split)
    fv, fc, kv, kc, sd, hs, lv, lc = [], np.zeros(n, np.int64), [], np.zeros(n, np.int64), \
        np.zeros(n, np.int64), np.zeros(n, bool), [], np.zeros(n, np.int64)
    rec = Record()
    for i in range(n):
        try:
            rec.ParseFromString(split.payload(i))
        except DecodeError as e:
            raise ClientError(f"{_where(source, split, i)}: not a valid Record protobuf ({e})") from None
        if "values" not in rec.features:
            names = sorted(rec.features.keys())
            raise ClientError(f"{_where(source, split, i)}: no features[\"values\"] tensor"
                              + (f" (features has {names})" if names else ""))
        tensor = _tensor_of(rec.features["values"], lambda: _where(source, split, i), "features")
        vals = np.asarray(tensor.values, np.float32)
        fv.append(vals)
        fc[i] = vals.size
        if len(tensor.keys):
            keys = np.asarray(tensor.keys, np.uint64)
            kv.append(keys.astype(np.int64))
            kc[i] = keys.size
        if len(tensor.shape):
            hs[i] = True
            sd[i] = int(np.prod(np.asarray(tensor.shape, np.uint64)))
        if "values" in rec.label:
            lt = _tensor_of(rec.label["values"], lambda: _where(source, split, i), "label")
            if len(lt.keys):
                raise ClientError(f"{_where(source, split, i)}: sparse labels are not supported")
            l = np.asarray(lt.values, np.float32)
            lv.append(l)
            lc[i] = l.size
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)
    return _Flat(cat(fv, np.float32), fc, cat(kv, np.int64), kc, sd, hs,
                 cat(lv, np.float32) if lv else None, lc if lv else None)


def _tensor_of(value, where, what):
    kind = value.WhichOneof("value")
    if kind in ("float32_tensor", "float64_tensor", "int32_tensor"):
        return getattr(value, kind)
    if kind is None:
        raise ClientError(f"{where()}: {what}[\"values\"] holds no tensor")
    raise ClientError(f"{where()}: {what}[\"values\"] is {kind}; only Float32, Float64 and "
                      "Int32 tensors are read")


# --------------------------------------------------------------------------------------------
# the decoder


def decode_split(split: recordio.Split, *, source: str = "request body") -> Batch:
    """Decode the records a `recordio.Split` found into a `Batch` (in bulk)."""
    return _decode_split(split, source, None)[0]


def _decode_split(split: recordio.Split, source: str, known: _Template | None):
    """(Batch, the layout its records share or None). A stream passes the previous block's layout
    as `known`: blocks of one layout are then read without scanning a record again."""
    n = len(split)
    if n == 0:
        return Batch(np.zeros((0, 0), np.float32)), known
    u8 = np.frombuffer(split.buf, np.uint8)
    if known is not None:
        batch = known.decode(u8, split)
        if batch is not None:
            return batch, known
    if n < _SMALL_BATCH:   # a few records: the runtime's parser is quicker than numpy's setup
        return _build_batch(_flat_general(split, source), split, source), None
    try:
        if split.uniform_stride is not None:
            template = _Template.of(u8, split)
            batch = None if template is None else template.decode(u8, split)
            if batch is not None:
                return batch, template
        scan = _scan(u8, split.offsets, split.offsets + split.lengths)
        flat = _flat_from_scan(u8, scan, split, source)
    except _Irregular:
        flat = _flat_general(split, source)
    return _build_batch(flat, split, source), None


def decode(data: bytes, *, source: str = "request body") -> Batch:
    """Decode a whole recordIO-protobuf body."""
    return decode_split(recordio.split_records(data, source=source), source=source)


class RecordIOProtobufDecoder:
    media_type = RECORDIO_PROTOBUF
    allowed_params: frozenset[str] = frozenset()

    def decode(self, data: bytes, media: MediaType, *, default_label_size: int = 0,
               source: str = "request body") -> Batch:
        check_params(media, self.allowed_params)
        if data and data[:4] != recordio.MAGIC_BYTES:
            # One Record without its RecordIO framing, as batch transform sends each record under
            # SplitType=RecordIO + SingleRecord (padding stripped). A Record's first byte is a field
            # tag followed by its own length and tag, so it never starts with the magic number.
            data = recordio.frame(data)
        return decode(data, source=source)

    def iter_batches(self, stream: BinaryIO, media: MediaType, *, default_label_size: int = 0,
                     batch_size: int = 1000, source: str = "input",
                     chunk_size: int = recordio.DEFAULT_CHUNK) -> Iterator[Batch]:
        check_params(media, self.allowed_params)
        width, layout = None, None
        for block in recordio.iter_record_blocks(stream, source=source, max_records=batch_size,
                                                 chunk_size=chunk_size):
            batch, layout = _decode_split(block, source, layout)
            if not batch.is_sparse and len(batch):
                if width is not None and batch.num_features != width:
                    raise ClientError(f"{_where(source, block, 0)}: {batch.num_features} feature values, "
                                      f"but the records before have {width} (dense records must all "
                                      "have the same length)")
                width = batch.num_features
            yield batch


# --------------------------------------------------------------------------------------------
# writers


def _resolve_type(dtype: np.dtype) -> str:
    if dtype == np.dtype(int):
        return "Int32"
    if dtype == np.dtype(float):
        return "Float64"
    if dtype == np.dtype("float32"):
        return "Float32"
    raise ValueError(f"Unsupported dtype {dtype} on array")


def _ld(n: int) -> bytes:
    return _varint_bytes(n)


def _tensor_prefix(tag: int, nvalues: int, width: int) -> tuple[bytes, int]:
    """Bytes before the values of `{0A 06 "values" 12 L {tag L {0A L <values>}}}` → (prefix, size)."""
    vlen = nvalues * width
    packed = (b"\x0a" + _ld(vlen)) if nvalues else b""
    tensor_len = len(packed) + vlen
    value = bytes([tag]) + _ld(tensor_len) + packed
    value_len = len(value) + vlen
    entry = _VALUES_KEY + b"\x12" + _ld(value_len) + value
    return entry, len(entry) + vlen


def dense_to_recordio(array: np.ndarray, labels: np.ndarray | None = None) -> bytes:
    """recordIO-protobuf of a dense matrix (and labels), byte-identical to the SDK's writer."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError("Array must be a Matrix")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise ValueError("Labels must be a Vector")
        if labels.shape[0] not in array.shape:
            raise ValueError(f"Label shape {labels.shape} not compatible with array shape {array.shape}")
    ftype = _resolve_type(array.dtype)
    ltype = _resolve_type(labels.dtype) if labels is not None else None
    n, d = array.shape
    if ftype == "Int32" or ltype == "Int32" or d == 0:
        return _records_via_pb(array, labels, ftype, ltype)
    fw = 4 if ftype == "Float32" else 8
    ftag = _F32 if ftype == "Float32" else _F64
    fentry, fentry_len = _tensor_prefix(ftag, d, fw)
    head = b"\x0a" + _ld(fentry_len) + fentry
    parts = [(head, np.ascontiguousarray(array, dtype="<f4" if fw == 4 else "<f8").view(np.uint8))]
    payload_len = len(head) + d * fw
    if labels is not None:
        lw = 4 if ltype == "Float32" else 8
        lentry, lentry_len = _tensor_prefix(_F32 if lw == 4 else _F64, 1, lw)
        lhead = b"\x12" + _ld(lentry_len) + lentry
        lab = np.ascontiguousarray(labels[:n], dtype="<f4" if lw == 4 else "<f8").reshape(n, 1)
        parts.append((lhead, lab.view(np.uint8)))
        payload_len += len(lhead) + lw
    return _frame_rows(n, payload_len, parts)


def _frame_rows(n: int, payload_len: int, parts) -> bytes:
    """n records of one size: framing + for each part, constant bytes then per-row bytes."""
    stride = 8 + recordio.padded(payload_len)
    out = np.zeros((n, stride), np.uint8)
    out[:, :8] = np.frombuffer(struct.pack("<II", recordio.MAGIC, payload_len), np.uint8)
    col = 8
    for const, rowbytes in parts:
        out[:, col:col + len(const)] = np.frombuffer(const, np.uint8)
        col += len(const)
        w = rowbytes.shape[1]
        out[:, col:col + w] = rowbytes
        col += w
    return out.tobytes()


def _records_via_pb(array, labels, ftype, ltype) -> bytes:
    from .record_pb2 import Record

    field = {"Int32": "int32_tensor", "Float64": "float64_tensor", "Float32": "float32_tensor"}
    buf = io.BytesIO()
    record = Record()
    for i, vector in enumerate(array):
        record.Clear()
        getattr(record.features["values"], field[ftype]).values.extend(vector)
        if labels is not None:
            getattr(record.label["values"], field[ltype]).values.extend([labels[i]])
        recordio.write_record(buf, record.SerializeToString())
    return buf.getvalue()


def sparse_to_recordio(matrix, labels: np.ndarray | None = None) -> bytes:
    """recordIO-protobuf of a scipy sparse matrix, byte-identical to the SDK's sparse writer."""
    from .record_pb2 import Record

    if not sp.issparse(matrix):
        raise TypeError("Array must be sparse")
    if len(matrix.shape) != 2:
        raise ValueError("Array must be a Matrix")
    if labels is not None:
        labels = np.asarray(labels)
        if labels.ndim != 1:
            raise ValueError("Labels must be a Vector")
        if labels.shape[0] not in matrix.shape:
            raise ValueError(f"Label shape {labels.shape} not compatible with array shape {matrix.shape}")
    field = {"Int32": "int32_tensor", "Float64": "float64_tensor", "Float32": "float32_tensor"}
    ftype = field[_resolve_type(matrix.dtype)]
    ltype = field[_resolve_type(labels.dtype)] if labels is not None else None
    csr = matrix.tocsr()
    n_rows, n_cols = csr.shape
    buf = io.BytesIO()
    record = Record()
    for r in range(n_rows):
        record.Clear()
        lo, hi = csr.indptr[r], csr.indptr[r + 1]
        tensor = getattr(record.features["values"], ftype)
        tensor.values.extend(csr.data[lo:hi])
        tensor.keys.extend(csr.indices[lo:hi].astype(np.uint64))
        if labels is not None:
            getattr(record.label["values"], ltype).values.extend([labels[r]])
        tensor.shape.extend([n_cols])
        recordio.write_record(buf, record.SerializeToString())
    return buf.getvalue()


def write_dense(file: BinaryIO, array: np.ndarray, labels: np.ndarray | None = None) -> None:
    """Like the SDK's `write_numpy_to_dense_tensor(file, array, labels)`."""
    file.write(dense_to_recordio(array, labels))


def write_sparse(file: BinaryIO, matrix, labels: np.ndarray | None = None) -> None:
    """Like the SDK's `write_spmatrix_to_sparse_tensor(file, matrix, labels)`."""
    file.write(sparse_to_recordio(matrix, labels))


# --------------------------------------------------------------------------------------------
# responses


class RecordIOProtobufEncoder:
    """One Record per row; each prediction field under `label[name]` as a Float32Tensor."""

    media_type = RECORDIO_PROTOBUF

    def encode(self, predictions: Predictions, *, root_key: str = DEFAULT_ROOT_KEY) -> bytes:
        """`root_key` is ignored: the Records have no root."""
        fields = predictions.float32_fields()
        n = len(predictions)
        if n == 0:
            return b""
        parts = []
        payload_len = 0
        for name, arr in fields.items():
            k = 1 if arr.ndim == 1 else arr.shape[1]
            key = name.encode("utf-8")
            tensor_prefix_value, _ = _tensor_prefix(_F32, k, 4)
            # the map entry: key = name (not "values"), value = Value{float32_tensor}
            value_part = tensor_prefix_value[len(_VALUES_KEY):]
            entry = b"\x0a" + _ld(len(key)) + key + value_part
            entry_len = len(entry) + 4 * k
            head = b"\x12" + _ld(entry_len) + entry
            rows = np.ascontiguousarray(arr.reshape(n, k), dtype="<f4").view(np.uint8)
            parts.append((head, rows))
            payload_len += len(head) + 4 * k
        return _frame_rows(n, payload_len, parts)


def _label_names_in_wire_order(payload: bytes) -> list[str]:
    """The `label` map's keys in the order written (the protobuf runtime's maps forget it)."""
    names, pos = [], 0

    def varint(p):
        v, shift = 0, 0
        while True:
            b = payload[p]
            v |= (b & 0x7F) << shift
            p += 1
            if b < 0x80:
                return v, p
            shift += 7

    while pos < len(payload):
        tag, pos = varint(pos)
        if tag & 7 != 2:
            return names
        length, pos = varint(pos)
        if tag >> 3 == 2 and payload[pos] == 0x0A:
            klen, kpos = varint(pos + 1)
            names.append(payload[kpos:kpos + klen].decode("utf-8", "replace"))
        pos += length
    return names


def decode_predictions(data: bytes) -> Predictions:
    """Read a protobuf response (label map per record) back into `Predictions` (clients, tests)."""
    from .record_pb2 import Record

    split = recordio.split_records(data, source="response body")
    cols: dict[str, list[np.ndarray]] = {}
    for payload in split.payloads():
        rec = Record.FromString(payload)
        for name in rec.label:
            t = _tensor_of(rec.label[name], lambda: "response body", "label")
            cols.setdefault(name, []).append(np.asarray(t.values, np.float32))
    fields = {}
    order = _label_names_in_wire_order(split.payload(0)) if len(split) else []
    for name in sorted(cols, key=lambda k: order.index(k) if k in order else len(order)):
        rows = cols[name]
        arr = np.stack(rows)
        fields[name] = arr[:, 0] if arr.shape[1] == 1 else arr
    return Predictions(fields)
