"""Squared Euclidean distances and nearest-neighbour search on torch, chunked to bound memory.

Distances are computed as ``|x|² - 2 x·y + |y|²`` (one matrix product per chunk, as BLAS and
cuBLAS like it) and clamped at zero. Where a caller reports a distance to a user (k-means'
`distance_to_cluster`, k-NN's verbose distances) the winners' distances are recomputed directly
as ``|x - y|²``, so the cancellation error of the expansion never reaches a response.

`chunk_rows(m)` bounds each intermediate (rows × m) block at `CHUNK_BYTES` (64 MiB by default).
"""

from __future__ import annotations

from typing import Iterator

import torch

CHUNK_BYTES = 64 << 20


def chunk_rows(n_cols: int, itemsize: int = 4, budget: int = CHUNK_BYTES) -> int:
    """How many rows of an (rows × n_cols) block fit the memory budget (at least 1)."""
    return max(1, budget // max(1, n_cols * itemsize))


def row_chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def squared_norms(x: torch.Tensor) -> torch.Tensor:
    """Row-wise squared L2 norms, shape (n,)."""
    return (x * x).sum(dim=1)


def pairwise_sq_distances(x: torch.Tensor, y: torch.Tensor, x_sq: torch.Tensor | None = None,
                          y_sq: torch.Tensor | None = None) -> torch.Tensor:
    """(n, m) squared distances between the rows of x (n, d) and y (m, d); not chunked."""
    x_sq = squared_norms(x) if x_sq is None else x_sq
    y_sq = squared_norms(y) if y_sq is None else y_sq
    d = torch.addmm(y_sq.unsqueeze(0), x, y.T, beta=1.0, alpha=-2.0)
    d += x_sq.unsqueeze(1)
    return d.clamp_min_(0.0)


def exact_sq_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Row-paired squared distances |x_i - y_i|², computed directly (x, y of shape (n, d) or (n, k, d))."""
    diff = x - y
    return (diff * diff).sum(dim=-1)


def nearest(x: torch.Tensor, centers: torch.Tensor, centers_sq: torch.Tensor | None = None,
            chunk: int | None = None, exact: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest centre for each row of x, and the squared distance to it.

    Returns (idx int64 (n,), sq_dist (n,) in x's dtype). With `exact`, the winning distances are
    recomputed as |x - c|² rather than taken from the expansion.
    """
    n = x.shape[0]
    centers_sq = squared_norms(centers) if centers_sq is None else centers_sq
    chunk = chunk or chunk_rows(centers.shape[0], x.element_size())
    idx = torch.empty(n, dtype=torch.int64, device=x.device)
    dist = torch.empty(n, dtype=x.dtype, device=x.device)
    for s in row_chunks(n, chunk):
        d = pairwise_sq_distances(x[s], centers, y_sq=centers_sq)
        best, arg = d.min(dim=1)
        idx[s] = arg
        dist[s] = exact_sq_distances(x[s], centers[arg]) if exact else best
    return idx, dist


def top_k(queries: torch.Tensor, base: torch.Tensor, k: int, metric: str = "l2",
          base_sq: torch.Tensor | None = None, chunk: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact k nearest rows of `base` for each query (brute force).

    metric "l2": ascending squared distances (recomputed exactly for the winners);
    metric "ip": descending inner products (the larger, the closer).
    Returns (scores (n, k), indices int64 (n, k)); k is clipped to the number of base rows.
    """
    if metric not in ("l2", "ip"):
        raise ValueError(f"metric must be 'l2' or 'ip', not {metric!r}")
    n, m = queries.shape[0], base.shape[0]
    k = min(k, m)
    if metric == "l2" and base_sq is None:
        base_sq = squared_norms(base)
    chunk = chunk or chunk_rows(max(m, k * base.shape[1]), queries.element_size())
    scores = torch.empty((n, k), dtype=queries.dtype, device=queries.device)
    indices = torch.empty((n, k), dtype=torch.int64, device=queries.device)
    for s in row_chunks(n, chunk):
        q = queries[s]
        if metric == "l2":
            d = pairwise_sq_distances(q, base, y_sq=base_sq)
            _, arg = torch.topk(d, k, dim=1, largest=False, sorted=True)
            exact = exact_sq_distances(q.unsqueeze(1), base[arg])
            # Re-sort on the exact values: the expansion's rounding may swap near-ties.
            exact, order = exact.sort(dim=1, stable=True)
            scores[s], indices[s] = exact, arg.gather(1, order)
        else:
            sims = q @ base.T
            scores[s], indices[s] = torch.topk(sims, k, dim=1, largest=True, sorted=True)
    return scores, indices
