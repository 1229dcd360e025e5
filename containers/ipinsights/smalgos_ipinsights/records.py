"""(entity, IP address) pairs: parsed from `entity,ip` lines or JSON instances, hashed into buckets.

Every address is held as the 128 bits of its IPv6 form (`hi`, `lo`, two uint64): an IPv4 address
`a.b.c.d` is the IPv4-mapped `::ffff:a.b.c.d`, so `::ffff:10.0.0.1` and `10.0.0.1` are one address.
An entity is its FNV-1a 64-bit hash over its UTF-8 bytes (stable across processes, unlike
Python's `hash`); its embedding row is that hash modulo `num_entity_vectors`.

The IP encoder sees an address as the buckets of four of its prefixes, so that an address never
seen in training still shares the embeddings of its /24, /16 and /8 (IPv6: its /64, /48 and /32):
IPv4 /8, /16, /24, /32 and IPv6 /32, /48, /64, /128. Each prefix (with its length and family) is
mixed by splitmix64 into one of `num_entity_vectors` buckets.

Lines: `entity,ip` (spaces around either field are dropped, as in AWS's `entity_id_1,
192.168.1.2`); a double-quoted entity may hold commas; blank lines are skipped; a UTF-8 byte
order mark at the start of a stream is skipped. An empty entity, a line without exactly two fields
or a field that is not an IPv4 or IPv6 address is a ClientError naming the source and the line.
"""

from __future__ import annotations

import csv
import ipaddress
import json
from dataclasses import dataclass
from typing import Any, BinaryIO, Iterable, Iterator

import numpy as np

from smalgos.channels import own_part
from smalgos.errors import ClientError
from smalgos.formats._stream import iter_line_blocks

BOM = b"\xef\xbb\xbf"
V4_MAPPED = np.uint64(0xFFFF << 32)
V4_LEVELS = (8, 16, 24, 32)
V6_LEVELS = (32, 48, 64, 128)
N_LEVELS = 4
CHUNK = 1 << 20
FNV_OFFSET, FNV_PRIME = np.uint64(0xCBF29CE484222325), np.uint64(0x100000001B3)
_M64 = (1 << 64) - 1


@dataclass
class Pairs:
    """n (entity, address) pairs: `entity` (n,) uint64 hashes, `hi`/`lo` (n,) uint64 address halves."""

    entity: np.ndarray
    hi: np.ndarray
    lo: np.ndarray

    def __len__(self) -> int:
        return int(self.entity.shape[0])

    def __getitem__(self, rows) -> "Pairs":
        return Pairs(self.entity[rows], self.hi[rows], self.lo[rows])

    take = __getitem__  # the pairs at the indices `rows`, as `Batch.take`

    @property
    def is_v4(self) -> np.ndarray:
        return (self.hi == 0) & ((self.lo >> np.uint64(32)) == np.uint64(0xFFFF))

    @staticmethod
    def concat(parts: Iterable["Pairs"]) -> "Pairs":
        parts = list(parts)
        if not parts:
            return Pairs(*(np.zeros(0, np.uint64) for _ in range(3)))
        return Pairs(*(np.concatenate([getattr(p, k) for p in parts]) for k in ("entity", "hi", "lo")))

    @classmethod
    def of(cls, entities: list[str], addresses: list[tuple[int, int]]) -> "Pairs":
        hi_lo = np.array(addresses, dtype=np.uint64).reshape(-1, 2)
        return cls(hash_entities(entities), hi_lo[:, 0].copy(), hi_lo[:, 1].copy())


# -- parsing ------------------------------------------------------------------------------------


def parse_address(text: str) -> tuple[int, int] | None:
    """(hi, lo) of an IPv4 or IPv6 address, or None if `text` is neither."""
    parts = text.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and (p == "0" or p[0] != "0") for p in parts):
        a, b, c, d = (int(p) for p in parts)
        if a <= 255 and b <= 255 and c <= 255 and d <= 255:
            return 0, (0xFFFF << 32) | (a << 24) | (b << 16) | (c << 8) | d
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if address.version == 4:
        value = (0xFFFF << 32) | int(address)
    else:
        value = int(address)
    return value >> 64, value & _M64


def _fields(line: str) -> list[str]:
    fields = line.split(",")
    if '"' in line:
        fields = next(csv.reader([line], skipinitialspace=True))
    return [f.strip() for f in fields]


