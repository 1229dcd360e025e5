"""Training through GluonTS's DeepAREstimator and the artifact (safetensors + JSON, no pickle).
Needs gluonts: run in build/deepar-venv by tests/unit/deepar/test_in_gluonts_venv.py."""
import json

import numpy as np

import torch  # noqa: E402

from smalgos.declaration import load_algorithm  # noqa: E402
from smalgos_forecasting_deepar.evaluation import score_forecasts  # noqa: E402
from smalgos_forecasting_deepar.model import (  # noqa: E402
    META_FILE, WEIGHTS_FILE, Network, batches_per_epoch, load, save,
)
from smalgos_forecasting_deepar.series import decode_record  # noqa: E402

HP = load_algorithm("forecasting-deepar").hyperparameters




def synthetic(n=40, length=240, period=24, seed=1, start="2020-01-01 00:00:00"):
    """AWS's deepar_synthetic recipe: level, a daily sine, noise; a category by amplitude group."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        level = 10 * rng.random()
        group = i % 2
        amplitude = (0.1 + 0.3 * group) * level
        t = np.arange(length)
        y = level + amplitude * np.sin(2 * np.pi * t / period) + 0.05 * level * rng.standard_normal(length)
        out.append({"start": start, "target": y.tolist(), "cat": [group]})
    return out


def train(records, freq, prediction_length, epochs=3, **extra):
    hp = HP.parse({"time_freq": freq, "context_length": str(prediction_length),
                   "prediction_length": str(prediction_length), "epochs": str(epochs), "mini_batch_size": "32",
                   "learning_rate": "0.01", "num_cells": "20", **extra})
    series = [decode_record(r, f"line {i + 1}") for i, r in enumerate(records)]
    network = Network.from_hyperparameters(hp, cardinality=[2], num_dynamic_feat=0)
    estimator = network.estimator(learning_rate=hp["learning_rate"], batch_size=hp["mini_batch_size"],
                                  num_batches_per_epoch=4 * batches_per_epoch(len(series), hp["mini_batch_size"]),
                                  trainer_kwargs={"max_epochs": epochs, "enable_progress_bar": False, "logger": False,
                                                  "enable_model_summary": False, "accelerator": "cpu"})
    torch.manual_seed(0)
    return network, estimator.train(network.entries(series)), series


def forecast(predictor, entries, seed=0):
    torch.manual_seed(seed)
    return [f.samples for f in predictor.predict(entries)]


def test_hourly_train_save_load_forecast(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # lightning's checkpoints land in the working directory
    P = 24
    records = synthetic()
    network, predictor, series = train([{**r, "target": r["target"][:-P]} for r in records], "H", P)
    assert network.frequency.period_freq == "h" and network.lags_seq[:8] == (1, 2, 3, 4, 5, 6, 7, 23)
    files = save(tmp_path / "model", network, predictor.prediction_net)
    assert sorted(p.name for p in files) == sorted([WEIGHTS_FILE, META_FILE])
    meta = json.loads((tmp_path / "model" / META_FILE).read_text())
    assert meta["format"] == "smalgos-forecasting-deepar" and meta["network"]["cardinality"] == [2]
    with open(tmp_path / "model" / WEIGHTS_FILE, "rb") as f:
        assert not f.read(64).startswith(b"\x80")  # not a pickle
    loaded_network, loaded = load(tmp_path / "model")
    assert loaded_network == network
    history = network.entries(series)
    np.testing.assert_array_equal(forecast(loaded, history), forecast(predictor, history))
    # A short fit already follows each series' level (quality against peers: bench/bench_deepar.py)
    samples = forecast(loaded, history)
    held_out = np.array([r["target"][-P:] for r in records])
    means = np.array([s.mean(axis=0) for s in samples])
    assert np.isfinite(means).all() and np.corrcoef(means.ravel(), held_out.ravel())[0, 1] > 0.9
    scores = score_forecasts(list(held_out), samples, [0.1, 0.5, 0.9])
    assert scores["mean_wQuantileLoss"] < 0.3


def test_monthly_trains_on_pandas_3(tmp_path, monkeypatch):
    """pandas 3 refuses the offset alias `M` that GluonTS's own lookups use; ours use `ME`."""
    monkeypatch.chdir(tmp_path)
    network, predictor, series = train(synthetic(n=8, length=96, period=12, start="2000-01-01"), "M", 12, epochs=1)
    (first, *_) = predictor.predict(network.entries(series[:1]))
    assert str(first.start_date) == "2008-01" and first.samples.shape == (100, 12)
