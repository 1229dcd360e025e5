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

import contextlib
import itertools
import json
import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np
import scipy.sparse as sp
import torch

from smalgos.declaration import AUTO
from smalgos.errors import ClientError

from . import losses as L
from .evaluation import (THRESHOLD_CRITERIA, BinaryMetrics, MulticlassMetrics,
                         RegressionMetrics, calibrate, criterion_token)

log = logging.getLogger("smalgos.linear_learner")

FORMAT_NAME = "smalgos-linear-learner"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "model.json"
CHECKPOINT_WEIGHTS = "linear-learner-checkpoint.safetensors"
CHECKPOINT_META = "linear-learner-checkpoint.json"

MAX_AUTO_MODELS = 32
CALIBRATION_SAMPLE_CAP = 10_000  # training-sample rows kept for selection without validation
ABSENT_CLASS_WEIGHT = 1e6
EVAL_BLOCK = 8192  # records scored at once when evaluating
SMALL_BATCH_WORK = 1 << 22  # mini_batch_size x feature_dim x outputs below which one CPU thread is used

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
# lr_scheduler_step=auto: 100 during the first epoch, then a tenth of an epoch's batches.
AUTO_SCHEDULER_STEP = 100
AUTO_SCHEDULER_DECAYS_PER_EPOCH = 10
# Grids searched for `auto` values; the first entry is model 0's.
AUTO_LEARNING_RATES = {
    "adam": (0.1, 0.01, 0.3, 0.03),
    "rmsprop": (0.01, 0.1, 0.001, 0.03),
    "sgd": (0.1, 1.0, 0.01, 0.3),
}
AUTO_WD = (0.0, 1e-4, 1e-3, 1e-2)
AUTO_L1 = (0.0, 1e-4)
AUTO_POSITIVE_WEIGHT = (1.0, "balanced")
CLOSE_LR = (1.0, 0.5, 2.0, 0.25)
CLOSE_REG = (1.0, 0.1, 10.0)

ADAM_EPS = 1e-8
RMSPROP_DECAY = 0.95
RMSPROP_EPS = 1e-8


class InputError(ClientError, ValueError):
    """Bad data or parameters: a ClientError for the container, a ValueError in a notebook."""


@dataclass
class EpochReport:
    """What one epoch did, handed to the `callback` of `fit_stream`."""

    epoch: int  # 0-based
    epochs: int
    objective: str  # e.g. "binary_classification_cross_entropy_objective"
    train_loss: np.ndarray  # (num_models,) mean objective over the epoch's batches
    validation_loss: np.ndarray | None  # (num_models,) or None without validation data
    criterion: str  # e.g. "sampled_accuracy", "mse_objective"
    criterion_values: np.ndarray  # (num_models,) in the criterion's own direction
    criterion_minimize: bool
    best_value: float  # best criterion over models this epoch
    improved: bool  # relative improvement above tolerance over the best so far
    stop: bool  # early stopping triggers after this epoch
    records: int
    seconds: float

    @property
    def best_train_loss(self) -> float:
        return float(np.min(self.train_loss))

    @property
    def best_validation_loss(self) -> float | None:
        return None if self.validation_loss is None else float(np.min(self.validation_loss))


EpochSource = Callable[[], Iterable[Any]]


