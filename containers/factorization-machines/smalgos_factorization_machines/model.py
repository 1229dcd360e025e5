"""A second-order factorization machine as SageMaker's `factorization-machines:1` trains it.
Usable from a notebook with numpy arrays or scipy CSR matrices:

    fm = FactorizationMachines(num_factors=8, predictor_type="binary_classifier", epochs=10,
                               factors_lr=0.01).fit(X, y)
    fm.predict_scores(X)      # P(label = 1); the raw ŷ for a regressor
    fm.predict(X)             # 0/1 labels (score >= 0.5); ŷ for a regressor

Model: ŷ = w0 + Σ wᵢxᵢ + ½ Σ_f [(Σ vᵢ_f xᵢ)² − Σ vᵢ_f² xᵢ²] (see `batches.py`), trained by
mini-batch lazy Adam (`smalgos.maths.lazy_adam`) on log loss of sigmoid(ŷ) (binary_classifier) or ½(ŷ − y)²
(regressor), `epochs` passes, each term (bias w0, linear w, factors V) with its own init, lr and
wd. Only the rows of features present in a mini-batch are read and updated, so sparse data of a
large `feature_dim` cost O(k · nnz) per step (V itself is feature_dim × num_factors float32,
plus Adam's two moments of the same size while training).

Which optimizer AWS's FM uses is not documented; its knobs (`eps`, `clip_gradient`,
`rescale_grad`, per-term `lr`/`wd`) are MXNet's optimizer arguments. Adam, because AWS's default
learning rates (bias 0.1, linear 1e-3, factors 1e-4) are step sizes: Adam moves a parameter by
about `lr` per step whatever the gradient's scale, while plain SGD at those rates barely moves
factors that start at sigma 1e-3.

Across hosts (`self.cluster`, set by the training driver) every step is one step of all the
hosts' mini-batches: the rows of w and V any host touched, each host's gradients summed on them
with its records (`summed_across_hosts`), so every host makes the same update and holds the same
parameters; a host whose records ran out steps with 0 rows. The pass's metrics are summed too.

Fitted attributes: `w0_` (1,), `w_` (feature_dim,), `v_` (feature_dim, num_factors) float32,
`n_features_in_`, `n_samples_seen_` (records of the last pass), `epoch_metrics_` (each pass's
training metrics: the model's predictions before each step, as MXNet's metrics count them).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.numpy import save_file

from smalgos.artifacts import load_arrays
from smalgos.errors import InputError
from smalgos.estimator import StreamingEstimator
from smalgos.maths.device import generator, pick_device, to_numpy
from smalgos.maths.inputs import as_float32, check_labels, conform_width
from smalgos.maths.lazy_adam import Group, LazyAdam, summed_across_hosts
from smalgos.maths.threads import cpu_threads_for

from .batches import make_batch
from .declaration import HYPERPARAMETERS, TERMS
from .evaluation import Tally, residual

log = logging.getLogger("smalgos")

MODEL_FILE = "model_algo-1.safetensors"  # tensors w0_weight (1,), w1_weight (d,), v (d, k)
META_FILE = "model_algo-1.json"
TENSORS = {"w0_weight": "w0_", "w1_weight": "w_", "v": "v_"}


def _work(X, num_factors: int) -> int:
    """Values one mini-batch's step touches: non-zeros (or all entries) × num_factors."""
    return (X.nnz if sp.issparse(X) else X.size) * num_factors


def _initial(method: str, sigma: float, scale: float | None, value: float | None, shape: tuple,
             gen: torch.Generator) -> torch.Tensor:
    if method == "normal":
        return torch.randn(shape, generator=gen) * sigma
    if method == "uniform":
        return (torch.rand(shape, generator=gen) * 2 - 1) * scale
    return torch.full(shape, float(value))


