"""The model artifact: `xgboost-model` in XGBoost's own format, never a pickle.

Written: UBJSON bytes from `Booster.save_raw("ubj")` (what AWS's 3.0-5 image writes: XGBoost >= 2.1
saves UBJSON when the file name has no extension), to a temporary name then renamed.

Read, by content rather than name: JSON or UBJSON (XGBoost 1.0+), XGBoost's old binary format
(AWS's images up to 1.7-1; XGBoost 3 cannot read it, `legacy` converts it), and pickled Boosters
(AWS's images before 1.3-1), whose model bytes are taken out without unpickling. Anything else is a
ClientError that says what the file is and how to re-save it.
"""

from __future__ import annotations

import json
import logging
import warnings
from functools import lru_cache
from pathlib import Path

import numpy as np

from smalgos.artifacts import write_atomic
from smalgos.errors import ClientError

from . import legacy

log = logging.getLogger("smalgos")

MODEL_FILE = "xgboost-model"


def booster_to_bytes(booster) -> bytes:
    return bytes(booster.save_raw("ubj"))


def write_model(booster, model_dir: Path, name: str = MODEL_FILE) -> Path:
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / name
    data = booster_to_bytes(booster)
    write_atomic(path, lambda tmp: tmp.write_bytes(data))
    return path


@lru_cache(maxsize=64)
def default_objective_config(objective: str, num_class: int) -> dict:
    """XGBoost 3's default parameters of an objective (for models from XGBoost < 1.0)."""
    import xgboost as xgb

    params = {"objective": objective}
    if num_class > 1:
        params["num_class"] = num_class
    d = xgb.DMatrix(np.zeros((2, 1), dtype=np.float32), label=np.array([0.0, 1.0]))
    try:
        config = json.loads(xgb.Booster(params, [d]).save_config())
    except xgb.core.XGBoostError:
        return {"name": objective}
    return config["learner"]["objective"]


def _from_snapshot_or_model(raw: bytes):
    """Bytes of a model (JSON/UBJSON/binary) or of a pickled Booster's memory snapshot."""
    import xgboost as xgb

    if legacy.is_legacy_binary(raw):
        raw = legacy.legacy_to_json_bytes(raw, default_objective_config)
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(raw))
        return booster
    except xgb.core.XGBoostError:
        pass
    # XGBoost >= 1.0 pickles hold a memory snapshot ({"Model": ..., "Config": ...}); XGBoost reads
    # those through its unpickling entry point, which we call with the bytes only.
    state = {"handle": bytearray(raw)}
    booster = xgb.Booster.__new__(xgb.Booster)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # XGBoost's advice to re-save: we log our own
        booster.__setstate__(state)
    return booster


def booster_from_bytes(data: bytes, source: str = "model"):
    """A Booster from any of the formats AWS's images wrote (see the module docstring)."""
    import xgboost as xgb

    data = bytes(data)
    if not data:
        raise ClientError(f"The {source} file is empty")
    if legacy.is_pickle(data):
        raw = legacy.booster_bytes_from_pickle(data)
        log.warning("%s is a pickled XGBoost Booster (AWS images before 1.3-1 wrote these). Its model bytes were "
                    "read as data, nothing was unpickled; re-save it with Booster.save_model to drop this step",
                    source)
        try:
            return _from_snapshot_or_model(raw)
        except xgb.core.XGBoostError as exc:
            raise ClientError(f"The pickled model in {source} holds bytes XGBoost cannot read: "
                              f"{str(exc).splitlines()[0]}") from None
    if legacy.is_legacy_binary(data):
        log.info("%s is in XGBoost's old binary format (AWS 1.7-1 and older); converting it", source)
        data = legacy.legacy_to_json_bytes(data, default_objective_config)
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(data))
    except xgb.core.XGBoostError as exc:
        raise ClientError(f"{source} is not an XGBoost model XGBoost {xgb.__version__} can read: "
                          f"{str(exc).splitlines()[0]}") from None
    return booster


def load_booster(path: Path):
    return booster_from_bytes(Path(path).read_bytes(), source=str(path))
