"""Synthetic login events, made the way AWS's IP Insights example makes them
(`introduction_to_amazon_algorithms/ipinsights_login/generate_data.py`), with a generated table of
autonomous systems (contiguous IPv4 ranges) in place of the downloaded `ip2asn` table:

- every user lives near a random place in the ASN table and has a home and a work ASN drawn around
  it (σ = 10 ASNs);
- `p_travel ~ Beta(1, 30)`, `p_home ~ Beta(3, 5)`: an event comes from a random ASN with
  probability p_travel, else from the home ASN with probability p_home, else from the work ASN;
- a user's number of events is Pareto(a=1) × 50, at least 1 and capped (10,000 in AWS's);
- an event's address is uniform within its ASN's range.

For tests, benchmarks and notebooks: nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOCALITY_SIGMA = 10


@dataclass
class ASNTable:
    """`starts[i]`..`starts[i] + sizes[i] - 1`: the IPv4 addresses (as integers) of ASN i."""

    starts: np.ndarray
    sizes: np.ndarray

    @classmethod
    def generate(cls, n_asns: int, rng: np.random.Generator) -> "ASNTable":
        sizes = (2 ** rng.integers(8, 17, size=n_asns)).astype(np.int64)  # /24 to /16 blocks
        gaps = (2 ** rng.integers(8, 14, size=n_asns)).astype(np.int64)
        starts = (1 << 24) + np.concatenate([[0], np.cumsum(sizes + gaps)[:-1]])  # from 1.0.0.0 up
        return cls(starts.astype(np.int64), sizes)

    def __len__(self) -> int:
        return len(self.starts)

    def address(self, asn: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A uniformly random address (integer) inside each ASN of `asn`."""
        return self.starts[asn] + (rng.random(len(asn)) * self.sizes[asn]).astype(np.int64)


def dotted(addresses: np.ndarray) -> list[str]:
    a = np.asarray(addresses, dtype=np.int64)
    return [f"{x >> 24}.{(x >> 16) & 255}.{(x >> 8) & 255}.{x & 255}" for x in a.tolist()]


@dataclass
class Users:
    home: np.ndarray
    work: np.ndarray
    p_travel: np.ndarray
    p_home: np.ndarray

    @classmethod
    def generate(cls, n_users: int, table: ASNTable, rng: np.random.Generator) -> "Users":
        place = rng.integers(0, len(table), size=n_users)
        near = lambda: np.clip(np.rint(place + rng.normal(0, LOCALITY_SIGMA, n_users)), 0, len(table) - 1)  # noqa: E731
        return cls(near().astype(np.int64), near().astype(np.int64), rng.beta(1, 30, n_users), rng.beta(3, 5, n_users))

    def events(self, users: np.ndarray, table: ASNTable, rng: np.random.Generator) -> np.ndarray:
        """One event's address for each user of `users` (integers)."""
        travel = rng.random(len(users)) < self.p_travel[users]
        home = rng.random(len(users)) < self.p_home[users]
        asn = np.where(travel, rng.integers(0, len(table), len(users)),
                       np.where(home, self.home[users], self.work[users]))
        return table.address(asn, rng)


def login_events(n_users: int = 1000, n_asns: int = 2000, max_events: int = 10_000, seed: int = 0):
    """(user of each event, its address as an integer, the ASN table, the users) of a synthetic log."""
    rng = np.random.default_rng(seed)
    table = ASNTable.generate(n_asns, rng)
    users = Users.generate(n_users, table, rng)
    counts = np.minimum(np.floor(rng.pareto(1.0, n_users) * 50).astype(np.int64) + 1, max_events)
    who = rng.permutation(np.repeat(np.arange(n_users), counts))
    return who, users.events(who, table, rng), table, users


def csv_lines(who: np.ndarray, addresses: np.ndarray) -> bytes:
    """`user_<i>,a.b.c.d` lines."""
    return "".join(f"user_{u},{ip}\n" for u, ip in zip(who.tolist(), dotted(addresses))).encode()
