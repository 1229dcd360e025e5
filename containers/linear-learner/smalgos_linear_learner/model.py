"""Linear Learner's maths: many linear models trained side by side as one torch computation.

Usable on its own with numpy arrays or scipy CSR matrices (no HTTP, no `/opt/ml`):

    >>> from smalgos_linear_learner.model import LinearLearner
    >>> est = LinearLearner("binary_classifier", epochs=10, mini_batch_size=64).fit(X, y)
    >>> est.predict(X_new)           # predicted_label, float32
    >>> est.predict_scores(X_new)    # AWS's "score": P(y=1) for logistic loss
    >>> est.save("model/"); LinearLearner.load("model/")

or from a stream that does not fit in memory: `fit_stream(train, validation)` takes *epoch
sources*, callables returning a fresh iterator of batches (objects with `features`, `labels`,
`weights`, such as `smalgos.formats.batch.Batch`, or `(X, y)` tuples) for every pass.

How training goes (AWS's description of Linear Learner, with our choices where AWS is silent):

1. **Scaler pass.** The first `max(num_point_for_scaler, min(num_calibration_samples, 10000))`
   training records are read (one pass, closed early). The first `num_point_for_scaler` of them
   give per-feature mean and standard deviation (`normalize_data`, `unbias_data`) and, for
   regression, label mean and deviation (`normalize_label`, `unbias_label`). Features are never
   rewritten: the scaler is folded into the weights, so sparse data stays sparse. The sample
   also sets `positive_example_weight_mult="balanced"` (#negatives/#positives) and
   `balance_multiclass_weights` (n / (C n_c); a class absent from the sample weighs 1e6), and it
   is the data for model selection and threshold calibration when there is no validation channel.
2. **Parallel models.** `num_models` models share every setting except learning rate, `wd`, `l1`
   and (when `auto`) the positive-example weight. A hyperparameter left at `auto` is searched on a
   fixed grid; one the user set is model 0's value and the other models take close values
   (learning rate x 0.5, 2, 0.25; wd and l1 x 0.1, 10 unless 0). Grid points are ordered so that
   any prefix varies one setting at a time around model 0; `num_models=auto` takes the whole grid,
   at most 32 points. Weights are one tensor `(d, num_models * k)`, k = 1 or num_classes, and one
   matrix product serves all models.
3. **Updates.** Mini-batch gradients of the mean (weighted) loss; L2 `wd` added to the gradient
   (MXNet's coupled weight decay; bias `wd x bias_wd_mult`); optimizers sgd (MXNet momentum),
   adam (bias-corrected, eps 1e-8), rmsprop (decay 0.95, eps 1e-8); bias learning rate
   `learning_rate x bias_lr_mult`; `l1` is applied as a **proximal** step after every update
   (soft-threshold by `lr_t x l1`, divided for adam/rmsprop by the same per-weight denominator
   sqrt(v)+eps that scales their gradient step), which gives exact zeros; the learning rate is multiplied by
   `lr_scheduler_factor` every `lr_scheduler_step` updates, not below `lr_scheduler_minimum_lr`.
4. **Every epoch** each model is scored on the validation channel (else on the training sample
   for threshold criteria, or on the epoch's running training loss): binary classifiers by
   `binary_classifier_model_selection_criteria` at the best threshold over up to
   `num_calibration_samples` records, other predictors by their loss. Each model keeps a copy of
   its best epoch; training stops early when the best value over all models has not improved by
   more than `early_stopping_tolerance` (relative) for `early_stopping_patience` epochs.
5. **Selection.** The model with the best criterion wins, with its best epoch's weights and
   threshold; the scaler and label scaling are folded into `coef_`/`intercept_`.

Where the code is: `trainer.py` (steps 1 and 2, and the epoch loop), `optimizers.py` (step 3),
`selection.py` (steps 4 and 5), `checkpoints.py` (managed spot training), `inputs.py` (checks on
the records read), `hosts.py` (what several hosts merge to train as one job: set `cluster`, a
`smalgos.distributed.Cluster`, before `fit_stream`); this module is the estimator.

Scores (AWS's `score` field): binary logistic -> P(y=1); binary hinge -> the raw margin (the
threshold is calibrated in margin units, 0 under `loss_function`); multiclass -> softmax
probabilities; regression -> the prediction. `predicted_label` uses the calibrated threshold.

Saved model format (`save(directory)`), readable with `safetensors` and `json` alone:

    model.safetensors   weight       float32 (feature_dim, k)   scaler folded in: score = x @ weight + bias
                        bias         float32 (k,)               (then sigmoid / softmax as per "score")
                        scaler_mean  float32 (feature_dim,)     informational: the data scaler
                        scaler_std   float32 (feature_dim,)
    model.json          {"format": "smalgos-linear-learner", "format_version": 1,
                         "predictor_type", "loss", "score": "probability"|"margin"|"value",
                         "feature_dim", "num_classes", "classes", "threshold",
                         "label_mean", "label_std", "hyperparameters": {...resolved...},
                         "selected_model": {...}, "epochs_trained"}

k is 1 for binary classifiers and regressors, num_classes for multiclass. No pickle anywhere.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import scipy.sparse as sp
import torch

from smalgos.declaration import AUTO
from smalgos.distributed import SOLO
from smalgos.errors import InputError
from smalgos.estimator import DeclaredEstimator, read_metadata
from smalgos.maths.inputs import check_labels, checked_features, conform_width
from smalgos.maths.threads import cpu_threads_for

from . import losses as L
from .checkpoints import _jsonable
from .evaluation import BinaryMetrics, MulticlassMetrics, RegressionMetrics
from .declaration import HYPERPARAMETERS
from .inputs import _unpack, prechecked
from .selection import EVAL_BLOCK
from .trainer import EpochReport, _pick_device, _Trainer

__all__ = ["EVAL_BLOCK", "EpochReport", "EpochSource", "InputError", "LinearLearner", "array_source"]

log = logging.getLogger("smalgos.linear_learner")

FORMAT_NAME = "smalgos-linear-learner"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "model.json"

# Values `auto` resolves to when it is not searched (AWS's 2018 default-input.json).
AUTO_DEFAULTS = {
    "optimizer": "adam",
    "beta_1": 0.9,
    "beta_2": 0.999,
    "momentum": 0.0,
    "bias_lr_mult": 10.0,
    "bias_wd_mult": 0.0,
    "lr_scheduler_factor": 0.99,
    "lr_scheduler_minimum_lr": 1e-5,
    "num_calibration_samples": 10_000_000,
}

EpochSource = Callable[[], Iterable[Any]]


class LinearLearner(DeclaredEstimator):
    """SageMaker Linear Learner as an estimator. Its parameters are the declared hyperparameters
    (AWS's names and defaults), plus `random_state` and `device`.

    `random_state` fixes initialisation; `device` is "cpu", "cuda", ... or None for CUDA when
    available. Fitted attributes: `coef_` (feature_dim, k), `intercept_` (k,), `threshold_`,
    `scaler_mean_`, `scaler_std_`, `label_mean_`, `label_std_`, `classes_`, `feature_dim_`,
    `loss_`, `hyperparameters_` (resolved), `models_` (each model's settings), `selected_model_`,
    `history_` (EpochReport per epoch), `epochs_trained_`.
    """

    hyperparameters = HYPERPARAMETERS
    positional = ("predictor_type",)
    job_only = ("_tuning_objective_metric",)  # the job's: forces num_models=1 (train.py)
    notebook_defaults = {"predictor_type": "binary_classifier"}
    uses_labels = True
    fitted_attribute = "coef_"
    cluster = SOLO  # the hosts training together (train.py sets it for a job across hosts)

    def _resolve_parameters(self) -> dict:
        """Validate with the declaration (the one source of ranges and cross checks), resolve `auto`."""
        hp = self.validated_parameters()
        predictor = hp["predictor_type"]
        if hp["loss"] == AUTO:
            hp["loss"] = L.DEFAULT_LOSS[predictor]
        for name, value in AUTO_DEFAULTS.items():
            if hp[name] == AUTO:
                hp[name] = value
        regression = predictor == "regressor"
        if hp["normalize_data"] == AUTO:
            hp["normalize_data"] = True
        if hp["unbias_data"] == AUTO:
            hp["unbias_data"] = bool(hp["use_bias"])
        if hp["normalize_label"] == AUTO:
            hp["normalize_label"] = regression
        if hp["unbias_label"] == AUTO:
            hp["unbias_label"] = regression and bool(hp["use_bias"])
        if not regression:
            hp["normalize_label"] = hp["unbias_label"] = False
        if predictor != "multiclass_classifier":
            hp["num_classes"] = None
        if predictor != "binary_classifier" and hp["positive_example_weight_mult"] == AUTO:
            hp["positive_example_weight_mult"] = 1.0
        return hp

    # -- fitting ---------------------------------------------------------------------------------

    def fit(self, X, y, sample_weight=None, validation: tuple | None = None,
            callback: Callable[[EpochReport], None] | None = None) -> "LinearLearner":
        """Train on in-memory data. `validation=(X_val, y_val)` enables early stopping on it."""
        X = checked_features(X, "X")
        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise InputError(f"y must have one label per row of X: got {y.shape} for {X.shape[0]} rows")
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)
        batch = int(self._resolve_parameters()["mini_batch_size"])
        train = prechecked(array_source(X, y, w, batch_size=batch))  # X checked whole above
        val = None
        if validation is not None:
            Xv, yv = validation
            val = prechecked(array_source(checked_features(Xv, "The validation data"), np.asarray(yv, dtype=np.float32),
                                          None, batch_size=max(batch, EVAL_BLOCK)))
        return self.fit_stream(train, val, callback=callback)

    def fit_stream(self, train: EpochSource, validation: EpochSource | None = None, *,
                   callback: Callable[[EpochReport], None] | None = None,
                   should_stop: Callable[[], bool] | None = None,
                   checkpoint_dir: str | Path | None = None) -> "LinearLearner":
        """Train from epoch sources: callables returning a fresh iterator of batches per pass.

        `callback(EpochReport)` runs after every epoch; `should_stop()` is polled before every
        mini-batch (True: finish with the best weights so far). With `checkpoint_dir`, the full
        training state is written there after every epoch and a run with the same configuration
        resumes from it (SageMaker managed spot training)."""
        hp = self._resolve_parameters()
        device = _pick_device(self.device)
        trainer = _Trainer(hp, device, self.random_state, self.cluster)
        trainer.prepare(train)
        with cpu_threads_for(trainer.batch_work, device):
            trainer.run(train, validation, callback=callback, should_stop=should_stop or (lambda: False),
                        checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir))
        self._set_fitted(hp, trainer)
        bad = self._non_finite()
        if bad:
            del self.coef_  # not fitted: a non-finite model is never saved nor served
            raise InputError(
                f"Training diverged: the selected model has non-finite values in {', '.join(bad)}, so no "
                "model is saved. Lower learning_rate, raise wd or l1, lower init_scale, set normalize_data "
                "(and normalize_label for regressors) to true, or check the data for very large values")
        return self

    def _non_finite(self) -> list[str]:
        """Names of the fitted values that are NaN or infinite (empty: the model is usable)."""
        values = {"coef_ (weight)": self.coef_, "intercept_ (bias)": self.intercept_,
                  "threshold_": self.threshold_, "label_mean_": self.label_mean_, "label_std_": self.label_std_}
        return [name for name, v in values.items() if not np.all(np.isfinite(np.asarray(v, dtype=np.float64)))]

    def _set_fitted(self, hp: dict, trainer: "_Trainer") -> None:
        sel = trainer.selected
        k = trainer.k
        weight = trainer.final_weight.astype(np.float64)  # (d, k), normalised space
        bias = trainer.final_bias.astype(np.float64)  # (k,)
        inv_s = 1.0 / trainer.scaler_std
        coef = weight * inv_s[:, None]
        intercept = bias - (trainer.scaler_mean * inv_s) @ weight
        coef = coef * trainer.label_std
        intercept = intercept * trainer.label_std + trainer.label_mean
        self.coef_ = coef.astype(np.float32)
        self.intercept_ = intercept.astype(np.float32)
        self.threshold_ = float(trainer.final_threshold)
        self.scaler_mean_ = trainer.scaler_mean.astype(np.float32)
        self.scaler_std_ = trainer.scaler_std.astype(np.float32)
        self.label_mean_ = float(trainer.label_mean)
        self.label_std_ = float(trainer.label_std)
        self.feature_dim_ = trainer.d
        self.n_features_in_ = trainer.d
        self.loss_ = hp["loss"]
        self.predictor_type_ = hp["predictor_type"]
        self.num_classes_ = k if hp["predictor_type"] == "multiclass_classifier" else (
            2 if hp["predictor_type"] == "binary_classifier" else None)
        self.classes_ = (np.arange(self.num_classes_, dtype=np.float32)
                         if self.num_classes_ else None)
        self.hyperparameters_ = {key: _jsonable(v) for key, v in hp.items()}
        self.models_ = trainer.settings
        self.selected_model_ = {**trainer.settings[sel], "model": sel,
                                "epoch": int(trainer.best.epoch[sel])}
        self.history_ = trainer.history
        self.epochs_trained_ = trainer.first_epoch + len(trainer.history)
        self.f_beta_ = float(hp["f_beta"])
        self.accuracy_top_k_ = int(hp["accuracy_top_k"])
        self.loss_params_ = dict(trainer.report_loss_kwargs)
        log.info("Best model found for hyperparameters: %s", json.dumps(
            {key: _jsonable(v) for key, v in trainer.settings[sel].items()}))

    # -- prediction ------------------------------------------------------------------------------

    def decision_function(self, X) -> np.ndarray:
        """Linear outputs in label units, shape (n, k)."""
        self.check_fitted()
        X = self._conform(X)
        z = X @ self.coef_
        return np.asarray(z, dtype=np.float32) + self.intercept_

    def _linear_outputs(self, X) -> torch.Tensor:
        """`decision_function` as a tensor, computed by torch for dense blocks: in a training job,
        numpy's BLAS threads and torch's take turns at the cores, which made each block's product
        up to 8 times slower on 2 cores."""
        if sp.issparse(X):
            return torch.from_numpy(self.decision_function(X))
        self.check_fitted()
        X = self._conform(X)
        return torch.addmm(torch.from_numpy(self.intercept_).view(1, -1), torch.from_numpy(X),
                           torch.from_numpy(self.coef_))

    def predict_scores(self, X) -> np.ndarray:
        """AWS's `score`: (n,) for binary and regression, (n, num_classes) for multiclass."""
        z = self.decision_function(X)
        return self._scores_from_linear(z)

    def _scores_from_linear(self, z: np.ndarray) -> np.ndarray:
        from scipy.special import expit, softmax

        if self.predictor_type_ == "multiclass_classifier":
            return softmax(z, axis=1).astype(np.float32)
        z = z[:, 0]
        if self.predictor_type_ == "binary_classifier" and self.loss_ == "logistic":
            return expit(z).astype(np.float32)
        return z.astype(np.float32)

    def _labels_from_scores(self, scores: np.ndarray) -> np.ndarray:
        if self.predictor_type_ == "multiclass_classifier":
            return scores.argmax(axis=1).astype(np.float32)
        return (scores >= self.threshold_).astype(np.float32)

    def predict_with_scores(self, X) -> tuple[np.ndarray, np.ndarray | None]:
        """(score, predicted_label) in one pass; predicted_label is None for regressors."""
        scores = self.predict_scores(X)
        if self.predictor_type_ == "regressor":
            return scores, None
        return scores, self._labels_from_scores(scores)

    def predict(self, X) -> np.ndarray:
        """predicted_label (float32) for classifiers, the prediction for regressors."""
        scores, labels = self.predict_with_scores(X)
        return scores if labels is None else labels

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities (n, num_classes) for logistic / softmax models."""
        scores = self.predict_scores(X)
        if self.predictor_type_ == "multiclass_classifier":
            return scores
        if self.predictor_type_ == "binary_classifier" and self.loss_ == "logistic":
            return np.stack([1.0 - scores, scores], axis=1)
        raise InputError(f"predict_proba needs loss logistic or softmax_loss, not {self.loss_}")

    def _conform(self, X):
        return conform_width(checked_features(X, "the request"), self.feature_dim_)

    # -- evaluation ------------------------------------------------------------------------------

    def evaluate(self, source: EpochSource | tuple, hosts=None) -> dict:
        """Final metrics of the fitted model on a channel (epoch source) or on `(X, y)`.

        `hosts`: the `Cluster` whose hosts each score their part of the channel, for metrics of
        the whole channel on every host (default: `cluster`; `SOLO`: this host's records alone).

        Returns AWS's tokens: the objective (e.g. `mse_objective`), and per predictor type
        binary_classification_accuracy, binary_f_<beta>, precision, recall, roc_auc_score /
        multiclass_accuracy, multiclass_top_k_accuracy_<k>, dcg, macro_*, ... / mse, rmse,
        absolute_loss. Empty dict for an empty channel.
        """
        self.check_fitted()
        if isinstance(source, tuple):
            X, y = source
            source = array_source(checked_features(X, "X"), np.asarray(y, dtype=np.float32), None, 100_000)
        objective = L.objective_name(self.loss_)
        if self.predictor_type_ == "binary_classifier":
            acc = BinaryMetrics(objective, self.threshold_, self.f_beta_)
        elif self.predictor_type_ == "multiclass_classifier":
            acc = MulticlassMetrics(objective, self.num_classes_, self.accuracy_top_k_, self.f_beta_)
        else:
            acc = RegressionMetrics(objective)
        loss_fn = L.LOSS_FUNCTIONS[self.loss_]
        for raw in source():
            features, labels, _ = _unpack(raw)
            labels = check_labels(labels, "The evaluation data", predictor=self.predictor_type_,
                                  num_classes=self.num_classes_, needed_by="Linear Learner")
            zt = self._linear_outputs(features)
            z = zt.numpy()
            scores = self._scores_from_linear(z)
            if self.predictor_type_ == "multiclass_classifier":
                per = loss_fn(zt.unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))
            else:
                per = loss_fn(zt, torch.from_numpy(labels).view(-1, 1), **self.loss_params_)
            acc.update(scores, labels, per.numpy().ravel())
        acc.merge(self.cluster if hosts is None else hosts)
        return acc.result()

    # -- persistence -----------------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        """Write model.safetensors + model.json (see the module docstring). No pickle."""
        from safetensors.numpy import save_file

        self.check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        save_file({
            "weight": np.ascontiguousarray(self.coef_, dtype=np.float32),
            "bias": np.ascontiguousarray(self.intercept_, dtype=np.float32),
            "scaler_mean": np.ascontiguousarray(self.scaler_mean_, dtype=np.float32),
            "scaler_std": np.ascontiguousarray(self.scaler_std_, dtype=np.float32),
        }, str(directory / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
        meta = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "predictor_type": self.predictor_type_,
            "loss": self.loss_,
            "score": self._score_kind(),
            "feature_dim": int(self.feature_dim_),
            "num_classes": self.num_classes_,
            "classes": None if self.classes_ is None else [float(c) for c in self.classes_],
            "threshold": self.threshold_,
            "label_mean": self.label_mean_,
            "label_std": self.label_std_,
            "f_beta": self.f_beta_,
            "accuracy_top_k": self.accuracy_top_k_,
            "loss_params": self.loss_params_,
            "hyperparameters": self.hyperparameters_,
            "selected_model": {k: _jsonable(v) for k, v in self.selected_model_.items()},
            "epochs_trained": self.epochs_trained_,
        }
        (directory / METADATA_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")

    def _score_kind(self) -> str:
        if self.predictor_type_ == "regressor":
            return "value"
        if self.loss_ in ("logistic", "softmax_loss"):
            return "probability"
        return "margin"

    @classmethod
    def load(cls, directory: str | Path) -> "LinearLearner":
        """The model `save` wrote in `directory`. A fault is an InputError (a ValueError) whose
        message starts with the file at fault; serving (`serve.load_model`, through
        `smalgos.serving.estimator.load_estimator`) adds the directory to it."""
        from safetensors.numpy import load_file

        from smalgos.artifacts import inside_model_dir

        directory = Path(directory)
        meta_path, weights_path = directory / METADATA_FILE, directory / WEIGHTS_FILE
        if not meta_path.is_file() or not weights_path.is_file():
            raise InputError(f"No Linear Learner model in {directory}: expected {METADATA_FILE} and {WEIGHTS_FILE}")
        for path in (meta_path, weights_path):  # a symlink out of the model directory is not read
            inside_model_dir(directory, path)
        try:
            meta = read_metadata(meta_path, FORMAT_NAME, FORMAT_VERSION)  # its messages name model.json
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise InputError(str(exc)) from None
        tensors = load_file(str(weights_path))  # a SafetensorError: load_estimator names the file
        missing = [t for t in ("weight", "bias", "scaler_mean", "scaler_std") if t not in tensors]
        if missing:
            raise InputError(f"{WEIGHTS_FILE}: tensor(s) {', '.join(missing)} missing (found: "
                             f"{', '.join(sorted(tensors)) or 'none'})")
        try:
            est = cls._from_saved(meta, tensors)
        except InputError as exc:  # e.g. a hyperparameter from_hyperparameters refuses
            raise InputError(f"{METADATA_FILE}: {exc.message}") from None
        except KeyError as exc:
            raise InputError(f"{METADATA_FILE}: field {exc} missing") from None
        except (TypeError, ValueError) as exc:
            raise InputError(f"{METADATA_FILE}: {exc}") from None
        if est.coef_.shape[0] != est.feature_dim_:
            raise InputError(f"{weights_path}: weight has {est.coef_.shape[0]} rows but feature_dim is "
                             f"{est.feature_dim_}")
        bad = est._non_finite()
        if bad:
            raise InputError(f"{weights_path} / {meta_path} hold non-finite values in {', '.join(bad)} (the training "
                             "diverged)")
        return est

    @classmethod
    def _from_saved(cls, meta: dict, tensors: dict) -> "LinearLearner":
        hp = meta.get("hyperparameters", {})
        if not isinstance(hp, dict):
            raise TypeError(f"hyperparameters is {type(hp).__name__}, not an object")
        est = cls.from_hyperparameters({k: v for k, v in hp.items() if k != "predictor_type"},
                                       predictor_type=meta["predictor_type"])
        est.coef_ = tensors["weight"].astype(np.float32)
        est.intercept_ = tensors["bias"].astype(np.float32)
        est.scaler_mean_ = tensors["scaler_mean"].astype(np.float32)
        est.scaler_std_ = tensors["scaler_std"].astype(np.float32)
        est.threshold_ = float(meta["threshold"])
        est.label_mean_ = float(meta["label_mean"])
        est.label_std_ = float(meta["label_std"])
        est.feature_dim_ = est.n_features_in_ = int(meta["feature_dim"])
        est.loss_ = meta["loss"]
        est.predictor_type_ = meta["predictor_type"]
        est.num_classes_ = meta["num_classes"]
        est.classes_ = None if meta["classes"] is None else np.asarray(meta["classes"], dtype=np.float32)
        est.hyperparameters_ = hp
        est.selected_model_ = meta.get("selected_model", {})
        est.models_ = []
        est.history_ = []
        est.epochs_trained_ = int(meta.get("epochs_trained", 0))
        est.f_beta_ = float(meta.get("f_beta", 1.0))
        est.accuracy_top_k_ = int(meta.get("accuracy_top_k", 3))
        est.loss_params_ = dict(meta.get("loss_params", {}))
        return est


def array_source(X, y, w=None, batch_size: int = 1000) -> EpochSource:
    """An epoch source over in-memory arrays: each call yields (X, y, w) mini-batches in order."""

    def source():
        n = X.shape[0]
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            yield X[start:stop], y[start:stop], None if w is None else w[start:stop]

    return source
