"""Click-style data drawn from a known factorization machine, and a reference FM in plain torch
(autograd + torch.optim.Adam over dense parameters, the textbook way), for the FM tests and
bench/bench_fm.py."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from smalgos.maths.device import as_torch
from smalgos.maths.threads import cpu_threads_for


def clicks(n: int, seed: int = 0, users: int = 60, items: int = 80, contexts: int = 10, k: int = 4):
    """One-hot user × item × context records (3 non-zeros each, feature_dim users+items+contexts)
    labelled by Bernoulli(sigmoid(ŷ)) of an FM with weights w ~ N(0, 0.3²), factors V ~ N(0, 0.8²)
    (strong pairwise interactions), w0 = −0.3. Returns (X CSR float32, y float32 0/1, P(y = 1))."""
    rng = np.random.default_rng(seed)
    d = users + items + contexts
    v = rng.normal(0, 0.8, (d, k))
    w = rng.normal(0, 0.3, d)
    cols = np.stack([rng.integers(0, users, n), users + rng.integers(0, items, n),
                     users + items + rng.integers(0, contexts, n)], 1).ravel()
    x = sp.csr_matrix((np.ones(3 * n, np.float32), (np.repeat(np.arange(n), 3), cols)), shape=(n, d))
    s1 = x @ v
    raw = -0.3 + x @ w + 0.5 * ((s1 ** 2).sum(1) - (x @ (v ** 2)).sum(1))
    p = 1 / (1 + np.exp(-raw))
    return x, (rng.random(n) < p).astype(np.float32), p


def _coo(x: sp.csr_matrix, square: bool = False) -> torch.Tensor:
    return as_torch(x.multiply(x).tocsr() if square else x, torch.device("cpu"))


class ReferenceFM:
    """ŷ = w0 + xw + ½ Σ[(xV)² − x²V²], log loss, Adam (torch's own) on every parameter each step."""

    def __init__(self, num_factors: int, lr: float, sigma: float = 0.01, seed: int = 0):
        self.k, self.lr, self.sigma, self.seed = num_factors, lr, sigma, seed

    def forward(self, x: sp.csr_matrix) -> torch.Tensor:
        xt = _coo(x)
        s1 = xt @ self.v
        return self.w0 + (xt @ self.w).squeeze(1) + 0.5 * (s1 * s1 - _coo(x, True) @ (self.v * self.v)).sum(1)

    def fit(self, x: sp.csr_matrix, y: np.ndarray, epochs: int, batch: int) -> "ReferenceFM":
        gen = torch.Generator().manual_seed(self.seed)
        d = x.shape[1]
        self.w0 = torch.zeros(1, requires_grad=True)
        self.w = torch.zeros((d, 1), requires_grad=True)
        self.v = (torch.randn((d, self.k), generator=gen) * self.sigma).requires_grad_()
        opt = torch.optim.Adam([self.w0, self.w, self.v], lr=self.lr)
        with cpu_threads_for(batch * x.shape[1], torch.device("cpu")):
            self._epochs(x, y, epochs, batch, opt)
        return self

    def _epochs(self, x, y, epochs, batch, opt) -> None:
        for _ in range(epochs):
            for start in range(0, x.shape[0], batch):
                loss = F.binary_cross_entropy_with_logits(self.forward(x[start:start + batch]),
                                                          torch.from_numpy(y[start:start + batch]))
                opt.zero_grad()
                loss.backward()
                opt.step()

    def predict_scores(self, x: sp.csr_matrix) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(self.forward(x)).numpy()
