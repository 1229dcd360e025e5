"""Training across hosts as one job, on torch.distributed (gloo on CPU, NCCL when every host has a GPU).

`joined(resources)` is the one rendezvous of every torch algorithm: from `resourceconfig.json`
alone, the master is the first host of the (sorted) list and a host's rank is its place in it.
The master runs torch's `TCPStore` on `ClusterEnv.port`; every host resolves the master's name
(bounded), reaches the store and writes its name there; when every rank has written within
`ClusterEnv.connect_seconds` the process group starts, else a PlatformError names the hosts that
did not come. No algorithm opens a socket itself: each calls the `Cluster`'s collectives, and a
collective that fails (a host died: its connections close at once; a host hung: after
`ClusterEnv.wait_seconds`) is a PlatformError naming this host and the exchange.

On one host `joined` yields `SOLO`, whose collectives return their input: the same code runs
everywhere.

    with joined(job.resources) as cluster:
        sums, counts = cluster.sum(sums, counts)
        for batch in cluster.lockstep(batches, empty=...):
            ...
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from .config import ResourceConfig
from .environment import ClusterEnv
from .errors import PlatformError

log = logging.getLogger("smalgos")
T = TypeVar("T")


def resolve(host: str, wait: float) -> str:
    """The host's address; in a cluster a peer's name may take a moment to appear in DNS (waits up
    to `wait` seconds, then a PlatformError naming the host)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return socket.gethostbyname(host)
        except OSError as exc:
            if time.monotonic() > deadline:
                raise PlatformError(f"Cannot resolve host {host!r} to reach the other hosts "
                                    f"within {wait:.0f} s: {exc}") from None
            time.sleep(1)


def host_seed(seed, rank: int):
    """A host's random stream for what each host draws on its own (samples, negatives): `seed`
    itself on the first host (so one host draws what a notebook's fit draws), `[seed, rank]` on
    each other host (numpy's SeedSequence entropy: a stream of its own)."""
    return seed if rank == 0 else [seed, rank]


@dataclass
class Cluster:
    """This host's view of the job's hosts, and the collectives between them (numpy in, numpy out).

    Every host must call the same collectives in the same order. `device` is where the
    collectives' tensors live (cuda under NCCL)."""

    rank: int = 0
    size: int = 1
    hosts: tuple[str, ...] = ("algo-1",)
    backend: str | None = None
    device: str = "cpu"
    _dist: object = field(default=None, repr=False)

    @property
    def host(self) -> str:
        return self.hosts[self.rank]

    @property
    def is_master(self) -> bool:
        return self.rank == 0

    @property
    def several(self) -> bool:
        return self.size > 1

    # -- collectives --------------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except RuntimeError as exc:  # gloo/NCCL: a peer closed its connection or timed out
            others = [h for h in self.hosts if h != self.host]
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            first = re.sub(r"^\[[^\]]*\.(cc|cpp):\d+\]\s*", "", text)  # gloo's source position
            first = first.split(". This is typically")[0]
            raise PlatformError(f"Host {self.host} lost the other host(s) ({', '.join(others)}) during {what}: "
                                f"one of them failed or stopped (see its log): {first}") from None

    def _tensor(self, array):
        import torch
        return torch.as_tensor(np.ascontiguousarray(array)).to(self.device)

    def sum(self, *arrays) -> tuple[np.ndarray, ...]:
        """Every host's arrays, summed element-wise (each array's shape and dtype on every host)."""
        if not self.several:
            return tuple(np.asarray(a) for a in arrays)
        out = []
        for a in arrays:
            a = np.asarray(a)
            t = self._tensor(a.astype(np.float64) if a.dtype == np.float16 else a)
            self._call("a sum across hosts", lambda: self._dist.all_reduce(t))
            out.append(t.cpu().numpy().astype(a.dtype, copy=False).reshape(a.shape))
        return tuple(out)

    def sum_tensors_(self, tensors: Sequence) -> None:
        """Sum torch tensors across hosts in place (gradients): one flat exchange for all of them."""
        if not self.several or not tensors:
            return
        import torch
        flat = torch.cat([t.detach().reshape(-1).to(self.device, torch.float32) for t in tensors])
        self._call("the exchange of gradients", lambda: self._dist.all_reduce(flat))
        offset = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view_as(t).to(t.device, t.dtype))
            offset += n

    def max(self, value: float) -> float:
        if not self.several:
            return value
        t = self._tensor(np.array([value], dtype=np.float64))
        self._call("a maximum across hosts", lambda: self._dist.all_reduce(t, op=self._dist.ReduceOp.MAX))
        return float(t.cpu().numpy()[0])

    def count(self, flag: bool) -> int:
        """How many hosts passed a true `flag`."""
        return int(round(self.sum(np.array([1.0 if flag else 0.0]))[0][0]))

    def any(self, flag: bool) -> bool:
        return self.count(flag) > 0

    def broadcast(self, array, root: int = 0) -> np.ndarray:
        """`root`'s array on every host (the same shape and dtype everywhere)."""
        a = np.asarray(array)
        if not self.several:
            return a
        t = self._tensor(a)
        self._call("a broadcast from the master", lambda: self._dist.broadcast(t, src=root))
        return t.cpu().numpy()

    def gather(self, array) -> list[np.ndarray]:
        """Every host's array (any number of rows, the same trailing shape and dtype), in rank order."""
        a = np.asarray(array)
        if not self.several:
            return [a]
        rows = self.sum(np.eye(self.size, dtype=np.int64)[self.rank] * a.shape[0])[0]
        most = int(rows.max())
        padded = np.zeros((most,) + a.shape[1:], dtype=a.dtype)
        padded[:a.shape[0]] = a
        t = self._tensor(padded)
        parts = [t.clone() for _ in range(self.size)]
        self._call("a gather across hosts", lambda: self._dist.all_gather(parts, t))
        return [p.cpu().numpy()[:int(n)] for p, n in zip(parts, rows)]

    def barrier(self) -> None:
        if self.several:
            self._call("a wait for every host", lambda: self._dist.barrier())

    def lockstep(self, items: Iterable[T], empty: Callable[[], T], stop: Callable[[], bool] = lambda: False
                 ) -> Iterator[T]:
        """This host's items, step by step with the other hosts: a host whose items have run out
        yields `empty()` while any other still has one, so every host makes the same number of
        steps (and collectives). `stop()` on any host (SIGTERM) ends every host's loop there."""
        it = iter(items)
        try:
            while True:
                if stop():
                    item, have = None, -1.0
                else:
                    item = next(it, None)
                    have = 0.0 if item is None else 1.0
                if not self.several:
                    if item is None:
                        return
                    yield item
                    continue
                flags = self.sum(np.array([max(have, 0.0), 1.0 if have < 0 else 0.0]))[0]
                if flags[1] > 0 or flags[0] == 0:
                    return
                yield empty() if item is None else item
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()