class FactorizationMachines(StreamingEstimator):
    """Second-order FM for binary classification or regression. See the module docstring.

    Parameters are the declared hyperparameters (AWS's names and defaults), plus `random_state`
    and `device`."""

    hyperparameters = HYPERPARAMETERS
    positional = ("num_factors",)
    uses_labels = True
    format_name = "smalgos-factorization-machines"
    fitted_attribute = "v_"

    @property
    def binary(self) -> bool:
        return self.predictor_type == "binary_classifier"

    def passes(self) -> int:
        return int(self.epochs)

    # -- notebook API ---------------------------------------------------------------------------

    def decision_function(self, X) -> np.ndarray:
        """The raw FM output ŷ per record, (n,) float32."""
        return to_numpy(self._raw(X), np.float32)

    def predict_scores(self, X) -> np.ndarray:
        """AWS's `score`: sigmoid(ŷ) = P(label = 1) for a binary classifier, ŷ for a regressor."""
        raw = self._raw(X)
        return to_numpy(torch.sigmoid(raw) if self.binary else raw, np.float32)

    def predict(self, X) -> np.ndarray:
        """AWS's `predicted_label` (1.0 when score >= 0.5) for a binary classifier; ŷ for a regressor."""
        scores = self.predict_scores(X)
        return (scores >= 0.5).astype(np.float32) if self.binary else scores

    def _raw(self, X) -> torch.Tensor:
        self.check_fitted()
        w0, w, v = self._serving_tensors()
        X = conform_width(as_float32(X), self.n_features_in_)
        with cpu_threads_for(_work(X, v.shape[1]), w.device):
            return w0 + make_batch(X, w.device).forward(w, v)

    def _serving_tensors(self) -> tuple[torch.Tensor, ...]:
        dev = pick_device(self.device)
        cached = getattr(self, "_serving", None)
        if cached is None or cached[0] is not self.v_ or cached[1][0].device != dev:
            cached = (self.v_, tuple(torch.from_numpy(a).to(dev) for a in (self.w0_, self.w_, self.v_)))
            self._serving = cached
        return cached[1]

    # -- streaming API --------------------------------------------------------------------------

    def begin(self, n_features: int) -> None:
        hp = self.validated_parameters(feature_dim=n_features)
        self._device = dev = pick_device(self.device)
        gen = generator(self.random_state)
        d, k = int(n_features), int(self.num_factors)
        shapes = {"bias": (1,), "linear": (d,), "factors": (d, k)}
        groups = {term: Group(_initial(hp[f"{term}_init_method"], hp[f"{term}_init_sigma"], hp[f"{term}_init_scale"],
                                       hp[f"{term}_init_value"], shapes[term], gen).to(dev),
                              lr=hp[f"{term}_lr"], wd=hp[f"{term}_wd"])
                  for term in TERMS}
        self._optimizer = LazyAdam(groups, self.eps, self.clip_gradient, self.rescale_grad)
        self.n_features_in_ = d
        self.epoch_metrics_: list[dict[str, float]] = []
        self._tally = Tally(self.predictor_type)
        log.info("Factorization machine: %s, feature_dim %d, num_factors %d (%d parameters) on %s",
                 self.predictor_type, d, k, 1 + d + d * k, dev)

    def partial_fit(self, X, y=None) -> "FactorizationMachines":
        X = conform_width(as_float32(X), self.n_features_in_, "the mini-batch")
        y = check_labels(y, "the mini-batch", predictor=self.predictor_type, needed_by="factorization-machines")
        if X.shape[0] != y.shape[0]:
            raise InputError(f"{X.shape[0]} records but {y.shape[0]} labels")
        if X.shape[0] == 0 and not self.cluster.several:  # several: the others' step is this host's too
            return self
        with cpu_threads_for(_work(X, int(self.num_factors)), self._device):
            self._step(X, y)
        return self

    def _step(self, X, y: np.ndarray) -> None:
        groups = self._optimizer.groups
        w0, w, v = (groups[t].param for t in TERMS)
        batch = make_batch(X, self._device, for_training=True)
        labels = torch.from_numpy(y).to(self._device)
        raw = w0 + batch.forward(w, v)
        self._tally.update(raw, labels)
        r = residual(raw, labels, self.predictor_type)
        rows, gw, gv = batch.gradients(r)
        grads, records = {"bias": (None, r.sum().reshape(1)), "linear": (rows, gw), "factors": (rows, gv)}, batch.n
        if self.cluster.several:  # one step of every host's mini-batch, the same on every host
            grads, records = summed_across_hosts(self.cluster, grads, records)
        self._optimizer.step(grads, records)

    def end_epoch(self) -> None:
        """Close a pass: its training metrics (every host's records) join `epoch_metrics_`."""
        tally = self._tally.merged(self.cluster)
        metrics = tally.result()
        self._closed_epoch_metrics = metrics or {}
        if metrics:
            self.epoch_metrics_.append(metrics)
            self.n_samples_seen_ = tally.n
            log.info("Epoch %d of %d: train %s", len(self.epoch_metrics_), self.passes(),
                     ", ".join(f"{k}={v:.6g}" for k, v in metrics.items()))
        self._tally = Tally(self.predictor_type)

    def epoch_metrics(self) -> dict[str, float]:
        return dict(getattr(self, "_closed_epoch_metrics", {}))

    def finalize(self) -> "FactorizationMachines":
        if getattr(self, "_optimizer", None) is None:
            raise InputError("no records were seen")
        if self._tally.n:  # partial_fit without end_epoch
            self.end_epoch()
        if not self.epoch_metrics_:
            raise InputError("no records were seen")
        groups = self._optimizer.groups
        self.w0_, self.w_, self.v_ = (to_numpy(groups[t].param, np.float32) for t in TERMS)
        self._optimizer = None  # frees Adam's moments
        return self

    # -- artifacts ------------------------------------------------------------------------------

    def save(self, model_dir) -> list[Path]:
        self.check_fitted()
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        save_file({name: np.ascontiguousarray(getattr(self, attr)) for name, attr in TENSORS.items()},
                  str(model_dir / MODEL_FILE))
        meta = self.write_metadata(model_dir / META_FILE, {
            "predictor_type": self.predictor_type, "feature_dim": int(self.v_.shape[0]),
            "num_factors": int(self.v_.shape[1]), "num_records": int(getattr(self, "n_samples_seen_", 0))})
        return [model_dir / MODEL_FILE, meta]

    @classmethod
    def load(cls, model_dir, device: str | None = None) -> "FactorizationMachines":
        model_dir = Path(model_dir)
        meta = cls.read_metadata(model_dir / META_FILE)
        d, k = int(meta["feature_dim"]), int(meta["num_factors"])
        est = cls(k, predictor_type=meta["predictor_type"], device=device)
        est.validated_parameters(feature_dim=d)  # refuses a predictor_type this version does not know
        arrays = load_arrays(model_dir / MODEL_FILE, dict(zip(TENSORS, ((1,), (d,), (d, k)))))
        for name, attr in TENSORS.items():
            setattr(est, attr, arrays[name])
        est.n_features_in_ = d
        est.n_samples_seen_ = int(meta.get("num_records", 0))
        return est

    # -- what the training driver reports -------------------------------------------------------

    def model_arrays(self) -> dict:
        return {"bias w0": self.w0_, "linear weights w": self.w_, "factors v": self.v_}

    def training_metrics(self) -> dict[str, float]:
        return dict(self.epoch_metrics_[-1]) if getattr(self, "epoch_metrics_", None) else {}

    def test_scorer(self) -> "_TestScorer":
        return _TestScorer(self)


class _TestScorer:
    """The test channel's metrics (AWS's names) from the final model."""

    def __init__(self, fm: FactorizationMachines):
        self.fm, self.tally = fm, Tally(fm.predictor_type)

    def update(self, features, labels) -> None:
        y = check_labels(labels, "Channel 'test'", predictor=self.fm.predictor_type, needed_by="factorization-machines")
        raw = self.fm._raw(features)
        self.tally.update(raw, torch.from_numpy(y).to(raw.device))

    def result(self, records: int) -> dict[str, float]:
        return self.tally.result()