class LinearLearner:
    """SageMaker Linear Learner as an estimator. Parameters carry AWS's names and defaults.

    `random_state` fixes initialisation; `device` is "cpu", "cuda", ... or None for CUDA when
    available. Fitted attributes: `coef_` (feature_dim, k), `intercept_` (k,), `threshold_`,
    `scaler_mean_`, `scaler_std_`, `label_mean_`, `label_std_`, `classes_`, `feature_dim_`,
    `loss_`, `hyperparameters_` (resolved), `models_` (each model's settings), `selected_model_`,
    `history_` (EpochReport per epoch), `epochs_trained_`.
    """

    def __init__(
        self,
        predictor_type: str = "binary_classifier",
        *,
        num_classes: int | None = None,
        feature_dim: int | str = AUTO,
        mini_batch_size: int = 1000,
        epochs: int = 15,
        loss: str = AUTO,
        optimizer: str = AUTO,
        learning_rate: float | str = AUTO,
        beta_1: float | str = AUTO,
        beta_2: float | str = AUTO,
        momentum: float | str = AUTO,
        wd: float | str = AUTO,
        l1: float | str = AUTO,
        bias_lr_mult: float | str = AUTO,
        bias_wd_mult: float | str = AUTO,
        use_bias: bool = True,
        use_lr_scheduler: bool = True,
        lr_scheduler_step: int | str = AUTO,
        lr_scheduler_factor: float | str = AUTO,
        lr_scheduler_minimum_lr: float | str = AUTO,
        init_method: str = "uniform",
        init_scale: float = 0.07,
        init_sigma: float = 0.01,
        init_bias: float = 0.0,
        normalize_data: bool | str = True,
        normalize_label: bool | str = AUTO,
        unbias_data: bool | str = AUTO,
        unbias_label: bool | str = AUTO,
        num_point_for_scaler: int = 10000,
        num_models: int | str = AUTO,
        num_calibration_samples: int | str = AUTO,
        margin: float = 1.0,
        quantile: float = 0.5,
        loss_insensitivity: float = 0.01,
        huber_delta: float = 1.0,
        positive_example_weight_mult: float | str = 1.0,
        balance_multiclass_weights: bool = False,
        early_stopping_patience: int = 3,
        early_stopping_tolerance: float = 0.001,
        binary_classifier_model_selection_criteria: str = "accuracy",
        target_recall: float = 0.8,
        target_precision: float = 0.8,
        f_beta: float = 1.0,
        accuracy_top_k: int = 3,
        random_state: int = 0,
        device: str | None = None,
    ):
        self.predictor_type = predictor_type
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.mini_batch_size = mini_batch_size
        self.epochs = epochs
        self.loss = loss
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.momentum = momentum
        self.wd = wd
        self.l1 = l1
        self.bias_lr_mult = bias_lr_mult
        self.bias_wd_mult = bias_wd_mult
        self.use_bias = use_bias
        self.use_lr_scheduler = use_lr_scheduler
        self.lr_scheduler_step = lr_scheduler_step
        self.lr_scheduler_factor = lr_scheduler_factor
        self.lr_scheduler_minimum_lr = lr_scheduler_minimum_lr
        self.init_method = init_method
        self.init_scale = init_scale
        self.init_sigma = init_sigma
        self.init_bias = init_bias
        self.normalize_data = normalize_data
        self.normalize_label = normalize_label
        self.unbias_data = unbias_data
        self.unbias_label = unbias_label
        self.num_point_for_scaler = num_point_for_scaler
        self.num_models = num_models
        self.num_calibration_samples = num_calibration_samples
        self.margin = margin
        self.quantile = quantile
        self.loss_insensitivity = loss_insensitivity
        self.huber_delta = huber_delta
        self.positive_example_weight_mult = positive_example_weight_mult
        self.balance_multiclass_weights = balance_multiclass_weights
        self.early_stopping_patience = early_stopping_patience
        self.early_stopping_tolerance = early_stopping_tolerance
        self.binary_classifier_model_selection_criteria = binary_classifier_model_selection_criteria
        self.target_recall = target_recall
        self.target_precision = target_precision
        self.f_beta = f_beta
        self.accuracy_top_k = accuracy_top_k
        self.random_state = random_state
        self.device = device

    # -- parameters ------------------------------------------------------------------------------

    _NON_HYPERPARAMETERS = ("random_state", "device")

    def get_params(self) -> dict:
        import inspect

        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def set_params(self, **params) -> "LinearLearner":
        valid = self.get_params()
        for k, v in params.items():
            if k not in valid:
                raise InputError(f"Unknown parameter {k!r} for LinearLearner")
            setattr(self, k, v)
        return self

    @classmethod
    def from_hyperparameters(cls, hyperparameters: dict, **kwargs) -> "LinearLearner":
        """Build from a parsed hyperparameters dict (the declaration's names; extra keys ignored)."""
        import inspect

        names = set(inspect.signature(cls.__init__).parameters) - {"self"}
        given = {k: v for k, v in hyperparameters.items() if k in names and v is not None}
        given.update(kwargs)
        return cls(**given)

    def _resolve_parameters(self) -> dict:
        """Validate with the declaration (the one source of ranges and cross checks), resolve `auto`."""
        from .declaration import HYPERPARAMETERS

        raw = {k: v for k, v in self.get_params().items()
               if k not in self._NON_HYPERPARAMETERS and v is not None}
        hp = HYPERPARAMETERS.parse(raw)
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
        X = _check_features(X)
        y = np.asarray(y, dtype=np.float32)
        if y.ndim != 1 or y.shape[0] != X.shape[0]:
            raise InputError(f"y must have one label per row of X: got {y.shape} for {X.shape[0]} rows")
        w = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float32)
        batch = int(self._resolve_parameters()["mini_batch_size"])
        train = array_source(X, y, w, batch_size=batch)
        val = None
        if validation is not None:
            Xv, yv = validation
            val = array_source(_check_features(Xv), np.asarray(yv, dtype=np.float32), None,
                               batch_size=max(batch, EVAL_BLOCK))
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
        trainer = _Trainer(hp, device, self.random_state)
        trainer.prepare(train)
        with _cpu_threads_for(trainer.batch_work, device):
            trainer.run(train, validation, callback=callback, should_stop=should_stop or (lambda: False),
                        checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir))
        self._set_fitted(hp, trainer)
        return self

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
                                "epoch": int(trainer.best_epoch[sel])}
        self.history_ = trainer.history
        self.epochs_trained_ = trainer.first_epoch + len(trainer.history)
        self.f_beta_ = float(hp["f_beta"])
        self.accuracy_top_k_ = int(hp["accuracy_top_k"])
        self.loss_params_ = dict(trainer.report_loss_kwargs)
        log.info("Best model found for hyperparameters: %s", json.dumps(
            {key: _jsonable(v) for key, v in trainer.settings[sel].items()}))

    # -- prediction ------------------------------------------------------------------------------

    def _check_fitted(self) -> None:
        if not hasattr(self, "coef_"):
            raise InputError("This LinearLearner is not fitted yet: call fit() or load() first")

    def decision_function(self, X) -> np.ndarray:
        """Linear outputs in label units, shape (n, k)."""
        self._check_fitted()
        X = self._conform(X)
        z = X @ self.coef_
        return np.asarray(z, dtype=np.float32) + self.intercept_

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
        X = _check_features(X)
        d = self.feature_dim_
        if X.shape[1] != d:
            if sp.issparse(X) and X.shape[1] < d:
                X = sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], d))
            else:
                raise InputError(f"Feature count mismatch: the model expects {d} features per record "
                                 f"but the request has {X.shape[1]}")
        return X

    # -- evaluation ------------------------------------------------------------------------------

    def evaluate(self, source: EpochSource | tuple) -> dict:
        """Final metrics of the fitted model on a channel (epoch source) or on `(X, y)`.

        Returns AWS's tokens: the objective (e.g. `mse_objective`), and per predictor type
        binary_classification_accuracy, binary_f_<beta>, precision, recall, roc_auc_score /
        multiclass_accuracy, multiclass_top_k_accuracy_<k>, dcg, macro_*, ... / mse, rmse,
        absolute_loss. Empty dict for an empty channel.
        """
        self._check_fitted()
        if isinstance(source, tuple):
            X, y = source
            source = array_source(_check_features(X), np.asarray(y, dtype=np.float32), None, 100_000)
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
            if labels is None:
                raise InputError("Evaluation data has no labels")
            labels = _check_labels(labels, self.predictor_type_, self.num_classes_)
            z = self.decision_function(features)
            scores = self._scores_from_linear(z)
            zt = torch.from_numpy(z)
            if self.predictor_type_ == "multiclass_classifier":
                per = loss_fn(zt.unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))
            else:
                per = loss_fn(zt, torch.from_numpy(labels).view(-1, 1), **self.loss_params_)
            acc.update(scores, labels, per.numpy().ravel())
        return acc.result()

    # -- persistence -----------------------------------------------------------------------------

    def save(self, directory: str | Path) -> None:
        """Write model.safetensors + model.json (see the module docstring). No pickle."""
        from safetensors.numpy import save_file

        self._check_fitted()
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
        from safetensors.numpy import load_file

        directory = Path(directory)
        meta_path, weights_path = directory / METADATA_FILE, directory / WEIGHTS_FILE
        if not meta_path.is_file() or not weights_path.is_file():
            raise InputError(f"No Linear Learner model in {directory}: expected {METADATA_FILE} and {WEIGHTS_FILE}")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT_NAME:
            raise InputError(f"{meta_path} is not a {FORMAT_NAME} model (format={meta.get('format')!r})")
        if int(meta.get("format_version", 0)) > FORMAT_VERSION:
            raise InputError(f"{meta_path} has format_version {meta['format_version']}; this code reads "
                             f"up to {FORMAT_VERSION}")
        tensors = load_file(str(weights_path))
        hp = meta.get("hyperparameters", {})
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
        if est.coef_.shape[0] != est.feature_dim_:
            raise InputError(f"{weights_path}: weight has {est.coef_.shape[0]} rows but feature_dim is "
                             f"{est.feature_dim_}")
        return est


