"""NTM as SageMaker's `ntm:1` describes it: the neural variational document model (NVDM, Miao,
Yu & Blunsom 2016). Usable from a notebook with numpy arrays or scipy CSR matrices of word counts:

    ntm = NeuralTopicModel(num_topics=10, epochs=20).fit(counts, validation=held_out)
    ntm.topics()                      # (k, V): each topic's word distribution
    theta = ntm.transform(counts)     # (documents, k) topic weights, rows summing to 1

The network, per document of word counts c (V words):
  encoder   h = act(... act(Linear(log(1 + c))) ...)    widths `encoder_layers`, `batch_norm` before act
  latent    μ = Linear(h), log σ² = Linear(h) (k each); z = μ + σ·ε, ε ~ N(0, I) (reparameterised)
  topics    θ = softmax(z)
  decoder   log p = log_softmax(θ·W + b)                W (k, V): the topic–word matrix, b (V,)
  loss      recons = −Σ_w c_w log p_w,  kld = KL(N(μ, σ²) ‖ N(0, I));  per document recons + kld

Training minimises the mini-batch mean of the per-document loss with the `optimizer` of AWS's name
(`smalgos.training.neural`), the gradient rescaled and clipped as MXNet does. Every epoch the
training loss (of the sampled steps) and, when given, the validation loss (evaluated at ε = 0, so
that it does not jitter) are reported; early stopping watches the validation loss, else the
training loss, and the weights of the best epoch are kept. Reported losses are per word:
`total_loss` = Σ (recons + kld) / Σ words over the channel (AWS's ~6.6 on 20 Newsgroups is of
this scale), `recons` and `kld` its two parts, `logppx` the mean over documents of each one's
loss per word (NVDM's log-perplexity).

Across hosts (`self.cluster`, set by the trainer; smalgos.distributed) the hosts start from the
master's network, each reads its part of the training data, and every step is one step of every
host's mini-batch: the gradients of the per-document losses summed over the hosts and divided by
the documents of all of them (the mean over the hosts' batches together), so that every host holds
the same network. Each host draws its own noise and sub-sample; batch norm normalises each host's
batch and its running statistics are averaged over the hosts at each epoch's end. The epoch's
training losses are those of every host's documents.

Served topic weights are deterministic: softmax(μ), in numpy from the saved arrays (no torch).
The artifact is safetensors (the network's tensors, torch's names) + JSON (shape and settings).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import save_file

from smalgos.artifacts import load_arrays
from smalgos.errors import InputError
from smalgos.estimator import StreamingEstimator
from smalgos.maths.inputs import as_float32, checked_features, conform_width, minibatches
from smalgos.training.data_parallel import average_buffers, average_gradients, share_initial_state
from smalgos.training.neural import EarlyStopping, optimizer_by_name, scale_gradients

from .declaration import HYPERPARAMETERS, NO_CLIP

log = logging.getLogger("smalgos")

MODEL_FILE = "model_algo-1.safetensors"
META_FILE = "model_algo-1.json"
BN_EPS = 1e-5


def encoder_widths(encoder_layers: str, num_topics: int) -> list[int]:
    """The encoder's layer widths: `auto` is AWS's [3 k, 2 k]."""
    if str(encoder_layers).lower() == "auto":
        return [3 * num_topics, 2 * num_topics]
    return [int(w) for w in str(encoder_layers).split(",")]


def refuse_negative(x, where: str, first: int = 0) -> None:
    """Word counts are never negative: the first record holding one is named."""
    values = x.tocoo() if sp.issparse(x) else None
    bad = values.row[values.data < 0] if values is not None else np.flatnonzero((x < 0).any(axis=1))
    if bad.size:
        raise InputError(f"{where}: record {first + int(bad.min())} holds a negative word count; "
                         "NTM reads word counts (>= 0)")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


_NUMPY_ACTIVATIONS = {
    "sigmoid": lambda h: 1.0 / (1.0 + np.exp(-h)),
    "tanh": np.tanh,
    "relu": lambda h: np.maximum(h, 0.0),
}


@dataclass
class EpochReport:
    """What one epoch did: its losses (per word) and the early-stopping state after it."""

    epoch: int  # 1-based
    train: dict
    validation: dict | None
    improved: bool  # a new best epoch
    stopper: EarlyStopping
    records: int
    seconds: float


class _Losses:
    """Sums of the per-document losses over a channel; `result()` per word (see the module docstring)."""

    def __init__(self):
        self.recons = self.kld = self.words = self.ratio = 0.0
        self.docs = self.scored = 0

    def add(self, recons, kld, words) -> None:
        recons, kld, words = (t.detach().double().cpu().numpy() for t in (recons, kld, words))
        self.recons += float(recons.sum())
        self.kld += float(kld.sum())
        self.words += float(words.sum())
        has = words > 0
        self.ratio += float(((recons + kld)[has] / words[has]).sum())
        self.docs += int(words.shape[0])
        self.scored += int(has.sum())

    def combine(self, cluster) -> None:
        """Every host's sums, summed (the same on every host after)."""
        sums = np.array([self.recons, self.kld, self.words, self.ratio, self.docs, self.scored], np.float64)
        self.recons, self.kld, self.words, self.ratio, docs, scored = cluster.sum(sums)[0].tolist()
        self.docs, self.scored = int(round(docs)), int(round(scored))

    def result(self, where: str) -> dict[str, float]:
        if self.words <= 0:
            raise InputError(f"{where}: the {self.docs} record(s) hold no words")
        recons, kld = self.recons / self.words, self.kld / self.words
        return {"total_loss": recons + kld, "recons": recons, "kld": kld, "logppx": self.ratio / self.scored}


