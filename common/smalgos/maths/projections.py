"""Random projections that approximately preserve L2 distances and inner products.

- `sign`: x ↦ x·R / √t with R a (d × t) matrix of independent ±1 entries; O(d·t) per row.
- `fjlt`: the fast Johnson–Lindenstrauss transform in its subsampled randomized Hadamard form,
  x ↦ √(p/t) · (H·D·x)[S], with D random signs, H the orthonormal Walsh–Hadamard transform of
  size p (d zero-padded to a power of two) and S t coordinates drawn without replacement;
  O(p log p) per row.

Both are drawn on CPU from a seed (torch's generator), so a seed gives the same projection on
any device; `RandomProjection.state()` keeps the drawn arrays for a model artifact anyway, so
loading never depends on a random-number stream staying the same across versions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .device import generator

KINDS = ("sign", "fjlt")


def sign_matrix(rows: int, cols: int, seed: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A (rows × cols) CPU tensor of independent ±1 entries."""
    bits = torch.randint(0, 2, (rows, cols), generator=generator(seed), dtype=torch.int8)
    return (bits.to(dtype) * 2 - 1)


def next_power_of_two(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def fwht(x: torch.Tensor) -> torch.Tensor:
    """Orthonormal Walsh–Hadamard transform along the last dimension (a power of two)."""
    n = x.shape[-1]
    if n & (n - 1):
        raise ValueError(f"fwht needs a power-of-two length, got {n}")
    lead = x.shape[:-1]
    y = x.reshape(-1, n)
    h = 1
    while h < n:
        y = y.view(-1, n // (2 * h), 2, h)
        a, b = y[:, :, 0, :], y[:, :, 1, :]
        y = torch.stack((a + b, a - b), dim=2)
        h *= 2
    return y.reshape(*lead, n) / math.sqrt(n)


@dataclass
class RandomProjection:
    """A drawn projection from `input_dim` to `target_dim` features."""

    kind: str
    input_dim: int
    target_dim: int
    seed: int
    matrix: np.ndarray | None = None  # sign: (d, t) of ±1
    signs: np.ndarray | None = None   # fjlt: (d,) of ±1
    index: np.ndarray | None = None   # fjlt: (t,) coordinates kept out of the padded size

    @classmethod
    def draw(cls, kind: str, input_dim: int, target_dim: int, seed: int) -> "RandomProjection":
        if kind not in KINDS:
            raise ValueError(f"projection kind must be one of {KINDS}, not {kind!r}")
        if not 0 < target_dim:
            raise ValueError("target_dim must be positive")
        if kind == "sign":
            return cls(kind, input_dim, target_dim, seed,
                       matrix=sign_matrix(input_dim, target_dim, seed).numpy().astype(np.int8))
        padded = next_power_of_two(input_dim)
        if target_dim > padded:
            raise ValueError(f"fjlt target_dim {target_dim} exceeds the padded dimension {padded}")
        g = generator(seed)
        signs = (torch.randint(0, 2, (input_dim,), generator=g, dtype=torch.int8) * 2 - 1).numpy()
        index = torch.randperm(padded, generator=g)[:target_dim].sort().values.numpy()
        return cls(kind, input_dim, target_dim, seed, signs=signs.astype(np.int8), index=index.astype(np.int64))

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """Project the rows of a dense (n, input_dim) tensor to (n, target_dim)."""
        if x.shape[1] != self.input_dim:
            raise ValueError(f"expected {self.input_dim} features, got {x.shape[1]}")
        if self.kind == "sign":
            r = torch.from_numpy(self.matrix).to(device=x.device, dtype=x.dtype)
            return (x @ r) / math.sqrt(self.target_dim)
        padded = next_power_of_two(self.input_dim)
        s = torch.from_numpy(self.signs).to(device=x.device, dtype=x.dtype)
        y = x * s
        if padded != self.input_dim:
            y = torch.nn.functional.pad(y, (0, padded - self.input_dim))
        y = fwht(y)
        idx = torch.from_numpy(self.index).to(x.device)
        return y[:, idx] * math.sqrt(padded / self.target_dim)

    def state(self) -> dict[str, np.ndarray]:
        """The drawn arrays, for safetensors."""
        if self.kind == "sign":
            return {"matrix": self.matrix}
        return {"signs": self.signs, "index": self.index}

    @classmethod
    def from_state(cls, kind: str, input_dim: int, target_dim: int, seed: int,
                   arrays: dict[str, np.ndarray]) -> "RandomProjection":
        proj = cls(kind, input_dim, target_dim, seed, matrix=arrays.get("matrix"), signs=arrays.get("signs"),
                   index=arrays.get("index"))
        expected = {"sign": ("matrix", (input_dim, target_dim))}.get(kind)
        if expected and (proj.matrix is None or proj.matrix.shape != expected[1]):
            raise ValueError("sign projection matrix missing or of the wrong shape")
        if kind == "fjlt" and (proj.signs is None or proj.index is None or proj.signs.shape != (input_dim,)
                               or proj.index.shape != (target_dim,)):
            raise ValueError("fjlt projection arrays missing or of the wrong shape")
        return proj
