"""The topic figures NTM prints beside its topics: topic uniqueness and word-embedding topic
coherence (WETC), the latter's word vectors read from the training documents."""
import numpy as np
import pytest
import scipy.sparse as sp

from lda.data import griffiths_data
from smalgos_ntm.coherence import WordVectorSample, topic_uniqueness, word_embedding_coherence


def test_topic_uniqueness_is_one_for_disjoint_topics_and_one_over_k_for_identical_ones():
    assert topic_uniqueness([[0, 1], [2, 3], [4, 5]]) == 1.0
    assert topic_uniqueness([[0, 1]] * 4) == 0.25
    assert topic_uniqueness([[0, 1], [1, 2]]) == pytest.approx(0.75)


def test_wetc_is_the_mean_pairwise_cosine_of_the_words_document_vectors():
    counts = np.array([[1, 1, 0, 0], [2, 2, 0, 0], [0, 0, 3, 0], [0, 1, 1, 0]], np.float64)
    sample = WordVectorSample(limit=3)
    sample.add(counts[:2])
    sample.add(sp.csr_matrix(counts[2:]))  # only its first row is kept
    v = sample.vectors()
    assert v.shape == (3, 4) and sample.seen == 3
    assert word_embedding_coherence([[0, 1]], v) == pytest.approx(1.0)  # always together
    assert word_embedding_coherence([[0, 2]], v) == 0.0  # never together
    assert word_embedding_coherence([[0, 3]], v) == 0.0  # word 3 never occurs: unlike every word
    together = np.log1p(counts[:3])
    expected = np.mean([1.0, 0.0, 0.0])  # pairs (0,1), (0,2), (1,2) of one topic
    assert word_embedding_coherence([[0, 1, 2]], v) == pytest.approx(expected)
    assert np.allclose(v.toarray(), together)


def test_the_true_topics_of_generated_documents_are_more_coherent_than_shuffled_word_sets():
    _, beta, docs, _ = griffiths_data(600, 100, 5, seed=4)
    sample = WordVectorSample()
    sample.add(docs)
    true_tops = [list(np.argsort(-row)[:5]) for row in beta]
    mixed = [list(np.random.default_rng(i).permutation(25)[:5]) for i in range(5)]
    ours, random = (word_embedding_coherence(t, sample.vectors()) for t in (true_tops, mixed))
    assert 0 <= random < ours <= 1 and ours > 0.5, (ours, random)
