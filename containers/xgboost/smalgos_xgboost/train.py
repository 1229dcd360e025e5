"""Training: channels → DMatrix → boosting rounds with AWS's log lines, checkpoints, early stopping.

`train(job)` is what the spine's runner calls. `fit(...)` is the boosting loop on plain
`xgboost.DMatrix` objects, usable from a notebook. The loop is `xgboost.train`'s own (one
`Booster.update(dtrain, i)` per round, `Booster.eval_set` for the metrics), written out so that
every round can also print AWS's line, write a checkpoint and notice SIGTERM; the model it builds
is the one `xgboost.train` builds with the same parameters and data, bit for bit.
"""

from __future__ import annotations

import functools

import logging
import re
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp

from smalgos.environment import XGBoostEnv
from smalgos.errors import ClientError, PlatformError
from smalgos.formats.batch import Batch
from smalgos.formats.media import CSV, int_param
from smalgos.maths import inputs

from . import checkpoints, custom_metrics, distributed, kfold
from .model_io import MODEL_FILE, booster_from_bytes, booster_to_bytes, write_model
from .params import TrainingPlan, maximize, training_plan  # noqa: F401 (training_plan re-exported)

log = logging.getLogger("smalgos")


# ---------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------


def _read_all(channel) -> Batch | None:
    if channel.content_type == CSV and int_param(channel.media, "label_size", 1) != 1:
        raise ClientError(f"Channel {channel.name!r}: XGBoost reads the label from the first CSV column; "
                          f"label_size must be 1 or absent (got {channel.media})")
    # ±inf refused per file, naming file, line or record and column; NaN is XGBoost's missing value
    return channel.read_all(batch_size=1 << 20, check=functools.partial(inputs.check_finite, allow_nan=True))


def read_channel(channel, csv_weights: bool) -> Batch | None:
    """Every record of a channel (one pass, File or Pipe mode), with 1-D labels and weights split off."""
    batch = _read_all(channel)
    if batch is None or len(batch) == 0:
        return None
    labels = inputs.check_labels(batch.labels, f"Channel '{channel.name}'", needed_by="XGBoost")
    features, weights = batch.features, batch.weights
    if csv_weights and channel.content_type == "text/csv" and weights is None:
        if features.shape[1] < 2:
            raise ClientError(f"Channel {channel.name!r}: csv_weights=1 needs a weight column after the label "
                              "and at least one feature")
        if sp.issparse(features):
            weights = np.asarray(features[:, 0].toarray()).ravel().astype(np.float32)
            features = features[:, 1:].tocsr()
        else:
            weights = np.ascontiguousarray(features[:, 0], dtype=np.float32)
            features = features[:, 1:]
    if weights is not None:
        weights = np.asarray(weights, dtype=np.float32)
    return Batch(features, labels, weights)


def check_objective_labels(labels: np.ndarray, objective: str, num_class: int | None, channel: str) -> None:
    """XGBoost's label rules per objective, checked up front so the message names the channel and
    the rule (labels are already finite: `read_channel`)."""
    if labels.size == 0:
        return
    lo, hi = float(labels.min()), float(labels.max())
    rule = None
    if objective in ("binary:logistic", "reg:logistic", "binary:logitraw", "binary:hinge") and (lo < 0 or hi > 1):
        rule = "labels must be in [0, 1] for " + objective
    elif objective.startswith("multi:") and num_class:
        if lo < 0 or hi >= num_class or not np.all(labels == np.floor(labels)):
            rule = f"labels must be whole numbers in [0, {num_class}) for {objective} with num_class={num_class}"
    elif objective in ("count:poisson", "reg:tweedie") and lo < 0:
        rule = f"labels must be non-negative for {objective}"
    elif objective == "reg:gamma" and lo <= 0:
        rule = "labels must be positive for reg:gamma"
    elif objective == "reg:squaredlogerror" and lo <= -1:
        rule = "labels must be greater than -1 for reg:squaredlogerror"
    if rule:
        raise ClientError(f"Channel {channel!r}: {rule} (found labels from {lo:g} to {hi:g})")


