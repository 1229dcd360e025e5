"""Serving: `load_model(model_dir)` → an object the spine's app calls per request.

Model files: every file of the model directory (dotfiles and `*.tar.gz` left out) is a model, as
AWS's image (`SAGEMAKER_INFERENCE_ENSEMBLE`, default true: k-fold models are averaged, or
majority-voted for `multi:softmax` / `binary:hinge`; `false`: the first file only). Formats: see
`model_io` (JSON/UBJSON, XGBoost's old binary format, pickles read as data).

Per request: the body decoded by AWS's serving rules (`XGBoostModel.decode`: CSV `label_size`
absent or 1, LibSVM indices shifted when the request has no index 0) → feature-count check (a
400 naming both counts, AWS's most-hit error) → `Booster.inplace_predict` with cores // workers
threads (one by default: one worker per core; requests of at most FEW_ROWS rows on one thread),
for a dense request as one direct call of the C function it ends in (`_DensePredictor`: a one-row
prediction in a third of inplace_predict's time) → `outputs`. Early-stopped models predict with the
trees up to `best_iteration`.
"""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from smalgos.artifacts import model_files
from smalgos.environment import ServingEnv
from smalgos.maths.inputs import conform_width
from smalgos.errors import AlgorithmError, ClientError, UnsupportedContentType
from smalgos.formats.batch import Batch
from smalgos.formats.media import CSV, LIBSVM, MediaType
from smalgos.formats.registry import get_decoder
from smalgos.formats.predictions import Predictions

from . import outputs
from .model_io import load_booster

log = logging.getLogger("smalgos")

VOTING_OBJECTIVES = ("multi:softmax", "binary:hinge")

FEW_ROWS = 64  # requests of at most this many rows are predicted on one thread


class _DensePredictor:
    """`Booster.inplace_predict(x, iteration_range=r, missing=nan, validate_features=False)` for a
    C-contiguous float32 array, as one call of the C function that method ends in
    (`XGBoosterPredictFromDense`) with the same arguments: the same answer to the bit, without the
    method's per-call Python (its input-type checks, JSON dumps of the arguments, a class built per
    call to copy the output, whose reference cycles wake the garbage collector). For a one-row
    request that Python is about two thirds of the prediction's time. Dense requests only; sparse
    (CSR) ones go through `inplace_predict`."""

    def __init__(self, booster, iteration_range: tuple[int, int]):
        import ctypes

        from xgboost import core

        self._ctypes, self._core = ctypes, core
        self.booster = booster
        # The arguments inplace_predict passes for predict_type="value", strict_shape=False.
        self.args = core.make_jcargs(type=0, training=False, iteration_begin=int(iteration_range[0]),
                                     iteration_end=int(iteration_range[1]), missing=np.nan, strict_shape=False,
                                     cache_id=0)
        self.call = core._LIB.XGBoosterPredictFromDense
        # The proxy DMatrix the C function sets each request's array on. inplace_predict passes none
        # (no base margin), and the C function then builds one per call, whose construction reads
        # the cgroup CPU quota files (a third of a one-row prediction's time); this one is empty too
        # (no meta info: no base margin), made once and kept for the booster's life.
        # One call at a time on it (the app predicts under one lock per worker anyway); a concurrent
        # call passes no proxy, as inplace_predict does.
        self._proxy = core._ProxyDMatrix()
        self._proxy_lock = threading.Lock()

    def predict(self, features: np.ndarray) -> np.ndarray:
        ctypes, core = self._ctypes, self._core
        features = np.ascontiguousarray(features, dtype=np.float32)  # as XGBoostModel._features gives it
        if features.ndim != 2:
            raise ValueError(f"expected a 2-D array of features, got shape {features.shape}")
        interface = (f'{{"data": [{features.ctypes.data}, false], "strides": null, "descr": [["", "<f4"]], '
                     f'"typestr": "<f4", "shape": [{features.shape[0]}, {features.shape[1]}], "version": 3}}'
                     ).encode()
        shape, dims, preds = ctypes.POINTER(core.c_bst_ulong)(), core.c_bst_ulong(), ctypes.POINTER(ctypes.c_float)()
        if self._proxy_lock.acquire(blocking=False):
            try:
                status = self.call(self.booster.handle, interface, self.args, self._proxy.handle, ctypes.byref(shape),
                                   ctypes.byref(dims), ctypes.byref(preds))
            finally:
                self._proxy_lock.release()
        else:
            status = self.call(self.booster.handle, interface, self.args, ctypes.c_void_p(), ctypes.byref(shape),
                               ctypes.byref(dims), ctypes.byref(preds))
        core._check_call(status)
        out_shape = tuple(int(shape[i]) for i in range(dims.value))
        out = np.empty(out_shape, dtype=np.float32)
        if out.size:  # the booster's own buffer, overwritten by its next prediction: copied out now
            ctypes.memmove(out.ctypes.data, preds, out.nbytes)
        return out


