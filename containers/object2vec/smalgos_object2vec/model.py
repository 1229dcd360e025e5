"""Object2Vec as SageMaker's `object2vec:1` describes it, usable from a notebook with records as
the JSON Lines carry them:

    o2v = Object2Vec(enc0_max_seq_len=1, enc0_vocab_size=943, enc1_network="pooled_embedding",
                     enc1_vocab_size=1682, enc1_max_seq_len=1, enc0_network="pooled_embedding",
                     output_layer="mean_squared_error", enc_dim=16)
    o2v.fit([{"label": 4.0, "in0": [12], "in1": [7]}, ...], validation=[...])
    o2v.scores(pairs)          # (n, num_classes) probabilities, or (n, 1) regression values
    o2v.embed("in0", seqs)     # (n, enc_dim) encoder outputs

The network is network.py's. Training: up to `epochs` passes over the shuffled training pairs in
mini-batches (with `bucket_width`, batches of pairs whose longer side falls in one length bucket),
each epoch with fresh negatives when `negative_sampling_rate` > 0 (see `with_negatives`); the loss
is the mini-batch mean cross-entropy (softmax) or squared error (regression); the `optimizer` of
AWS's name (smalgos.training.neural). After each epoch the validation loss (else the training
loss) drives early stopping with the absolute `early_stopping_tolerance`, and the best epoch's
weights are kept. With `token_embedding_storage_type=row_sparse` the token tables take sparse
row gradients: only the rows a batch touches move (adam: torch's SparseAdam, a lazy Adam;
adagrad and sgd take sparse gradients as they are), weight decay applied to those rows only.

The artifact is safetensors (the network's tensors, torch's names) + JSON (the settings).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.numpy import save_file

from smalgos.artifacts import load_arrays
from smalgos.errors import InputError
from smalgos.estimator import DeclaredEstimator, read_metadata, write_metadata
from smalgos.maths.device import pick_device
from smalgos.training.neural import EarlyStopping, optimizer_by_name

from .declaration import ENCODER_SIDES, HYPERPARAMETERS, MSE, ROW_SPARSE, EncoderSpec, comparators, encoder_spec
from .network import Object2VecNet
from .records import SIDES, Pairs, Schema, Sequences, Side, pairs_of

log = logging.getLogger("smalgos")

MODEL_FILE = "model_algo-1.safetensors"
META_FILE = "model_algo-1.json"
PREDICT_BATCH = 1024


@dataclass
class EpochReport:
    """One epoch: its training and validation metrics, the early-stopping state after it."""

    epoch: int  # 1-based
    train: dict
    validation: dict | None
    stopper: EarlyStopping
    records: int
    seconds: float


def with_negatives(pairs: Pairs, rate: int, rng: np.random.Generator) -> Pairs:
    """`pairs` followed by `rate` negatives per pair: its in0 with the in1 of another pair (drawn
    uniformly among the others), label 0."""
    n = len(pairs)
    if rate <= 0 or n < 2:
        return pairs
    own = np.tile(np.arange(n), rate)
    other = rng.integers(0, n - 1, size=own.size)
    other[other >= own] += 1  # never a pair's own in1
    negatives = Pairs(pairs.in0.take(own), pairs.in1.take(other), np.zeros(own.size, np.float32))
    return Pairs.concat([pairs, negatives])


def batch_order(pairs: Pairs, size: int, bucket_width: int, rng: np.random.Generator) -> list[np.ndarray]:
    """The epoch's mini-batches (index arrays), shuffled; with `bucket_width`, each batch's pairs
    share one bucket of the longer side's length."""
    order = rng.permutation(len(pairs))
    if bucket_width <= 0:
        return [order[i:i + size] for i in range(0, len(order), size)]
    longest = np.maximum(pairs.in0.lengths, pairs.in1.lengths)[order]
    order = order[np.argsort((longest - 1) // bucket_width, kind="stable")]
    buckets = (np.maximum(pairs.in0.lengths, pairs.in1.lengths)[order] - 1) // bucket_width
    batches = []
    for b in np.unique(buckets):
        members = order[buckets == b]
        batches += [members[i:i + size] for i in range(0, len(members), size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class _Tally:
    """Sums of the loss (and correct answers) over records."""

    def __init__(self):
        self.loss = self.correct = 0.0
        self.records = 0

    def add(self, losses: torch.Tensor, correct: torch.Tensor | None) -> None:
        self.loss += float(losses.detach().double().sum())
        self.correct += 0.0 if correct is None else float(correct.sum())
        self.records += int(losses.shape[0])

    def result(self, regression: bool) -> dict[str, float]:
        if regression:
            return {"mean_squared_error": self.loss / self.records}
        return {"accuracy": self.correct / self.records, "cross_entropy": self.loss / self.records}


class Object2Vec(DeclaredEstimator):
    """See the module docstring. Parameters are the declared hyperparameters (AWS's names and
    defaults), plus `random_state` (weights, shuffles, negatives, dropout) and `device` (None:
    CUDA when there is one). Fitted: `arrays_` (the network's tensors), `net_`, `epochs_trained_`,
    `best_epoch_`, `best_loss_`."""

    hyperparameters = HYPERPARAMETERS
    job_only = ()
    fitted_attribute = "arrays_"
    format_name = "smalgos-object2vec"
    format_version = 1
    numeric_input = False  # records are token-id pairs: see `example_records`

    @classmethod
    def example_records(cls) -> list[dict]:
        """Records of the kind `fit` and the serving model take (the kit's contract test fits them
        with vocabularies of 2 tokens and sequences of at most 2)."""
        return [{"label": int(a == b), "in0": [a] * (1 + i % 2), "in1": [b]}
                for i, (a, b) in enumerate((i % 2, (i // 2) % 2) for i in range(60))]

    # -- settings -------------------------------------------------------------------------------

    def settings(self) -> dict:
        """The declared hyperparameters' values (checked): declaration names."""
        return self.validated_parameters()

    @property
    def regression(self) -> bool:
        return self.output_layer == MSE

    def specs(self) -> tuple[EncoderSpec, EncoderSpec]:
        hp = self.get_params()
        return encoder_spec(hp, "enc0"), encoder_spec(hp, "enc1")

    def schema(self, max_lens: tuple[int | None, int | None] = (None, None)) -> Schema:
        """What records must satisfy; `max_lens` cut the sequences shorter (infer_max_seqlens)."""
        sides = tuple(Side(s.vocab_size, min(s.max_seq_len, m or s.max_seq_len), f"{name}_vocab_size")
                      for s, m, name in zip(self.specs(), max_lens, ENCODER_SIDES))
        return Schema(sides, None if self.regression else int(self.num_classes))

    def _pairs(self, records, where: str) -> Pairs:
        if isinstance(records, Pairs):
            return records
        return pairs_of(list(records), self.schema(), lambda i: f"{where}: record {i}")

    def _build(self) -> Object2VecNet:
        return Object2VecNet(self.specs(), int(self.enc_dim), comparators(self.comparator_list),
                             int(self.mlp_layers), int(self.mlp_dim), self.mlp_activation, float(self.dropout),
                             1 if self.regression else int(self.num_classes), bool(self.tied_token_embedding_weight),
                             self.token_embedding_storage_type == ROW_SPARSE)

    # -- fitting --------------------------------------------------------------------------------

    def fit(self, X, y=None, validation=None, pretrained: dict | None = None, *,
            callback: Callable[[EpochReport], None] | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> "Object2Vec":
        """Train on the records `X` (dicts `{"label", "in0", "in1"}` or `Pairs`); `validation`
        (the same) drives early stopping when given. `pretrained`: {"enc0"/"enc1": (vocab_size,
        token_embedding_dim) array, NaN rows for ids without a vector} (pretrained.py)."""
        self.settings()
        train = self._pairs(X, "X")
        held = None if validation is None else self._pairs(validation, "validation")
        if len(train) == 0:
            raise InputError("the training data hold no records")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.random_state))
            self._fit(train, held, pretrained or {}, callback, should_stop)
        return self

    def _fit(self, train: Pairs, held: Pairs | None, pretrained: dict, callback, should_stop) -> None:
        self._device = pick_device(self.device)
        net = self._build()
        frozen = self._load_pretrained(net, pretrained)
        net = net.to(self._device)
        optimizers = self._optimizers(net, frozen)
        rng = np.random.default_rng(int(self.random_state))
        rate = int(self.negative_sampling_rate)
        if held is not None:
            held = with_negatives(held, rate, np.random.default_rng(int(self.random_state) + 1))
        stopper = EarlyStopping(float(self.early_stopping_tolerance), int(self.early_stopping_patience), absolute=True)
        best = None
        for epoch in range(1, int(self.epochs) + 1):
            started = time.time()
            data = with_negatives(train, rate, rng)
            tally = _Tally()
            net.train()
            for rows in batch_order(data, int(self.mini_batch_size), int(self.bucket_width), rng):
                self._step(net, optimizers, data.take(rows), tally)
            train_metrics = tally.result(self.regression)
            held_metrics = None if held is None else self._evaluate(net, held)
            loss_name = "mean_squared_error" if self.regression else "cross_entropy"
            if stopper.update((held_metrics or train_metrics)[loss_name]):
                best = {k: v.detach().clone() for k, v in net.state_dict().items()}
            if callback is not None:
                callback(EpochReport(epoch, train_metrics, held_metrics, stopper, len(data), time.time() - started))
            if stopper.stop or should_stop():
                break
        if best is None:
            raise InputError("no epoch gave a finite loss (the fit diverged: lower learning_rate): no model to keep")
        net.load_state_dict(best)
        self.epochs_trained_, self.best_epoch_, self.best_loss_ = stopper.epoch, stopper.best_epoch, stopper.best
        self.net_ = net.eval()
        self.arrays_ = {k: v.detach().cpu().numpy().astype(np.float32, copy=True) for k, v in best.items()}

    def _load_pretrained(self, net: Object2VecNet, pretrained: dict) -> set[int]:
        """Copy the pretrained rows in; returns the ids of the token tables to freeze."""
        frozen = set()
        for index, (side, spec) in enumerate(zip(ENCODER_SIDES, self.specs())):
            table = pretrained.get(side)
            if table is None or (index == 1 and net.tied):
                continue
            weight = net.table(index).weight
            if tuple(table.shape) != tuple(weight.shape):
                raise InputError(f"pretrained {side} table has shape {tuple(table.shape)}, the encoder's is "
                                 f"{tuple(weight.shape)} ({side}_vocab_size x {side}_token_embedding_dim)")
            given = torch.from_numpy(~np.isnan(table).all(1))
            with torch.no_grad():
                weight[given] = torch.from_numpy(np.nan_to_num(table[given.numpy()]))
            if spec.freeze_pretrained_embedding:
                weight.requires_grad_(False)
                frozen.add(id(weight))
        return frozen

    def _optimizers(self, net: Object2VecNet, frozen: set[int]) -> list:
        tables = {id(t.weight) for t in net.tables()}
        sparse = self.token_embedding_storage_type == ROW_SPARSE
        lr, wd = float(self.learning_rate), float(self.weight_decay)
        dense = [p for p in net.parameters() if p.requires_grad and (not sparse or id(p) not in tables)]
        optimizers = [optimizer_by_name(self.optimizer, dense, lr, wd)]
        rows = [t.weight for t in net.tables() if id(t.weight) not in frozen]
        if sparse and rows:
            if self.optimizer == "adam":
                optimizers.append(torch.optim.SparseAdam(rows, lr=lr, betas=(0.9, 0.999), eps=1e-8))
            elif self.optimizer == "adagrad":
                optimizers.append(torch.optim.Adagrad(rows, lr=lr, eps=1e-7))
            else:
                optimizers.append(torch.optim.SGD(rows, lr=lr))
            self._sparse_rows = rows
        else:
            self._sparse_rows = []
        return optimizers

    def _loss(self, out: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.regression:
            return (out[:, 0] - labels) ** 2, None
        target = labels.long()
        return (torch.nn.functional.cross_entropy(out, target, reduction="none"),
                (out.argmax(1) == target).double())

    def _tensors(self, pairs: Pairs):
        dev = self._device
        return (torch.from_numpy(pairs.in0.ids).to(dev), torch.from_numpy(pairs.in0.lengths).to(dev),
                torch.from_numpy(pairs.in1.ids).to(dev), torch.from_numpy(pairs.in1.lengths).to(dev))

    def _step(self, net: Object2VecNet, optimizers: list, batch: Pairs, tally: _Tally) -> None:
        labels = torch.from_numpy(batch.labels).to(self._device)
        losses, correct = self._loss(net(*self._tensors(batch)), labels)
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        losses.mean().backward()
        wd = float(self.weight_decay)
        for p in self._sparse_rows:  # weight decay on the rows the batch touched (MXNet's lazy update)
            if wd and p.grad is not None:
                g = p.grad.coalesce()
                p.grad = torch.sparse_coo_tensor(g.indices(), g.values() + wd * p.detach()[g.indices()[0]], g.shape,
                                                 check_invariants=False)
        for opt in optimizers:
            opt.step()
        tally.add(losses, correct)

    def _evaluate(self, net: Object2VecNet, pairs: Pairs) -> dict[str, float]:
        net.eval()
        tally = _Tally()
        with torch.no_grad():
            for start in range(0, len(pairs), PREDICT_BATCH):
                part = pairs.take(np.arange(start, min(start + PREDICT_BATCH, len(pairs))))
                tally.add(*self._loss(net(*self._tensors(part)), torch.from_numpy(part.labels).to(self._device)))
        net.train()
        return tally.result(self.regression)

    # -- using the model ------------------------------------------------------------------------

    def _net(self) -> Object2VecNet:
        self.check_fitted()
        if getattr(self, "net_", None) is None:
            self._device = pick_device(self.device)
            net = self._build()
            net.load_state_dict({k: torch.from_numpy(v) for k, v in self.arrays_.items()})
            self.net_ = net.to(self._device).eval()
        return self.net_

    def evaluate(self, records) -> dict[str, float]:
        """accuracy and cross_entropy (softmax), or mean_squared_error, of labelled records."""
        net = self._net()
        pairs = self._pairs(records, "records")
        if len(pairs) == 0:
            raise InputError("no records to evaluate")
        return self._evaluate(net, with_negatives(pairs, int(self.negative_sampling_rate),
                                                  np.random.default_rng(int(self.random_state) + 2)))

    def scores(self, pairs) -> np.ndarray:
        """(n, num_classes) float32 class probabilities (softmax), or (n, 1) regression values."""
        net = self._net()
        pairs = self._pairs(pairs, "pairs")
        out = []
        with torch.no_grad():
            for start in range(0, len(pairs), PREDICT_BATCH):
                part = pairs.take(np.arange(start, min(start + PREDICT_BATCH, len(pairs))))
                y = net(*self._tensors(part))
                out.append((y if self.regression else torch.softmax(y, 1)).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, net.output.out_features), np.float32)

    def embed(self, side: str, seqs: Sequences) -> np.ndarray:
        """(n, enc_dim) float32: encoder `side`'s ("in0" or "in1") output for the sequences."""
        net = self._net()
        index = SIDES.index(side)
        out = []
        with torch.no_grad():
            for start in range(0, len(seqs), PREDICT_BATCH):
                part = seqs.take(np.arange(start, min(start + PREDICT_BATCH, len(seqs))))
                dev = self._device
                out.append(net.encode(index, torch.from_numpy(part.ids).to(dev),
                                      torch.from_numpy(part.lengths).to(dev)).cpu().numpy())
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, int(self.enc_dim)), np.float32)

    # -- artifacts ------------------------------------------------------------------------------

    def model_arrays(self) -> dict:
        return self.arrays_

    def check_finite_model(self, where: str) -> None:
        """InputError naming the arrays of the model that hold NaN or ±inf."""
        bad = [name for name, values in self.model_arrays().items() if not np.isfinite(values).all()]
        if bad:
            raise InputError(f"{where}: the model's {', '.join(bad)} hold NaN or infinite values (the fit "
                             "diverged: lower learning_rate); no such model is saved or served")

    def save(self, model_dir) -> list[Path]:
        self.check_fitted()
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in self.arrays_.items()}, str(model_dir / MODEL_FILE))
        hp = {name: value for name, value in self.get_params().items() if name not in ("device",)}
        meta = write_metadata(model_dir / META_FILE, self.format_name, self.format_version, {
            "hyperparameters": hp, "encoders": [s.describe() for s in self.specs()],
            "epochs_trained": int(getattr(self, "epochs_trained_", 0)), "best_epoch": int(getattr(self, "best_epoch_", 0))})
        return [model_dir / MODEL_FILE, meta]

    @classmethod
    def load(cls, model_dir, device: str | None = None) -> "Object2Vec":
        model_dir = Path(model_dir)
        meta = read_metadata(model_dir / META_FILE, cls.format_name, cls.format_version)
        est = cls(**{**meta["hyperparameters"], "device": device})
        est.settings()
        shapes = {k: tuple(v.shape) for k, v in est._build().state_dict().items()}
        est.arrays_ = load_arrays(model_dir / MODEL_FILE, shapes)
        est.epochs_trained_, est.best_epoch_ = int(meta.get("epochs_trained", 0)), int(meta.get("best_epoch", 0))
        return est
