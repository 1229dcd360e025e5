"""IP Insights as SageMaker's `ipinsights:1` describes it: an entity embedding and an IP encoder
whose dot product is the log-odds that an (entity, IP) pair is one seen in the data. Usable from a
notebook with (entity, ip) string pairs:

    model = IPInsights(num_entity_vectors=2000, vector_dim=32, epochs=5).fit(pairs)
    model.dot_product([("user_1", "10.0.0.1")])

- Entities are hashed into `num_entity_vectors` rows of an embedding (collisions tolerated).
- The IP encoder sums the embeddings of four prefixes of the address (IPv4 /8, /16, /24, /32; IPv6
  /32, /48, /64, /128; hashed into `num_entity_vectors` rows, see `records`), then applies
  `num_ip_encoder_layers` fully connected layers (ReLU between them; 0 layers: the sum itself).
- Each mini-batch of observed pairs (label 1) gets `random_negative_sampling_rate` negatives per
  pair made with a uniformly random address of the same family and
  `shuffled_negative_sampling_rate` made with the address of another pair of the mini-batch
  (label 0); the loss is binary cross-entropy of sigmoid(dot product).
- Adam with `learning_rate` and `weight_decay` (L2 added to the gradient). Of the embedding
  tables only the rows a mini-batch touches take part in its step, moments included (MXNet's lazy
  update of sparse gradients, AWS's engine), so a step costs the batch, not the table.

Across hosts (`self.cluster`, set by the trainer) every host starts from the same network (from
`random_state`; entities and prefixes hash to the same rows everywhere) and draws its own
negatives; every step is one Adam step of all the hosts' mini-batches: the embedding rows any host
touched, each host's gradients summed on them (`summed_across_hosts`), the encoder's summed whole,
so every host holds the same network. A pass's train metrics are summed over the hosts.

The same torch code runs on CPU or CUDA (`device`). A fixed `random_state` repeats the fit.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

from smalgos.errors import ClientError, InputError
from smalgos.estimator import StreamingEstimator
from smalgos.maths.device import generator, host_randomness, pick_device, to_numpy
from smalgos.maths.lazy_adam import Group, LazyAdam, summed_across_hosts
from smalgos.maths.ranking import separation_auc

from .declaration import HYPERPARAMETERS
from .records import Pairs, entity_buckets, pairs_of, prefix_buckets, random_addresses

log = logging.getLogger("smalgos")

MODEL_FILE = "model_algo-1.safetensors"  # entity_vectors, ip_vectors (N, d); encoder.<i>.weight/bias
META_FILE = "model_algo-1.json"
HASHING = "fnv1a64-entity/splitmix64-prefixes-v1"  # how records.py maps pairs to rows
SCORING_CHUNK = 65536  # pairs scored at once


def as_pairs(X) -> Pairs:
    """`Pairs`, or (entity, ip) string pairs: a list of 2-tuples or an (n, 2) array."""
    if isinstance(X, Pairs):
        return X
    try:
        return pairs_of(X.tolist() if isinstance(X, np.ndarray) else X)
    except ClientError as exc:
        raise InputError(exc.message) from None


class _Tally:
    """Cross-entropy and accuracy summed over the samples (pairs and their negatives) seen."""

    def __init__(self):
        self.loss = self.correct = 0.0
        self.samples = 0

    def add(self, loss_sum: float, correct: float, samples: int) -> None:
        self.loss += loss_sum
        self.correct += correct
        self.samples += samples

    def result(self) -> dict[str, float]:
        n = max(self.samples, 1)
        return {"binary_classification_accuracy": self.correct / n,
                "binary_classification_cross_entropy": self.loss / n}


class IPInsightsNet(torch.nn.Module):
    """Entity embedding · IP encoder."""

    def __init__(self, n_vectors: int, dim: int, n_layers: int):
        super().__init__()
        self.entity = torch.nn.Embedding(n_vectors, dim)
        self.prefixes = torch.nn.Embedding(n_vectors, dim)
        self.encoder = torch.nn.ModuleList(torch.nn.Linear(dim, dim) for _ in range(n_layers))

    def reset(self, gen: torch.Generator) -> None:
        """Embeddings ~ N(0, 1/d); layers ~ U(±1/√d), from `gen` (a seed repeats the fit)."""
        dim = self.entity.embedding_dim
        with torch.no_grad():
            for table in (self.entity.weight, self.prefixes.weight):
                table.copy_(torch.randn(table.shape, generator=gen) / math.sqrt(dim))
            for layer in self.encoder:
                for p in (layer.weight, layer.bias):
                    p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) / math.sqrt(dim))

    def encode(self, prefix_vectors: torch.Tensor) -> torch.Tensor:
        """(n, 4, d) prefix embeddings → (n, d) IP embeddings."""
        h = prefix_vectors.sum(1)
        for i, layer in enumerate(self.encoder):
            h = layer(torch.relu(h) if i else h)
        return h

    def forward(self, entity_rows, prefix_rows):
        e, ip = self.entity(entity_rows), self.encode(self.prefixes(prefix_rows))
        return (e * ip).sum(1), ip, e


class IPInsights(StreamingEstimator):
    """SageMaker IP Insights' model. Parameters are the declared hyperparameters (AWS's names and
    defaults), plus `random_state` and `device`. Fitted attributes: `net_` (the torch module, on
    CPU), `n_features_in_` (2: entity and IP), `n_samples_seen_` (pairs in the last epoch),
    `epoch_metrics_` (train accuracy and cross-entropy of the last epoch)."""

    hyperparameters = HYPERPARAMETERS
    format_name = "smalgos-ipinsights"
    fitted_attribute = "net_"
    numeric_input = False  # records are (entity, ip) strings: see `example_records`

    @classmethod
    def example_records(cls) -> list[tuple[str, str]]:
        """A few records of the kind `fit` and `predict` take (the kit's contract test fits them)."""
        return [(f"user_{u % 7}", f"10.{u % 7}.{u % 3}.{u}") for u in range(120)] + [("admin", "2001:db8::1")]

    def passes(self) -> int:
        return int(self.epochs)

    # -- streaming API --------------------------------------------------------------------------

    def begin(self, n_features: int = 2) -> None:
        """Start a fit (validates the parameters, builds the network)."""
        self.validated_parameters()
        self._device = pick_device(self.device)
        net = IPInsightsNet(int(self.num_entity_vectors), int(self.vector_dim), int(self.num_ip_encoder_layers))
        net.reset(generator(self.random_state))  # the same network on every host
        self._rng, self._gen = host_randomness(int(self.random_state), self.cluster.rank)
        self._net = net.to(self._device)
        self._adam = LazyAdam({name: Group(p, float(self.learning_rate), float(self.weight_decay))
                               for name, p in self._net.named_parameters()},
                              eps=None, clip_gradient=None, rescale_grad=1.0)
        self.interval_, self._epoch = _Tally(), _Tally()
        self._epoch_pairs = 0

    def _rows(self, pairs: Pairs) -> tuple[torch.Tensor, torch.Tensor]:
        n = int(self.num_entity_vectors)
        ent = torch.from_numpy(entity_buckets(pairs, n))
        ips = torch.from_numpy(prefix_buckets(pairs.hi, pairs.lo, n))
        return ent.to(self._device), ips.to(self._device)

    def _with_negatives(self, pairs: Pairs, rng: np.random.Generator, gen: torch.Generator):
        """Entity rows, prefix rows and labels of `pairs` followed by their negatives."""
        n = len(pairs)
        ent, ips = self._rows(pairs)
        ent_parts, ip_parts = [ent], [ips]
        for _ in range(int(self.random_negative_sampling_rate)):
            hi, lo = random_addresses(pairs, rng)
            ent_parts.append(ent)
            ip_parts.append(torch.from_numpy(prefix_buckets(hi, lo, int(self.num_entity_vectors))).to(self._device))
        for _ in range(int(self.shuffled_negative_sampling_rate)):
            ent_parts.append(ent)
            ip_parts.append(ips[torch.randperm(n, generator=gen).to(self._device)])
        labels = torch.zeros(n * len(ent_parts), device=self._device)
        labels[:n] = 1.0
        return torch.cat(ent_parts), torch.cat(ip_parts), labels

    def partial_fit(self, X) -> "IPInsights":
        """One Adam step on a mini-batch of pairs and their negatives. Across hosts every host
        calls it as often as the others (a host whose pairs ran out with 0 pairs) and the step is
        one host's on all of their batches (`summed_across_hosts`)."""
        pairs = as_pairs(X)
        several = self.cluster.several
        if len(pairs) == 0 and not several:
            return self
        ent, ips, labels = self._with_negatives(pairs, self._rng, self._gen)
        net = self._net
        # Only the rows this batch touches take part (a small leaf each), so a step costs the batch.
        ent_rows, ent_at = torch.unique(ent, return_inverse=True)
        ip_rows, ip_at = torch.unique(ips, return_inverse=True)
        ent_vectors = net.entity.weight.detach()[ent_rows].requires_grad_()
        ip_vectors = net.prefixes.weight.detach()[ip_rows].requires_grad_()
        # embedding()'s backward sums each row's gradients in a fixed order (indexing's scatter-add
        # does not, on several threads): a seed repeats the fit.
        embed = torch.nn.functional.embedding
        logits = (embed(ent_at, ent_vectors) * net.encode(embed(ip_at, ip_vectors))).sum(1)
        losses = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, reduction="none")
        (losses.sum() if several else losses.mean()).backward()  # several: the mean over every host's
        grads = {"entity.weight": (ent_rows, ent_vectors.grad), "prefixes.weight": (ip_rows, ip_vectors.grad),
                 **{f"encoder.{n}": (None, torch.zeros_like(p) if p.grad is None else p.grad)
                    for n, p in net.encoder.named_parameters()}}
        if several:
            grads, samples = summed_across_hosts(self.cluster, grads, len(labels))
            for _, grad in grads.values():
                grad.div_(samples)
        self._adam.step(grads, batch_records=len(labels))
        net.encoder.zero_grad(set_to_none=True)
        with torch.no_grad():
            loss_sum = float(losses.sum())
            correct = float(((logits > 0) == (labels > 0.5)).sum())
        for tally in (self.interval_, self._epoch):
            tally.add(loss_sum, correct, labels.shape[0])
        self._epoch_pairs += len(pairs)
        return self

    def take_interval_metrics(self) -> dict[str, float]:
        """The train metrics since the last call (the batch metric lines)."""
        result, self.interval_ = self.interval_.result(), _Tally()
        return result

    def end_epoch(self) -> None:
        """Close a pass: its train metrics (every host's) become `epoch_metrics_`."""
        tally = self._epoch
        sums = np.array([tally.loss, tally.correct, tally.samples, self._epoch_pairs], np.float64)
        tally.loss, tally.correct, samples, pairs = self.cluster.sum(sums)[0].tolist()
        tally.samples = int(samples)
        self.epoch_metrics_ = tally.result()
        self.n_samples_seen_ = int(pairs)
        self._epoch, self._epoch_pairs = _Tally(), 0

    def finalize(self) -> "IPInsights":
        if getattr(self, "_net", None) is None:
            raise InputError("no records were seen")
        if self._epoch_pairs:  # partial_fit without end_epoch
            self.end_epoch()
        self.net_ = self._net.cpu().eval()
        self.n_features_in_ = 2
        self._net = self._adam = None
        return self

    def fit(self, X, y=None) -> "IPInsights":
        """`epochs` passes over (entity, ip) pairs in mini-batches of `mini_batch_size`."""
        pairs = as_pairs(X)
        if len(pairs) == 0:
            raise InputError("X holds no pairs")
        self.begin()
        size = int(self.mini_batch_size)
        for _ in range(self.passes()):
            for start in range(0, len(pairs), size):
                self.partial_fit(pairs[start:start + size])
            self.end_epoch()
        return self.finalize()

    # -- scoring --------------------------------------------------------------------------------

    def embeddings(self, X) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dot_product (n,), ip_embedding (n, d), entity_embedding (n, d)), float32. During a fit
        (between `begin` and `finalize`) the network being trained answers."""
        net = getattr(self, "_net", None)
        if net is None:
            self.check_fitted()
            net = self.net_
        pairs = as_pairs(X)
        device = net.entity.weight.device
        n = int(net.entity.num_embeddings)
        parts = []
        with torch.no_grad():
            for start in range(0, len(pairs), SCORING_CHUNK):
                chunk = pairs[start:start + SCORING_CHUNK]
                ent = torch.from_numpy(entity_buckets(chunk, n)).to(device)
                ips = torch.from_numpy(prefix_buckets(chunk.hi, chunk.lo, n)).to(device)
                parts.append([to_numpy(t) for t in net(ent, ips)])
        if not parts:
            d = net.entity.embedding_dim
            return np.zeros(0, np.float32), np.zeros((0, d), np.float32), np.zeros((0, d), np.float32)
        dot, ip, e = (np.concatenate(p) for p in zip(*parts))
        return dot, ip, e

    def dot_product(self, X) -> np.ndarray:
        """(n,) float32: higher = a more usual pair (log-odds of a pair seen in training)."""
        return self.embeddings(X)[0]

    predict = dot_product

    def discriminator_auc(self, X, random_state: int = 0) -> float:
        """ROC AUC of `X`'s pairs (positives) against negatives made from them as in training:
        `random_negative_sampling_rate` random and `shuffled_negative_sampling_rate` shuffled per
        pair (AWS's validation:discriminator_auc). The same `random_state` gives the same negatives."""
        pairs = as_pairs(X)
        n = len(pairs)
        rng, gen = np.random.default_rng(random_state), generator(random_state)
        negatives = []
        for _ in range(int(self.random_negative_sampling_rate)):
            hi, lo = random_addresses(pairs, rng)
            negatives.append(Pairs(pairs.entity, hi, lo))
        for _ in range(int(self.shuffled_negative_sampling_rate)):
            perm = torch.randperm(n, generator=gen).numpy()
            negatives.append(Pairs(pairs.entity, pairs.hi[perm], pairs.lo[perm]))
        scores = np.concatenate([self.dot_product(pairs)] + [self.dot_product(p) for p in negatives])
        return separation_auc(scores[:n], scores[n:])

    # -- artifacts ------------------------------------------------------------------------------

    def model_arrays(self) -> dict[str, np.ndarray]:
        return {name: t.detach().numpy() for name, t in self.net_.state_dict().items()}

    def save(self, model_dir) -> list[Path]:
        """The network's tensors (safetensors) and their metadata (JSON); never pickle."""
        self.check_fitted()
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        tensors = {self._file_name(k): np.ascontiguousarray(v, dtype=np.float32)
                   for k, v in self.model_arrays().items()}
        save_file(tensors, str(model_dir / MODEL_FILE))
        meta = self.write_metadata(model_dir / META_FILE, {
            "num_entity_vectors": int(self.num_entity_vectors), "vector_dim": int(self.vector_dim),
            "num_ip_encoder_layers": int(self.num_ip_encoder_layers), "hashing": HASHING,
            "random_negative_sampling_rate": int(self.random_negative_sampling_rate),
            "shuffled_negative_sampling_rate": int(self.shuffled_negative_sampling_rate)})
        return [model_dir / MODEL_FILE, meta]

    @staticmethod
    def _file_name(state_key: str) -> str:
        return {"entity.weight": "entity_vectors", "prefixes.weight": "ip_vectors"}.get(state_key, state_key)

    @classmethod
    def load(cls, model_dir, device: str | None = None) -> "IPInsights":
        """A fitted estimator from `save()`'s files (ValueError if they are inconsistent)."""
        model_dir = Path(model_dir)
        meta = cls.read_metadata(model_dir / META_FILE)
        if meta.get("hashing") != HASHING:
            raise ValueError(f"{META_FILE}: hashing {meta.get('hashing')!r} is not {HASHING!r}")
        est = cls(**{k: int(meta[k]) for k in ("num_entity_vectors", "vector_dim", "num_ip_encoder_layers",
                                               "random_negative_sampling_rate", "shuffled_negative_sampling_rate")},
                  device=device)
        net = IPInsightsNet(est.num_entity_vectors, est.vector_dim, est.num_ip_encoder_layers)
        stored = load_file(str(model_dir / MODEL_FILE))
        expected = {cls._file_name(k): tuple(v.shape) for k, v in net.state_dict().items()}
        found = {k: tuple(v.shape) for k, v in stored.items()}
        if found != expected:
            raise ValueError(f"{MODEL_FILE}: tensors {found} do not match the metadata's {expected}")
        net.load_state_dict({k: torch.from_numpy(stored[cls._file_name(k)]) for k in net.state_dict()})
        est.net_ = net.eval()
        est.n_features_in_ = 2
        return est