# =============================================================================================
# Training
# =============================================================================================


class _Trainer:
    """Holds the tensors of one training run: parameters of all models, optimiser state, best copies."""

    def __init__(self, hp: dict, device: torch.device, seed: int):
        self.hp = hp
        self.device = device
        self.seed = seed
        self.predictor = hp["predictor_type"]
        self.loss_name = hp["loss"]
        self.loss_fn = L.LOSS_FUNCTIONS[self.loss_name]
        self.objective = L.objective_name(self.loss_name)
        self.multiclass = self.predictor == "multiclass_classifier"
        self.binary = self.predictor == "binary_classifier"
        self.k = int(hp["num_classes"]) if self.multiclass else 1
        self.batch_size = int(hp["mini_batch_size"])
        crit = hp["binary_classifier_model_selection_criteria"] if self.binary else "loss_function"
        self.criterion = crit
        self.threshold_criterion = crit in THRESHOLD_CRITERIA
        self.num_cal = int(hp["num_calibration_samples"])
        self.history: list[EpochReport] = []

    # -- preparation -----------------------------------------------------------------------------

    def prepare(self, train: EpochSource) -> None:
        hp = self.hp
        n_scaler = int(hp["num_point_for_scaler"])
        n_sample = max(n_scaler, min(self.num_cal, CALIBRATION_SAMPLE_CAP))
        fd = hp["feature_dim"]
        self.d = None if fd == AUTO else int(fd)
        sample = self._read_sample(train, n_sample)
        if sample is None:
            raise InputError("The train channel holds no records")
        X, y, _ = sample
        if self.d is None:
            self.d = X.shape[1]
        X = self._conform(X)
        y = _check_labels(y, self.predictor, self.k if self.multiclass else None)
        self.sample = (X, y)
        Xs, ys = X[:n_scaler], y[:n_scaler]
        self._fit_scaler(Xs, ys)
        self._class_weights(y)
        self._build_models()
        self._init_parameters()
        self.batch_work = self.batch_size * self.d * self.m * self.k

    def _read_sample(self, train: EpochSource, n: int):
        feats, labels, count = [], [], 0
        it = iter(train())
        try:
            for raw in it:
                f, y, _ = _unpack(raw)
                if y is None:
                    raise InputError("The training data has no labels (Linear Learner is supervised; "
                                     "the label is the first CSV column or the recordIO label 'values')")
                f = _check_features(f)
                if self.d is not None:
                    f = _conform_width(f, self.d, "training data")
                elif feats and f.shape[1] != feats[0].shape[1]:
                    f = _conform_width(f, feats[0].shape[1], "training data")
                feats.append(f)
                labels.append(np.asarray(y, dtype=np.float32).reshape(len(y), -1)[:, 0])
                count += f.shape[0]
                if count >= n:
                    break
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()
        if count == 0:
            return None
        X = sp.vstack(feats, format="csr") if any(sp.issparse(f) for f in feats) else np.concatenate(feats)
        return X[:n], np.concatenate(labels)[:n], None

    def _conform(self, X):
        return _conform_width(X, self.d, "training data")

    def _fit_scaler(self, X, y) -> None:
        hp = self.hp
        d = self.d
        if sp.issparse(X):
            mean = np.asarray(X.mean(axis=0), dtype=np.float64).ravel()
            sq = np.asarray(X.multiply(X).mean(axis=0), dtype=np.float64).ravel()
        else:
            X64 = np.asarray(X, dtype=np.float64)
            mean = X64.mean(axis=0)
            sq = (X64 * X64).mean(axis=0)
        std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
        std[~(std > 1e-12)] = 1.0
        self.scaler_std = std if hp["normalize_data"] else np.ones(d)
        self.scaler_mean = mean if hp["unbias_data"] else np.zeros(d)
        y64 = y.astype(np.float64)
        lmean, lstd = (float(y64.mean()), float(y64.std())) if len(y64) else (0.0, 1.0)
        if not lstd > 1e-12:
            lstd = 1.0
        self.label_mean = lmean if hp["unbias_label"] else 0.0
        self.label_std = lstd if hp["normalize_label"] else 1.0
        regressor = self.predictor == "regressor"
        log.info("Scaling model computed with parameters: %s", json.dumps({
            "num_points": int(X.shape[0]), "normalize_data": bool(hp["normalize_data"]),
            "unbias_data": bool(hp["unbias_data"]), "mean_label": self.label_mean if regressor else None,
            "stdev_label": self.label_std if regressor else None}))
        # loss parameters in training (normalised label) units and in label units for reports
        self.report_loss_kwargs = {"margin": float(hp["margin"]), "quantile": float(hp["quantile"]),
                                   "eps": float(hp["loss_insensitivity"]), "delta": float(hp["huber_delta"])}
        self.train_loss_kwargs = dict(self.report_loss_kwargs)
        self.train_loss_kwargs["eps"] /= self.label_std
        self.train_loss_kwargs["delta"] /= self.label_std

    def _class_weights(self, y) -> None:
        hp = self.hp
        self.balanced_weight = 1.0
        if self.binary:
            pos = float(np.sum(y > 0.5))
            neg = float(len(y) - pos)
            self.balanced_weight = neg / pos if pos > 0 and neg > 0 else 1.0
        self.class_weight = None
        if self.multiclass and hp["balance_multiclass_weights"]:
            counts = np.bincount(y.astype(np.int64), minlength=self.k).astype(np.float64)
            w = np.where(counts > 0, len(y) / (self.k * np.maximum(counts, 1)), ABSENT_CLASS_WEIGHT)
            self.class_weight = torch.tensor(w, dtype=torch.float32, device=self.device)

    def _build_models(self) -> None:
        hp = self.hp
        axes: list[tuple[str, tuple]] = []
        lr = hp["learning_rate"]
        axes.append(("learning_rate", AUTO_LEARNING_RATES[hp["optimizer"]] if lr == AUTO
                     else tuple(lr * m for m in CLOSE_LR)))
        for name, auto_grid in (("wd", AUTO_WD), ("l1", AUTO_L1)):
            v = hp[name]
            axes.append((name, auto_grid if v == AUTO else ((0.0,) if v == 0 else tuple(v * m for m in CLOSE_REG))))
        pw = hp["positive_example_weight_mult"]
        axes.append(("positive_example_weight_mult", AUTO_POSITIVE_WEIGHT if pw == AUTO else (pw,)))
        combos = sorted(itertools.product(*[range(len(vals)) for _, vals in axes]),
                        key=lambda idx: (sum(idx), idx))
        grid = [{name: vals[i] for (name, vals), i in zip(axes, idx)} for idx in combos]
        nm = hp["num_models"]
        m = min(MAX_AUTO_MODELS, len(grid)) if nm == AUTO else int(nm)
        settings = []
        for i in range(m):
            s = dict(grid[i % len(grid)])
            if s["positive_example_weight_mult"] == "balanced":
                s["positive_example_weight_mult"] = self.balanced_weight
            s["optimizer"] = hp["optimizer"]
            if hp["use_lr_scheduler"]:
                s["lr_scheduler_step"] = hp["lr_scheduler_step"]
                s["lr_scheduler_factor"] = hp["lr_scheduler_factor"]
                s["lr_scheduler_minimum_lr"] = hp["lr_scheduler_minimum_lr"]
            settings.append(s)
        if not self.binary:
            for s in settings:
                s.pop("positive_example_weight_mult")
        self.settings = settings
        self.m = m
        dev = self.device

        def col(name, default=0.0):
            v = torch.tensor([float(s.get(name, default)) for s in settings], dtype=torch.float32, device=dev)
            return v.repeat_interleave(self.k)  # one entry per output column

        self.lr = col("learning_rate")
        self.wd = col("wd")
        self.l1 = col("l1")
        self.pos_weight = torch.tensor([float(s.get("positive_example_weight_mult", 1.0)) for s in settings],
                                       dtype=torch.float32, device=dev)
        self.any_l1 = any(float(s.get("l1", 0.0)) > 0 for s in settings)  # host-side flags: no device syncs
        self.any_wd = any(float(s.get("wd", 0.0)) > 0 for s in settings)
        self.weighted_positives = self.binary and any(
            float(s.get("positive_example_weight_mult", 1.0)) != 1.0 for s in settings)

    def _init_parameters(self) -> None:
        hp = self.hp
        gen = torch.Generator().manual_seed(int(self.seed))
        shape = (self.d, self.m * self.k)
        if hp["init_method"] == "normal":
            W = torch.randn(shape, generator=gen) * float(hp["init_sigma"])
        else:
            s = float(hp["init_scale"])
            W = (torch.rand(shape, generator=gen) * 2.0 - 1.0) * s
        dev = self.device
        self.W = W.to(dev)
        self.b = torch.full((self.m * self.k,), float(hp["init_bias"]) if hp["use_bias"] else 0.0, device=dev)
        self.inv_s = torch.tensor(1.0 / self.scaler_std, dtype=torch.float32, device=dev)
        self.mu = torch.tensor(self.scaler_mean, dtype=torch.float32, device=dev)
        self.centred = bool(np.any(self.scaler_mean != 0))
        self.step = 0
        self.scheduler_step = AUTO_SCHEDULER_STEP if hp["lr_scheduler_step"] == AUTO else int(hp["lr_scheduler_step"])
        opt = hp["optimizer"]
        self.state = {}
        if opt == "adam":
            self.state = {"mW": torch.zeros_like(self.W), "vW": torch.zeros_like(self.W),
                          "mb": torch.zeros_like(self.b), "vb": torch.zeros_like(self.b)}
        elif opt == "rmsprop":
            self.state = {"nW": torch.zeros_like(self.W), "nb": torch.zeros_like(self.b)}
        elif float(hp["momentum"]) > 0:
            self.state = {"mW": torch.zeros_like(self.W), "mb": torch.zeros_like(self.b)}
        # best copies per model (criterion in "higher is better" form)
        self.best_W = self.W.clone()
        self.best_b = self.b.clone()
        self.best_value = np.full(self.m, -np.inf)
        self.best_loss = np.full(self.m, np.inf)
        self.best_threshold = np.full(self.m, self._default_threshold())
        self.best_epoch = np.full(self.m, -1)

    def _default_threshold(self) -> float:
        return 0.5 if self.loss_name == "logistic" else 0.0

    # -- per-batch computation -------------------------------------------------------------------

    def _to_tensor(self, X):
        """Device tensors for a mini-batch: (X, X transposed) — CSR for sparse input."""
        dev = self.device
        if sp.issparse(X):
            X = X.tocsr()
            Xt = X.T.tocsr()
            return _torch_csr(X, dev), _torch_csr(Xt, dev)
        t = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(dev)
        return t, None

    def _forward(self, Xd, W=None, b=None) -> torch.Tensor:
        W = self.W if W is None else W
        b = self.b if b is None else b
        A = W * self.inv_s[:, None]
        z = Xd @ A
        if self.centred:
            z = z - (self.mu @ A)
        return z + b

    def _labels_tensor(self, y: np.ndarray):
        dev = self.device
        if self.multiclass:
            return torch.from_numpy(y.astype(np.int64)).to(dev)
        yt = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(dev).view(-1, 1)
        return yt

    def _losses(self, z: torch.Tensor, yt: torch.Tensor, train_units: bool) -> torch.Tensor:
        """Per-record per-model losses (n, M) — training units or label (report) units."""
        n = z.shape[0]
        if self.multiclass:
            return self.loss_fn(z.view(n, self.m, self.k), yt)
        if train_units or self.predictor != "regressor":
            y_use = (yt - self.label_mean) / self.label_std if self.predictor == "regressor" else yt
            kw = self.train_loss_kwargs if train_units else self.report_loss_kwargs
            return self.loss_fn(z, y_use, **kw)
        return self.loss_fn(z * self.label_std + self.label_mean, yt, **self.report_loss_kwargs)

    def _record_weights(self, yt: torch.Tensor, w: np.ndarray | None) -> torch.Tensor | None:
        weight = None
        if self.weighted_positives:
            weight = torch.where(yt > 0.5, self.pos_weight.view(1, -1), torch.ones(1, device=self.device))
        elif self.class_weight is not None:
            weight = self.class_weight[yt].view(-1, 1)
        if w is not None:
            wt = torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)).to(self.device).view(-1, 1)
            weight = wt if weight is None else weight * wt
        return weight

    def _train_batch(self, X, y: np.ndarray, w: np.ndarray | None) -> torch.Tensor:
        """One update of every model; returns the pre-update report-unit loss sums (M,)."""
        hp = self.hp
        n = X.shape[0]
        Xd, Xt = self._to_tensor(X)
        yt = self._labels_tensor(y)
        with torch.no_grad():
            z = self._forward(Xd)
        z = z.detach().requires_grad_(True)
        with torch.enable_grad():
            per = self._losses(z, yt, train_units=True)
            weight = self._record_weights(yt, w)
            obj = per if weight is None else per * weight
            (G,) = torch.autograd.grad(obj.sum() / n, z)
        with torch.no_grad():
            # losses in label units for the report (differs from training units only for scaled labels)
            scaled = self.predictor == "regressor" and (self.label_std != 1.0 or self.label_mean != 0.0)
            report = self._losses(z.detach(), yt, train_units=False) if scaled else per.detach()
            report_sum = report.sum(0)
            gA = (Xt @ G) if Xt is not None else Xd.t() @ G
            gsum = G.sum(0)
            if self.centred:
                gA = gA - self.mu[:, None] * gsum[None, :]
            gW = gA * self.inv_s[:, None]
            if self.any_wd:
                gW = gW + self.wd * self.W
            self._apply_update(gW, gsum if hp["use_bias"] else None)
        return report_sum

    def _current_lr(self) -> torch.Tensor:
        hp = self.hp
        if not hp["use_lr_scheduler"]:
            return self.lr
        decays = self.step // self.scheduler_step
        factor = float(hp["lr_scheduler_factor"]) ** decays
        floor = torch.clamp(self.lr, max=float(hp["lr_scheduler_minimum_lr"]))
        return torch.maximum(self.lr * factor, floor)

    def _apply_update(self, gW: torch.Tensor, gb: torch.Tensor | None) -> None:
        hp = self.hp
        lr = self._current_lr()
        self.step += 1
        t = self.step
        opt = hp["optimizer"]
        bias_lr = lr * float(hp["bias_lr_mult"])
        if gb is not None:
            bwd = float(hp["bias_wd_mult"])
            if bwd > 0:
                gb = gb + self.wd * bwd * self.b
        st = self.state
        if opt == "adam":
            b1, b2 = float(hp["beta_1"]), float(hp["beta_2"])
            c1, c2 = 1.0 - b1 ** t, 1.0 - b2 ** t
            st["mW"].mul_(b1).add_(gW, alpha=1 - b1)
            st["vW"].mul_(b2).addcmul_(gW, gW, value=1 - b2)
            metric = torch.sqrt(st["vW"] / c2) + ADAM_EPS
            self.W -= (lr / c1) * st["mW"] / metric
            if gb is not None:
                st["mb"].mul_(b1).add_(gb, alpha=1 - b1)
                st["vb"].mul_(b2).addcmul_(gb, gb, value=1 - b2)
                self.b -= (bias_lr / c1) * st["mb"] / (torch.sqrt(st["vb"] / c2) + ADAM_EPS)
        elif opt == "rmsprop":
            st["nW"].mul_(RMSPROP_DECAY).addcmul_(gW, gW, value=1 - RMSPROP_DECAY)
            metric = torch.sqrt(st["nW"]) + RMSPROP_EPS
            self.W -= lr * gW / metric
            if gb is not None:
                st["nb"].mul_(RMSPROP_DECAY).addcmul_(gb, gb, value=1 - RMSPROP_DECAY)
                self.b -= bias_lr * gb / (torch.sqrt(st["nb"]) + RMSPROP_EPS)
        else:  # sgd, MXNet momentum form: mom = momentum * mom - lr * grad; w += mom
            metric = None
            mom = float(hp["momentum"])
            if mom > 0:
                st["mW"].mul_(mom).sub_(lr * gW)
                self.W += st["mW"]
                if gb is not None:
                    st["mb"].mul_(mom).sub_(bias_lr * gb)
                    self.b += st["mb"]
            else:
                self.W -= lr * gW
                if gb is not None:
                    self.b -= bias_lr * gb
        if self.any_l1:  # proximal step for l1: soft-threshold in the optimizer's own metric
            shrink = lr * self.l1 if metric is None else lr * self.l1 / metric
            self.W = torch.sign(self.W) * torch.clamp(self.W.abs() - shrink, min=0.0)

    # -- epochs ----------------------------------------------------------------------------------

    def _batches(self, source: EpochSource, what: str, size: int | None = None) -> Iterator[tuple]:
        """Blocks of at most `size` (default `mini_batch_size`) records, validated."""
        size = size or self.batch_size
        for raw in source():
            f, y, w = _unpack(raw)
            if y is None:
                raise InputError(f"The {what} has no labels")
            f = _conform_width(_check_features(f), self.d, what)
            y = _check_labels(y, self.predictor, self.k if self.multiclass else None)
            n = f.shape[0]
            if n == 0:
                continue
            for start in range(0, n, size):
                stop = min(n, start + size)
                if start == 0 and stop == n:
                    yield f, y, w
                else:
                    yield f[start:stop], y[start:stop], None if w is None else w[start:stop]

    def run(self, train: EpochSource, validation: EpochSource | None, *, callback, should_stop,
            checkpoint_dir: Path | None = None) -> None:
        hp = self.hp
        epochs = int(hp["epochs"])
        patience = int(hp["early_stopping_patience"])
        tol = float(hp["early_stopping_tolerance"])
        self.global_best = -np.inf
        self.bad_epochs = 0
        start = 0
        if checkpoint_dir is not None:
            start = self._restore(checkpoint_dir)
        self.first_epoch = start
        stopped = False
        for epoch in range(start, epochs):
            t0 = time.perf_counter()
            loss_sum = torch.zeros(self.m, dtype=torch.float64, device=self.device)
            records = batches = 0
            for X, y, w in self._batches(train, "training data"):
                if should_stop():
                    stopped = True
                    break
                loss_sum += self._train_batch(X, y, w).double()
                records += X.shape[0]
                batches += 1
            seconds = time.perf_counter() - t0
            if stopped or records == 0:
                if records == 0 and not stopped:
                    raise InputError(f"Epoch {epoch}: the train channel yielded no records")
                break
            train_loss = (loss_sum / records).cpu().numpy()
            if epoch == 0 and self.hp["lr_scheduler_step"] == AUTO:
                # a tenth of an epoch: AWS's 100 for 1000 batches an epoch, the same pace for any size
                self.scheduler_step = max(1, round(batches / AUTO_SCHEDULER_DECAYS_PER_EPOCH))
                for s in self.settings:
                    if "lr_scheduler_step" in s:
                        s["lr_scheduler_step"] = self.scheduler_step
            val_loss = None
            values = None
            if validation is not None:
                val_loss, values, thresholds = self._evaluate_source(validation)
                tie_loss = val_loss
            if values is None:  # no (or an empty) validation channel: judge on the training sample
                tie_loss, values, thresholds = self._evaluate_sample()
            values = np.where(np.isfinite(values), values, -np.inf)  # a diverged model never wins
            tie_loss = np.where(np.isfinite(tie_loss), tie_loss, np.inf)
            # ties on a coarse criterion (accuracy on a small set) go to the lower loss
            better = (values > self.best_value) | ((values == self.best_value) & (tie_loss < self.best_loss))
            if better.any():
                idx = torch.from_numpy(np.repeat(better, self.k)).to(self.device)
                self.best_W[:, idx] = self.W[:, idx]
                self.best_b[idx] = self.b[idx]
                self.best_value = np.where(better, values, self.best_value)
                self.best_loss = np.where(better, tie_loss, self.best_loss)
                self.best_threshold = np.where(better, thresholds, self.best_threshold)
                self.best_epoch = np.where(better, epoch, self.best_epoch)
            epoch_best = float(np.max(values))
            if not np.isfinite(self.global_best):
                improved = np.isfinite(epoch_best)
            else:
                improved = (epoch_best - self.global_best) / max(abs(self.global_best), 1e-12) > tol
            if epoch_best > self.global_best:
                self.global_best = epoch_best
            self.bad_epochs = 0 if improved else self.bad_epochs + 1
            stop = self.bad_epochs >= patience
            minimize = not self.threshold_criterion
            report = EpochReport(
                epoch=epoch, epochs=epochs, objective=self.objective, train_loss=train_loss,
                validation_loss=val_loss,
                criterion=criterion_token(self.criterion) if self.threshold_criterion else self.objective,
                criterion_values=-values if minimize else values, criterion_minimize=minimize,
                best_value=-epoch_best if minimize else epoch_best, improved=bool(improved), stop=stop,
                records=records, seconds=seconds)
            self.history.append(report)
            if checkpoint_dir is not None:
                self._checkpoint(checkpoint_dir, epoch, stop)
            if callback is not None:
                callback(report)
            if stop:
                break
            if should_stop():
                break
        if not np.isfinite(self.best_value).any():
            # no completed epoch (stopped at once) or every model diverged: judge the current weights
            self.best_W, self.best_b = self.W.clone(), self.b.clone()
            loss, values, thresholds = self._evaluate_sample()
            self.best_value = np.where(np.isfinite(values), values, -np.inf)
            self.best_loss = np.where(np.isfinite(loss), loss, np.inf)
            self.best_threshold = thresholds
            self.best_epoch = np.full(self.m, -1)
        self.selected = int(np.lexsort((self.best_loss, -self.best_value))[0])
        cols = slice(self.selected * self.k, (self.selected + 1) * self.k)
        self.final_weight = self.best_W[:, cols].cpu().numpy()
        self.final_bias = self.best_b[cols].cpu().numpy()
        self.final_threshold = float(self.best_threshold[self.selected])

    # -- checkpoints (managed spot training) --------------------------------------------------

    def _fingerprint(self) -> str:
        keep = {k: _jsonable(v) for k, v in self.hp.items() if k != "epochs"}
        return json.dumps({"hp": keep, "d": self.d, "m": self.m, "k": self.k, "seed": self.seed}, sort_keys=True)

    def _checkpoint(self, directory: Path, epoch: int, finished: bool) -> None:
        """Everything needed to resume after `epoch`: weights, optimiser state, best copies."""
        from safetensors.numpy import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tensors = {"W": self.W, "b": self.b, "best_W": self.best_W, "best_b": self.best_b,
                   **{f"state.{k}": v for k, v in self.state.items()}}
        arrays = {k: v.detach().cpu().numpy() for k, v in tensors.items()}
        arrays.update(best_value=self.best_value.astype(np.float64), best_loss=self.best_loss.astype(np.float64),
                      best_threshold=self.best_threshold.astype(np.float64),
                      best_epoch=self.best_epoch.astype(np.int64))
        meta = {"fingerprint": self._fingerprint(), "epoch": epoch, "finished": finished, "step": self.step,
                "scheduler_step": self.scheduler_step, "global_best": _jsonable(self.global_best),
                "bad_epochs": self.bad_epochs}
        tmp_w, tmp_m = directory / (CHECKPOINT_WEIGHTS + ".tmp"), directory / (CHECKPOINT_META + ".tmp")
        save_file(arrays, str(tmp_w))
        tmp_m.write_text(json.dumps(meta))
        tmp_w.replace(directory / CHECKPOINT_WEIGHTS)
        tmp_m.replace(directory / CHECKPOINT_META)

    def _restore(self, directory: Path) -> int:
        """Resume from a checkpoint of the same configuration; returns the first epoch to run."""
        from safetensors.numpy import load_file

        directory = Path(directory)
        meta_path, weights_path = directory / CHECKPOINT_META, directory / CHECKPOINT_WEIGHTS
        if not meta_path.is_file() or not weights_path.is_file():
            return 0
        try:
            meta = json.loads(meta_path.read_text())
        except ValueError:
            log.warning("Ignoring an unreadable checkpoint in %s", directory)
            return 0
        if meta.get("fingerprint") != self._fingerprint():
            log.warning("Ignoring the checkpoint in %s: it belongs to another configuration", directory)
            return 0
        arrays = load_file(str(weights_path))
        dev = self.device
        self.W = torch.from_numpy(arrays["W"]).to(dev)
        self.b = torch.from_numpy(arrays["b"]).to(dev)
        self.best_W = torch.from_numpy(arrays["best_W"]).to(dev)
        self.best_b = torch.from_numpy(arrays["best_b"]).to(dev)
        self.state = {k[len("state."):]: torch.from_numpy(v).to(dev) for k, v in arrays.items()
                      if k.startswith("state.")}
        self.best_value, self.best_loss = arrays["best_value"], arrays["best_loss"]
        self.best_threshold, self.best_epoch = arrays["best_threshold"], arrays["best_epoch"]
        self.step, self.scheduler_step = int(meta["step"]), int(meta["scheduler_step"])
        for s in self.settings:
            if "lr_scheduler_step" in s:
                s["lr_scheduler_step"] = self.scheduler_step
        gb = meta.get("global_best")
        self.global_best = -np.inf if gb is None else float(gb)
        self.bad_epochs = int(meta["bad_epochs"])
        start = int(meta["epoch"]) + 1
        if meta.get("finished"):
            start = int(self.hp["epochs"])
        log.info("Resuming from the checkpoint in %s at epoch %d", directory, start)
        return start

    # -- scoring during training -----------------------------------------------------------------

    def _scores(self, z: torch.Tensor) -> torch.Tensor:
        """Binary scores per model as AWS reports them: probability for logistic, margin for hinge."""
        return torch.sigmoid(z) if self.loss_name == "logistic" else z

    def _criterion(self, scores_list, labels_list, loss_mean):
        """Criterion values (higher is better) and thresholds from collected scores or the loss."""
        if self.threshold_criterion and scores_list:
            scores = torch.cat(scores_list)
            labels = torch.cat(labels_list)
            hp = self.hp
            return calibrate(scores, labels, self.criterion, beta=float(hp["f_beta"]),
                             target_recall=float(hp["target_recall"]),
                             target_precision=float(hp["target_precision"]))
        return -loss_mean, np.full(self.m, self._default_threshold())

    @torch.no_grad()
    def _evaluate_source(self, source: EpochSource):
        loss_sum = torch.zeros(self.m, dtype=torch.float64, device=self.device)
        n = 0
        kept = 0
        scores_list, labels_list = [], []
        for X, y, _ in self._batches(source, "validation data", max(self.batch_size, EVAL_BLOCK)):
            Xd, _ = self._to_tensor(X)
            yt = self._labels_tensor(y)
            z = self._forward(Xd)
            loss_sum += self._losses(z, yt, train_units=False).double().sum(0)
            n += X.shape[0]
            if self.threshold_criterion and kept < self.num_cal:
                take = min(self.num_cal - kept, X.shape[0])
                scores_list.append(self._scores(z[:take]))
                labels_list.append(yt[:take, 0])
                kept += take
        if n == 0:
            return None, None, None
        loss_mean = (loss_sum / n).cpu().numpy()
        values, thresholds = self._criterion(scores_list, labels_list, loss_mean)
        return loss_mean, values, thresholds

    @torch.no_grad()
    def _evaluate_sample(self):
        X, y = self.sample
        Xd, _ = self._to_tensor(X)
        yt = self._labels_tensor(y)
        z = self._forward(Xd)
        loss_mean = self._losses(z, yt, train_units=False).double().mean(0).cpu().numpy()
        if self.threshold_criterion:
            take = min(self.num_cal, X.shape[0])
            values, thresholds = self._criterion([self._scores(z[:take])], [yt[:take, 0]], loss_mean)
        else:
            values, thresholds = -loss_mean, np.full(self.m, self._default_threshold())
        return loss_mean, values, thresholds


