"""Generated Object2Vec data with a known answer, shared by the unit tests and bench/bench_object2vec.py.

- `ratings`: user–item ratings from latent factors (items in clusters), rating = μ + b_u + b_i +
  u·v + noise; records `{"label": rating, "in0": [user], "in1": [item]}`.
- `mf_rmse`: a biased matrix factorisation (the peer) fitted on the same ratings, its held-out RMSE.
- `sentence_pairs`: paraphrases (in1 a shuffled copy of in0 with words swapped for synonyms) and
  unrelated pairs (in1 another random sentence), labels 1 and 0.
"""

from __future__ import annotations

import numpy as np


def ratings(users: int, items: int, rank: int, per_user: int, clusters: int = 4, noise: float = 0.25, seed: int = 0):
    """(records, item cluster ids): `per_user` distinct items rated by each user."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (clusters, rank))
    cluster = rng.integers(0, clusters, items)
    v = centres[cluster] + rng.normal(0, 0.3, (items, rank))
    u = rng.normal(0, 1, (users, rank)) / np.sqrt(rank)
    bu, bi = rng.normal(0, 0.3, users), rng.normal(0, 0.3, items)
    records = []
    for user in range(users):
        for item in rng.choice(items, per_user, replace=False):
            value = 3.0 + bu[user] + bi[item] + u[user] @ v[item] + rng.normal(0, noise)
            records.append({"label": float(value), "in0": [int(user)], "in1": [int(item)]})
    order = rng.permutation(len(records))
    return [records[i] for i in order], cluster


def mf_rmse(train: list[dict], test: list[dict], users: int, items: int, rank: int, l2: float = 0.02,
            steps: int = 400, seed: int = 0) -> float:
    """Held-out RMSE of biased MF (μ + b_u + b_i + p_u·q_i, L2 `l2` on every parameter) fitted by
    full-batch Adam on `train`."""
    import torch

    def arrays(recs):
        return (torch.tensor([r["in0"][0] for r in recs]), torch.tensor([r["in1"][0] for r in recs]),
                torch.tensor([r["label"] for r in recs], dtype=torch.float32))

    tu, ti, ty = arrays(train)
    gen = torch.Generator().manual_seed(seed)
    p = (0.1 * torch.randn(users, rank, generator=gen)).requires_grad_()
    q = (0.1 * torch.randn(items, rank, generator=gen)).requires_grad_()
    bu, bi = torch.zeros(users, requires_grad=True), torch.zeros(items, requires_grad=True)
    mu = ty.mean()
    opt = torch.optim.Adam([p, q, bu, bi], lr=0.05)

    def predict(us, its):
        return mu + bu[us] + bi[its] + (p[us] * q[its]).sum(1)

    for _ in range(steps):
        opt.zero_grad()
        loss = ((predict(tu, ti) - ty) ** 2).mean() + l2 * (p.pow(2).sum() + q.pow(2).sum() + bu.pow(2).sum()
                                                            + bi.pow(2).sum()) / len(ty)
        loss.backward()
        opt.step()
    su, si, sy = arrays(test)
    with torch.no_grad():
        return float(((predict(su, si) - sy) ** 2).mean().sqrt())


def sentence_pairs(n: int, words: int = 40, synonyms: int = 20, length: tuple[int, int] = (5, 9), seed: int = 0):
    """`n` pairs, half paraphrases (label 1) and half unrelated (label 0). Word w < `synonyms` has
    the synonym `words + w` (the vocabulary is words + synonyms ids)."""
    rng = np.random.default_rng(seed)

    def sentence():
        return list(rng.choice(words, rng.integers(*length), replace=False))

    records = []
    for i in range(n):
        first = sentence()
        if i % 2:
            second = [w + words if w < synonyms and rng.random() < 0.5 else w for w in first]
            second = [int(w) for w in rng.permutation(second)]
        else:
            second = [int(w) for w in sentence()]
        records.append({"label": i % 2, "in0": [int(w) for w in first], "in1": second})
    return [records[i] for i in rng.permutation(n)]