class XGBoostModel:
    def __init__(self, boosters: list, env: ServingEnv | None = None):
        import xgboost as xgb

        if not boosters:
            raise ClientError("No model to serve")
        env = env or ServingEnv.from_env()
        self._xgb = xgb
        self.boosters = boosters
        self.nthread = env.threads_per_worker
        for b in boosters:
            b.set_param("nthread", self.nthread)
        config = json.loads(boosters[0].save_config())["learner"]
        self.objective: str = config["objective"]["name"]
        self.num_class = int(config["learner_model_param"].get("num_class", "0") or 0)
        self.num_features = boosters[0].num_features()
        self.iteration_ranges = [self._range(b) for b in boosters]
        self.inplace = all(self._gbm(b) != "gblinear" for b in boosters)
        # A few rows are predicted on one thread: waking the other OpenMP threads costs more than the
        # trees (one row, 30 trees, 2 threads on a busy 2-core machine: 9 ms against 0.26 ms).
        self.single_thread = boosters
        if self.nthread > 1 and self.inplace:
            self.single_thread = [b.copy() for b in boosters]
            for b in self.single_thread:
                b.set_param("nthread", 1)
        self.dense = self.dense_few = None  # dense requests: XGBoosterPredictFromDense called directly
        if self.inplace:
            try:
                self.dense = [_DensePredictor(b, r) for b, r in zip(self.boosters, self.iteration_ranges)]
                self.dense_few = self.dense if self.single_thread is self.boosters else [
                    _DensePredictor(b, r) for b, r in zip(self.single_thread, self.iteration_ranges)]
            except (AttributeError, ImportError):  # an xgboost without these internals: inplace_predict
                self.dense = self.dense_few = None
        self.batch_mode = env.batch
        self.selection = outputs.parse_selection(env.inference_output)
        log.info("Serving %d XGBoost model(s): objective %s, %d feature(s)%s", len(boosters), self.objective,
                 self.num_features, f", outputs {self.selection}" if self.selection else "")

    @staticmethod
    def _gbm(booster) -> str:
        return json.loads(booster.save_config())["learner"]["gradient_booster"]["name"]

    @classmethod
    def _range(cls, booster) -> tuple[int, int]:
        best = booster.attr("best_iteration")
        if best is not None and cls._gbm(booster) != "gblinear" and int(best) + 1 < booster.num_boosted_rounds():
            return (0, int(best) + 1)
        return (0, 0)

    # -- AWS's request rules (the spine's decode hook, app.py) ------------------------------------

    def decode(self, body: bytes, media: MediaType) -> Batch | None:
        """CSV and LibSVM requests as AWS's 3.0-5 image reads them; None (the registry's decoder)
        for the other types.

        CSV: ``label_size`` absent or 1, else 415 naming it; the whole row is features either way
        (AWS's `get_content_type`). LibSVM: the request's indices shift down by one when its
        smallest index is >= 1 (`_get_sparse_matrix_from_libsvm`), which training does not do.
        """
        if media.type == CSV:
            label_size = media.params.get("label_size")
            if label_size is not None and label_size.strip() != "1":
                raise UnsupportedContentType(f"{str(media)!r} is not an accepted CSV content type: its optional "
                                             "parameter label_size must be 1 (the whole row is features)")
            media = MediaType(media.type, {k: v for k, v in media.params.items() if k != "label_size"})
            return get_decoder(media).decode(body, media, default_label_size=0)
        if media.type == LIBSVM:
            return get_decoder(media).decode(body, media, zero_based="auto")
        return None

    # -- prediction ---------------------------------------------------------------------------------

    def _features(self, batch: Batch):
        """The request's features at the model's width (narrower sparse rows are widened)."""
        features = conform_width(batch.features, self.num_features)
        return features if sp.issparse(features) else np.ascontiguousarray(features, dtype=np.float32)

    def raw_predict(self, batch: Batch) -> np.ndarray:
        # The array (or CSR) is read where it lies: no DMatrix is built per request, which halves the
        # time of a 1000-row prediction; dense arrays go straight to the C function inplace_predict
        # ends in (_DensePredictor). Either way the output equals Booster.predict's to the bit.
        features = self._features(batch)
        try:
            if self.dense is not None and not sp.issparse(features):
                predictors = self.dense_few if features.shape[0] <= FEW_ROWS else self.dense
                preds = [p.predict(features) for p in predictors]
            elif self.inplace:  # CSR
                boosters = self.single_thread if features.shape[0] <= FEW_ROWS else self.boosters
                preds = [b.inplace_predict(features, iteration_range=r, missing=np.nan, validate_features=False)
                         for b, r in zip(boosters, self.iteration_ranges)]
            else:  # gblinear has no in-place prediction
                dmatrix = self._xgb.DMatrix(features, missing=np.nan, nthread=self.nthread)
                preds = [b.predict(dmatrix, iteration_range=r, validate_features=False)
                         for b, r in zip(self.boosters, self.iteration_ranges)]
        except self._xgb.core.XGBoostError as exc:
            raise ClientError(f"XGBoost could not predict on this request: {str(exc).splitlines()[0]}") from None
        if len(preds) == 1:
            return preds[0]
        stacked = np.stack(preds)
        if self.objective in VOTING_OBJECTIVES:
            votes = stacked.astype(np.int64)
            return np.apply_along_axis(lambda col: np.bincount(col).argmax(), 0, votes).astype(np.float32)
        return stacked.mean(axis=0).astype(np.float32)

    def predict(self, batch: Batch, accept: MediaType | None = None) -> Predictions:
        raw = self.raw_predict(batch)
        if self.selection is None:
            return Predictions({"score": raw})
        return outputs.selected_predictions(raw, self.selection, self.objective, self.num_class)

    def warm_up(self) -> None:
        """One prediction on one record of zeros at the model's width (run by each serving worker
        before it serves: a model that cannot predict is not served)."""
        self.predict(Batch(np.zeros((1, self.num_features), dtype=np.float32)))

    # -- AWS's fixed encodings (see outputs.py) -----------------------------------------------------

    def encode(self, predictions: Predictions, accept: MediaType) -> tuple[bytes, str] | None:
        """The body for encodings AWS fixed, or None to use the generic encoder for `accept`."""
        if self.selection is not None:
            if accept.type == "text/csv":
                return outputs.selected_csv(predictions, self.batch_mode), "text/csv"
            return None
        if self.batch_mode:
            return outputs.batch_lines(predictions), "text/csv"
        return None