# =============================================================================================
# Helpers
# =============================================================================================


def _pick_device(device) -> torch.device:
    """`device` if given, else $SMALGOS_DEVICE, else CUDA when available, else CPU (spine rule)."""
    from smalgos.maths.device import pick_device

    return pick_device(device)


@contextlib.contextmanager
def _cpu_threads_for(work: int, device: torch.device):
    """One CPU thread for small mini-batches: thread hand-offs cost more than the maths there
    (and collapse on a busy machine). Restores the previous setting afterwards."""
    if device.type != "cpu" or work >= SMALL_BATCH_WORK or torch.get_num_threads() == 1:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _torch_csr(X: sp.csr_matrix, device: torch.device) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(X.indptr.astype(np.int64)), torch.from_numpy(X.indices.astype(np.int64)),
            torch.from_numpy(np.ascontiguousarray(X.data, dtype=np.float32)), size=X.shape,
            check_invariants=False).to(device)


def _check_features(X):
    """float32 dense 2-D array or float32 CSR; finite values."""
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float32)
        if not np.all(np.isfinite(X.data)):
            raise InputError("Features contain NaN or infinite values")
        return X
    X = np.asarray(X, dtype=np.float32)
    if X.ndim == 1:
        X = X.reshape(1, -1) if X.size else X.reshape(0, 0)
    if X.ndim != 2:
        raise InputError(f"Features must be a 2-D array, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise InputError("Features contain NaN or infinite values")
    return X


def _conform_width(X, d: int, what: str):
    if X.shape[1] == d:
        return X
    if sp.issparse(X) and X.shape[1] < d:
        return sp.csr_matrix((X.data, X.indices, X.indptr), shape=(X.shape[0], d))
    raise InputError(f"Feature count mismatch in the {what}: records have {X.shape[1]} features "
                     f"but feature_dim is {d}")


def _check_labels(y, predictor: str, num_classes: int | None) -> np.ndarray:
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = y[:, 0]
    y = y.reshape(-1)
    if not np.all(np.isfinite(y)):
        raise InputError("Labels contain NaN or infinite values")
    if predictor == "binary_classifier":
        bad = (y != 0) & (y != 1)
        if bad.any():
            raise InputError(f"binary_classifier labels must be 0 or 1; found {float(y[bad][0])!r}")
    elif predictor == "multiclass_classifier":
        bad = (y != np.floor(y)) | (y < 0) | (y >= num_classes)
        if bad.any():
            raise InputError(f"multiclass_classifier labels must be integers 0 ... num_classes-1 "
                             f"(num_classes={num_classes}); found {float(y[bad][0])!r}")
    return y


def _unpack(raw) -> tuple:
    """(features, labels, weights) from a Batch-like object or an (X, y[, w]) tuple."""
    if isinstance(raw, tuple):
        if len(raw) == 2:
            return raw[0], raw[1], None
        return raw[0], raw[1], raw[2]
    return raw.features, getattr(raw, "labels", None), getattr(raw, "weights", None)


def array_source(X, y, w=None, batch_size: int = 1000) -> EpochSource:
    """An epoch source over in-memory arrays: each call yields (X, y, w) mini-batches in order."""

    def source():
        n = X.shape[0]
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            yield X[start:stop], y[start:stop], None if w is None else w[start:stop]

    return source


def _jsonable(v):
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, float) and (math.isinf(v) or math.isnan(v)):
        return None
    return v
