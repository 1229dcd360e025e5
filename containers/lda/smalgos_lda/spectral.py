"""Spectral LDA: the method of moments of Anandkumar, Ge, Hsu, Kakade and Telgarsky, "Tensor
decompositions for learning latent variable models", JMLR 15 (2014), §3.1 and §5 (Algorithm 1).

For LDA with Dirichlet prior α (α0 = Σα) and topics μ_1..μ_k, with x1, x2, x3 three distinct
words of one document (one-hot),

    M1 = E[x1]
    M2 = E[x1⊗x2] − α0/(α0+1) M1⊗M1                                   = Σ w_i μ_i⊗μ_i
    M3 = E[x1⊗x2⊗x3] − α0/(α0+2) (E[x1⊗x2⊗M1] + two permutations)
         + 2α0²/((α0+1)(α0+2)) M1⊗M1⊗M1                                = Σ c_i μ_i⊗μ_i⊗μ_i

with w_i = α_i/(α0(α0+1)) and c_i = 2α_i/(α0(α0+1)(α0+2)). Each document gives unbiased
estimates of the word moments from its counts (its ordered pairs and triples of distinct
positions), averaged over the documents of at least three words.

Two passes over the data, memory O(V² + k³), never the V³ tensor:
1. `FirstPass`: n, Σ c/l and Σ (c cᵀ − diag c)/(l(l−1)) (V × V). `whitening()` takes the k'
   leading eigenpairs of M2 → W (V × k') with Wᵀ M2 W = I.
2. `SecondPass`: the whitened third moment T = M3(W, W, W), a k' × k' × k' tensor, summed from
   the whitened counts y = Wᵀc; the terms of the triple estimate that involve a word twice are
   summed as V × k' matrices and contracted once at the end.

`decompose(T)` is the robust tensor power method with deflation (Algorithm 1): per component,
`max_restarts` starts (the first from the SVD of the tensor's unfolding when allowed), each
iterated θ ← T(I, θ, θ)/‖T(I, θ, θ)‖ until it moves less than `tol` or `max_iterations`; the
start with the largest T(θ, θ, θ) wins and is deflated. AWS's image decomposes the same tensor
by alternating least squares; both recover the orthogonal decomposition T = Σ λ_i v_i⊗v_i⊗v_i,
λ_i = 2/((α0+2)√w_i). Un-whitening gives α_i = α0(α0+1)·w_i and μ_i ∝ (Wᵀ)⁺ v_i λ_i.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg

from smalgos.errors import InputError

MIN_WORDS = 3  # a document needs three words for the third moment; shorter ones are skipped
SMOOTHING = 0.01  # see topics()
DENSE_EIGEN_LIMIT = 300  # vocabularies above this use Lanczos for the whitening
_ROWS = 512  # documents per block of the k'³ outer products


def long_documents(counts):
    """(counts, lengths) of the documents of at least MIN_WORDS words (as float64 for sparse
    data, whose products stay sparse; dense arrays as given)."""
    lengths = np.asarray(counts.sum(axis=1), dtype=np.float64).ravel()
    keep = lengths >= MIN_WORDS
    counts = counts[keep]
    return (sp.csr_matrix(counts, dtype=np.float64) if sp.issparse(counts) else np.asarray(counts, np.float64),
            lengths[keep])


def _scaled(counts, weights: np.ndarray):
    """diag(weights) · counts, as float64 (sparse stays sparse)."""
    if sp.issparse(counts):
        return sp.csr_matrix(sp.diags(weights) @ counts, dtype=np.float64)
    return np.asarray(counts, dtype=np.float64) * weights[:, None]


class FirstPass:
    """Sums for M1 and M2 over the documents of at least three words."""

    def __init__(self, vocabulary: int):
        self.docs = 0
        self.first = np.zeros(vocabulary)  # Σ c/l
        self.pairs = np.zeros((vocabulary, vocabulary))  # Σ (c cᵀ − diag c)/(l(l−1))

    def add(self, counts) -> None:
        counts, lengths = long_documents(counts)
        self.docs += lengths.shape[0]
        self.first += np.asarray(_scaled(counts, 1 / lengths).sum(axis=0)).ravel()
        s = 1 / (lengths * (lengths - 1))
        sc = _scaled(counts, s)
        outer = counts.T @ sc
        self.pairs += outer.toarray() if sp.issparse(outer) else outer
        self.pairs[np.diag_indices_from(self.pairs)] -= np.asarray(sc.sum(axis=0)).ravel()

    def moments(self) -> tuple[np.ndarray, np.ndarray]:
        """(M1, E[x1⊗x2]) as averages."""
        if self.docs == 0:
            raise InputError(f"no document has {MIN_WORDS} or more words: the moments LDA is fitted from "
                             "need three words per document")
        return self.first / self.docs, self.pairs / self.docs


@dataclass
class Whitening:
    """W = U diag(1/√s) with U, s the k' leading eigenpairs of M2."""

    m1: np.ndarray  # (V,)
    pairs: np.ndarray  # (V, V) E[x1⊗x2]
    eigenvectors: np.ndarray  # U (V, k')
    eigenvalues: np.ndarray  # s (k',) descending, positive

    @property
    def matrix(self) -> np.ndarray:
        return self.eigenvectors / np.sqrt(self.eigenvalues)

    def unwhiten(self, v: np.ndarray) -> np.ndarray:
        """(Wᵀ)⁺ v = U diag(√s) v for whitened vectors v (k', n) → (V, n)."""
        return self.eigenvectors @ (np.sqrt(self.eigenvalues)[:, None] * v)