def _network(n_words: int, widths: list[int], k: int, activation: str, batch_norm: bool):
    import torch
    from torch import nn

    acts = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}

    class NVDM(nn.Module):
        def __init__(self):
            super().__init__()
            dims = [n_words] + widths
            self.linears = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims, dims[1:]))
            self.norms = nn.ModuleList(nn.BatchNorm1d(w, eps=BN_EPS) for w in widths) if batch_norm else None
            self.act = acts[activation]()
            self.mean = nn.Linear(dims[-1], k)
            self.logvar = nn.Linear(dims[-1], k)
            nn.init.zeros_(self.logvar.weight)  # start at σ = 1 (NVDM's initialisation)
            nn.init.zeros_(self.logvar.bias)
            self.decoder = nn.Linear(k, n_words)  # weight (V, k): W transposed

        def forward(self, counts, noise):
            h = torch.log1p(counts)
            for i, linear in enumerate(self.linears):
                h = linear(h)
                if self.norms is not None:
                    h = self.norms[i](h)
                h = self.act(h)
            mu, logvar = self.mean(h), self.logvar(h)
            z = mu if noise is None else mu + noise * torch.exp(0.5 * logvar)
            logp = torch.log_softmax(self.decoder(torch.softmax(z, dim=1)), dim=1)
            recons = -(counts * logp).sum(1)
            kld = -0.5 * (1 + logvar - mu * mu - torch.exp(logvar)).sum(1)
            return recons, kld

    return NVDM()


