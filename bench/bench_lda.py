"""LDA: fit time and held-out per-word log-likelihood (pwll) of our spectral LDA against
scikit-learn's LatentDirichletAllocation (batch variational Bayes, max_iter=10) and gensim's
LdaModel (online variational Bayes, passes=10), interleaved repeats, one evaluator for all
(`smalgos_lda.mixture.per_word_log_likelihood` with each model's α and β).

Data: AWS's Griffiths "bars" generator (LDA-Science: 5,000 training + 400 test documents,
vocabulary 25, 10 topics) and gensim's Lee background corpus (250 training + 50 test stories,
10 topics). Prints a Markdown table; the ratio is the peer's fit time over ours.

    PYTHONPATH=containers/lda python bench/bench_lda.py [--repeats 3] [--documents 5000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))
from lda.data import griffiths_data, l1_errors, lee_corpus, match_topics  # noqa: E402

from smalgos_lda.mixture import per_word_log_likelihood  # noqa: E402
from smalgos_lda.model import SpectralLDA  # noqa: E402


def ours(train, k):
    lda = SpectralLDA(k, mini_batch_size=1000).fit(train)
    return lda.alpha_, lda.beta_


def sklearn(train, k):
    from sklearn.decomposition import LatentDirichletAllocation

    sk = LatentDirichletAllocation(k, random_state=0, max_iter=10).fit(train)
    return np.full(k, sk.doc_topic_prior_), sk.components_ / sk.components_.sum(1, keepdims=True)


def gensim(train, k):
    from gensim.models import LdaModel

    c = sp.csr_matrix(train)
    corpus = [list(zip(c.indices[c.indptr[i]:c.indptr[i + 1]].tolist(),
                       c.data[c.indptr[i]:c.indptr[i + 1]].tolist())) for i in range(c.shape[0])]
    model = LdaModel(corpus, num_topics=k, id2word={i: str(i) for i in range(c.shape[1])}, passes=10,
                     random_state=0)
    return np.asarray(model.alpha, np.float64), model.get_topics()


PEERS = {"smalgos spectral": ours, "scikit-learn LDA": sklearn, "gensim LdaModel": gensim}


def bench(name, train, test, k, repeats, truth=None):
    times = {p: [] for p in PEERS}
    scores, errors = {}, {}
    for _ in range(repeats):  # interleaved: each repeat runs every model once
        for peer, fit in PEERS.items():
            t0 = time.perf_counter()
            alpha, beta = fit(train, k)
            times[peer].append(time.perf_counter() - t0)
            scores[peer] = per_word_log_likelihood(test, alpha, beta)
            if truth is not None:
                e = l1_errors(truth, np.asarray(beta)[match_topics(truth, beta)])
                errors[peer] = f"{e.mean():.3f} / {e.max():.3f}"
    base = statistics.median(times["smalgos spectral"])
    for peer in PEERS:
        t = statistics.median(times[peer])
        ratio = scores[peer] / scores["smalgos spectral"]
        above = "—" if peer == "smalgos spectral" else f"{(1 - ratio) * 100:+.1f} %"
        print(f"| {name} | {peer} | {t:.2f} | {t / base:.1f}x | {scores[peer]:.4f} | {above} | "
              f"{errors.get(peer, '—')} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--documents", type=int, default=5000)
    args = parser.parse_args()
    print("| data | model | fit s (median) | time / ours | held-out pwll | pwll above ours | topic L1 mean / worst |")
    print("|---|---|---|---|---|---|---|")
    n = args.documents
    _, beta, docs, _ = griffiths_data(n + 400, 150, 10, seed=0)
    bench(f"Griffiths bars, {n} docs, 10 topics", docs[:n], docs[n:], 10, args.repeats, truth=beta)
    counts, _ = lee_corpus()
    bench("gensim Lee corpus, 250 docs, 10 topics", counts[:250], counts[250:], 10, args.repeats)


if __name__ == "__main__":
    main()