def leading_eigenpairs(m: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The `count` largest eigenvalues of the symmetric `m`, descending, and their eigenvectors:
    Lanczos (ARPACK, from a fixed start: repeatable) for a large matrix, LAPACK for a small one."""
    v = m.shape[0]
    if v > DENSE_EIGEN_LIMIT and count < v // 2:
        try:
            values, vectors = scipy.sparse.linalg.eigsh(m, k=count, which="LA", v0=np.full(v, v ** -0.5))
        except scipy.sparse.linalg.ArpackNoConvergence:
            values, vectors = scipy.linalg.eigh(m, subset_by_index=(v - count, v - 1))
    else:
        values, vectors = scipy.linalg.eigh(m, subset_by_index=(v - count, v - 1))
    order = np.argsort(-values, kind="stable")
    return values[order], vectors[:, order]


def whitening(first: FirstPass, alpha0: float, dimension: int) -> Whitening:
    """The whitening of M2 to its `dimension` leading eigenvalues (those that are positive)."""
    m1, pairs = first.moments()
    m2 = pairs - alpha0 / (alpha0 + 1) * np.outer(m1, m1)
    values, vectors = leading_eigenpairs((m2 + m2.T) / 2, min(dimension, m2.shape[0]))
    keep = values > max(values[0], 0) * 1e-10
    if not keep.any():
        raise InputError("the word co-occurrence moment of the training documents has no positive "
                         "eigenvalue: the data hold no topic structure")
    return Whitening(m1, pairs, vectors[:, keep], values[keep])


class SecondPass:
    """Sums for the whitened third moment, for one whitening."""

    def __init__(self, white: Whitening):
        self.white = white
        self.w = white.matrix  # (V, k')
        k = self.w.shape[1]
        self.docs = 0
        self.cubes = np.zeros((k, k * k))  # Σ t y⊗y⊗y, t = 1/(l(l−1)(l−2)), unfolded
        self.twice = np.zeros_like(self.w)  # Σ t c yᵀ: terms with one word twice
        self.thrice = np.zeros(self.w.shape[0])  # Σ t c: terms with one word three times

    def add(self, counts) -> None:
        counts, lengths = long_documents(counts)
        self.docs += lengths.shape[0]
        t = 1 / (lengths * (lengths - 1) * (lengths - 2))
        tc = _scaled(counts, t)
        y = np.asarray(counts @ self.w, dtype=np.float64)  # (n, k')
        self.twice += np.asarray(tc.T @ y)
        self.thrice += np.asarray(tc.sum(axis=0)).ravel()
        k = y.shape[1]
        for start in range(0, y.shape[0], _ROWS):
            yb, tb = y[start:start + _ROWS], t[start:start + _ROWS]
            pairs = (yb[:, :, None] * yb[:, None, :]).reshape(len(yb), k * k)
            self.cubes += (yb * tb[:, None]).T @ pairs

    def tensor(self, alpha0: float) -> np.ndarray:
        """T = M3(W, W, W), (k', k', k')."""
        w, k, n = self.w, self.w.shape[1], self.docs
        a = np.einsum("ia,ib,ic->abc", w, w, self.twice / n, optimize=True)
        triples = (self.cubes.reshape(k, k, k) / n - (a + a.transpose(0, 2, 1) + a.transpose(2, 0, 1))
                   + 2 * np.einsum("i,ia,ib,ic->abc", self.thrice / n, w, w, w, optimize=True))
        m = w.T @ self.white.m1
        p = w.T @ self.white.pairs @ w
        cross = p[:, :, None] * m[None, None, :]
        cross = cross + cross.transpose(0, 2, 1) + cross.transpose(2, 0, 1)
        cube_m = np.einsum("a,b,c->abc", m, m, m)
        return (triples - alpha0 / (alpha0 + 2) * cross
                + 2 * alpha0 ** 2 / ((alpha0 + 1) * (alpha0 + 2)) * cube_m)


def _contract(t: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """T(I, θ, θ) for each column θ of `theta` (k, r) → (k, r)."""
    k = t.shape[0]
    tv = (t.reshape(k * k, k) @ theta).reshape(k, k, -1)  # T(I, I, θ)
    return np.einsum("abr,br->ar", tv, theta)


def decompose(t: np.ndarray, components: int, restarts: int, iterations: int, tol: float,
              svd_init: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """Robust tensor power method with deflation: (λ (c,), V (k, c) unit columns, relative
    residual ‖T − Σ λ v⊗v⊗v‖/‖T‖). See the module docstring."""
    t = t.copy()
    k = t.shape[0]
    norm = float(np.linalg.norm(t)) or 1.0
    lambdas, vectors = [], []
    for _ in range(components):
        theta = rng.standard_normal((k, restarts))
        if svd_init:
            theta[:, 0] = np.linalg.svd(t.reshape(k, k * k), full_matrices=False)[0][:, 0]
        theta /= np.linalg.norm(theta, axis=0)
        for _ in range(iterations):
            new = _contract(t, theta)
            new /= np.maximum(np.linalg.norm(new, axis=0), 1e-300)
            moved = float(np.abs(new - theta).max())
            theta = new
            if moved < tol:
                break
        values = np.einsum("ar,ar->r", _contract(t, theta), theta)
        best = int(np.argmax(np.abs(values)))
        lam, v = float(values[best]), theta[:, best]
        if lam < 0:  # T(−v, −v, −v) = −T(v, v, v): the same component, the other sign
            lam, v = -lam, -v
        t -= lam * np.einsum("a,b,c->abc", v, v, v)
        lambdas.append(lam)
        vectors.append(v)
    return np.array(lambdas), np.stack(vectors, axis=1), float(np.linalg.norm(t)) / norm


def topics(white: Whitening, lambdas: np.ndarray, vectors: np.ndarray,
           alpha0: float) -> tuple[np.ndarray, np.ndarray]:
    """Un-whiten the components: (α (c,), μ (c, V)) with each μ_i on the simplex: its negative
    estimation noise clipped, then mixed with SMOOTHING of the corpus's word frequencies (M1,
    itself mixed with 1 % of the uniform distribution), so that no word has probability zero
    in a topic (one such word would make a document's likelihood zero)."""
    lambdas = np.maximum(lambdas, 1e-12)
    weights = (2 / ((alpha0 + 2) * lambdas)) ** 2
    alpha = alpha0 * (alpha0 + 1) * weights
    mu = white.unwhiten(vectors * lambdas * (alpha0 + 2) / 2).T  # (c, V)
    mu = np.maximum(mu, 0)
    sums = mu.sum(axis=1, keepdims=True)
    empty = sums[:, 0] <= 0
    mu[empty] = 1.0
    background = 0.99 * white.m1 + 0.01 / white.m1.shape[0]
    return alpha, (1 - SMOOTHING) * mu / mu.sum(axis=1, keepdims=True) + SMOOTHING * background
