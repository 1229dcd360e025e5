"""NTM: topic recovery and topic quality of our NVDM against the LDA image (spectral) and gensim's
LdaModel, on the same documents, with one evaluator for all.

- AWS's Griffiths "bars" (1,000 documents × 150 words, vocabulary 25, 5 topics), several data
  seeds: each true topic matched to a learned one (Hungarian), the topic–word L1 mean / worst, and
  how many seeds found every bar (worst L1 < 0.35; a topic on the wrong bar is about 1.6 away).
- gensim's Lee background corpus (300 news stories, 10 topics): each model's top-10 words per
  topic, topic uniqueness (TU), WETC (smalgos_ntm.coherence: word vectors from the documents) and
  UMass coherence (higher is better for all three). Prints NTM's topics for the README.

    PYTHONPATH=containers/ntm:containers/lda python bench/bench_ntm.py [--seeds 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "unit"))
from lda.data import griffiths_data, l1_errors, lee_corpus, match_topics, umass_coherence  # noqa: E402

from smalgos_lda.model import SpectralLDA  # noqa: E402
from smalgos_ntm.coherence import WordVectorSample, topic_uniqueness, word_embedding_coherence  # noqa: E402
from smalgos_ntm.model import NeuralTopicModel  # noqa: E402


def ntm(train, k, seed, **settings):
    model = NeuralTopicModel(k, optimizer="adam", random_state=seed, **settings).fit(train)
    return model.topics()


def spectral(train, k, seed):
    return SpectralLDA(k, mini_batch_size=1000).fit(train).beta_


def gensim(train, k, seed):
    from gensim.models import LdaModel

    c = sp.csr_matrix(train)
    corpus = [list(zip(c.indices[c.indptr[i]:c.indptr[i + 1]].tolist(),
                       c.data[c.indptr[i]:c.indptr[i + 1]].tolist())) for i in range(c.shape[0])]
    return LdaModel(corpus, num_topics=k, id2word={i: str(i) for i in range(c.shape[1])}, passes=10,
                    random_state=seed).get_topics()


def griffiths(seeds: int) -> None:
    models = {"NTM (Adam, 60 epochs, batch 64)": lambda x, s: ntm(x, 5, s, epochs=60, mini_batch_size=64,
                                                                 num_patience_epochs=60),
              "NTM + batch_norm": lambda x, s: ntm(x, 5, s, epochs=60, mini_batch_size=64, num_patience_epochs=60,
                                                   batch_norm=True),
              "LDA image (spectral)": lambda x, s: spectral(x, 5, s),
              "gensim LdaModel (passes 10)": lambda x, s: gensim(x, 5, s)}
    rows = {name: [] for name in models}
    times = {name: [] for name in models}
    for seed in range(seeds):  # interleaved: each seed fits every model
        _, beta, docs, _ = griffiths_data(1000, 150, 5, seed=seed)
        for name, fit in models.items():
            t0 = time.perf_counter()
            topics = fit(docs, seed)
            times[name].append(time.perf_counter() - t0)
            rows[name].append(l1_errors(beta, np.asarray(topics)[match_topics(beta, topics)]))
    print(f"| Griffiths bars, 1,000 docs, 5 topics, {seeds} data seeds | L1 mean (all seeds) | L1 worst (median) "
          "| seeds with every bar found | fit s (median) |")
    print("|---|---|---|---|---|")
    for name, errors in rows.items():
        worst = [e.max() for e in errors]
        print(f"| {name} | {np.mean([e.mean() for e in errors]):.3f} | {np.median(worst):.3f} | "
              f"{sum(w < 0.35 for w in worst)} / {seeds} | {np.median(times[name]):.3f} |", flush=True)


def lee(seed: int = 0) -> None:
    counts, vocabulary = lee_corpus()
    sample = WordVectorSample()
    sample.add(counts)
    vectors = sample.vectors()
    models = {"NTM (Adam, 200 epochs, batch 32)": lambda: ntm(counts, 10, seed, epochs=200, mini_batch_size=32,
                                                              num_patience_epochs=200),
              "LDA image (spectral)": lambda: spectral(counts, 10, seed),
              "gensim LdaModel (passes 10)": lambda: gensim(counts, 10, seed)}
    print("\n| Lee corpus, 300 stories, 10 topics | TU | WETC | UMass (top 10) |")
    print("|---|---|---|---|")
    shown = None
    for name, fit in models.items():
        topics = np.asarray(fit())
        tops = [list(np.argsort(-row, kind="stable")[:10]) for row in topics]
        print(f"| {name} | {topic_uniqueness(tops):.2f} | {word_embedding_coherence(tops, vectors):.3f} | "
              f"{np.mean(umass_coherence(counts, topics, top=10)):.2f} |", flush=True)
        shown = shown or (name, tops)
    print(f"\n{shown[0]}'s topics (top 10 words):")
    for i, top in enumerate(shown[1]):
        print(f"{i}: {' '.join(vocabulary[w] for w in top)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    import torch
    torch.set_num_threads(1)
    griffiths(args.seeds)
    lee()


if __name__ == "__main__":
    main()
