"""k-nearest-neighbours as SageMaker's `knn:1` computes it. Usable from a notebook:

    knn = KNearestNeighbors(k=10, predictor_type="classifier", sample_size=200_000).fit(X, y)
    labels = knn.predict(X_test)
    distances, neighbour_labels = knn.kneighbors(X_test)

Training: the stream is (optionally) projected to `dimension_reduction_target` features (`sign`:
random ±1 projection; `fjlt`: subsampled randomized Hadamard transform), `sample_size` records are
kept by reservoir sampling (uniform over the whole stream, linear time, bounded memory), and a
FAISS index is built over the sample: `faiss.Flat` (exact), `faiss.IVFFlat` (inverted lists) or
`faiss.IVFPQ` (inverted lists + product quantisation, L2 only). `COSINE` normalises vectors and
searches by inner product.

Across hosts each host samples its own records (up to `sample_size`); at `finalize` the hosts'
record counts decide how many of the `sample_size` each gives (`ReservoirSampler.gathered`: a
uniform sample of all the records, as one host's), the samples and labels are gathered, and every
host builds the same index over them (the master's is saved).

Inference: the k nearest sampled records; a classifier answers the most frequent label among them
(ties go to the smallest label, as scikit-learn's `KNeighborsClassifier`), a regressor their mean.
Distances are the index's own: squared Euclidean for `L2`, inner products for `INNER_PRODUCT`,
cosine similarity for `COSINE` (the larger the closer); neighbours come closest first.

Search runs in FAISS, or for `faiss.Flat` as an exact torch brute force (`backend="torch"`), which
is what the GPU image uses on CUDA (faiss-cpu has no GPU code).

Artifacts (AWS's file names): `model_algo-1` the FAISS index (`faiss.serialize_index`, not a
pickle), `model_algo-1.labels` the labels as raw little-endian float32, `model_algo-1.json` the
metadata read at inference — editing `k` or `predictor_type` there changes inference without
retraining, as AWS documents — and, with dimension reduction, `model_algo-1.projection.safetensors`
with the drawn projection.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.numpy import load_file, save_file

from smalgos.distributed import host_seed
from smalgos.declaration import AUTO
from smalgos.errors import InputError
from smalgos.estimator import StreamingEstimator
from smalgos.maths.device import as_dense, pick_device, to_numpy
from smalgos.maths.distances import top_k
from smalgos.maths.inputs import as_float32, conform_width
from smalgos.maths.projections import RandomProjection

from .declaration import HYPERPARAMETERS, PQ_M_CHOICES

log = logging.getLogger("smalgos")

INDEX_FILE = "model_algo-1"
LABELS_FILE = "model_algo-1.labels"
META_FILE = "model_algo-1.json"
PROJECTION_FILE = "model_algo-1.projection.safetensors"
VERSION = "1.0"  # the "version" key of AWS's model_algo-1.json



def _faiss():
    import faiss  # imported lazily: the declaration and the torch path do not need it

    return faiss


def majority_vote(labels: np.ndarray) -> np.ndarray:
    """Row-wise most frequent value of an (n, k) array, ties to the smallest; NaNs are ignored."""
    n, k = labels.shape
    if n == 0:
        return np.empty(0, np.float32)
    s = np.sort(labels, axis=1)  # NaN sorts last
    flat = s.ravel()
    start = np.ones(n * k, dtype=bool)
    start[1:] = flat[1:] != flat[:-1]
    start[::k] = True
    starts = np.flatnonzero(start)
    lengths = np.diff(np.append(starts, n * k))
    lengths[np.isnan(flat[starts])] = 0
    rows = starts // k
    order = np.lexsort((starts, -lengths, rows))  # per row: longest run first, then smallest value
    first = order[np.r_[True, rows[order][1:] != rows[order][:-1]]]
    return flat[starts[first]].astype(np.float32)


class ReservoirSampler:
    """Uniform sample of `size` rows of a stream (Vitter's algorithm R, vectorised per batch)."""

    def __init__(self, size: int | None, seed: int = 0):
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.seen = 0
        self._chunks_x: list[np.ndarray] = []
        self._chunks_y: list[np.ndarray] = []
        self._x: np.ndarray | None = None
        self._y: np.ndarray | None = None

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        n = x.shape[0]
        filled = self.seen if self._x is None else self.size
        room = n if self.size is None else max(0, min(n, self.size - filled))
        if room:
            self._chunks_x.append(x[:room].copy())
            self._chunks_y.append(y[:room].copy())
            self.seen += room
            x, y = x[room:], y[room:]
        if x.shape[0] == 0:
            return
        if self._x is None:
            self._x, self._y = np.concatenate(self._chunks_x), np.concatenate(self._chunks_y)
            self._chunks_x, self._chunks_y = [], []
        positions = self.seen + np.arange(x.shape[0])  # 0-based stream positions
        r = np.floor(self.rng.random(x.shape[0]) * (positions + 1)).astype(np.int64)
        take = np.flatnonzero(r < self.size)
        if take.size:
            # A later row replacing the same slot wins, as in the sequential algorithm.
            slots = r[take]
            last = take[::-1][np.unique(slots[::-1], return_index=True)[1]]
            self._x[r[last]] = x[last]
            self._y[r[last]] = y[last]
        self.seen += x.shape[0]

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        if self._x is not None:
            return self._x, self._y
        if not self._chunks_x:
            raise ValueError("no records were seen")
        return np.concatenate(self._chunks_x), np.concatenate(self._chunks_y)

    def gathered(self, cluster, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(records, labels, records seen) of one uniform sample of `size` rows over every host's
        stream, the same on every host (a host's rows in rank order). How many rows each host
        gives is drawn from the multivariate hypergeometric law of the hosts' record counts (the
        same draw on every host, from `seed`), and each host gives a uniform subset of its own
        sample: together a uniform sample without replacement of all the records, as one host's.
        A host that saw no records gives none. On one host: `sample()` as it is."""
        counts = np.concatenate(cluster.gather(np.array([self.seen], dtype=np.int64)))
        total = int(counts.sum())
        if total == 0:
            raise ValueError("no records were seen")
        x, y = self.sample() if self.seen else (np.empty((0, dim), np.float32), np.empty(0, np.float32))
        if self.size is not None and total > self.size:
            share = int(np.random.default_rng(seed).multivariate_hypergeometric(counts, self.size)[cluster.rank])
            if share < x.shape[0]:
                keep = np.sort(self.rng.choice(x.shape[0], share, replace=False))
                x, y = x[keep], y[keep]
        if cluster.several:
            x, y = np.concatenate(cluster.gather(x)), np.concatenate(cluster.gather(y))
        return x, y, total


class KNearestNeighbors(StreamingEstimator):
    """SageMaker k-NN's model. See the module docstring.

    Parameters are the declared hyperparameters (AWS's names and defaults; `_faiss_index_nprobe`
    is `faiss_index_nprobe`), plus `backend` ("faiss", "torch" or "auto"), `random_state` and
    `device`. Fitted attributes: `index_` (FAISS index), `labels_` (float32, one per indexed
    record), `projection_` (RandomProjection or None), `n_features_in_`, `n_samples_seen_`.
    """

    hyperparameters = HYPERPARAMETERS
    positional = ("k", "predictor_type")
    job_only = ("feature_dim", "epochs")
    notebook_defaults = {"predictor_type": "classifier", "sample_size": None}  # None: index every record
    extra_parameters = {"backend": "auto"}
    format_name = "smalgos-knn"
    uses_labels = True
    fitted_attribute = "index_"

    # -- notebook API ---------------------------------------------------------------------------

    def kneighbors(self, X, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(distances (n, k), neighbours' labels (n, k)), closest first."""
        dist, idx = self._search(X, k or self.k)
        return dist, self.labels_[idx]

    def predict(self, X) -> np.ndarray:
        return self.predict_neighbors(X)[0]

    def predict_neighbors(self, X, k: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(predicted label (n,), neighbours' labels (n, k), distances (n, k))."""
        dist, labels = self.kneighbors(X, k)
        if self.predictor_type == "classifier":
            pred = majority_vote(labels)
        else:
            pred = labels.astype(np.float64).mean(axis=1).astype(np.float32)
        return pred, labels, dist

    # -- streaming API --------------------------------------------------------------------------

    def begin(self, n_features: int) -> None:
        self.validated_parameters(feature_dim=n_features)
        self._device = pick_device(self.device)
        self.n_features_in_ = int(n_features)
        self.projection_ = None
        if self.dimension_reduction_type is not None:
            self.projection_ = RandomProjection.draw(self.dimension_reduction_type, n_features,
                                                     self._reduction_target(n_features), self.random_state)
        # Each host draws its own stream of random numbers (host 1's is a single host's).
        rank = self.cluster.rank
        self._sampler = ReservoirSampler(self.sample_size, seed=host_seed(self.random_state, rank))

    def _reduction_target(self, n_features: int) -> int:
        """The dimension records are projected to. For `faiss.IVFPQ` with a `faiss_index_pq_m` that
        does not divide `dimension_reduction_target`, AWS documents that "the algorithm increases the
        value of the dimension_reduction_target" (kNN_hyperparameters): it is raised to the next
        multiple of m. Should that no longer reduce (>= feature_dim, undocumented), the target is
        kept and the reduced records are zero-padded at indexing, as without reduction."""
        target, m = int(self.dimension_reduction_target), self.faiss_index_pq_m
        if self.index_type != "faiss.IVFPQ" or m is None or target % m == 0:
            return target
        raised = -(-target // m) * m
        if raised >= n_features:
            log.warning("faiss_index_pq_m=%d does not divide dimension_reduction_target=%d, and its next multiple"
                        " %d is not below feature_dim=%d: the reduced records are zero-padded to %d",
                        m, target, raised, n_features, raised)
            return target
        log.info("dimension_reduction_target raised from %d to %d, a multiple of faiss_index_pq_m=%d",
                 target, raised, m)
        return raised

    def _reduce(self, X) -> np.ndarray:
        """Records as the index sees them: projected if asked, float32, C-contiguous."""
        X = as_float32(X)
        if self.projection_ is None:
            out = X.toarray() if sp.issparse(X) else X
        else:
            dev = pick_device(self.device)
            out = to_numpy(self.projection_.transform(as_dense(X, dev)))
        return np.ascontiguousarray(out, dtype=np.float32)

    def partial_fit(self, X, y) -> "KNearestNeighbors":
        y = np.asarray(y, dtype=np.float32).reshape(-1)
        if X.shape[0] != y.shape[0]:
            raise InputError(f"{X.shape[0]} records but {y.shape[0]} labels")
        self._sampler.add(self._reduce(conform_width(X, self.n_features_in_, "the mini-batch")), y)
        return self

    @property
    def index_dim_(self) -> int:
        return self.projection_.target_dim if self.projection_ is not None else self.n_features_in_

    def _pq_m(self, dim: int) -> int:
        if self.faiss_index_pq_m is not None:
            return self.faiss_index_pq_m
        # Not given: the largest allowed m dividing the dimension with at least 2 dims per sub-quantizer.
        fitting = [m for m in PQ_M_CHOICES if dim % m == 0 and dim // m >= 2]
        return max(fitting) if fitting else 1

    def finalize(self) -> "KNearestNeighbors":
        x, y, self.n_samples_seen_ = self._sampler.gathered(self.cluster, self.index_dim_, self.random_state)
        self._sampler = None
        faiss = _faiss()
        n, dim = x.shape
        normalize = self.index_metric == "COSINE"
        if normalize:
            x = _normalize(x)
        metric = faiss.METRIC_L2 if self.index_metric == "L2" else faiss.METRIC_INNER_PRODUCT
        self.padded_dim_ = dim
        if self.index_type == "faiss.Flat":
            index = faiss.index_factory(dim, "Flat", metric)
        else:
            nlist = self.faiss_index_ivf_nlists
            if nlist in (None, AUTO):  # AWS: sqrt(sample_size); a notebook's sample_size=None: sqrt(records)
                nlist = int(math.sqrt(n if self.sample_size is None else self.sample_size))
            nlist = max(1, min(int(nlist), n))  # FAISS needs a training point per list
            if self.index_type == "faiss.IVFFlat":
                index = faiss.index_factory(dim, f"IVF{nlist},Flat", metric)
            else:
                m = self._pq_m(dim)
                # m not dividing the dimension: AWS zero-pads the data to a multiple of m (L2 distances
                # unchanged) when no reduction is applied; with reduction the target was raised in
                # begin(), so this pads only the fallback case there.
                if dim % m:
                    self.padded_dim_ = dim + (m - dim % m)
                    x = np.pad(x, ((0, 0), (0, self.padded_dim_ - dim)))
                # 8-bit codes (256 centroids per sub-quantizer) once the sample can train them.
                nbits = max(1, min(8, int(math.log2(max(2, n // 39)))))
                index = faiss.index_factory(self.padded_dim_, f"IVF{nlist},PQ{m}x{nbits}", metric)
                index.do_polysemous_training = False  # Hamming filtering is never used; it costs minutes
            index.train(x)
        index.add(x)
        self.index_ = index
        self.labels_ = y.astype(np.float32)
        self._prepare_search()
        log.info("Built a %s index (%s) over %d sampled records of %d", self.index_type, self.index_metric,
                 index.ntotal, self.n_samples_seen_)
        return self

    # -- search ---------------------------------------------------------------------------------

    def _prepare_search(self) -> None:
        faiss = _faiss()
        if self.index_type != "faiss.Flat":
            faiss.extract_index_ivf(self.index_).nprobe = int(self.faiss_index_nprobe)
        dev = pick_device(self.device)
        backend = self.backend
        if backend == "auto":
            backend = "torch" if dev.type != "cpu" and self.index_type == "faiss.Flat" else "faiss"
        if backend == "torch":
            if self.index_type != "faiss.Flat":
                raise ValueError("the torch backend searches faiss.Flat indexes only")
            base = self.index_.reconstruct_n(0, self.index_.ntotal)
            self._torch_base = torch.from_numpy(base).to(dev)
        else:
            self._torch_base = None
        self.backend_ = backend

    def _search(self, X, k: int) -> tuple[np.ndarray, np.ndarray]:
        self.check_fitted()
        q = self._reduce(X)
        if self.index_metric == "COSINE":
            q = _normalize(q)
        if self.padded_dim_ != q.shape[1]:
            q = np.pad(q, ((0, 0), (0, self.padded_dim_ - q.shape[1])))
        k = max(1, min(int(k), self.index_.ntotal))
        if self._torch_base is not None:
            metric = "l2" if self.index_metric == "L2" else "ip"
            dist, idx = top_k(torch.from_numpy(q).to(self._torch_base.device), self._torch_base, k, metric)
            return to_numpy(dist, np.float32), to_numpy(idx)
        dist, idx = self.index_.search(q, k)
        missing = (idx < 0).any(axis=1)
        if missing.any():  # too few candidates in the probed lists: search those rows exhaustively
            ivf = _faiss().extract_index_ivf(self.index_)
            nprobe, ivf.nprobe = ivf.nprobe, ivf.nlist
            try:
                dist[missing], idx[missing] = self.index_.search(np.ascontiguousarray(q[missing]), k)
            finally:
                ivf.nprobe = nprobe
        return dist.astype(np.float32, copy=False), idx

    def model_arrays(self) -> dict:
        return {"labels": self.labels_}

    def test_scorer(self) -> "_PredictionScorer":
        return _PredictionScorer(self)

    # -- artifacts ------------------------------------------------------------------------------

    def metadata(self) -> dict:
        reduction = None
        if self.projection_ is not None:
            p = self.projection_
            reduction = {"type": p.kind, "seed": p.seed, "target_dim": p.target_dim, "input_dim": p.input_dim}
        return {"k": int(self.k), "predictor_type": self.predictor_type, "dimension_reduction": reduction,
                "normalize": self.index_metric == "COSINE", "version": VERSION,
                "index_type": self.index_type, "index_metric": self.index_metric,
                "faiss_index_nprobe": int(self.faiss_index_nprobe), "feature_dim": int(self.n_features_in_),
                "index_dim": int(self.padded_dim_)}

    def save(self, model_dir) -> list[Path]:
        faiss = _faiss()
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        self.check_fitted()
        files = [model_dir / INDEX_FILE, model_dir / LABELS_FILE, model_dir / META_FILE]
        faiss.serialize_index(self.index_).tofile(files[0])
        self.labels_.astype("<f4").tofile(files[1])
        self.write_metadata(files[2], self.metadata())
        if self.projection_ is not None:
            save_file({k: np.ascontiguousarray(v) for k, v in self.projection_.state().items()},
                      str(model_dir / PROJECTION_FILE))
            files.append(model_dir / PROJECTION_FILE)
        return files

    @classmethod
    def load(cls, model_dir, backend: str = "auto", device: str | None = None) -> "KNearestNeighbors":
        """A fitted model from `save()`'s files; ValueError when they are inconsistent."""
        faiss = _faiss()
        model_dir = Path(model_dir)
        meta = cls.read_metadata(model_dir / META_FILE)
        k, predictor_type = int(meta["k"]), meta["predictor_type"]
        predictor_types = HYPERPARAMETERS["predictor_type"].choices
        if k < 1 or predictor_type not in predictor_types:
            raise ValueError(f"{META_FILE}: k must be >= 1 and predictor_type one of {predictor_types}")
        index = faiss.deserialize_index(np.fromfile(model_dir / INDEX_FILE, dtype=np.uint8))
        labels = np.fromfile(model_dir / LABELS_FILE, dtype="<f4").astype(np.float32)
        if labels.shape[0] != index.ntotal:
            raise ValueError(f"{LABELS_FILE} holds {labels.shape[0]} labels for an index of {index.ntotal} records")
        red = meta.get("dimension_reduction")
        feature_dim = int(meta.get("feature_dim", red["input_dim"] if red else index.d))
        est = cls(k, predictor_type, index_type=meta.get("index_type", "faiss.Flat"),
                  index_metric=meta.get("index_metric", "COSINE" if meta.get("normalize") else "L2"),
                  faiss_index_nprobe=int(meta.get("faiss_index_nprobe", 5)), backend=backend, device=device)
        est.projection_ = None
        if red:
            est.dimension_reduction_type, est.dimension_reduction_target = red["type"], int(red["target_dim"])
            arrays = load_file(str(model_dir / PROJECTION_FILE))
            est.projection_ = RandomProjection.from_state(red["type"], int(red["input_dim"]), int(red["target_dim"]),
                                                          int(red.get("seed", 0)), arrays)
        est.n_features_in_ = feature_dim
        est.padded_dim_ = int(meta.get("index_dim", index.d))
        if est.padded_dim_ != index.d or est.index_dim_ > index.d:
            raise ValueError(f"{META_FILE}: index_dim {est.padded_dim_} does not match the index ({index.d})")
        est.index_, est.labels_ = index, labels
        est.n_samples_seen_ = index.ntotal
        est._prepare_search()
        return est


class _PredictionScorer:
    """The test channel's accuracy (classifier) or mse (regressor) of the predicted labels."""

    def __init__(self, knn: KNearestNeighbors):
        self.knn, self.right, self.sq_err = knn, 0, 0.0

    def update(self, features, labels) -> None:
        pred = self.knn.predict(features)
        self.right += int((pred == labels).sum())
        self.sq_err += float(((pred.astype(np.float64) - labels) ** 2).sum())

    def result(self, records: int) -> dict[str, float]:
        if self.knn.predictor_type == "classifier":
            return {"accuracy": self.right / records}
        return {"mse": self.sq_err / records}


def _normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > 0, norms, 1)).astype(np.float32)
