"""Device selection and array → tensor conversion.

The same torch code runs on CPU and CUDA: callers pick a device once with `pick_device()` and
convert every mini-batch with `as_dense()` / `as_torch()`. `SMALGOS_DEVICE` (``cpu``, ``cuda``,
``cuda:1``) overrides the automatic choice, e.g. to keep a GPU image on CPU for a test (read
through `smalgos.environment`, when a device is picked).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ..distributed import host_seed
from ..environment import device_override


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """`device` if given (not None / ``"auto"``), else `$SMALGOS_DEVICE`, else CUDA when present, else CPU."""
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        device = device_override() or ("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def is_sparse(x) -> bool:
    return sp.issparse(x) or (isinstance(x, torch.Tensor) and x.layout != torch.strided)


def as_dense(x, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A dense tensor on `device` from a numpy array, a scipy sparse matrix or a tensor."""
    if isinstance(x, torch.Tensor):
        t = x.to_dense() if x.layout != torch.strided else x
        return t.to(device=device, dtype=dtype)
    if sp.issparse(x):
        x = x.toarray()
    return torch.from_numpy(np.ascontiguousarray(x)).to(device=device, dtype=dtype)


def as_torch(x, device: torch.device, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Like `as_dense`, but a scipy sparse matrix stays sparse (a torch COO tensor)."""
    if sp.issparse(x):
        coo = x.tocoo()
        idx = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        vals = torch.from_numpy(np.asarray(coo.data)).to(dtype)
        return torch.sparse_coo_tensor(idx, vals, coo.shape, device=device,
                                       check_invariants=False).coalesce()
    return as_dense(x, device, dtype)


def to_numpy(t: torch.Tensor, dtype=None) -> np.ndarray:
    out = t.detach().cpu().numpy()
    return out.astype(dtype, copy=False) if dtype is not None else out


def generator(seed: int) -> torch.Generator:
    """A CPU generator: random draws are made on CPU so that a seed gives the same numbers on any device."""
    g = torch.Generator(device="cpu")
    g.manual_seed(int(seed))
    return g


def host_randomness(seed: int, rank: int) -> tuple[np.random.Generator, torch.Generator]:
    """Host `rank`'s random draws in a job across hosts (numpy's and torch's): `seed` itself on the
    first host (one host draws what a notebook's fit draws), a stream of its own on each other
    host, so that hosts draw different samples, negatives or noise."""
    if rank == 0:
        return np.random.default_rng(seed), generator(seed)
    sequence = np.random.SeedSequence(host_seed(seed, rank))
    return np.random.default_rng(sequence), generator(int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1)))