def _check_pair(entity: Any, ip: Any, where: str) -> tuple[str, tuple[int, int]]:
    if isinstance(entity, bool) or not isinstance(entity, (str, int)):
        raise ClientError(f"{where}: the entity must be a string, got {json.dumps(entity)[:40]}")
    entity = str(entity).strip()
    if not entity:
        raise ClientError(f"{where}: the entity (first field) is empty")
    if not isinstance(ip, str):
        raise ClientError(f"{where}: the IP address must be a string, got {json.dumps(ip)[:40]}")
    address = parse_address(ip.strip())
    if address is None:
        raise ClientError(f"{where}: {ip.strip()[:60]!r} is not an IPv4 or IPv6 address")
    return entity, address


def parse_lines(text: str, source: str, first_line: int = 1) -> Pairs:
    """The pairs of `entity,ip` lines (see the module docstring)."""
    entities, addresses = [], []
    for number, line in enumerate(text.split("\n"), first_line):
        line = line.strip()
        if not line:
            continue
        where = f"{source}: line {number}"
        fields = _fields(line)
        if len(fields) != 2:
            raise ClientError(f"{where} has {len(fields)} field(s): expected 2, entity,ip")
        entity, address = _check_pair(fields[0], fields[1], where)
        entities.append(entity)
        addresses.append(address)
    return Pairs.of(entities, addresses)


def _decode_text(block: bytes, source: str, first_line: int) -> str:
    try:
        return block.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = first_line + block[:exc.start].count(b"\n")
        raise ClientError(f"{source}: line {line} is not UTF-8 text") from None


def parse_csv(body: bytes, source: str = "request body") -> Pairs:
    """The pairs of a whole CSV body."""
    body = body[len(BOM):] if body.startswith(BOM) else body
    return parse_lines(_decode_text(body, source, 1), source)


def iter_pairs(stream: BinaryIO, source: str, batch_size: int) -> Iterator[Pairs]:
    """The pairs of a stream of `entity,ip` lines, in batches of `batch_size` (the last shorter)."""
    pending, count, line = [], 0, 1
    for block in iter_line_blocks(stream, CHUNK):
        if line == 1 and block.startswith(BOM):
            block = block[len(BOM):]
        pairs = parse_lines(_decode_text(block, source, line), source, line)
        line += block.count(b"\n")
        if len(pairs):
            pending.append(pairs)
            count += len(pairs)
        while count >= batch_size:
            merged = Pairs.concat(pending)
            yield merged[:batch_size]
            rest = merged[batch_size:]
            pending, count = ([rest], len(rest)) if len(rest) else ([], 0)
    if count:
        yield Pairs.concat(pending)


def no_pairs() -> Pairs:
    """0 pairs: the mini-batch of a host whose pairs ran out while other hosts still have some."""
    return Pairs.concat([])


def channel_pairs(channel, batch_size: int) -> Iterator[Pairs]:
    """One pass over a training channel (File or Pipe mode), in batches of `batch_size` pairs
    (a file's last batch may be shorter). A channel `sliced` for host `rank` of `size` gives that
    host's part: the pairs whose index in the pass is `rank` modulo `size` (FullyReplicated)."""
    rank, size = channel.part or (0, 1)

    def read() -> Iterator[Pairs]:
        for source, stream in channel.streams():
            yield from iter_pairs(stream, f"Channel {channel.name!r}: {source}", batch_size * size)

    return read() if size == 1 else own_part(read(), rank, size)


_FORMS = '{"features": [entity, ip]} or {"data": {"features": {"values": [entity, ip]}}}'


def _instance_pair(inst: Any, where: str) -> tuple[str, tuple[int, int]]:
    values = None
    if isinstance(inst, dict):
        values = inst.get("features")
        if values is None and isinstance(inst.get("data"), dict):
            values = inst["data"].get("features")
            if isinstance(values, dict):
                values = values.get("values")
    if not isinstance(values, list):
        raise ClientError(f"{where}: expected {_FORMS}")
    if len(values) != 2:
        raise ClientError(f"{where}: {len(values)} feature value(s): expected 2, [entity, ip]")
    return _check_pair(values[0], values[1], where)


def _instances(instances: list, where) -> Pairs:
    return _checked([_instance_pair(inst, where(i)) for i, inst in enumerate(instances)])


def _checked(checked: list[tuple[str, tuple[int, int]]]) -> Pairs:
    return Pairs.of([e for e, _ in checked], [a for _, a in checked])


