"""The factorization machine on one mini-batch: its output and its gradients, sparse or dense.

    ŷ(x) = w0 + Σᵢ wᵢxᵢ + Σ_{i<j} ⟨vᵢ, vⱼ⟩ xᵢxⱼ
         = w0 + Σᵢ wᵢxᵢ + ½ Σ_f [(Σᵢ v_if xᵢ)² − Σᵢ v_if² xᵢ²]          (Rendle 2010, eq. 5)

in O(k · nnz). With s_f = Σᵢ v_if xᵢ (kept from the forward pass) and r = ∂loss/∂ŷ per record:

    ∂/∂w0 = Σ r,   ∂/∂wᵢ = Σ r xᵢ,   ∂/∂v_if = Σ r (xᵢ s_f − v_if xᵢ²)

summed over the batch's records. Only the rows of w and V of features that are non-zero in the
batch get a gradient (the optimizer updates those rows only), so a sparse batch never makes an
n × d or d × k dense array:

- `SparseBatch` (CSR): the non-zero entries gather their rows of V once (nnz × k), and
  `index_add_` sums them per record (the forward pass) and per feature (the gradient) — what
  `EmbeddingBag(mode="sum", per_sample_weights=values)` computes, with the gathered rows shared
  by the squared term and the gradient.
- `DenseBatch`: matrix products; the touched rows are the columns with a non-zero value.
Both give the same numbers for the same records.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from smalgos.maths.device import as_dense


class SparseBatch:
    def __init__(self, x: sp.csr_matrix, device: torch.device, for_training: bool):
        if x.nnz and not x.data.all():  # explicit zeros touch no parameter
            x = x.copy()
            x.eliminate_zeros()
        self.n = x.shape[0]
        counts = np.diff(x.indptr)
        self.record = torch.from_numpy(np.repeat(np.arange(self.n, dtype=np.int64), counts)).to(device)
        cols = torch.from_numpy(x.indices.astype(np.int64, copy=False)).to(device)
        self.x = torch.from_numpy(np.asarray(x.data, dtype=np.float32)).to(device)
        if for_training:  # the touched features, and each entry's place among them
            self.rows, self.entry_row = torch.unique(cols, return_inverse=True)
        else:
            self.rows, self.entry_row = None, cols

    def forward(self, w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """Σ wᵢxᵢ + the pairwise term, (n,), for each record (w0 not included)."""
        wr, vr = (w, v) if self.rows is None else (w[self.rows], v[self.rows])
        xv = vr[self.entry_row] * self.x.unsqueeze(1)  # (nnz, k): v_i x_i
        s1 = torch.zeros((self.n, v.shape[1]), dtype=v.dtype, device=v.device).index_add_(0, self.record, xv)
        s2 = torch.zeros_like(s1).index_add_(0, self.record, xv * xv)
        linear = torch.zeros(self.n, dtype=w.dtype, device=w.device).index_add_(
            0, self.record, wr[self.entry_row] * self.x)
        self._kept = (s1, vr)
        return linear + 0.5 * (s1 * s1 - s2).sum(1)

    def gradients(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(touched rows, ∂/∂w on them, ∂/∂V on them) for per-record ∂loss/∂ŷ `r`."""
        s1, vr = self._kept
        rx = r[self.record] * self.x  # (nnz,)
        u = self.rows.shape[0]
        gw = torch.zeros(u, dtype=r.dtype, device=r.device).index_add_(0, self.entry_row, rx)
        gv = torch.zeros((u, vr.shape[1]), dtype=r.dtype, device=r.device).index_add_(
            0, self.entry_row, rx.unsqueeze(1) * s1[self.record])
        rxx = torch.zeros(u, dtype=r.dtype, device=r.device).index_add_(0, self.entry_row, rx * self.x)
        return self.rows, gw, gv - vr * rxx.unsqueeze(1)


class DenseBatch:
    def __init__(self, x: np.ndarray, device: torch.device, for_training: bool):
        self.x = as_dense(x, device)
        self.n = self.x.shape[0]

    def forward(self, w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        x = self.x
        s1 = x @ v
        self._kept = (s1, v)
        return x @ w + 0.5 * (s1 * s1 - (x * x) @ (v * v)).sum(1)

    def gradients(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s1, v = self._kept
        rows = self.x.ne(0).any(0).nonzero().squeeze(1)
        xr = self.x[:, rows]
        gv = xr.T @ (r.unsqueeze(1) * s1) - v[rows] * ((xr * xr).T @ r).unsqueeze(1)
        return rows, xr.T @ r, gv


def make_batch(x, device: torch.device, for_training: bool = False) -> SparseBatch | DenseBatch:
    """The batch form of float32 features `x` (CSR or dense)."""
    return (SparseBatch if sp.issparse(x) else DenseBatch)(x, device, for_training)