SOLO = Cluster()


def _gloo_interface(resources: ResourceConfig) -> str | None:
    name = resources.network_interface_name
    return name if name and Path("/sys/class/net", name).exists() else None


def _wait_for_all(store, resources: ResourceConfig, deadline: float) -> None:
    keys = [f"joined/{r}" for r in range(resources.num_hosts)]
    while True:
        missing = [resources.hosts[r] for r, k in enumerate(keys) if not store.check([k])]
        if not missing:
            return
        if time.monotonic() > deadline:
            raise PlatformError(f"Host(s) {', '.join(missing)} did not join the training job within the wait "
                                f"($SMALGOS_DIST_CONNECT_SECONDS); host {resources.current_host} gives up")
        time.sleep(0.2)


def _backend(store, resources: ResourceConfig, want_cuda: bool) -> str:
    """NCCL when every host has a GPU (each says so in the store), else gloo."""
    store.set(f"cuda/{resources.rank}", "1" if want_cuda else "0")
    everyone = all(store.get(f"cuda/{r}") == b"1" for r in range(resources.num_hosts))
    return "nccl" if everyone else "gloo"


@contextlib.contextmanager
def joined(resources: ResourceConfig, env: ClusterEnv | None = None, want_cuda: bool = False
           ) -> Iterator[Cluster]:
    """This host as a member of all of `resources`' hosts (see the module docstring). `want_cuda`:
    this host would compute on a GPU (NCCL is used when every host says so)."""
    if resources.num_hosts == 1:
        yield SOLO
        return
    import torch
    import torch.distributed as dist

    env = env or ClusterEnv.from_env()
    deadline = time.monotonic() + env.connect_seconds
    addr = env.master_addr or resolve(resources.master_host, env.connect_seconds)
    os.environ.update(env.gloo_settings(_gloo_interface(resources)))
    log.info("Host %s is rank %d of %d; the master %s is at %s:%d", resources.current_host, resources.rank,
             resources.num_hosts, resources.master_host, addr, env.port)
    while True:
        try:
            store = dist.TCPStore(addr, env.port, resources.num_hosts, resources.is_master,
                                  timeout=timedelta(seconds=max(1, env.connect_seconds)),
                                  wait_for_workers=False)
            break
        except (RuntimeError, OSError) as exc:  # the master is not listening yet, or our port is taken
            if resources.is_master or time.monotonic() > deadline:
                where = "open" if resources.is_master else "reach"
                raise PlatformError(f"Host {resources.current_host} could not {where} the job's rendezvous on "
                                    f"{resources.master_host} ({addr}:{env.port}): {exc}") from None
            time.sleep(1)
    store.set(f"joined/{resources.rank}", resources.current_host)
    _wait_for_all(store, resources, deadline)
    backend = _backend(store, resources, want_cuda and torch.cuda.is_available())
    dist.init_process_group(backend, store=dist.PrefixStore("pg", store), rank=resources.rank,
                            world_size=resources.num_hosts, timeout=timedelta(seconds=env.wait_seconds))
    cluster = Cluster(rank=resources.rank, size=resources.num_hosts, hosts=resources.hosts, backend=backend,
                      device="cuda" if backend == "nccl" else "cpu", _dist=dist)
    log.info("Host %s joined %d host(s) on %s", resources.current_host, resources.num_hosts, backend)
    try:
        yield cluster
        cluster.barrier()  # the master keeps the store up until every host is done with it
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
