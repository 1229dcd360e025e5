"""Factorization Machines: training records/s and AUC against a reference FM in plain torch.

Data: click-style one-hot user × item × context records drawn from a known FM with strong
pairwise interactions (tests/unit/fm/reference.py `clicks`), 3 non-zeros per record; the last
`--test` records are held out. Both models: num_factors 4, the same learning rate for every term,
no weight decay, the same epochs and mini-batch size, on CPU.

- ours: `FactorizationMachines` (the maths core the image trains with): O(k·nnz) forward and
  closed-form gradients on the touched rows only, lazy Adam;
- peer: `ReferenceFM`, the textbook torch FM — sparse × dense products, autograd, torch.optim.Adam
  over every parameter each step.

Repeats are interleaved (ours, peer, ours, peer, ...); the table gives each one's best records/s
(records × epochs / seconds of fit) and the held-out AUC (and the Bayes AUC of the true model).

    python bench/bench_fm.py [--rows 60000] [--users 600] [--items 800] [--epochs 3]
                             [--batch 1000] [--lr 0.05] [--repeats 3] [--threads 1]

A large sparse space (lazy updates matter most): --users 100000 --items 200000 --rows 200000 --epochs 1.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))

from fm.reference import ReferenceFM, clicks  # noqa: E402
from smalgos_factorization_machines.model import FactorizationMachines  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=60000)
    ap.add_argument("--test", type=int, default=10000)
    ap.add_argument("--users", type=int, default=600)
    ap.add_argument("--items", type=int, default=800)
    ap.add_argument("--contexts", type=int, default=20)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x, y, p = clicks(a.rows + a.test, seed=0, users=a.users, items=a.items, contexts=a.contexts)
    x_tr, y_tr, x_te, y_te = x[:a.rows], y[:a.rows], x[a.rows:], y[a.rows:]

    def ours():
        return FactorizationMachines(4, predictor_type="binary_classifier", epochs=a.epochs, mini_batch_size=a.batch,
                                     bias_lr=a.lr, linear_lr=a.lr, factors_lr=a.lr, factors_init_sigma=0.01,
                                     bias_wd=0, linear_wd=0, factors_wd=0).fit(x_tr, y_tr)

    def peer():
        return ReferenceFM(4, lr=a.lr).fit(x_tr, y_tr, a.epochs, a.batch)

    best = {"ours": 0.0, "peer": 0.0}
    aucs = {}
    for _ in range(a.repeats):
        for name, fit in (("ours", ours), ("peer", peer)):
            t = time.perf_counter()
            model = fit()
            rate = a.rows * a.epochs / (time.perf_counter() - t)
            best[name] = max(best[name], rate)
            aucs[name] = roc_auc_score(y_te, model.predict_scores(x_te))
    print(f"feature_dim {x.shape[1]}, {a.rows} training records x {a.epochs} epochs, mini-batch {a.batch}, "
          f"{a.threads} thread(s); Bayes AUC {roc_auc_score(y_te, p[a.rows:]):.4f}")
    print("| model | records/s (best of %d) | held-out AUC |" % a.repeats)
    print("|---|---|---|")
    for name, label in (("ours", "smalgos FactorizationMachines"), ("peer", "plain-torch reference FM")):
        print(f"| {label} | {best[name]:,.0f} | {aucs[name]:.4f} |")
    print(f"ratio ours / reference: {best['ours'] / best['peer']:.2f}x")


if __name__ == "__main__":
    main()
