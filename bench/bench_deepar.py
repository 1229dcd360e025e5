"""DeepAR: our trainer (the /opt/ml contract, in-process: what `train` runs in the image) against
GluonTS's own DeepAREstimator trained directly with the same settings, on AWS's deepar_synthetic
series; plus a seasonal-naive forecast, and our forecast latency.

Needs gluonts (build/deepar-venv):
    PYTHONPATH=common:containers/forecasting-deepar build/deepar-venv/bin/python bench/bench_deepar.py

Prints per repeat (interleaved: ours, peer, ours, peer, ...) training seconds, then the median time
ratio ours/peer, the test RMSE and mean_wQuantileLoss of both and of seasonal naive (scored by the
same function), the 80% interval's coverage, and forecast latency (one series per request; one
request of every series).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from gluonts.torch.model.deepar import DeepAREstimator

from smalgos.localjob import LocalJob
from smalgos.training.runner import run_training
from smalgos_forecasting_deepar.evaluation import score_forecasts
from smalgos_forecasting_deepar.model import batches_per_epoch
from smalgos_forecasting_deepar.serve import Configuration, Request, load_model
from smalgos_forecasting_deepar.series import decode_record

QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def synthetic(n: int, length: int, period: int = 24, seed: int = 1) -> list[np.ndarray]:
    """AWS's deepar_synthetic notebook: level 10·U, amplitude (0.1 + 0.3U)·level, noise 0.05·level."""
    rng = np.random.RandomState(seed)
    t = np.arange(length)
    out = []
    for _ in range(n):
        level = 10 * rng.rand()
        amplitude = (0.1 + 0.3 * rng.rand()) * level
        out.append(level + amplitude * np.sin(2 * np.pi * t / period) + 0.05 * level * rng.randn(length))
    return out


def jsonl(series: list[np.ndarray], start: str) -> bytes:
    return "".join(json.dumps({"start": start, "target": s.round(4).tolist()}) + "\n" for s in series).encode()


def train_ours(train, hps, start) -> tuple[float, Path]:
    """Reading the channel, training and saving the model (no test channel: the peer has none)."""
    job = LocalJob(tempfile.mkdtemp(prefix="bench-deepar-"))
    job.write_config(hps, {"train": {}})
    job.add_file("train", "train.json", jsonl(train, start))
    began = time.perf_counter()
    rc = run_training("forecasting-deepar", job.paths, install_signal_handler=False)
    took = time.perf_counter() - began
    assert rc == 0, (job.paths.output_dir / "failure").read_text()
    return took, job.paths.model_dir


def train_peer(train, hps, start):
    estimator = DeepAREstimator(
        freq="h", prediction_length=int(hps["prediction_length"]), context_length=int(hps["context_length"]),
        num_layers=int(hps["num_layers"]), hidden_size=int(hps["num_cells"]), dropout_rate=float(hps["dropout_rate"]),
        lr=float(hps["learning_rate"]), batch_size=int(hps["mini_batch_size"]),
        num_batches_per_epoch=batches_per_epoch(len(train), int(hps["mini_batch_size"])),
        trainer_kwargs={"max_epochs": int(hps["epochs"]), "logger": False, "enable_progress_bar": False,
                        "enable_model_summary": False, "default_root_dir": tempfile.mkdtemp(prefix="bench-peer-")})
    entries = [{"start": pd.Period(start, freq="h"), "target": s.astype(np.float32)} for s in train]
    began = time.perf_counter()
    predictor = estimator.train(entries)
    return time.perf_counter() - began, predictor, entries


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--series", type=int, default=200)
    ap.add_argument("--length", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    P, start = 48, "2020-01-01 00:00:00"
    full = synthetic(args.series, args.length)
    train = [s[:-P] for s in full]
    held_out = [s[-P:] for s in full]
    hps = {"time_freq": "H", "prediction_length": str(P), "context_length": "72", "epochs": str(args.epochs),
           "num_layers": "2", "num_cells": "40", "dropout_rate": "0.1", "learning_rate": "0.001",
           "mini_batch_size": "32", "likelihood": "student-T", "num_eval_samples": "100"}
    ours_t, peer_t = [], []
    for r in range(args.repeats):
        torch.manual_seed(r)
        took, model_dir = train_ours(train, hps, start)
        ours_t.append(took)
        torch.manual_seed(r)
        took_peer, peer, entries = train_peer(train, hps, start)
        peer_t.append(took_peer)
        print(f"repeat {r}: ours {took:.1f} s, gluonts {took_peer:.1f} s", flush=True)

    model = load_model(model_dir)
    config = Configuration.parse({"num_samples": 100})
    history = [decode_record({"start": start, "target": s.tolist()}, f"series {i}") for i, s in enumerate(train)]
    ours_samples = [np.asarray(f.samples) for f in model.predictor.predict(model.network.entries(history))]
    peer_samples = [np.asarray(f.samples) for f in peer.predict(entries)]
    naive = [s[-24:][np.arange(P) % 24][None, :] for s in train]
    scores = {name: score_forecasts(held_out, samples, QUANTILES)
              for name, samples in [("ours", ours_samples), ("gluonts", peer_samples), ("seasonal naive", naive)]}
    print(f"train time ratio ours/gluonts (median of {args.repeats}): "
          f"{statistics.median(ours_t) / statistics.median(peer_t):.3f}")
    for name, s in scores.items():
        print(f"{name:15s} RMSE {s['RMSE']:.4f}  mean_wQuantileLoss {s['mean_wQuantileLoss']:.4f}  "
              f"80% interval coverage {s['coverage[0.9]'] - s['coverage[0.1]']:.3f}")
    print(f"quality ratio ours/gluonts: RMSE {scores['ours']['RMSE'] / scores['gluonts']['RMSE']:.3f}, "
          f"mean_wQuantileLoss {scores['ours']['mean_wQuantileLoss'] / scores['gluonts']['mean_wQuantileLoss']:.3f}")

    one = [Request([h], config) for h in history[:20]]
    began = time.perf_counter()
    for request in one:
        model.predict(request)
    per_series = (time.perf_counter() - began) / len(one)
    began = time.perf_counter()
    model.predict(Request(history, config))
    rate = len(history) / (time.perf_counter() - began)
    print(f"forecast latency: {1e3 * per_series:.1f} ms per one-series request; {rate:.1f} series/s in one "
          f"request of {len(history)} (100 samples each)")


if __name__ == "__main__":
    main()