class ScriptDefaults:
    """XGBoost's framework-mode handlers where the user's inference script defines none (AWS's
    sagemaker-xgboost-container `handler_service.py`): requests as a DMatrix (CSV, LibSVM,
    recordIO-protobuf and JSON as the algorithm's serving reads them), `Booster.predict`. AWS has no
    default model_fn; ours loads the model directory's first model file (outside `code/`)."""

    def model_fn(self, model_dir: Path):
        model_dir = Path(model_dir)
        files = model_files(model_dir)
        if not files:
            raise ClientError(f"No model file in {model_dir}: the inference script defines no model_fn, and the"
                              " default loads an XGBoost model file")
        return load_booster(files[0])

    def input_fn(self, body: bytes, content_type: str):
        import xgboost as xgb
        from smalgos.scriptmode.serving import decode_request

        from .declaration import ALGORITHM

        return xgb.DMatrix(decode_request(ALGORITHM, body, content_type).features, missing=np.nan)

    def predict_fn(self, data, model):
        return model.predict(data, validate_features=False)


def load_model(model_dir: Path, env: ServingEnv | None = None):
    """The XGBoostModel of the model directory; in framework mode (SAGEMAKER_PROGRAM set: the SDK's
    `XGBoostModel(entry_point=...)`), the user's inference handlers over `ScriptDefaults`."""
    from smalgos.environment import ScriptModeEnv

    script = ScriptModeEnv.from_env()
    if script.program:
        from smalgos.scriptmode.serving import load_script_model

        return load_script_model(Path(model_dir), ScriptDefaults(), script)
    files = model_files(Path(model_dir))
    if not files:
        raise ClientError(f"No model file in {model_dir}: expected xgboost-model")
    env = env or ServingEnv.from_env()
    if not env.ensemble:
        files = files[:1]
    boosters = [load_booster(f) for f in files]
    widths = {b.num_features() for b in boosters}
    if len(widths) > 1:
        raise AlgorithmError(f"The models in {model_dir} were trained on different feature counts: {sorted(widths)}")
    return XGBoostModel(boosters, env)
