"""BlazingText's `supervised` mode: fastText's text classifier in torch, so that it trains on a GPU
as on CPUs. Usable from a notebook:

    core = SupervisedCore(word_ngrams=2, epochs=10).fit(train_lines, validation_lines)
    core.predict([["a", "fine", "film"]], k=2); core.save("model/")   # model/model.bin

Lines are token lists; tokens starting `__label__` are the line's labels (anywhere in the line,
several allowed). The model is fastText's (Joulin et al. 2017, fastText's supervised.cc):
- the dictionary: words seen at least `min_count` times (and `</s>`, which ends every line), most
  frequent first; every label seen;
- a line's input rows (`fasttext_format.FastTextModel.encode`): its known words, `</s>`, and its
  word n-grams up to `word_ngrams` words hashed into `buckets` rows (unknown words take part in
  n-grams); the hidden vector is their mean;
- softmax over the labels of `hidden @ output.T`; each epoch a line of several labels trains on
  one of them drawn at random (fastText's rule);
- input rows start uniform in (-1/dim, 1/dim), output rows at 0; plain SGD with the learning rate
  decayed linearly to 0 over all epochs' tokens, on mini-batches of `batch_lines` lines whose
  updates are summed (each line's update is the one fastText's per-line update would take,
  from the weights before the step; fastText applies them one line at a time, on several threads
  without locks).
With `early_stopping`, the validation lines' accuracy is measured after every epoch; the best
epoch's weights are kept, and training stops once `patience` epochs have passed without a better
one, from `min_epochs` on.

Accuracy (`#train_accuracy`, `#validation_accuracy`) is precision at 1: the share of labelled
lines whose most probable label is one of their labels.

`save` writes `model.bin` in fastText's binary format (fastText's own tools read it); its input
matrix has nwords + buckets rows of vector_dim float32 (at AWS's defaults, 2,000,000 buckets x 100
dims: about 800 MB), as fastText's own model would. With word_ngrams=1 no buckets are stored
(bucket 0), as fastText does.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from smalgos.errors import ClientError
from smalgos.maths.device import pick_device

from .fasttext_format import EOS, LABEL_PREFIX, LOSS_SOFTMAX, MODEL_SUP, Args, FastTextModel

MODEL_BIN = "model.bin"


def tokenize(text: str) -> list[str]:
    """fastText's tokens: split on white space."""
    return text.split()


def build_dictionary(lines: Sequence[Sequence[str]], min_count: int) -> tuple[list[str], np.ndarray, list[str],
                                                                            np.ndarray, int]:
    """(words, their counts, labels, their counts, tokens): words with at least `min_count`
    occurrences (`</s>` counted once a line), then labels, each most frequent first (ties: first seen)."""
    counts: Counter = Counter()
    tokens = 0
    for line in lines:
        counts.update(line)
        tokens += len(line) + 1
    counts[EOS] += len(lines)
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])  # stable: ties keep first-seen order
    words = [(w, c) for w, c in ranked if not w.startswith(LABEL_PREFIX) and c >= min_count]
    labels = [(w, c) for w, c in ranked if w.startswith(LABEL_PREFIX)]
    return ([w for w, _ in words], np.array([c for _, c in words], np.int64),
            [w for w, _ in labels], np.array([c for _, c in labels], np.int64), tokens)


