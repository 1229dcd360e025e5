"""BlazingText's `batch_skipgram` mode: skip-gram with negative sampling, mini-batched as Ji et al.
("Parallelizing Word2Vec in Shared and Distributed Memory", 2016) and the BlazingText paper
(Gupta & Khare, 2017) describe it, in torch (CPU, or a GPU through `pick_device`), on one host or
on several as one job.

The update (negative-sample sharing). Skip-gram's pairs are read as word2vec's code reads them:
each context word's input vector predicts the centre word's output vector, each centre's window
drawn as word2vec draws it (1 to `window_size` words on each side, within its sentence), after
the subsampling of frequent words. The pairs, in corpus order, are cut into groups of
`batch_size` (AWS's default 11 = 2 * window_size + 1 holds about one centre's window, Ji et al.'s
batch); the group's input words share one draw of `negative_samples` noise words, so that its
scores against them are one (batch_size x d)(d x negative_samples) matrix product, and so are
the gradients of both matrices. Each input's own centre is its positive (a noise word equal to
it is skipped, as word2vec skips it). Many groups are stepped at once (`centres_per_step`
centres' pairs, 64 by default: batched matrix products, each step's updates summed into the rows
as Hogwild threads add theirs, except that a row's summed update counts as `ROW_UPDATES` pair updates at
most: a frequent word's row, hit by hundreds of a step's pairs at once, would otherwise diverge
where word2vec's sequential updates saturate; the default settings on gensim's Wikipedia sample
did). The index tensors of a step are built in numpy, with no Python loop over words or pairs.
Larger steps would run faster and learn less (`CENTRES_PER_STEP`); a step's tensors are so small
that on the CPU the training runs on one thread (torch's intra-op threads cost more than they
give, and far more on a busy machine).

Everything else is word2vec's, through gensim's vocabulary scan (`Word2Vec.build_vocab`, as the
cbow and skipgram modes count words): the vocabulary (`min_count`, most frequent first), the
subsampling of frequent words (`sampling_threshold`: gensim's keep probabilities, drawn anew each
epoch), the noise distribution (unigram counts ** 0.75), the initial input vectors (gensim's,
drawn from the seed, so every host starts from the same ones; output vectors start at 0), and the
learning rate decaying linearly from `learning_rate` to 0 over `epochs` passes. The artifacts are
the other Word2Vec modes' (`Word2VecCore.save`: vectors.txt, vectors.bin).

Several hosts (`smalgos.distributed.Cluster`): periodic synchronisation of the parameters. Every
host reads the whole corpus (the FullyReplicated channel) and scans its vocabulary itself, so the
vocabulary, the noise distribution and the initial vectors are the same everywhere without an
exchange (a check of the vocabulary's size and hash across hosts proves it); the corpus is cut
into sentences (lines, long ones in pieces of `SENTENCE_WORDS` words) and host r trains on
sentences r, r + size, r + 2 size, ... Every `sync_every` steps and at each epoch's end each
host's change to the two matrices since the last synchronisation is all-reduced (summed) and
added to the matrices as they were then: every host holds the same matrices again, and every
host's updates count in full, as Hogwild threads' updates do. (Averaging the models, an
all-reduce mean, was tried first: it divides each host's progress by the number of hosts, and two
hosts on Lee's corpus learnt two thirds of the structure one host learns: the neighbour-pair gap
of the tests, 0.27 against 0.40, on an earlier grouping of the pairs. With the sums, and 64 steps
between synchronisations, two hosts learn what one does: 0.44 against 0.44.) Every host makes
the same number of steps per epoch (a host whose share has run out idles through the others'
last steps). Only the master writes the artifacts.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from smalgos.distributed import SOLO, Cluster, host_seed
from smalgos.errors import ClientError
from smalgos.maths.device import pick_device

from .declaration import SKIPGRAM
from .word2vec import SEED, Word2VecCore, cpu_count

SENTENCE_WORDS = 10000  # gensim's MAX_WORDS_IN_BATCH: a longer line is cut into sentences of this many words
# Centres whose pairs make one step. Every pair of a step is computed from the vectors as they
# were before it, and the staler they are the less is learnt: WS-353 rho on gensim's Wikipedia
# sample (453k words, the default settings) 0.395 at 64 centres a step, 0.372 at 128, 0.349 at 256,
# 0.295 at 1125; gensim's skip-gram 0.401.
CENTRES_PER_STEP = 64
# A step's summed update of one row counts as ROW_UPDATES pair updates at most (a frequent word's
# row, hit by hundreds of the step's pairs, would otherwise take hundreds of updates computed from
# the same old vectors at once, where word2vec's sequential updates saturate: the vectors diverge).
ROW_UPDATES = 16.0
SYNC_EVERY = 64         # steps between two synchronisations of the matrices across hosts


class BatchSkipgramCore:
    """batch_skipgram word vectors (see the module docstring).

    Parameters are BlazingText's hyperparameters of the same names; `device` as `pick_device`
    takes it; `cluster` the job's hosts (`SOLO`: this one); `centres_per_step` the centres whose
    pairs make one step (`CENTRES_PER_STEP`), `sync_every` the steps between two synchronisations
    of the hosts (`SYNC_EVERY`). Fitted state: `vectors_` (gensim
    KeyedVectors), `output_vectors_` (numpy, the output matrix), `train_seconds_`, `words_` (raw
    words in the whole corpus), `words_per_second_` (raw words of the whole corpus trained per
    second over all epochs and hosts)."""

    def __init__(self, vector_dim: int = 100, window_size: int = 5, negative_samples: int = 5, min_count: int = 5,
                 sampling_threshold: float = 0.0001, learning_rate: float = 0.05, epochs: int = 5,
                 batch_size: int = 11, device=None, cluster: Cluster = SOLO, seed: int = SEED,
                 centres_per_step: int = CENTRES_PER_STEP, sync_every: int = SYNC_EVERY):
        self.vector_dim, self.window_size, self.negative_samples = vector_dim, window_size, negative_samples
        self.min_count, self.sampling_threshold, self.learning_rate = min_count, sampling_threshold, learning_rate
        self.epochs, self.batch_size, self.device, self.cluster, self.seed = epochs, batch_size, device, cluster, seed
        self.centres_per_step, self.sync_every = centres_per_step, sync_every

    @classmethod
    def from_hyperparameters(cls, hp: dict, **kwargs) -> "BatchSkipgramCore":
        names = ("vector_dim", "window_size", "negative_samples", "min_count", "sampling_threshold",
                 "learning_rate", "epochs", "batch_size")
        return cls(**{n: hp[n] for n in names}, **kwargs)

    def _shell(self) -> Word2VecCore:
        """The skip-gram Word2VecCore whose gensim model holds the vocabulary and, once trained,
        the vectors (what `Word2VecCore.save` writes)."""
        return Word2VecCore(mode=SKIPGRAM, vector_dim=self.vector_dim, window_size=self.window_size,
                            negative_samples=self.negative_samples, min_count=self.min_count,
                            sampling_threshold=self.sampling_threshold, learning_rate=self.learning_rate,
                            epochs=self.epochs, workers=cpu_count(), seed=self.seed)

    # -- training -------------------------------------------------------------------------------

    def fit(self, corpus_file: str | Path, on_epoch: Callable[[int, object], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> "BatchSkipgramCore":
        """Train on `corpus_file` (UTF-8, one sentence per line, tokens separated by white space);
        `on_epoch(epoch, gensim_model)` after each epoch (0-based); `should_stop()` true on any host
        ends the training after the current epoch (`stopped_` is then True; `epochs_run_` the epochs trained)."""
        from gensim.models import Word2Vec

        cluster = self.cluster
        shell = self._shell()
        model = Word2Vec(**shell.gensim_parameters())
        model.build_vocab(corpus_file=str(corpus_file))
        wv = model.wv
        if len(wv) == 0:
            raise ClientError(f"Channel 'train': no word occurs at least min_count={self.min_count} times in "
                              f"its {model.corpus_total_words} words: lower min_count or give more text")
        self._check_same_vocabulary(wv.index_to_key)
        ids, starts = self._read_share(corpus_file, wv.key_to_index)
        if cluster.sum(np.array([ids.size], np.int64))[0][0] == 0:
            raise ClientError("Channel 'train': no sentence has a word of the vocabulary")
        keep = wv.expandos["sample_int"].astype(np.float64) / 2.0 ** 32  # gensim's keep probability per word
        counts = wv.expandos["count"].astype(np.float64)
        noise = counts ** 0.75
        noise_cdf = np.cumsum(noise / noise.sum())

        device = pick_device(self.device)
        w_in = torch.from_numpy(np.array(wv.vectors, dtype=np.float32)).to(device)
        w_out = torch.zeros_like(w_in)
        step_fn = _Step(device)
        synchronise = _Synchronised(cluster, w_in, w_out)
        sentence_of = np.repeat(np.arange(starts.size - 1), np.diff(starts))
        rng = np.random.default_rng(host_seed(self.seed, cluster.rank))
        self.centres_per_step_ = per_step = int(self.centres_per_step)
        self.stopped_ = False
        threads = torch.get_num_threads()
        if device.type == "cpu":  # a step's tensors are too small for intra-op threads to pay
            torch.set_num_threads(1)
        started = time.perf_counter()
        try:
            for epoch in range(self.epochs):
                words, sentences = self._subsample(ids, sentence_of, keep, rng)
                mine = -(-words.size // per_step)
                steps = int(cluster.max(float(mine)))  # every host makes as many steps (and exchanges)
                batches = self._steps(words, sentences, noise_cdf, rng)
                for step in range(steps):
                    progress = (epoch + step / max(steps, 1)) / self.epochs
                    lr = self.learning_rate * max(1.0 - progress, 0.0001)  # word2vec's linear decay
                    batch = next(batches) if step < mine else None
                    if batch is not None:
                        step_fn(w_in, w_out, *batch, lr)
                    if (step + 1) % self.sync_every == 0 and step + 1 < steps:
                        synchronise()
                synchronise()
                if not bool(torch.isfinite(w_in).all()):
                    raise ClientError(f"batch_skipgram diverged in epoch {epoch + 1} (the vectors are not finite): "
                                      f"lower learning_rate (now {self.learning_rate})")
                if on_epoch is not None:
                    on_epoch(epoch, model)
                if epoch + 1 < self.epochs and cluster.any(should_stop()):
                    self.stopped_ = True
                    break
        finally:
            torch.set_num_threads(threads)
        self.train_seconds_ = time.perf_counter() - started
        wv.vectors[:] = w_in.cpu().numpy()
        model.syn1neg[:] = w_out.cpu().numpy()
        shell.model_, shell.vectors_ = model, wv
        self._shell_core, self.model_, self.vectors_, self.output_vectors_ = shell, model, wv, model.syn1neg
        self.words_ = int(model.corpus_total_words)
        self.epochs_run_ = epoch + 1
        self.words_per_second_ = self.words_ * self.epochs_run_ / max(self.train_seconds_, 1e-9)
        return self

    def _check_same_vocabulary(self, words) -> None:
        if not self.cluster.several:
            return
        digest = hashlib.sha256("\n".join(words).encode()).digest()[:7]
        mine = np.array([len(words), int.from_bytes(digest, "little")], np.int64)
        if any(not np.array_equal(other[0], mine) for other in self.cluster.gather(mine[None, :])):
            raise ClientError("Channel 'train': the hosts counted different vocabularies; batch_skipgram on several "
                              "hosts needs every host to hold the whole corpus (S3DataDistributionType="
                              "FullyReplicated): the algorithm splits the sentences between the hosts itself")

    def _read_share(self, corpus_file, key_to_index: dict) -> tuple[np.ndarray, np.ndarray]:
        """This host's sentences as word ids (out-of-vocabulary words dropped, as word2vec drops
        them): (ids, start offsets of the sentences, with the end as last offset)."""
        rank, size = self.cluster.rank, self.cluster.size
        parts, lengths, sentence = [], [], 0
        with open(corpus_file, encoding="utf-8") as f:
            for line in f:
                tokens = line.split()
                for start in range(0, len(tokens), SENTENCE_WORDS):
                    mine = sentence % size == rank
                    sentence += 1
                    if not mine:
                        continue
                    found = [key_to_index.get(t, -1) for t in tokens[start:start + SENTENCE_WORDS]]
                    piece = np.array(found, dtype=np.int64)
                    piece = piece[piece >= 0]
                    if piece.size:
                        parts.append(piece)
                        lengths.append(piece.size)
        ids = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return ids, np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])

    def _subsample(self, ids: np.ndarray, sentence_of: np.ndarray, keep: np.ndarray, rng: np.random.Generator):
        """This epoch's words: frequent ones dropped at random (drawn anew each epoch)."""
        kept = rng.random(ids.size) < keep[ids]
        return ids[kept], sentence_of[kept]

    def _steps(self, words: np.ndarray, sentence_of: np.ndarray, noise_cdf: np.ndarray, rng: np.random.Generator):
        """One epoch of this host's (subsampled) words, `centres_per_step_` centres a step, as
        (inputs, centres, negatives, valid) arrays: inputs and centres (G, batch_size) the pairs'
        input and output word ids, negatives (G, K) each group's noise words, valid (G,
        batch_size) false on the last group's padding."""
        B, W, K = self.batch_size, self.window_size, self.negative_samples
        n = words.size
        offsets = np.concatenate([np.arange(-W, 0), np.arange(1, W + 1)])  # (2W,)
        for first in range(0, n, self.centres_per_step_):
            centre_pos = np.arange(first, min(first + self.centres_per_step_, n))
            reach = rng.integers(1, W + 1, centre_pos.size)  # word2vec's reduced window, 1..W a side
            pos = centre_pos[:, None] + offsets[None, :]
            valid = (np.abs(offsets)[None, :] <= reach[:, None]) & (pos >= 0) & (pos < n)
            pos = np.clip(pos, 0, n - 1)
            valid &= sentence_of[pos] == sentence_of[centre_pos][:, None]
            inputs = words[pos[valid]]                                   # the pairs, in corpus order
            centres = np.broadcast_to(words[centre_pos][:, None], pos.shape)[valid]
            groups = -(-inputs.size // B)
            pad = groups * B - inputs.size
            if groups == 0:  # no word of these centres has a neighbour in its sentence
                yield None
                continue
            live = np.ones(groups * B, bool)
            if pad:
                inputs = np.concatenate([inputs, np.zeros(pad, np.int64)])
                centres = np.concatenate([centres, np.zeros(pad, np.int64)])
                live[-pad:] = False
            negatives = np.minimum(np.searchsorted(noise_cdf, rng.random((groups, K)), side="right"),
                                   noise_cdf.size - 1)
            yield inputs.reshape(groups, B), centres.reshape(groups, B), negatives, live.reshape(groups, B)

    # -- artifacts ------------------------------------------------------------------------------

    def save(self, model_dir: str | Path) -> None:
        """vectors.txt and vectors.bin in `model_dir`, as the other Word2Vec modes write them."""
        self._shell_core.save(model_dir)


class _Step:
    """One step of many groups at once: the shared-negatives skip-gram update as batched matrix
    products (see the module docstring)."""

    def __init__(self, device: torch.device, most: float = None):
        self.device, self.most = device, most if most is not None else ROW_UPDATES

    def __call__(self, w_in: torch.Tensor, w_out: torch.Tensor, inputs, centres, negatives, live, lr: float) -> None:
        inputs, centres, negatives, live = (torch.from_numpy(a).to(self.device)
                                            for a in (inputs, centres, negatives, live))
        x_in, x_pos, x_neg = _rows(w_in, inputs), _rows(w_out, centres), _rows(w_out, negatives)  # (G, B|K, d)
        g_pos = (1.0 - torch.sigmoid((x_in * x_pos).sum(-1))) * live * lr          # (G, B)
        g_neg = -torch.sigmoid(torch.bmm(x_in, x_neg.transpose(1, 2)))             # (G, B, K)
        g_neg *= (negatives[:, None, :] != centres[:, :, None]) * live[:, :, None] * lr  # word2vec skips target
        d_in = g_pos[..., None] * x_pos + torch.bmm(g_neg, x_neg)                   # (G, B, d)
        d_pos = g_pos[..., None] * x_in                                             # (G, B, d)
        d_neg = torch.bmm(g_neg.transpose(1, 2), x_in)                              # (G, K, d)
        if self.most:  # a row's summed update counts as `most` pair updates at most
            vocabulary, live_f = w_in.shape[0], live.to(w_in.dtype)
            n_in = torch.bincount(inputs.reshape(-1), weights=live_f.reshape(-1), minlength=vocabulary)
            n_out = (torch.bincount(centres.reshape(-1), weights=live_f.reshape(-1), minlength=vocabulary)
                     + torch.bincount(negatives.reshape(-1), minlength=vocabulary,
                                      weights=live_f.sum(1, keepdim=True).expand_as(negatives).reshape(-1)))
            scale_in, scale_out = (self.most / n.clamp(min=self.most) for n in (n_in, n_out))
            d_in *= scale_in[inputs][..., None]
            d_pos *= scale_out[centres][..., None]
            d_neg *= scale_out[negatives][..., None]
        dim = w_in.shape[1]
        w_in.index_add_(0, inputs.reshape(-1), d_in.reshape(-1, dim))
        w_out.index_add_(0, centres.reshape(-1), d_pos.reshape(-1, dim))
        w_out.index_add_(0, negatives.reshape(-1), d_neg.reshape(-1, dim))


def _rows(matrix: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """matrix[ids] (index_select: faster than advanced indexing on the CPU)."""
    return matrix.index_select(0, ids.reshape(-1)).view(*ids.shape, matrix.shape[1])


class _Synchronised:
    """The two matrices kept the same on every host: `__call__` all-reduces each host's change
    since the last synchronisation, summed, onto the matrices as they were then (every host's
    updates applied, as Hogwild threads' are; a plain average of the models would divide each
    host's progress by the number of hosts)."""

    def __init__(self, cluster: Cluster, *matrices: torch.Tensor):
        self.cluster, self.matrices = cluster, matrices
        self.base = [m.clone() for m in matrices] if cluster.several else []

    def __call__(self) -> None:
        if not self.cluster.several:
            return
        deltas = [m - b for m, b in zip(self.matrices, self.base)]
        self.cluster.sum_tensors_(deltas)
        for m, b, d in zip(self.matrices, self.base, deltas):
            m.copy_(b.add_(d))