def pairs_of(rows: Iterable, source: str = "X") -> Pairs:
    """The pairs of (entity, ip) rows (2-tuples or lists of strings), each checked as a line is."""
    checked = []
    for i, row in enumerate(rows):
        where = f"{source}: row {i}"
        if not isinstance(row, (list, tuple)) or len(row) != 2:
            raise ClientError(f"{where}: expected an (entity, ip) pair")
        checked.append(_check_pair(row[0], row[1], where))
    return _checked(checked)


def parse_json(body: bytes, source: str = "request body") -> Pairs:
    """`{"instances": [...]}` (or one instance alone) of [entity, ip] instances."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ClientError(f"{source}: not valid JSON ({type(exc).__name__}: {exc})"[:300]) from None
    if isinstance(obj, dict) and "instances" not in obj and ("features" in obj or "data" in obj):
        return _instances([obj], lambda i: source)
    if not isinstance(obj, dict) or not isinstance(obj.get("instances"), list):
        raise ClientError(f'{source}: expected {{"instances": [...]}} with each instance {_FORMS}')
    return _instances(obj["instances"], lambda i: f"{source}: instance {i}")


def parse_jsonlines(body: bytes, source: str = "request body") -> Pairs:
    """One [entity, ip] instance per line; blank lines skipped."""
    lines = body.split(b"\n")
    instances, numbers = [], []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            instances.append(json.loads(line))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ClientError(f"{source}: line {number}: not valid JSON ({type(exc).__name__})") from None
        numbers.append(number)
    return _instances(instances, lambda i: f"{source}: line {numbers[i]}")


# -- hashing ------------------------------------------------------------------------------------


def hash_entities(entities: list[str]) -> np.ndarray:
    """FNV-1a 64-bit of each entity's UTF-8 bytes, (n,) uint64, vectorised over the entities."""
    encoded = [e.encode("utf-8") for e in entities]
    n = len(encoded)
    h = np.full(n, FNV_OFFSET, dtype=np.uint64)
    if n == 0:
        return h
    lengths = np.fromiter(map(len, encoded), dtype=np.int64, count=n)
    width = int(lengths.max())
    table = np.array(encoded, dtype=f"S{width}").view(np.uint8).reshape(n, width)
    for j in range(width):
        h = np.where(lengths > j, (h ^ table[:, j].astype(np.uint64)) * FNV_PRIME, h)
    return h


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser over uint64 arrays (wrapping arithmetic)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def entity_buckets(pairs: Pairs, n_buckets: int) -> np.ndarray:
    """(n,) int64 embedding rows of the entities."""
    return (pairs.entity % np.uint64(n_buckets)).astype(np.int64)


def prefix_buckets(hi: np.ndarray, lo: np.ndarray, n_buckets: int) -> np.ndarray:
    """(n, 4) int64 embedding rows of the four prefixes of each address (module docstring)."""
    v4 = (hi == 0) & ((lo >> np.uint64(32)) == np.uint64(0xFFFF))
    v4_value = lo & np.uint64(0xFFFFFFFF)
    out = np.empty((hi.shape[0], N_LEVELS), dtype=np.uint64)
    for k, (l4, l6) in enumerate(zip(V4_LEVELS, V6_LEVELS)):
        key4 = (v4_value >> np.uint64(32 - l4)) ^ np.uint64((4 << 56) | (l4 << 48))
        if l6 <= 64:
            key6 = (hi >> np.uint64(64 - l6)) ^ np.uint64((6 << 56) | (l6 << 48))
        else:
            key6 = _mix(hi ^ np.uint64(6 << 56)) ^ lo
        out[:, k] = np.where(v4, _mix(key4), _mix(_mix(key6) + np.uint64(l6)))
    return (out % np.uint64(n_buckets)).astype(np.int64)


def random_addresses(like: Pairs, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A uniformly random address of the same family as each of `like`'s: (hi, lo)."""
    n = len(like)
    v4 = like.is_v4
    rand_hi = rng.integers(0, 1 << 64, size=n, dtype=np.uint64, endpoint=False)
    rand_lo = rng.integers(0, 1 << 64, size=n, dtype=np.uint64, endpoint=False)
    hi = np.where(v4, np.uint64(0), rand_hi)
    lo = np.where(v4, V4_MAPPED | (rand_lo & np.uint64(0xFFFFFFFF)), rand_lo)
    return hi, lo
