"""IP Insights: AUC and training speed against the two baselines of next-algorithms §2.4.

Data: AWS's login-event process (`smalgos_ipinsights.synthetic`, a generated ASN table in place
of the downloaded one): `--users` users, their events (Pareto × 50, capped at `--max-events`).
Held out: fresh events of the same users ("usual"), scored against two kinds of anomalies: the same
users at an address of a random ASN, and at another user's usual address. Figures, each the median
of `--repeats` interleaved runs:

- ours: the IP Insights core (AWS's defaults but `--vector-dim`, `--epochs`, learning rate 0.01,
  random_negative_sampling_rate 2), training pairs/s (pairs × epochs / fit seconds) and samples/s
  (pairs with their negatives);
- (a) a smoothed frequency model: log of a mixture of the entity's /24 and /16 frequencies and the
  global /16 frequency;
- (b) logistic regression on hashed (entity, /24), (entity, /16) and /16 features, trained on the
  pairs against the same kind of random and shuffled negatives (scikit-learn's SGDClassifier).

    python bench/bench_ipinsights.py [--users 2000] [--max-events 500] [--epochs 5] [--repeats 3]
                                     [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import Counter

import numpy as np
import torch
from scipy.sparse import csr_matrix
from sklearn.feature_extraction import FeatureHasher
from sklearn.linear_model import SGDClassifier
from threadpoolctl import threadpool_limits

from smalgos.maths.ranking import separation_auc
from smalgos_ipinsights.model import IPInsights, as_pairs
from smalgos_ipinsights.synthetic import dotted, login_events


def prefixes(address: int) -> tuple[int, int]:
    return address >> 8, address >> 16


def held_out(who, table, users, n: int, seed: int):
    rng = np.random.default_rng(seed)
    probe = rng.choice(who, n)
    usual = users.events(probe, table, rng)
    return {"usual": (probe, usual),
            "random ASN": (probe, table.address(rng.integers(0, len(table), n), rng)),
            "other user": (probe, usual[rng.permutation(n)])}


class Frequency:
    """(a) P(address | entity) smoothed over its /24 and /16, backed off to the global /16."""

    def fit(self, who, addresses):
        self.entity = Counter(who.tolist())
        self.e24 = Counter(zip(who.tolist(), (addresses >> 8).tolist()))
        self.e16 = Counter(zip(who.tolist(), (addresses >> 16).tolist()))
        self.g16 = Counter((addresses >> 16).tolist())
        self.n = len(who)
        return self

    def score(self, who, addresses):
        out = np.empty(len(who))
        for i, (e, a) in enumerate(zip(who.tolist(), addresses.tolist())):
            c = max(self.entity.get(e, 0), 1)
            p = (0.6 * self.e24.get((e, a >> 8), 0) / c + 0.3 * self.e16.get((e, a >> 16), 0) / c
                 + 0.1 * self.g16.get(a >> 16, 0) / self.n)
            out[i] = np.log(p + 1e-9)
        return out


class HashedLogistic:
    """(b) logistic regression on hashed (entity, /24), (entity, /16), /16 features."""

    def __init__(self, seed: int):
        self.hasher = FeatureHasher(n_features=1 << 20, input_type="string", alternate_sign=False)
        self.seed = seed

    def features(self, who, addresses) -> csr_matrix:
        return self.hasher.transform(
            [(f"e24:{e}:{a >> 8}", f"e16:{e}:{a >> 16}", f"g16:{a >> 16}")
             for e, a in zip(who.tolist(), addresses.tolist())])

    def fit(self, who, addresses):
        rng = np.random.default_rng(self.seed)
        n = len(who)
        negatives = [rng.integers(1 << 24, addresses.max() + 1, n), addresses[rng.permutation(n)]]
        x = self.features(np.concatenate([who] * 3), np.concatenate([addresses] + negatives))
        y = np.r_[np.ones(n), np.zeros(2 * n)]
        self.model = SGDClassifier(loss="log_loss", alpha=1e-6, max_iter=20, tol=None, random_state=self.seed).fit(x, y)
        return self

    def score(self, who, addresses):
        return self.model.decision_function(self.features(who, addresses))


def as_strings(who, addresses):
    return as_pairs(list(zip([f"user_{u}" for u in who.tolist()], dotted(addresses))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--asns", type=int, default=4000)
    ap.add_argument("--max-events", type=int, default=500)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--vector-dim", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    who, addresses, table, users = login_events(args.users, args.asns, args.max_events, seed=0)
    tests = held_out(who, table, users, 20_000, seed=1)
    train_pairs = as_strings(who, addresses)
    test_pairs = {k: as_strings(*v) for k, v in tests.items()}
    print(f"{len(who)} training pairs of {args.users} users, {args.asns} ASNs; {args.threads} thread(s)")

    runs: dict[str, list] = {"ours": [], "frequency": [], "hashed logistic": []}
    with threadpool_limits(args.threads):
        for r in range(args.repeats):
            t = time.perf_counter()
            ours = IPInsights(num_entity_vectors=2 * args.users, vector_dim=args.vector_dim, epochs=args.epochs,
                              learning_rate=0.01, random_negative_sampling_rate=2, random_state=r).fit(train_pairs)
            runs["ours"].append((time.perf_counter() - t, {k: ours.dot_product(p) for k, p in test_pairs.items()}))
            for name, model in (("frequency", Frequency()), ("hashed logistic", HashedLogistic(r))):
                t = time.perf_counter()
                model.fit(who, addresses)
                runs[name].append((time.perf_counter() - t, {k: model.score(*v) for k, v in tests.items()}))

    samples = 1 + 2 + 1  # a pair, 2 random and 1 shuffled negatives
    print("| model | fit s | training pairs/s | AUC vs random ASN | AUC vs other user |")
    print("|---|---|---|---|---|")
    for name, results in runs.items():
        seconds = statistics.median(s for s, _ in results)
        aucs = {k: statistics.median(separation_auc(sc["usual"], sc[k]) for _, sc in results)
                for k in ("random ASN", "other user")}
        speed = (f"{len(who) * args.epochs / seconds:,.0f} ({len(who) * args.epochs * samples / seconds:,.0f} samples/s)"
                 if name == "ours" else "—")
        print(f"| {name} | {seconds:.2f} | {speed} | {aucs['random ASN']:.4f} | {aucs['other user']:.4f} |")


if __name__ == "__main__":
    main()
