"""Test corpora for LDA. Documents from known topics: AWS's `generate_griffiths_data` (amazon-sagemaker-examples,
LDA-Science / LDA-Introduction), ported to current NumPy (its `np.int` / `np.float` are gone) and
vectorised, with the same model: a 5 × 5 image vocabulary (25 words), 5 "column" topics (and 5
"row" topics for 10), each topic's 5 words weighted by a draw from Dirichlet(100, ..., 100),
document mixtures θ ~ Dirichlet(α) with α = 1/num_topics each by default, Poisson lengths.
Also the topic matching and L1 errors AWS's notebook reports, and gensim's Lee background corpus
as word counts. Used by the tests and bench/bench_lda.py."""

from __future__ import annotations

from collections import Counter

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

VOCABULARY = 25
SIDE = 5


def griffiths_data(num_documents=5000, average_document_length=150, num_topics=5, alpha=None, seed=0):
    """(alpha (k,), beta (k, 25), documents (n, 25) float64 counts, thetas (n, k))."""
    if num_topics not in (5, 10):
        raise ValueError("num_topics must be 5 or 10")
    rng = np.random.default_rng(seed)
    alpha = np.full(num_topics, 1.0 / num_topics) if alpha is None else np.asarray(alpha, np.float64)
    beta = np.zeros((num_topics, SIDE, SIDE))
    for i in range(SIDE):
        beta[i, :, i] = rng.dirichlet([100.0] * SIDE)
    if num_topics == 10:
        for i in range(SIDE):
            beta[i + SIDE, i, :] = rng.dirichlet([100.0] * SIDE)
    beta = beta.reshape(num_topics, VOCABULARY)
    lengths = rng.poisson(average_document_length, size=num_documents)
    thetas = rng.dirichlet(alpha, size=num_documents)
    # Each word: a topic drawn from θ, then a word from that topic: counts ~ Multinomial(l, θβ).
    documents = np.stack([rng.multinomial(n, p) for n, p in zip(lengths, thetas @ beta)]).astype(np.float64)
    return alpha, beta, documents, thetas


def match_topics(known, estimated) -> np.ndarray:
    """The estimated topic matched to each known one (the assignment of least total L1 distance)."""
    cost = np.abs(np.asarray(known)[:, None, :] - np.asarray(estimated)[None, :, :]).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)]


def l1_errors(known, estimated) -> np.ndarray:
    """Σ_w |known_i − estimated_i| per row (topic or document), rows already matched."""
    return np.abs(np.asarray(known) - np.asarray(estimated)).sum(axis=1)


def lee_corpus(min_documents=5, max_share=0.5):
    """gensim's `test_data/lee_background.cor` (300 news stories, read as text from the package's
    data, never unpickled) as (counts CSR (300, V) float64, vocabulary): gensim's
    `simple_preprocess` tokens of 3+ letters, its English stop words removed, the words of at
    least `min_documents` documents and at most `max_share` of them kept."""
    from gensim.parsing.preprocessing import STOPWORDS
    from gensim.test.utils import datapath
    from gensim.utils import simple_preprocess

    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        docs = [[w for w in simple_preprocess(line) if len(w) > 2 and w not in STOPWORDS] for line in f]
    df = Counter(w for d in docs for w in set(d))
    vocabulary = sorted(w for w, c in df.items() if min_documents <= c <= max_share * len(docs))
    index = {w: i for i, w in enumerate(vocabulary)}
    pairs = [(r, index[w]) for r, d in enumerate(docs) for w in d if w in index]
    rows, cols = np.array(pairs).T
    counts = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(docs), len(vocabulary)))
    counts.sum_duplicates()
    return counts, vocabulary


def umass_coherence(counts, topics, top=10) -> np.ndarray:
    """Mimno et al.'s UMass coherence of each topic's `top` words over the documents of `counts`:
    Σ_{i<j} log((D(w_i, w_j) + 1) / D(w_j)), words in decreasing probability (higher is better)."""
    present = (sp.csr_matrix(counts) > 0).astype(np.float64)
    together = (present.T @ present).toarray()
    scores = []
    for topic in np.asarray(topics):
        words = np.argsort(-topic, kind="stable")[:top]
        scores.append(sum(np.log((together[words[i], words[j]] + 1) / together[words[j], words[j]])
                          for i in range(1, top) for j in range(i)))
    return np.array(scores)