class SupervisedCore:
    """fastText's supervised classifier. Parameters are BlazingText's hyperparameters of the same
    names; `batch_lines` the lines per SGD step; `device` None picks CUDA when present
    (`smalgos.maths.device.pick_device`). Fitted state: `model_` (a `FastTextModel`),
    `history_` (per epoch: validation accuracy when measured), `best_epoch_`, `epochs_run_`,
    `train_seconds_`, `tokens_` (tokens per epoch)."""

    def __init__(self, vector_dim: int = 100, word_ngrams: int = 2, buckets: int = 2000000, min_count: int = 5,
                 learning_rate: float = 0.05, epochs: int = 5, early_stopping: bool = False, min_epochs: int = 5,
                 patience: int = 4, batch_lines: int = 16, seed: int = 0, device: str | None = None):
        self.vector_dim, self.word_ngrams, self.buckets, self.min_count = vector_dim, word_ngrams, buckets, min_count
        self.learning_rate, self.epochs, self.early_stopping = learning_rate, epochs, early_stopping
        self.min_epochs, self.patience, self.batch_lines, self.seed = min_epochs, patience, batch_lines, seed
        self.device = device

    @classmethod
    def from_hyperparameters(cls, hp: dict, device: str | None = None) -> "SupervisedCore":
        names = ("vector_dim", "word_ngrams", "buckets", "min_count", "learning_rate", "epochs", "early_stopping",
                 "min_epochs", "patience")
        return cls(**{n: hp[n] for n in names}, device=device)

    def fit(self, lines: Sequence[Sequence[str]], validation: Sequence[Sequence[str]] | None = None,
            on_epoch: Callable[[int, dict], bool | None] | None = None) -> "SupervisedCore":
        """Train on `lines`; `validation` is scored after each epoch when early stopping.
        `on_epoch(epoch, info)` is called after each epoch (info: alpha, progress, words_per_second,
        validation_accuracy, improved); returning True stops training."""
        if self.early_stopping and validation is None:
            raise ClientError("Hyperparameter early_stopping: early stopping needs a validation channel")
        words, word_counts, labels, label_counts, tokens = build_dictionary(lines, self.min_count)
        if not labels:
            raise ClientError(f"Channel 'train': no line has a label (a token starting {LABEL_PREFIX}, such as "
                              f"{LABEL_PREFIX}positive)")
        bucket = self.buckets if self.word_ngrams > 1 else 0
        args = Args(dim=self.vector_dim, epoch=self.epochs, min_count=self.min_count, word_ngrams=self.word_ngrams,
                    loss=LOSS_SOFTMAX, model=MODEL_SUP, bucket=bucket, minn=0, maxn=0)
        dim, nlabels = self.vector_dim, len(labels)
        shell = FastTextModel(args, words, word_counts, labels, label_counts,
                              np.zeros((0, dim), np.float32), np.zeros((0, dim), np.float32), tokens)
        rows, offsets, line_labels = shell.encode(lines)
        label_index = {w: i for i, w in enumerate(labels)}
        sizes = np.diff(np.append(offsets, len(rows)))
        keep = [i for i, labs in enumerate(line_labels) if labs and sizes[i] > 0]
        if not keep:
            raise ClientError("Channel 'train': no labelled line has a word (every line is only labels)")
        choices = [np.array([label_index[t] for t in line_labels[i]], np.int64) for i in keep]
        starts, lengths = offsets[keep], sizes[keep]
        line_tokens = np.array([len(lines[i]) + 1 for i in keep], np.float64)

        device = pick_device(self.device)
        generator = torch.Generator().manual_seed(self.seed)
        rng = np.random.default_rng(self.seed)
        bound = 1.0 / dim
        w_in = torch.empty(len(words) + bucket, dim).uniform_(-bound, bound, generator=generator).to(device)
        w_out = torch.zeros(nlabels, dim, device=device)
        rows_t = torch.from_numpy(rows).to(device)
        lengths_t = torch.from_numpy(lengths.astype(np.float32)).to(device)

        total_tokens = float(line_tokens.sum()) * self.epochs
        done_tokens = 0.0
        best = (-1.0, None, -1)  # (validation accuracy, weights, epoch)
        self.history_: list[dict] = []
        since_best = 0
        started = time.perf_counter()
        multi = any(len(c) > 1 for c in choices)
        for epoch in range(self.epochs):
            order = rng.permutation(len(keep))
            targets = np.array([c[rng.integers(len(c))] if len(c) > 1 else c[0] for c in choices], np.int64) \
                if multi else np.concatenate(choices)
            targets_t = torch.from_numpy(targets).to(device)
            for first in range(0, len(order), self.batch_lines):
                batch = order[first:first + self.batch_lines]
                lr = self.learning_rate * max(0.0, 1.0 - done_tokens / total_tokens)
                done_tokens += float(line_tokens[batch].sum())
                index, bag = _gather(starts[batch], lengths[batch])
                _sgd_step(w_in, w_out, rows_t[torch.from_numpy(index).to(device)], torch.from_numpy(bag).to(device),
                          lengths_t[torch.from_numpy(batch).to(device)], targets_t[torch.from_numpy(batch).to(device)],
                          lr)
            self._store(shell, w_in, w_out)
            info = {"epoch": epoch, "alpha": self.learning_rate * max(0.0, 1.0 - done_tokens / total_tokens),
                    "progress": (epoch + 1) / self.epochs,
                    "words_per_second": done_tokens / max(time.perf_counter() - started, 1e-9),
                    "validation_accuracy": None, "improved": False}
            if self.early_stopping:
                accuracy = self.accuracy(validation)
                info["validation_accuracy"] = accuracy
                if accuracy > best[0]:
                    best = (accuracy, (w_in.clone(), w_out.clone()), epoch)
                    info["improved"], since_best = True, 0
                else:
                    since_best += 1
            self.history_.append(info)
            stop = on_epoch(epoch, info) if on_epoch is not None else False
            self.epochs_run_ = epoch + 1
            if stop or (self.early_stopping and epoch + 1 >= self.min_epochs and since_best >= self.patience):
                break
        self.train_seconds_ = time.perf_counter() - started
        self.tokens_ = int(line_tokens.sum())
        self.best_epoch_ = best[2] if best[1] is not None else self.epochs_run_ - 1
        if best[1] is not None:
            self._store(shell, *best[1])
        return self

    def _store(self, shell: FastTextModel, w_in: torch.Tensor, w_out: torch.Tensor) -> None:
        model = copy.copy(shell)
        model.input = w_in.cpu().numpy().astype(np.float32, copy=True)
        model.output = w_out.cpu().numpy().astype(np.float32, copy=True)
        self.model_ = model

    # -- prediction -----------------------------------------------------------------------------

    def predict(self, lines: Sequence[Sequence[str]], k: int = 1) -> list[tuple[list[str], list[float]]]:
        return predict(self.model_, lines, k)

    def accuracy(self, lines: Sequence[Sequence[str]]) -> float:
        return accuracy(self.model_, lines)

    def save(self, model_dir: str | Path) -> None:
        Path(model_dir).mkdir(parents=True, exist_ok=True)
        self.model_.save(Path(model_dir) / MODEL_BIN)


