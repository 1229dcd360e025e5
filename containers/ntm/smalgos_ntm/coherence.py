"""How good a topic model's topics read, from their top words: topic uniqueness and word-embedding
topic coherence, the two figures AWS's NTM prints beside the topics (`[wetc 0.43, tu 0.72]`).

- TU (Nan et al. 2019): the mean over topics and their top words of 1 / (the number of topics
  listing that word): 1 when no two topics share a top word, 1/k when all k list the same words.
- WETC (Ding, Nallapati & Xiang 2018, the pairwise form): per topic, the mean cosine similarity of
  the word vectors of its top words over every pair of them; the mean over topics. AWS's image
  takes the vectors from GloVe, which cannot ship here (no download at run time): ours are the
  words' columns of log(1 + counts) over the training documents, so that two words are alike as
  far as they occur in the same documents. Non-negative vectors: WETC lies in [0, 1], higher is
  more coherent, as AWS's; the figures are not those of GloVe vectors (a documented deviation).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

WETC_DOCUMENTS = 20_000  # the training documents the word vectors are read from, at most


def topic_uniqueness(tops: list[list[int]]) -> float:
    listed: dict[int, int] = {}
    for top in tops:
        for w in top:
            listed[w] = listed.get(w, 0) + 1
    return float(np.mean([np.mean([1.0 / listed[w] for w in top]) for top in tops]))


class WordVectorSample:
    """Word vectors read from the first `limit` training documents as they stream past (the first
    epoch's; in Pipe mode there is no extra pass to make): `add` each mini-batch of counts, then
    `vectors()` is (documents, V) log(1 + counts) by column, word w's vector being column w."""

    def __init__(self, limit: int = WETC_DOCUMENTS):
        self.limit, self.seen, self._parts = int(limit), 0, []

    def add(self, counts) -> None:
        if self.seen < self.limit:
            part = sp.csr_matrix(counts, dtype=np.float64)[:self.limit - self.seen]
            self._parts.append(part)
            self.seen += part.shape[0]

    def vectors(self) -> sp.csc_matrix:
        if not self._parts:
            raise ValueError("no documents to read word vectors from")
        counts = sp.vstack(self._parts).tocsc()
        counts.data = np.log1p(counts.data)
        return counts


def word_embedding_coherence(tops: list[list[int]], vectors: sp.csc_matrix) -> float:
    """WETC of the topics' top words (word ids) with word w's vector column w of `vectors`; a word
    that never occurs has no direction and counts as unlike every other."""
    scores = []
    for top in tops:
        n = len(top)
        if n < 2:
            continue
        columns = vectors[:, list(top)]
        gram = (columns.T @ columns).toarray()
        norms = np.sqrt(np.diag(gram))
        with np.errstate(divide="ignore", invalid="ignore"):
            cosine = np.where(np.outer(norms, norms) > 0, gram / np.outer(norms, norms), 0.0)
        scores.append((cosine.sum() - np.trace(cosine)) / (n * (n - 1)))
    return float(np.mean(scores)) if scores else 0.0
