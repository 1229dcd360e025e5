"""Word2Vec for BlazingText's `cbow` and `skipgram` modes: gensim's `Word2Vec` (negative sampling),
or with `subwords=True` gensim's `FastText` (character n-grams of `min_char` to `max_char`
characters hashed into `buckets`, so that unseen words get vectors), trained on a text file of one
sentence per line. Usable from a notebook:

    core = Word2VecCore(mode="skipgram", vector_dim=100).fit("corpus.txt")
    core.vectors_["king"]; core.save("model/")

The artifacts (AWS's names, `save`):
- `vectors.txt`: word2vec text format, a `<words> <dim>` line then `word v1 ... vd` per word, most
  frequent first; each value the shortest decimal that reads back to the same float32, so
  `KeyedVectors.load_word2vec_format("vectors.txt")` gives the trained vectors exactly.
- `vectors.bin`: fastText's binary model format (magic 793712314, version 12), written by gensim's
  `save_facebook_model`; fastText's own tools and `gensim.models.fasttext.load_facebook_vectors`
  read it, and serving loads it. Without subwords the model is written as a fastText model with no
  character n-grams (maxn 0, bucket 0): the same words, input and output vectors, and an unseen
  word has no vector (zero), as AWS documents.

The learning rate decays linearly from `learning_rate` to 0 (fastText's and word2vec's schedule).
Training runs on the CPU cores this process may use (gensim's worker threads), on any instance.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from gensim.models import FastText, Word2Vec
from gensim.models.callbacks import CallbackAny2Vec
from gensim.models.fasttext import save_facebook_model

from smalgos.errors import ClientError
from smalgos.formats._numfmt import row_strings

from .declaration import CBOW, SKIPGRAM

VECTORS_TXT, VECTORS_BIN = "vectors.txt", "vectors.bin"
SEED = 1
WRITE_ROWS = 4096  # rows of vectors.txt formatted at a time


def cpu_count() -> int:
    """The cores this process may run on (a container's CPU set, not the host's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


class Word2VecCore:
    """cbow / skipgram word vectors (with `subwords`, fastText's subword model) on gensim.

    Parameters are BlazingText's hyperparameters of the same names; `workers` is gensim's thread
    count (None: every core this process may use). Fitted state: `model_` (gensim's model),
    `vectors_` (its KeyedVectors), `train_seconds_`, `words_` (raw words in the corpus),
    `words_per_second_` (raw words trained per second over all epochs).
    """

    def __init__(self, mode: str = SKIPGRAM, vector_dim: int = 100, window_size: int = 5,
                 negative_samples: int = 5, min_count: int = 5, sampling_threshold: float = 0.0001,
                 learning_rate: float = 0.05, epochs: int = 5, subwords: bool = False, min_char: int = 3,
                 max_char: int = 6, buckets: int = 2000000, workers: int | None = None, seed: int = SEED):
        self.mode, self.vector_dim, self.window_size = mode, vector_dim, window_size
        self.negative_samples, self.min_count, self.sampling_threshold = negative_samples, min_count, sampling_threshold
        self.learning_rate, self.epochs, self.subwords = learning_rate, epochs, subwords
        self.min_char, self.max_char, self.buckets = min_char, max_char, buckets
        self.workers, self.seed = workers, seed

    @classmethod
    def from_hyperparameters(cls, hp: dict, workers: int | None = None) -> "Word2VecCore":
        names = ("mode", "vector_dim", "window_size", "negative_samples", "min_count", "sampling_threshold",
                 "learning_rate", "epochs", "subwords", "min_char", "max_char", "buckets")
        return cls(**{n: hp[n] for n in names}, workers=workers)

    def gensim_parameters(self) -> dict:
        """The keyword arguments of gensim's `Word2Vec` (or `FastText`) these parameters stand for."""
        if self.mode not in (CBOW, SKIPGRAM):
            raise ClientError(f"Hyperparameter mode: Word2VecCore trains {CBOW} or {SKIPGRAM}, not {self.mode!r}")
        kwargs = dict(vector_size=self.vector_dim, window=self.window_size, min_count=self.min_count,
                      sample=self.sampling_threshold, alpha=self.learning_rate, min_alpha=0.0,
                      negative=self.negative_samples, hs=0, sg=1 if self.mode == SKIPGRAM else 0, cbow_mean=1,
                      epochs=self.epochs, workers=self.workers or cpu_count(), seed=self.seed)
        if self.subwords:
            kwargs.update(min_n=self.min_char, max_n=self.max_char, bucket=self.buckets)
        return kwargs

    def fit(self, corpus_file: str | Path, callbacks: Sequence = ()) -> "Word2VecCore":
        """Train on `corpus_file` (UTF-8, one sentence per line, tokens separated by white space)."""
        model = (FastText if self.subwords else Word2Vec)(**self.gensim_parameters())
        model.build_vocab(corpus_file=str(corpus_file))
        if len(model.wv) == 0:
            raise ClientError(f"Channel 'train': no word occurs at least min_count={self.min_count} times in "
                              f"its {model.corpus_total_words} words: lower min_count or give more text")
        started = time.perf_counter()
        model.train(corpus_file=str(corpus_file), total_words=model.corpus_total_words, epochs=model.epochs,
                    callbacks=list(callbacks))
        self.train_seconds_ = time.perf_counter() - started
        self.model_, self.vectors_ = model, model.wv
        self.words_ = int(model.corpus_total_words)
        self.words_per_second_ = self.words_ * model.epochs / max(self.train_seconds_, 1e-9)
        return self

    # -- artifacts ------------------------------------------------------------------------------

    def save(self, model_dir: str | Path) -> None:
        """vectors.txt and vectors.bin in `model_dir`."""
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        write_word2vec_text(model_dir / VECTORS_TXT, self.vectors_.index_to_key, self.vectors_.vectors)
        save_facebook_model(self.model_ if self.subwords else self._as_fasttext(), str(model_dir / VECTORS_BIN))

    def _as_fasttext(self):
        """The trained Word2Vec model as a gensim FastText model without character n-grams
        (max_n < min_n: bucket 0), the form `save_facebook_model` writes."""
        kwargs = self.gensim_parameters()
        kwargs.update(min_n=1, max_n=0, min_count=1)  # every trained word is kept
        shell = FastText(**kwargs)
        wv = self.vectors_
        shell.build_vocab_from_freq({w: int(wv.get_vecattr(w, "count")) for w in wv.index_to_key})
        # the Word2Vec model's word order (ties in frequency may have come out otherwise)
        order = np.array([shell.wv.key_to_index[w] for w in wv.index_to_key], dtype=np.int64)
        for name, values in list(shell.wv.expandos.items()):
            shell.wv.expandos[name] = values[order]
        shell.wv.index_to_key = list(wv.index_to_key)
        shell.wv.key_to_index = dict(wv.key_to_index)
        shell.wv.vectors_vocab[:] = wv.vectors
        shell.wv.adjust_vectors()
        shell.syn1neg[:] = self.model_.syn1neg
        shell.min_count = self.min_count  # the fastText header's minCount
        shell.corpus_total_words = self.model_.corpus_total_words
        return shell


def write_word2vec_text(path: Path, words: Sequence[str], vectors: np.ndarray) -> None:
    """The word2vec text format: `<n> <dim>`, then one `word v1 ... vd` line per word."""
    vectors = np.asarray(vectors, dtype=np.float32)
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.write(f"{len(words)} {vectors.shape[1]}\n")
        for start in range(0, len(words), WRITE_ROWS):
            rows = row_strings(vectors[start:start + WRITE_ROWS], " ")
            out.write("".join(f"{w} {r}\n" for w, r in zip(words[start:start + WRITE_ROWS], rows)))


def read_word2vec_text(path: Path) -> tuple[list[str], np.ndarray]:
    """(words, vectors) of a word2vec text file (`<n> <dim>`, then `word v1 ... vd` lines), parsed
    in one pass by numpy (gensim's `load_word2vec_format` reads the same, line by line)."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().split()
        if len(header) != 2:
            raise ValueError(f"{path}: the first line is not '<words> <dim>'")
        n, dim = int(header[0]), int(header[1])
        words, values = [], []
        for line in f:
            word, _, rest = line.rstrip("\n").partition(" ")
            words.append(word)
            values.append(rest)
    vectors = np.array(" ".join(values).split(), dtype=np.float32)
    if len(words) != n or vectors.size != n * dim:
        raise ValueError(f"{path}: expected {n} words of {dim} values, found {len(words)} lines of "
                         f"{vectors.size} values")
    return words, vectors.reshape(n, dim)


class EpochCallback(CallbackAny2Vec):
    """Calls `on_epoch(epoch, model)` after each epoch of gensim's training (0-based epochs)."""

    def __init__(self, on_epoch: Callable[[int, object], None]):
        self.on_epoch, self.epoch = on_epoch, 0

    def on_epoch_end(self, model) -> None:
        self.on_epoch(self.epoch, model)
        self.epoch += 1