def to_dmatrix(data: Batch, nthread: int | None = None, width: int | None = None):
    import xgboost as xgb

    features = data.features
    if width is not None and features.shape[0] and features.shape[1] != width:
        if sp.issparse(features) and features.shape[1] < width:
            features = sp.csr_matrix((features.data, features.indices, features.indptr),
                                     shape=(features.shape[0], width))
        else:
            raise ClientError(f"Channel 'validation' has {features.shape[1]} features per record but 'train' has "
                              f"{width}: both channels need the same columns")
    return xgb.DMatrix(features, label=data.labels, weight=data.weights, missing=np.nan,
                       nthread=nthread if nthread else -1)


# ---------------------------------------------------------------------------------------------------
# XGBoost's errors, said as ours
# ---------------------------------------------------------------------------------------------------

_PLATFORM = ("bad_alloc", "out of memory", "cudaerror", "cuda error", "nccl")
_CLUSTER = ("poll timeout", "connection reset", "connection refused", "broken pipe", "socket", "rabit", "tracker")
_PREFIX = re.compile(r"^\[[0-9:]+\]\s+\S+:\d+:\s*")


def xgboost_message(exc: Exception) -> str:
    first = str(exc).split("Stack trace:")[0].strip().splitlines()
    text = " ".join(_PREFIX.sub("", line).strip() for line in first if line.strip())
    return text.replace("Check failed: ", "")


def translate_xgboost_error(exc: Exception) -> Exception:
    """The container hands XGBoost only validated parameters and decoded data, so what XGBoost
    still rejects is about the user's parameters or labels (ClientError), unless the machine ran
    out of memory or its GPU failed (PlatformError)."""
    msg = xgboost_message(exc)
    if any(p in msg.lower() for p in _PLATFORM):
        return PlatformError(f"XGBoost ran out of resources: {msg}")
    if any(p in msg.lower() for p in _CLUSTER):
        return PlatformError(f"The hosts lost contact with each other (another host may have failed: see its log): "
                             f"{msg}")
    return ClientError(f"XGBoost rejected the job: {msg}")


# ---------------------------------------------------------------------------------------------------
# GPU
# ---------------------------------------------------------------------------------------------------


def gpu_available() -> tuple[bool, str]:
    """(usable, why not): XGBoost built with CUDA and a GPU it can see."""
    import xgboost as xgb

    if not xgb.build_info().get("USE_CUDA"):
        return False, "this image's XGBoost is built without CUDA (use the GPU image)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            d = xgb.DMatrix(np.zeros((2, 1), dtype=np.float32), label=np.array([0.0, 1.0]))
            xgb.train({"tree_method": "hist", "device": "cuda", "verbosity": 1}, d, 1)
        except xgb.core.XGBoostError as exc:
            return False, xgboost_message(exc)
    for w in caught:
        text = str(w.message)
        if "No visible GPU" in text or "changed from GPU to CPU" in text:
            return False, "no GPU is visible to the container"
    return True, ""


# ---------------------------------------------------------------------------------------------------
# The boosting loop
# ---------------------------------------------------------------------------------------------------


def parse_eval(line: str) -> list[tuple[str, str, float]]:
    """`[3]\\ttrain-rmse:0.41\\tvalidation-rmse:0.44` → [("train", "rmse", 0.41), ...]."""
    out = []
    for part in line.strip().split("\t")[1:]:
        name, _, value = part.rpartition(":")
        data, _, metric = name.partition("-")
        out.append((data, metric, float(value)))
    return out


def format_eval(iteration: int, results: list[tuple[str, str, float]]) -> str:
    """xgboost.callback.EvaluationMonitor's line, which AWS's image prints and its regexes scrape."""
    return f"[{iteration}]" + "".join(f"\t{d}-{m}:{v:.5f}" for d, m, v in results)


class EarlyStop:
    """xgboost.callback.EarlyStopping's rule: stop after `rounds` rounds without strict improvement."""

    def __init__(self, rounds: int, metric: str | None, data: str = "validation"):
        self.rounds, self.metric, self.data = rounds, metric, data
        self.best_score: float | None = None
        self.best_iteration: int | None = None
        self.stale = 0
        self._maximize: bool | None = None

    def update(self, iteration: int, results: list[tuple[str, str, float]]) -> bool:
        mine = [(m, v) for d, m, v in results if d == self.data]
        if not mine:
            return False
        if self.metric is None:
            self.metric = mine[-1][0]  # XGBoost: the last metric of the last evaluation set
        values = [v for m, v in mine if m == self.metric]
        if not values:
            raise ClientError(f"Early stopping metric {self.metric!r} is not among the validation metrics")
        score = values[-1]
        if self._maximize is None:
            self._maximize = maximize(self.metric)
        better = self.best_score is None or (score > self.best_score if self._maximize else score < self.best_score)
        if better:
            self.best_score, self.best_iteration, self.stale = score, iteration, 0
            return False
        self.stale += 1
        return self.stale >= self.rounds


