"""Training data: recordIO-wrapped protobuf Records whose `features["source"]` and
`features["target"]` hold int32 token ids (what AWS's `create_vocab_proto.py` writes), read
into sentence pairs, truncated, and batched by length buckets as Sockeye 1 does.

    pairs = read_pairs(paths, "train", src_vocab=len(sv), trg_vocab=len(tv), ...)
    buckets = parallel_buckets(100, 100, 10, length_ratio=1.1)
    for src, trg in batches(pairs, buckets, 64, rng): ...    # int64 arrays, padded with 0
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from smalgos.errors import ClientError
from smalgos.formats import recordio

from .vocab import EOS, PAD

FIELDS = ("source", "target")


@dataclass
class Pairs:
    """Sentence pairs as lists of int32 id arrays (no <s> or </s>)."""

    source: list[np.ndarray]
    target: list[np.ndarray]
    truncated: int = 0
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.source)

    def lengths(self) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([len(s) for s in self.source], np.int64), np.array([len(t) for t in self.target], np.int64))

    def length_ratio(self) -> tuple[float, float]:
        """Mean and standard deviation of target length / source length."""
        s, t = self.lengths()
        if not len(s):
            return 1.0, 0.0
        r = t / np.maximum(s, 1)
        return float(r.mean()), float(r.std())


def record_ids(payload: bytes, where: str, sizes: dict[str, int], required: Sequence[str] = FIELDS) -> dict:
    """The int32 id arrays of one Record's `source` / `target` features; ClientError naming `where`
    and the field when a field is missing, not an int32 tensor, or holds an id outside its vocabulary."""
    from smalgos.formats.record_pb2 import Record

    try:
        record = Record.FromString(payload)
    except Exception as exc:  # protobuf's DecodeError
        raise ClientError(f"{where}: not a protobuf Record ({exc})") from None
    out = {}
    for name in required:
        if name not in record.features:
            raise ClientError(f"{where}: field features[\"{name}\"] is missing (records carry int32 source and "
                              "target ids)")
        value = record.features[name]
        kind = value.WhichOneof("value")
        if kind != "int32_tensor":
            raise ClientError(f"{where}: field features[\"{name}\"] is {kind or 'empty'}; expected an "
                              "int32_tensor of token ids")
        ids = np.asarray(value.int32_tensor.values, np.int32)
        bad = np.flatnonzero((ids < 0) | (ids >= sizes[name]))
        if bad.size:
            j = int(bad[0])
            raise ClientError(f"{where}: field features[\"{name}\"] value {j} is id {int(ids[j])}, outside the "
                              f"{name} vocabulary (ids 0 to {sizes[name] - 1})")
        out[name] = ids
    return out


def read_pairs(files: Sequence[Path], channel: str, src_vocab: int, trg_vocab: int,
               max_source: int, max_target: int) -> Pairs:
    """Every record of `files`: a trailing </s> dropped, pads refused, cut to the maximum lengths;
    pairs with an empty side are skipped (counted)."""
    pairs = Pairs([], [])
    sizes = {"source": src_vocab, "target": trg_vocab}
    for path in files:
        name = f"Channel '{channel}': {path.name}"
        with open(path, "rb") as f:
            for index, payload in enumerate(recordio.iter_records(f, source=name)):
                where = f"{name} record {index}"
                ids = record_ids(payload, where, sizes)
                for field in FIELDS:
                    v = ids[field]
                    if len(v) and v[-1] == EOS:
                        v = ids[field] = v[:-1]
                    if (v == PAD).any():
                        raise ClientError(f"{where}: field features[\"{field}\"] holds the padding id 0 at "
                                          f"value {int(np.flatnonzero(v == PAD)[0])}")
                src, trg = ids["source"], ids["target"]
                if not len(src) or not len(trg):
                    pairs.skipped += 1
                    continue
                if len(src) > max_source or len(trg) > max_target:
                    pairs.truncated += 1
                pairs.source.append(src[:max_source])
                pairs.target.append(trg[:max_target])
    return pairs


def record_bytes(source: Sequence[int] | None, target: Sequence[int] | None = ()) -> bytes:
    """One Record as create_vocab_proto.py writes it (features source and target, int32); a side
    given as None is left out (answers carry only the target)."""
    from smalgos.formats.record_pb2 import Record

    record = Record()
    for name, ids in (("source", source), ("target", target)):
        if ids is not None:
            record.features[name].int32_tensor.values.extend(int(i) for i in ids)
    return record.SerializeToString()


def pairs_to_recordio(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> bytes:
    return recordio.frame_records(record_bytes(s, t) for s, t in pairs)


def _steps(max_len: int, step: int) -> list[int]:
    return list(range(step, max_len, step)) + [max_len]


def parallel_buckets(max_source: int, max_target: int, bucket_width: int, length_ratio: float = 1.0,
                     enabled: bool = True) -> list[tuple[int, int]]:
    """Sockeye 1's `define_parallel_buckets`: the longer side steps by `bucket_width`, the shorter
    by `bucket_width` scaled by the mean target/source length ratio; one bucket of the maximum
    lengths when bucketing is off."""
    if not enabled:
        return [(max_source, max_target)]
    src_step = trg_step = bucket_width
    if length_ratio >= 1.0:
        src_step = max(1, int(round(bucket_width / length_ratio)))
    else:
        trg_step = max(1, int(round(bucket_width * length_ratio)))
    src, trg = _steps(max_source, src_step), _steps(max_target, trg_step)
    n = max(len(src), len(trg))
    src += [src[-1]] * (n - len(src))
    trg += [trg[-1]] * (n - len(trg))
    return sorted(set(zip(src, trg)))


def bucket_of(src_len: int, trg_len: int, buckets: Sequence[tuple[int, int]]) -> int:
    for i, (s, t) in enumerate(buckets):
        if src_len <= s and trg_len <= t:
            return i
    return len(buckets) - 1


def pad(seqs: Sequence[np.ndarray], length: int) -> np.ndarray:
    out = np.zeros((len(seqs), length), np.int64)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = s
    return out


def batches(pairs: Pairs, buckets: Sequence[tuple[int, int]], batch_size: int,
            rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(source, target) id arrays padded to their bucket's lengths, `batch_size` pairs each (the
    last of a bucket may be smaller); shuffled within buckets and across batches with `rng`,
    in order without."""
    groups: dict[int, list[int]] = {}
    for i, (s, t) in enumerate(zip(pairs.source, pairs.target)):
        groups.setdefault(bucket_of(len(s), len(t), buckets), []).append(i)
    chunks = []
    for b, members in sorted(groups.items()):
        members = np.array(members)
        if rng is not None:
            members = rng.permutation(members)
        chunks += [(b, members[k:k + batch_size]) for k in range(0, len(members), batch_size)]
    order = rng.permutation(len(chunks)) if rng is not None else range(len(chunks))
    for c in order:
        b, rows = chunks[c]
        s_len, t_len = buckets[b]
        yield (pad([pairs.source[r] for r in rows], s_len), pad([pairs.target[r] for r in rows], t_len))


def num_batches(pairs: Pairs, buckets, batch_size: int) -> int:
    counts: dict[int, int] = {}
    for s, t in zip(pairs.source, pairs.target):
        b = bucket_of(len(s), len(t), buckets)
        counts[b] = counts.get(b, 0) + 1
    return sum(math.ceil(n / batch_size) for n in counts.values())