class NeuralTopicModel(StreamingEstimator):
    """NVDM trained from mini-batches of word counts. See the module docstring.

    Parameters are the declared hyperparameters (AWS's names and defaults), plus `random_state`
    (initial weights, noise and sub-sampling) and `device` (None: CUDA when there is one)."""

    hyperparameters = HYPERPARAMETERS
    positional = ("num_topics",)
    format_name = "smalgos-ntm"
    fitted_attribute = "arrays_"

    # -- notebook API ---------------------------------------------------------------------------

    def fit(self, X, y=None, validation=None) -> "NeuralTopicModel":
        """Train on the documents `X`; `validation` (documents) drives early stopping when given."""
        X = checked_features(X, "X")
        held = None if validation is None else checked_features(validation, "validation")
        size = int(self.mini_batch_size)
        self.begin(X.shape[1])
        self.run_epochs(lambda: minibatches(X, size), held if held is None else (lambda: minibatches(held, size)))
        return self.finalize()

    def transform(self, X) -> np.ndarray:
        """(n, num_topics) float32 topic weights: softmax of the encoder's mean, rows summing to 1."""
        self.check_fitted()
        X = conform_width(as_float32(X), self.n_features_in_)
        refuse_negative(X, "the request")
        return _softmax(self._encode(X)).astype(np.float32)

    def topics(self) -> np.ndarray:
        """(k, V) float32: topic i's word distribution, the decoder's output for θ = e_i."""
        self.check_fitted()
        return _softmax(self.arrays_["decoder.weight"].T.astype(np.float64)
                        + self.arrays_["decoder.bias"]).astype(np.float32)

    def score(self, X) -> float:
        """The documents' total_loss per word (lower is better), at ε = 0."""
        self.check_fitted()
        self._rebuild()
        X = conform_width(as_float32(X), self.n_features_in_)
        return self.evaluate(minibatches(X, int(self.mini_batch_size)), "X")["total_loss"]

    def _encode(self, X) -> np.ndarray:
        a, act = self.arrays_, _NUMPY_ACTIVATIONS[self.encoder_layers_activation]
        h = X.log1p() if sp.issparse(X) else np.log1p(X)
        for i in range(len(self.widths_)):
            h = np.asarray(h @ a[f"linears.{i}.weight"].T) + a[f"linears.{i}.bias"]
            if self.batch_norm:
                h = ((h - a[f"norms.{i}.running_mean"]) / np.sqrt(a[f"norms.{i}.running_var"] + BN_EPS)
                     * a[f"norms.{i}.weight"] + a[f"norms.{i}.bias"])
            h = act(h)
        return np.asarray(h @ a["mean.weight"].T) + a["mean.bias"]

    # -- streaming API --------------------------------------------------------------------------

    def passes(self) -> int:
        return int(self.epochs)

    def begin(self, n_features: int) -> None:
        import torch

        from smalgos.maths.device import host_randomness, pick_device

        self.validated_parameters(feature_dim=n_features)
        self.n_features_in_ = int(n_features)
        self.widths_ = encoder_widths(self.encoder_layers, self.num_topics)
        self._device = pick_device(self.device)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.random_state))
            self._net = _network(self.n_features_in_, self.widths_, self.num_topics,
                                 self.encoder_layers_activation, self.batch_norm).to(self._device)
        share_initial_state(self._net, self.cluster)  # every host starts from the master's network
        # Noise drawn on the CPU (one seed, one model, any device); each host its own stream.
        self._rng, self._noise = host_randomness(int(self.random_state), self.cluster.rank)
        self._optimizer = optimizer_by_name(self.optimizer, self._net.parameters(), self.learning_rate,
                                            self.weight_decay)
        self._clip = math.inf if self.clip_gradient in NO_CLIP else float(self.clip_gradient)
        self._epoch_losses, self._records, self._best = _Losses(), 0, None
        log.info("%d feature(s) found in 'data'. Encoder layers %s (%s%s), %d topics, optimizer %s",
                 n_features, self.widths_, self.encoder_layers_activation, ", batch norm" if self.batch_norm else "",
                 self.num_topics, self.optimizer)

    def partial_fit(self, X, y=None, where: str = "the mini-batch") -> "NeuralTopicModel":
        import torch

        from smalgos.maths.device import as_dense

        xb = conform_width(as_float32(X), self.n_features_in_, where)
        refuse_negative(xb, where, self._records)
        self._records += xb.shape[0]
        sampled = xb.shape[0] > 0 and (self.sub_sample >= 1.0 or self._rng.random() < self.sub_sample)
        if not self.cluster.several and not sampled:
            return self
        self._optimizer.zero_grad(set_to_none=not self.cluster.several)
        if sampled:
            counts = as_dense(xb, self._device)
            self._net.train(counts.shape[0] > 1)  # batch norm needs two records to normalise over
            noise = torch.randn((counts.shape[0], self.num_topics), generator=self._noise).to(self._device)
            recons, kld = self._net(counts, noise)
            per_document = recons + kld
            (per_document.sum() if self.cluster.several else per_document.mean()).backward()
            self._epoch_losses.add(recons, kld, counts.sum(1))
        # several hosts: every host's gradients (of its documents' summed losses) over all their documents
        if self.cluster.several and not average_gradients(self._net, self.cluster, xb.shape[0] if sampled else 0):
            return self
        scale_gradients(self._net.parameters(), float(self.rescale_gradient), self._clip)
        self._optimizer.step()
        return self

    def end_epoch(self, where: str = "the training data") -> None:
        losses, self._epoch_losses = self._epoch_losses, _Losses()
        self.last_records_, self._records = self._records, 0
        if self.cluster.several:
            losses.combine(self.cluster)
            average_buffers(self._net, self.cluster)  # batch norm's running statistics
        self.last_train_ = losses.result(where) if losses.docs else None

    def evaluate(self, batches: Iterable, where: str = "the data") -> dict[str, float]:
        """Per-word losses of the documents of `batches` (feature matrices), at ε = 0."""
        import torch

        from smalgos.maths.device import as_dense

        self._net.eval()
        losses, first = _Losses(), 0
        with torch.no_grad():
            for xb in batches:
                xb = conform_width(as_float32(xb), self.n_features_in_, where)
                refuse_negative(xb, where, first)
                first += xb.shape[0]
                if xb.shape[0]:
                    counts = as_dense(xb, self._device)
                    losses.add(*self._net(counts, None), counts.sum(1))
        return losses.result(where)

    def run_epochs(self, train: Callable[[], Iterator], validation: Callable[[], Iterator] | None = None, *,
                   names: tuple[str, str] = ("the training data", "the validation data"),
                   callback: Callable[[EpochReport], None] | None = None,
                   should_stop: Callable[[], bool] = lambda: False) -> None:
        """Up to `epochs` passes over `train()` (each call a fresh iterator of feature matrices),
        with early stopping on `validation()`'s loss, else the training loss; the best epoch's
        weights are kept for `finalize`. `names`: how errors name the two (e.g. their channels)."""
        stopper = EarlyStopping(self.tolerance, self.num_patience_epochs)
        for epoch in range(1, int(self.epochs) + 1):
            started = time.time()
            empty = lambda: sp.csr_matrix((0, self.n_features_in_), dtype=np.float32)  # noqa: E731
            for xb in self.cluster.lockstep(train(), empty=empty, stop=should_stop):
                self.partial_fit(xb, where=names[0])
            self.end_epoch(names[0])
            if self.last_train_ is None:
                if self.last_records_:
                    raise InputError(f"{names[0]}: epoch {epoch}: sub_sample={self.sub_sample} sampled none of its "
                                     f"mini-batches (raise sub_sample or lower mini_batch_size)")
                raise InputError(f"{names[0]}: no records")
            held = None if validation is None else self.evaluate(validation(), names[1])
            improved = stopper.update((held or self.last_train_)["total_loss"])
            if improved:
                self._best = {k: v.detach().clone() for k, v in self._net.state_dict().items()}
            if callback is not None:
                callback(EpochReport(epoch, self.last_train_, held, improved, stopper, self.last_records_,
                                     time.time() - started))
            if stopper.stop or self.cluster.any(should_stop()):
                break
        self.epochs_trained_, self.best_epoch_, self.best_loss_ = stopper.epoch, stopper.best_epoch, stopper.best

    def finalize(self) -> "NeuralTopicModel":
        if self._best is None:
            raise InputError("no epoch gave a finite loss: no model to keep")
        self._net.load_state_dict(self._best)
        self._best = None
        self.arrays_ = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in self._net.state_dict().items()
                        if v.is_floating_point()}
        return self

    def _rebuild(self) -> None:
        """The torch network from the fitted arrays (a loaded model's, for `score`)."""
        import torch

        from smalgos.maths.device import pick_device

        if getattr(self, "_net", None) is None:
            self._device = pick_device(self.device)
            self._net = _network(self.n_features_in_, self.widths_, self.num_topics,
                                 self.encoder_layers_activation, self.batch_norm).to(self._device)
            self._net.load_state_dict({k: torch.from_numpy(v) for k, v in self.arrays_.items()}, strict=False)

    # -- artifacts ------------------------------------------------------------------------------

    def _shapes(self) -> dict[str, tuple[int, ...]]:
        v, k, dims = self.n_features_in_, self.num_topics, [self.n_features_in_] + self.widths_
        shapes: dict[str, tuple[int, ...]] = {}
        for i, (a, b) in enumerate(zip(dims, dims[1:])):
            shapes[f"linears.{i}.weight"], shapes[f"linears.{i}.bias"] = (b, a), (b,)
            if self.batch_norm:
                for name in ("weight", "bias", "running_mean", "running_var"):
                    shapes[f"norms.{i}.{name}"] = (b,)
        for head in ("mean", "logvar"):
            shapes[f"{head}.weight"], shapes[f"{head}.bias"] = (k, dims[-1]), (k,)
        shapes["decoder.weight"], shapes["decoder.bias"] = (v, k), (v,)
        return shapes

    def save(self, model_dir) -> list[Path]:
        self.check_fitted()
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        save_file({k: np.ascontiguousarray(v) for k, v in self.arrays_.items()}, str(model_dir / MODEL_FILE))
        meta = self.write_metadata(model_dir / META_FILE, {
            "num_topics": int(self.num_topics), "feature_dim": int(self.n_features_in_),
            "encoder_layers": self.widths_, "encoder_layers_activation": self.encoder_layers_activation,
            "batch_norm": bool(self.batch_norm), "epochs_trained": int(getattr(self, "epochs_trained_", 0)),
            "best_epoch": int(getattr(self, "best_epoch_", 0))})
        return [model_dir / MODEL_FILE, meta]

    @classmethod
    def load(cls, model_dir, device: str | None = None) -> "NeuralTopicModel":
        model_dir = Path(model_dir)
        meta = cls.read_metadata(model_dir / META_FILE)
        widths = [int(w) for w in meta["encoder_layers"]]
        est = cls(int(meta["num_topics"]), encoder_layers=",".join(map(str, widths)),
                  encoder_layers_activation=str(meta["encoder_layers_activation"]),
                  batch_norm=bool(meta["batch_norm"]), device=device)
        est.n_features_in_, est.widths_ = int(meta["feature_dim"]), widths
        est.arrays_ = load_arrays(model_dir / MODEL_FILE, est._shapes())
        est.epochs_trained_, est.best_epoch_ = int(meta.get("epochs_trained", 0)), int(meta.get("best_epoch", 0))
        return est

    def model_arrays(self) -> dict:
        return self.arrays_
