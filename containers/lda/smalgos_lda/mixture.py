"""A document's topic mixture given the topics β (k, V) and the prior α (k,), and the per-word
log-likelihood that scores a model.

`topic_mixtures` maximises, per document with word counts c, the posterior of its mixture θ on
the simplex,

    Σ_w c_w log(Σ_i θ_i β_iw) + Σ_i (α_i − 1) log θ_i,

by the EM fixed point for mixture weights under a Dirichlet prior,
θ_i ← max(0, θ_i Σ_w c_w β_iw / (θ·β)_w + α_i − 1) / Σ(...), every document of a mini-batch at
once. A topic whose share the prior pushes below zero (α_i < 1) is set to exactly zero, so
mixtures are sparse, as AWS's answers are. When the prior would zero every topic (a document of
one or two words and a sparse prior) the step keeps the likelihood part alone. A document without
words gets the prior's mean α/Σα.

`per_word_log_likelihood` is the same for every model (ours, scikit-learn's, gensim's: give
each its β and α): Σ_d Σ_w c_dw log(θ_d·β_w) / Σ_d Σ_w c_dw with θ_d from `topic_mixtures`.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

ITERATIONS = 300
TOLERANCE = 1e-6
_FLOOR = 1e-300


def _nonzeros(counts) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    c = sp.csr_matrix(counts, dtype=np.float64)
    c.eliminate_zeros()
    rows = np.repeat(np.arange(c.shape[0]), np.diff(c.indptr))
    return rows, c.indices, c.data, c.shape


def _word_probabilities(theta, beta_t, rows, cols) -> np.ndarray:
    """(θ_d · β_w) at each non-zero (d, w)."""
    return np.maximum(np.einsum("nk,nk->n", theta[rows], beta_t[cols]), _FLOOR)


def topic_mixtures(counts, alpha: np.ndarray, beta: np.ndarray, iterations: int = ITERATIONS,
                   tol: float = TOLERANCE) -> np.ndarray:
    """(n, k) float64 mixtures, each on the simplex. See the module docstring."""
    alpha = np.asarray(alpha, np.float64)
    beta_t = np.ascontiguousarray(np.asarray(beta, np.float64).T)  # (V, k)
    rows, cols, values, shape = _nonzeros(counts)
    n = shape[0]
    theta = np.tile(alpha / alpha.sum(), (n, 1))
    if values.size == 0:
        return theta
    live = np.bincount(rows, minlength=n) > 0
    for _ in range(iterations):
        ratio = values / _word_probabilities(theta, beta_t, rows, cols)
        gathered = sp.csr_matrix((ratio, (rows, cols)), shape=shape) @ beta_t  # Σ_w c β_iw / (θβ)_w
        likelihood = theta * gathered
        step = np.maximum(likelihood + (alpha - 1), 0)
        totals = step.sum(axis=1, keepdims=True)
        stuck = totals[:, 0] <= 0
        if stuck.any():
            step[stuck] = likelihood[stuck]
            totals[stuck] = likelihood[stuck].sum(axis=1, keepdims=True)
        new = np.where(live[:, None], step / np.maximum(totals, _FLOOR), theta)
        moved = float(np.abs(new - theta).max())
        theta = new
        if moved < tol:
            break
    return theta


def log_likelihood(counts, theta: np.ndarray, beta: np.ndarray) -> tuple[float, float]:
    """(Σ c log(θ·β), Σ c) over the documents of `counts`."""
    rows, cols, values, _ = _nonzeros(counts)
    beta_t = np.ascontiguousarray(np.asarray(beta, np.float64).T)
    p = _word_probabilities(np.asarray(theta, np.float64), beta_t, rows, cols)
    return float(values @ np.log(p)), float(values.sum())


def per_word_log_likelihood(counts, alpha: np.ndarray, beta: np.ndarray) -> float:
    """The per-word log-likelihood of `counts` under the model (α, β). See the module docstring."""
    total, words = log_likelihood(counts, topic_mixtures(counts, alpha, beta), beta)
    return total / words if words else float("nan")