def _gather(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The row positions of the lines at `starts` (each `lengths` long), concatenated, and the
    line (0 .. len(starts) - 1) each belongs to."""
    total = int(lengths.sum())
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    index = np.arange(total, dtype=np.int64) - np.repeat(offsets, lengths) + np.repeat(starts, lengths)
    return index, np.repeat(np.arange(len(starts), dtype=np.int64), lengths)


@torch.no_grad()
def _sgd_step(w_in: torch.Tensor, w_out: torch.Tensor, rows: torch.Tensor, bag: torch.Tensor, lengths: torch.Tensor,
              targets: torch.Tensor, lr: float) -> None:
    """fastText's update (model.cc `update`, loss.cc softmax) for each line of a mini-batch: the
    hidden vector is the mean of the line's input rows; with p the softmax of hidden @ w_out.T,
    the output rows move by -lr (p - onehot(target)) hidden, and each input row of the line by
    -lr ((p - onehot) @ w_out) / (rows in the line), both from the weights before the step."""
    hidden = torch.zeros(len(lengths), w_in.shape[1], device=w_in.device).index_add_(0, bag, w_in[rows])
    hidden /= lengths[:, None]
    g = torch.softmax(hidden @ w_out.T, dim=1)
    g[torch.arange(len(targets), device=g.device), targets] -= 1.0
    grad_hidden = g @ w_out
    w_out.sub_(lr * (g.T @ hidden))
    w_in.index_add_(0, rows, (grad_hidden / lengths[:, None])[bag], alpha=-lr)


def label_probabilities(model: FastTextModel, lines: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray, list]:
    """(probabilities (n, nlabels) float64, whether each line had any input row, each line's labels)
    for a softmax, one-vs-all or negative-sampling (a sigmoid per label) or hierarchical-softmax
    classifier (fastText's losses)."""
    from .fasttext_format import LOSS_HS, LOSS_NS, LOSS_OVA

    rows, offsets, labels = model.encode(lines)
    sizes = np.diff(np.append(offsets, len(rows)))
    hidden = np.zeros((len(lines), model.args.dim), np.float64)
    has_input = sizes > 0
    if len(rows):
        sums = np.add.reduceat(model.input[rows].astype(np.float64), offsets[has_input], axis=0)
        hidden[has_input] = sums / sizes[has_input, None]
    logits = hidden @ model.output.astype(np.float64).T
    if model.args.loss == LOSS_HS:
        probs = np.ones((len(lines), len(model.labels)))
        sig = 1.0 / (1.0 + np.exp(-logits))
        for leaf, (nodes, codes) in enumerate(huffman_paths(model.label_counts)):
            if len(nodes):
                probs[:, leaf] = np.prod(np.where(codes, sig[:, nodes], 1.0 - sig[:, nodes]), axis=1)
    elif model.args.loss in (LOSS_OVA, LOSS_NS):
        probs = 1.0 / (1.0 + np.exp(-logits))
    else:
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
    return probs, has_input, labels


def huffman_paths(counts: Sequence[int]) -> list[tuple[np.ndarray, np.ndarray]]:
    """fastText's hierarchical-softmax tree over the labels (loss.cc `buildTree`: Huffman over the
    counts, which come most frequent first): each leaf's internal nodes (rows of the output
    matrix) from the leaf up, and whether the path goes right (probability sigmoid) at each."""
    osz = len(counts)
    count = [float(c) for c in counts] + [1e15] * (osz - 1)
    parent, binary = [-1] * (2 * osz - 1), [False] * (2 * osz - 1)
    leaf, node = osz - 1, osz
    for i in range(osz, 2 * osz - 1):
        mini = [0, 0]
        for j in range(2):
            if leaf >= 0 and count[leaf] < count[node]:
                mini[j], leaf = leaf, leaf - 1
            else:
                mini[j], node = node, node + 1
        count[i] = count[mini[0]] + count[mini[1]]
        parent[mini[0]] = parent[mini[1]] = i
        binary[mini[1]] = True
    paths = []
    for i in range(osz):
        nodes, codes, j = [], [], i
        while parent[j] != -1:
            nodes.append(parent[j] - osz)
            codes.append(binary[j])
            j = parent[j]
        paths.append((np.array(nodes, np.int64), np.array(codes, bool)))
    return paths


def predict(model: FastTextModel, lines: Sequence[Sequence[str]], k: int = 1) -> list[tuple[list[str], list[float]]]:
    """The `k` most probable labels of each line and their probabilities, most probable first (a
    line with no input row gets none, as fastText's predict)."""
    probs, has_input, _ = label_probabilities(model, lines)
    k = min(k, len(model.labels))
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [([model.labels[j] for j in top[i]], [float(probs[i, j]) for j in top[i]]) if has_input[i] else ([], [])
            for i in range(len(lines))]


def accuracy(model: FastTextModel, lines: Sequence[Sequence[str]], chunk: int = 8192) -> float:
    """Precision at 1 over the lines that have a label (NaN when none has)."""
    labelled = correct = 0
    for first in range(0, len(lines), chunk):
        probs, has_input, labels = label_probabilities(model, lines[first:first + chunk])
        top = probs.argmax(axis=1)
        for i, labs in enumerate(labels):
            if labs:
                labelled += 1
                correct += bool(has_input[i] and model.labels[top[i]] in labs)
    return correct / labelled if labelled else float("nan")
