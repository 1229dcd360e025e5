"""Helpers for the XGBoost tests (tests/unit/xgboost_algo): data in every training format and a
LocalJob runner. Imported by name, as algo_helpers is (tests/conftest.py puts tests/unit on
sys.path); fixtures live in xgboost_algo/conftest.py."""

from __future__ import annotations

import io
import os
from pathlib import Path

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

from smalgos.localjob import LocalJob  # noqa: E402
from smalgos.training.runner import run_training  # noqa: E402

FIXTURES = Path(__file__).parent / "xgboost_algo" / "fixtures"


def make_data(objective: str, n: int = 240, d: int = 6, seed: int = 0, missing: float = 0.0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, d)).astype(np.float32)
    if missing:
        X[rng.random(X.shape) < missing] = np.nan
    base = np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 1])
    if objective.startswith("binary:"):
        y = (base + 0.3 * rng.random(n) > 0.9).astype(np.float32)
    elif objective.startswith("multi:"):
        y = np.floor((base / 1.5 + 0.2 * rng.random(n)) * 3).clip(0, 2).astype(np.float32)
    else:
        y = (3 * base + rng.random(n)).astype(np.float32)
    return X, y


def fmt(v: float) -> str:
    return "" if np.isnan(v) else repr(float(v))


def to_csv(X, y, w=None) -> bytes:
    cols = [y[:, None]] + ([w[:, None]] if w is not None else []) + [X]
    M = np.hstack(cols)
    return ("\n".join(",".join(fmt(v) for v in row) for row in M) + "\n").encode()


def to_libsvm(X, y, w=None, one_based=False) -> bytes:
    lines = []
    for i, row in enumerate(X):
        head = fmt(y[i]) + (f":{fmt(w[i])}" if w is not None else "")
        feats = " ".join(f"{j + int(one_based)}:{fmt(v)}" for j, v in enumerate(row) if not np.isnan(v) and v != 0)
        lines.append(head + (" " + feats if feats else ""))
    return ("\n".join(lines) + "\n").encode()


def to_parquet(X, y) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"label": y, **{f"f{j}": X[:, j] for j in range(X.shape[1])}})
    buf = io.BytesIO()
    pq.write_table(table, buf, row_group_size=100)
    return buf.getvalue()



class Job:
    """A LocalJob with the XGBoost algorithm: write config and data, run, read the model."""

    def __init__(self, base: Path):
        self.local = LocalJob(base)
        self.paths = self.local.paths

    def setup(self, hps: dict, channels: dict, files: dict | None = None, checkpoint: dict | None = None):
        self.local.write_config(hps, channels, checkpoint=checkpoint)
        for (channel, name), data in (files or {}).items():
            self.local.add_file(channel, name, data)
        return self

    def run(self) -> int:
        from smalgos_xgboost.declaration import ALGORITHM

        return run_training(ALGORITHM, self.paths, install_signal_handler=False)

    @property
    def failure(self):
        return self.local.failure

    def booster(self):
        import xgboost as xgb

        b = xgb.Booster()
        b.load_model(bytearray((self.paths.model_dir / "xgboost-model").read_bytes()))
        return b
