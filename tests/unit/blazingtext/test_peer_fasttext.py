"""Peer comparison with Facebook's fastText (the `fasttext` package, or `fasttext-wheel`, where it
installs; skipped otherwise: it is a peer to measure against, not a dependency). fastText reads
our model.bin and vectors.bin, we serve fastText's own models, and our classifier's accuracy is
within 1% of fastText's on the same split. fastText's Python `predict` is unsafe under NumPy 2
(see the spec), so its predictions come from `model.f.predict` and vectors from `getWordVector`."""
import numpy as np
import pytest

fasttext = pytest.importorskip("fasttext")
fasttext_pybind = pytest.importorskip("fasttext_pybind")

from smalgos_blazingtext import fasttext_format as ff  # noqa: E402
from smalgos_blazingtext.supervised import SupervisedCore, predict  # noqa: E402
from smalgos_blazingtext.word2vec import Word2VecCore  # noqa: E402

from blazingtext.data import as_text, order_set  # noqa: E402


def ft_predict(model, words, k):
    return model.f.predict(" ".join(words) + "\n", k, 0.0, "strict")  # [(prob, label), ...]


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("peer")
    train, test = order_set(4000, 10, noise=0.1), order_set(1000, 11, noise=0.1)  # 10 % labels flipped
    (tmp / "train.txt").write_bytes(as_text(train))
    (tmp / "test.txt").write_bytes(as_text(test))
    return tmp, train, test


PARAMS = dict(dim=10, epoch=5, minCount=1, wordNgrams=2, bucket=20000, lr=0.1)


def test_accuracy_within_one_percent_of_fasttexts_and_fasttext_reads_our_model(split):
    tmp, train, test = split
    ours = SupervisedCore(vector_dim=10, epochs=5, min_count=1, word_ngrams=2, buckets=20000,
                          learning_rate=0.1).fit(train)
    theirs = fasttext.train_supervised(str(tmp / "train.txt"), thread=1, verbose=0, **PARAMS)
    _, their_accuracy, _ = theirs.test(str(tmp / "test.txt"))
    assert abs(ours.accuracy(test) - their_accuracy) <= 0.01, (ours.accuracy(test), their_accuracy)
    ours.save(tmp / "ours")
    loaded = fasttext.load_model(str(tmp / "ours" / "model.bin"))
    for line in test[:200]:
        words = line[1:]
        (labels, probs), = ours.predict([words], k=2)
        peer = ft_predict(loaded, words, 2)
        assert [label for _, label in peer] == labels
        np.testing.assert_allclose([p for p, _ in peer], probs, atol=1e-4)


@pytest.mark.parametrize("loss", ["softmax", "hs", "ova", "ns"])
def test_we_serve_fasttexts_own_models(split, loss):
    tmp, train, test = split
    theirs = fasttext.train_supervised(str(tmp / "train.txt"), thread=1, verbose=0, loss=loss, **PARAMS)
    theirs.save_model(str(tmp / f"{loss}.bin"))
    model = ff.FastTextModel.load(tmp / f"{loss}.bin")
    ours = predict(model, [line[1:] for line in test[:200]], k=2)
    # fastText's ova and ns losses read sigmoids from a 512-entry table over [-8, 8], rounding
    # down (ours are exact): up to 0.25 x 16/512 = 0.008 apart; softmax and hs agree to fastText's
    # log(p + 1e-5) rounding.
    atol = 1e-2 if loss in ("ova", "ns") else 1e-4
    for line, (labels, probs) in zip(test[:200], ours):
        peer = ft_predict(theirs, line[1:], 2)
        assert [label for _, label in peer] == labels
        np.testing.assert_allclose([p for p, _ in peer], probs, atol=atol)


def test_fasttext_reads_our_word_vectors(tmp_path):
    (tmp_path / "c.txt").write_bytes(as_text([line[1:] for line in order_set(500, 3)]))
    for subwords in (False, True):
        core = Word2VecCore(mode="skipgram", vector_dim=8, epochs=1, min_count=1, subwords=subwords, buckets=1000,
                            workers=1).fit(tmp_path / "c.txt")
        core.save(tmp_path / str(subwords))
        loaded = fasttext.load_model(str(tmp_path / str(subwords) / "vectors.bin"))
        for word in ["w1", "good", "unseenword"]:
            vector = fasttext_pybind.Vector(8)
            loaded.f.getWordVector(vector, word)
            expected = core.vectors_[word] if (subwords or word in core.vectors_.key_to_index) else np.zeros(8)
            np.testing.assert_allclose(np.array(vector), expected, rtol=1e-5, atol=1e-7)