def _print(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def fit(plan: TrainingPlan, dtrain, dvalidation=None, *, checkpoint_dir: Path | None = None,
        model_dir: Path | None = None, should_stop: Callable[[], bool] = lambda: False,
        printer: Callable[[str], None] = _print):
    """Boost `plan.num_round` rounds (fewer after a checkpoint or early stop); return the Booster."""
    import xgboost as xgb

    evals = [(dtrain, "train")] + ([(dvalidation, "validation")] if dvalidation is not None else [])
    feval = (custom_metrics.make_custom_metric(plan.custom_metrics, plan.objective, plan.num_class)
             if plan.custom_metrics else None)
    resume, start = (None, 0)
    writer = None
    if checkpoint_dir is not None:
        resume, start = checkpoints.load_latest(checkpoint_dir, booster_from_bytes)
        writer = checkpoints.CheckpointWriter(checkpoint_dir)
    stopper = None
    if plan.early_stopping_rounds:
        if dvalidation is None:
            log.warning("early_stopping_rounds is set but there is no validation channel: training all %d rounds",
                        plan.num_round)
        else:
            stopper = EarlyStop(plan.early_stopping_rounds, plan.stopping_metric)

    try:
        booster = xgb.Booster(plan.params, [dtrain] + [d for d, _ in evals], model_file=resume)
        if start >= plan.num_round:
            log.info("The checkpoint already holds %d round(s): nothing left to train", start)
        started = time.time()
        done = start  # rounds the booster holds (a resumed checkpoint's included)
        for i in range(start, plan.num_round):
            if should_stop():
                log.warning("Stopping after %d of %d round(s) (%d in this run): SIGTERM received", done,
                            plan.num_round, done - start)
                break
            booster.update(dtrain, iteration=i)
            results = parse_eval(booster.eval_set(evals, iteration=i, feval=feval, output_margin=False))
            done = i + 1
            printer(format_eval(i, results))
            if writer is not None:
                writer.save(i, booster_to_bytes(booster))
            if plan.save_model_on_termination and model_dir is not None:
                write_model(booster, model_dir)
            if stopper is not None and stopper.update(i, results):
                log.info("Early stopping at round %d: best validation-%s %.5f at round %d", i, stopper.metric,
                         stopper.best_score, stopper.best_iteration)
                break
        log.info("Boosted %d round(s) in %.1f s", done - start, time.time() - started)
    except xgb.core.XGBoostError as exc:
        raise translate_xgboost_error(exc) from None

    if stopper is not None and stopper.best_iteration is not None:
        # As AWS's image (save_best): keep the trees up to the best round.
        # gblinear cannot be sliced: its single weight vector is the model of the last round.
        if stopper.best_iteration + 1 < booster.num_boosted_rounds() and plan.params.get("booster") != "gblinear":
            booster = booster[: stopper.best_iteration + 1]
        booster.set_attr(best_iteration=str(stopper.best_iteration), best_score=str(stopper.best_score))
    return booster


# ---------------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------------


def train(job) -> None:
    plan = training_plan(job.hyperparameters)
    if plan.gpu:
        ok, why = gpu_available()
        if not ok:
            raise ClientError(f"tree_method=gpu_hist needs a GPU: {why}. Use the CPU tree_method 'hist' (or "
                              "'auto'), or run the GPU image on a GPU instance (ml.g4dn, ml.g5, ml.p3, ...)")
        log.info("Training on the GPU (tree_method=hist, device=cuda)")
    if job.hyperparameters.get("use_dask_gpu_training"):
        log.warning("use_dask_gpu_training: this image trains on one GPU in one process (no Dask cluster)")

    hosts = job.resources.num_hosts
    if plan.kfold and hosts > 1:
        raise ClientError(f"k-fold cross-validation (_kfold) runs on one instance; this job has {hosts}")
    nthread = plan.params.get("nthread")
    checkpoint_dir = job.checkpoint_dir if job.paths.checkpoint_config_file.exists() else None
    with distributed.collective(job.resources, XGBoostEnv.from_env()):
        # Every host reads its data; if any fails, all stop (none is left waiting for it).
        data, validation = distributed.all_or_none("reading its data", lambda: _read_data(job, plan))
        if plan.kfold:
            _cross_validate(job, plan, data, validation, nthread)
            return
        distributed.check_shards("train", len(data), None if data.is_sparse else data.num_features, required=True)
        if validation is not None:
            distributed.check_shards("validation", len(validation),
                                     None if validation.is_sparse else validation.num_features, required=False)
        try:
            dtrain = to_dmatrix(data, nthread)
            width = data.num_features if len(data) else None  # a host with no records takes the others' width
            dval = to_dmatrix(validation, nthread, width=width) if validation is not None else None
        except Exception as exc:
            import xgboost as xgb

            if isinstance(exc, xgb.core.XGBoostError):
                raise translate_xgboost_error(exc) from None
            raise
        del data, validation
        booster = fit(plan, dtrain, dval, checkpoint_dir=checkpoint_dir, model_dir=job.model_dir,
                      should_stop=job.should_stop)
    if job.should_stop() and not plan.save_model_on_termination:
        return
    if not job.resources.is_master:
        log.info("Host %s is done; the master %s writes the model", job.resources.current_host,
                 job.resources.master_host)
        return
    path = write_model(booster, job.model_dir)
    log.info("Model written to %s (%d trees, XGBoost UBJSON format)", path,
             booster.num_boosted_rounds() * max(1, plan.num_class or 1))


def _read_data(job, plan: TrainingPlan) -> tuple[Batch, Batch | None]:
    """The train and validation records of this host, labels checked."""
    several = job.resources.num_hosts > 1
    started = time.time()
    data = read_channel(job.channel("train"), plan.csv_weights)
    if data is None:
        if not several:
            raise ClientError("Channel 'train' holds no records")
        log.warning("Host %s was given no training records: it joins the other hosts with none (split the data "
                    "into at least as many files as hosts with ShardedByS3Key)", job.resources.current_host)
        data = _no_records()
    check_objective_labels(data.labels, plan.objective, plan.num_class, "train")
    validation = None
    if job.channel("validation") is not None:
        validation = read_channel(job.channel("validation"), plan.csv_weights)
        if validation is None and several:
            validation = _no_records()  # every host evaluates the same sets, or the cluster would wait
        elif validation is None:
            log.warning("Channel 'validation' holds no records: training without it")
        else:
            check_objective_labels(validation.labels, plan.objective, plan.num_class, "validation")
    log.info("Read %d training record(s)%s with %d feature(s) in %.2f s", len(data),
             f" and {len(validation)} validation record(s)" if validation is not None else "", data.num_features,
             time.time() - started)
    return data, validation


def _no_records() -> Batch:
    """An empty shard: XGBoost's cluster agrees on the column count, the largest any host has."""
    return Batch(np.zeros((0, 0), np.float32), np.zeros(0, np.float32))


def _cross_validate(job, plan: TrainingPlan, data: Batch, validation: Batch | None, nthread) -> None:
    """`_kfold`: train and validation joined, one model per fold, saved as xgboost-model-<i>."""
    if validation is not None:
        if not data.is_sparse and not validation.is_sparse and validation.num_features != data.num_features:
            raise ClientError(f"Channel 'validation' has {validation.num_features} features per record but 'train' "
                              f"has {data.num_features}: both channels need the same columns")
        data = Batch.concat([data, validation])
    if job.paths.checkpoint_config_file.exists():
        log.warning("Checkpoints are not written in k-fold cross-validation mode (_kfold)")
    boosters = kfold.cross_validate(
        plan, data, fit=lambda p, dtrain, dheld, printer: fit(p, dtrain, dheld, should_stop=job.should_stop,
                                                               printer=printer),
        to_dmatrix=lambda d: to_dmatrix(d, nthread), output_data_dir=job.paths.output_data_dir, printer=_print,
        should_stop=job.should_stop)
    if not job.resources.is_master or (job.should_stop() and not plan.save_model_on_termination):
        return
    for i, booster in enumerate(boosters):
        write_model(booster, job.model_dir, f"{MODEL_FILE}-{i}")
    log.info("%d cross-validation model(s) written to %s as %s-<fold> (served as one ensemble)", len(boosters),
             job.model_dir, MODEL_FILE)
