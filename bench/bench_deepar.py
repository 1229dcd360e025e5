"""DeepAR: our trainer against GluonTS's own DeepAREstimator trained directly with the same
settings, for quality, training speed in the image, and forecast latency.

Needs gluonts (build/deepar-venv; statsmodels too for `co2` and `elnino`:
`build/deepar-venv/bin/pip install statsmodels`):

    PYTHONPATH=common:containers/forecasting-deepar build/deepar-venv/bin/python bench/bench_deepar.py \
        [--cases synthetic co2 elnino related speed latency] [--seeds 3] [--threads 1] [--cpuset 0]

Cases (each prints its own lines, then every case's rows come back as one markdown block):

- Quality (`synthetic`, `co2`, `elnino`, `related`): per seed, interleaved (ours, peer, ours,
  peer, ...), our trainer in-process (`smalgos.training.runner.run_training` on an /opt/ml tree,
  what `train` runs in the image) and GluonTS's `DeepAREstimator` on the same series with the same
  settings (frequency, lengths, layers, cells, dropout, learning rate, batch size, batches per
  epoch, epochs, likelihood, embedding dimension, features), the same global seeds before each.
  Both forecast the same held-out points with 100 sample paths; each is scored by
  `score_forecasts` (GluonTS's Evaluator's RMSE and mean_wQuantileLoss), as is a seasonal-naive
  forecast (the last season repeated, history gaps carried forward). Reported: the means over the
  seeds, ratios ours/peer of those means, and the 80% interval's coverage (share of held-out points
  between the 0.1 and 0.9 quantiles).
  - `synthetic`: AWS's deepar_synthetic notebook's hourly sine series (no features).
  - `co2` (statsmodels, weekly Mauna Loa CO2, 2284 weeks with 59 gaps kept as NaN: DeepAR reads
    `null` targets) and `elnino` (statsmodels, monthly sea surface temperature 1950-2010, 732
    months): one series each, scored on rolling origins (the last `--windows` horizons, each
    forecast from the true history before it; training sees only what precedes the first).
    statsmodels' other series are yearly (`sunspots`, `nile`, `fertility`) or quarterly
    (`macrodata`, `danish_data`, `interest_inflation`): not AWS frequencies (M, W, D, H, min).
  - `related`: a few hundred daily series sharing a weekly pattern, a `cat` group that sets the
    pattern's shape, the level trend and the promotion lift, and a promotion flag as `dynamic_feat`
    (known for the horizon, as AWS requires at inference).
- `speed`: `docker run IMAGE train` on an /opt/ml tree (`LocalJob`) against GluonTS trained by a
  fresh process of this script (`--peer-job`) on the same files and settings, interleaved, both
  pinned to the same cores (`--cpuset-cpus` / `taskset -c`) with OMP/MKL threads = `--threads`.
  Reported: wall time of each, the container's own training time (its `Training finished in`
  line) and start overhead (wall minus that), and the train loop (the epochs' summed seconds: ours
  from the `throughput_metric` lines, the peer's from the same epoch-timing callback).
- `latency`: `docker run -p PORT:8080 IMAGE serve` on a model trained on `related`; one-series
  requests (ms each) and one request of every series (series/s), `application/json`, 100 samples,
  mean and quantiles; and the same request bodies in-process (decode, predict, encode).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
IMAGE = "smalgos/forecasting-deepar:1-cpu"
NUM_SAMPLES = 100
# AWS's time_freq unit → the peer's pandas Period freq. GluonTS looks the lags and time features
# of `M` up by an offset alias pandas 3 refuses; those of `ME` are GluonTS's own lists for `M`.
PEER_FREQ = {"H": "h", "D": "D", "W": "W", "M": "M", "min": "min"}


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# -- data sets -----------------------------------------------------------------------------------


@dataclass
class Case:
    """Training records, and the held-out evaluation: (history record, held-out target) pairs."""

    name: str
    hps: dict
    season: int
    train: list[dict]
    evaluation: list[tuple[dict, np.ndarray]]
    note: str = ""
    settings: str = field(default="")

    @property
    def unit(self) -> str:
        return re.fullmatch(r"\s*(\d*)(\D+)\s*", self.hps["time_freq"]).group(2)

    @property
    def P(self) -> int:
        return int(self.hps["prediction_length"])


def record(start: str, target: np.ndarray, cat=None, dynamic_feat=None) -> dict:
    r = {"start": start, "target": [None if np.isnan(v) else round(float(v), 4) for v in target]}
    if cat is not None:
        r["cat"] = [int(c) for c in cat]
    if dynamic_feat is not None:
        r["dynamic_feat"] = [[round(float(v), 4) for v in f] for f in dynamic_feat]
    return r


def base_hps(freq: str, P: int, context: int, epochs: int, mini_batch_size: int = 32) -> dict:
    return {"time_freq": freq, "prediction_length": str(P), "context_length": str(context), "epochs": str(epochs),
            "num_layers": "2", "num_cells": "40", "dropout_rate": "0.1", "learning_rate": "0.001",
            "mini_batch_size": str(mini_batch_size), "likelihood": "student-T", "embedding_dimension": "10",
            "num_eval_samples": str(NUM_SAMPLES)}


def synthetic_case(args) -> Case:
    """AWS's deepar_synthetic notebook: level 10·U, amplitude (0.1 + 0.3U)·level, noise 0.05·level."""
    P, n, length = 48, args.series, args.length
    rng = np.random.RandomState(1)
    t = np.arange(length)
    full = []
    for _ in range(n):
        level = 10 * rng.rand()
        amplitude = (0.1 + 0.3 * rng.rand()) * level
        full.append(level + amplitude * np.sin(2 * np.pi * t / 24) + 0.05 * level * rng.randn(length))
    start = "2020-01-01 00:00:00"
    hps = base_hps("H", P, 72, args.epochs or 20)
    return Case("synthetic", hps, 24, [record(start, s[:-P]) for s in full],
                [(record(start, s[:-P]), s[-P:]) for s in full], note=f"{n} hourly series × {length - P}")


def rolling_case(name: str, start: str, y: np.ndarray, freq: str, P: int, context: int, season: int,
                 windows: int, epochs: int, note: str) -> Case:
    T = len(y)
    first = T - windows * P
    evaluation = [(record(start, y[:o]), y[o:o + P]) for o in range(first, T, P)]
    return Case(name, base_hps(freq, P, context, epochs), season, [record(start, y[:first])], evaluation,
                note=f"{note}; {windows} rolling horizons of {P}")


def co2_case(args) -> Case:
    import statsmodels.api as sm

    data = sm.datasets.co2.load_pandas().data["co2"]
    y = data.to_numpy(dtype=np.float64)
    return rolling_case("co2", str(data.index[0].date()), y, "W", 52, 104, 52, args.windows, args.epochs or 300,
                        f"1 weekly series, {len(y)} weeks, {int(np.isnan(y).sum())} NaN gaps")


def elnino_case(args) -> Case:
    import statsmodels.api as sm

    frame = sm.datasets.elnino.load_pandas().data
    y = frame.drop(columns="YEAR").to_numpy(dtype=np.float64).ravel()
    start = f"{int(frame['YEAR'].iloc[0])}-01-01"
    return rolling_case("elnino", start, y, "M", 12, 24, 12, args.windows, args.epochs or 300,
                        f"1 monthly series, {len(y)} months")


def related_series(n: int, length: int, groups: int = 4, seed: int = 7):
    """Daily series of `groups` kinds: a weekly pattern shared by all (its amplitude and weekend
    shape set by the group), a level per series (log-uniform 5..200) with the group's trend, and a
    promotion flag on ~12% of days that lifts the day by the group's factor (+30% .. +90%)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    week = np.array([0.0, 0.05, 0.1, 0.15, 0.35, 0.6, 0.3])  # Monday .. Sunday (start is a Monday)
    out = []
    for i in range(n):
        g = i % groups
        level = np.exp(rng.uniform(np.log(5), np.log(200)))
        pattern = 1 + (0.5 + 0.5 * g) * (week[t % 7] - week.mean()) + 0.05 * np.sin(2 * np.pi * t / 365.25)
        trend = 1 + (g - 1.5) * 0.001 * t
        promo = (rng.random(length) < 0.12).astype(np.float64)
        mean = level * pattern * trend * (1 + (0.3 + 0.2 * g) * promo)
        y = np.maximum(mean + rng.normal(0, 0.08, length) * mean, 0.0)
        out.append((g, promo, y))
    return out


def related_case(args) -> Case:
    P, n, length = 14, args.related_series, args.related_length
    start = "2024-01-01"  # a Monday
    data = related_series(n, length + P)
    train = [record(start, y[:length], [g], [promo[:length]]) for g, promo, y in data]
    evaluation = [(record(start, y[:length], [g], [promo]), y[length:]) for g, promo, y in data]
    hps = {**base_hps("D", P, 28, args.epochs or 30), "cardinality": "auto", "num_dynamic_feat": "auto"}
    return Case("related", hps, 7, train, evaluation,
                note=f"{n} daily series × {length}, cat (4 groups), 1 promotion dynamic_feat")


QUALITY = {"synthetic": synthetic_case, "co2": co2_case, "elnino": elnino_case, "related": related_case}


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


# -- ours and the peer ---------------------------------------------------------------------------


def train_ours(case: Case, base: Path | None = None) -> tuple[float, Path]:
    """Reading the channel, training and saving the model, in-process (no test channel: the bench scores)."""
    from smalgos.localjob import LocalJob
    from smalgos.training.runner import run_training

    job = LocalJob(base or Path(tempfile.mkdtemp(prefix="bench-deepar-")))
    job.write_config(case.hps, {"train": {}})
    job.add_file("train", "train.json", jsonl(case.train))
    began = time.perf_counter()
    rc = run_training("forecasting-deepar", job.paths, install_signal_handler=False)
    took = time.perf_counter() - began
    assert rc == 0, job.failure
    return took, job.paths.model_dir


def epoch_timer():
    """A Lightning callback that sums the train loop's seconds, epoch start to epoch end, as our
    EpochLines times them (its `throughput_metric` is windows / those seconds)."""
    import lightning.pytorch as pl

    class EpochSeconds(pl.Callback):
        def __init__(self):
            self.seconds, self._start = [], 0.0

        def on_train_epoch_start(self, trainer, module):
            self._start = time.monotonic()

        def on_train_epoch_end(self, trainer, module):
            self.seconds.append(time.monotonic() - self._start)

    return EpochSeconds()


def peer_entry(r: dict, freq: str) -> dict:
    entry = {"start": pd.Period(r["start"], freq=freq),
             "target": np.array([np.nan if v is None else v for v in r["target"]], dtype=np.float32)}
    if r.get("cat") is not None:
        entry["feat_static_cat"] = np.asarray(r["cat"], dtype=np.int64)
    if r.get("dynamic_feat") is not None:
        entry["feat_dynamic_real"] = np.asarray(r["dynamic_feat"], dtype=np.float32)
    return entry


def train_peer(hps: dict, records: list[dict], timer=None):
    """GluonTS's DeepAREstimator with `hps`' settings (AWS names → GluonTS's), as a user would."""
    from gluonts.time_feature import get_lags_for_frequency, time_features_from_frequency_str
    from gluonts.torch.model.deepar import DeepAREstimator

    from smalgos_forecasting_deepar.model import batches_per_epoch

    multiple, unit = re.fullmatch(r"\s*(\d*)(\D+)\s*", hps["time_freq"]).groups()
    freq = f"{multiple}{PEER_FREQ[unit]}"
    extra = {}
    if unit == "M":
        offset = f"{multiple}ME"
        extra = {"lags_seq": get_lags_for_frequency(offset), "time_features": time_features_from_frequency_str(offset)}
    first = records[0]
    cats = [1 + max(r["cat"][i] for r in records) for i in range(len(first.get("cat") or []))]
    mbs = int(hps["mini_batch_size"])
    estimator = DeepAREstimator(
        freq=freq, prediction_length=int(hps["prediction_length"]), context_length=int(hps["context_length"]),
        num_layers=int(hps["num_layers"]), hidden_size=int(hps["num_cells"]), dropout_rate=float(hps["dropout_rate"]),
        lr=float(hps["learning_rate"]), batch_size=mbs, num_batches_per_epoch=batches_per_epoch(len(records), mbs),
        num_feat_static_cat=len(cats), cardinality=cats or None,
        embedding_dimension=[int(hps["embedding_dimension"])] * len(cats) or None,
        num_feat_dynamic_real=len(first.get("dynamic_feat") or []), num_parallel_samples=NUM_SAMPLES,
        trainer_kwargs={"max_epochs": int(hps["epochs"]), "logger": False, "enable_progress_bar": False,
                        "enable_model_summary": False, "callbacks": [timer] if timer else [],
                        "default_root_dir": tempfile.mkdtemp(prefix="bench-peer-")}, **extra)
    entries = [peer_entry(r, freq) for r in records]
    began = time.perf_counter()
    predictor = estimator.train(entries)
    return time.perf_counter() - began, predictor, freq


def seasonal_naive(history: dict, P: int, season: int) -> np.ndarray:
    y = pd.Series([np.nan if v is None else v for v in history["target"]], dtype=float).ffill().to_numpy()
    last = y[-season:]
    return last[np.arange(P) % season][None, :]


def run_quality(case: Case, seeds: int) -> dict:
    from smalgos_forecasting_deepar.evaluation import score_forecasts
    from smalgos_forecasting_deepar.serve import load_model
    from smalgos_forecasting_deepar.series import decode_record

    held_out = [y for _, y in case.evaluation]
    histories = [h for h, _ in case.evaluation]
    runs: dict[str, list[dict]] = {"ours": [], "gluonts": []}
    times: dict[str, list[float]] = {"ours": [], "gluonts": []}
    for seed in range(seeds):
        seed_all(seed)
        took, model_dir = train_ours(case)
        model = load_model(model_dir)
        series = [decode_record(h, f"{case.name} {i}", future=case.P) for i, h in enumerate(histories)]
        seed_all(seed)
        ours = [np.asarray(f.samples) for f in model.predictor.predict(model.network.entries(series),
                                                                        num_samples=NUM_SAMPLES)]
        runs["ours"].append(score_forecasts(held_out, ours, QUANTILES))
        times["ours"].append(took)
        shutil.rmtree(model_dir.parent, ignore_errors=True)

        seed_all(seed)
        took_peer, peer, freq = train_peer(case.hps, case.train)
        seed_all(seed)
        theirs = [np.asarray(f.samples) for f in peer.predict([peer_entry(h, freq) for h in histories])]
        runs["gluonts"].append(score_forecasts(held_out, theirs, QUANTILES))
        times["gluonts"].append(took_peer)
        o, g = runs["ours"][-1], runs["gluonts"][-1]
        print(f"[{case.name}] seed {seed}: ours {took:.1f} s RMSE {o['RMSE']:.4f} wQL {o['mean_wQuantileLoss']:.4f}"
              f" | gluonts {took_peer:.1f} s RMSE {g['RMSE']:.4f} wQL {g['mean_wQuantileLoss']:.4f}", flush=True)
    naive = score_forecasts(held_out, [seasonal_naive(h, case.P, case.season) for h in histories], QUANTILES)

    def mean(name, key):
        return statistics.fmean(r[key] for r in runs[name])

    def cover(r):
        return r["coverage[0.9]"] - r["coverage[0.1]"]

    result = {"case": case.name, "note": case.note, "seeds": seeds, "hps": case.hps,
              "points": int(sum(np.count_nonzero(~np.isnan(y)) for y in held_out))}
    for name in runs:
        result[name] = {"RMSE": mean(name, "RMSE"), "mean_wQuantileLoss": mean(name, "mean_wQuantileLoss"),
                        "coverage80": statistics.fmean(cover(r) for r in runs[name]),
                        "train_s": statistics.fmean(times[name])}
    result["seasonal naive"] = {"RMSE": naive["RMSE"], "mean_wQuantileLoss": naive["mean_wQuantileLoss"]}
    result["ratio"] = {k: result["ours"][k] / result["gluonts"][k] for k in ("RMSE", "mean_wQuantileLoss")}
    print(f"[{case.name}] {json.dumps(result)}", flush=True)
    return result


# -- speed: the image's train against a fresh GluonTS process ----------------------------------


def engine(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)


def thread_env(threads: int) -> dict:
    return {v: str(threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}


def container_train(base: Path, cpuset: str, threads: int) -> dict:
    name = f"bench-deepar-{uuid.uuid4().hex[:8]}"
    cmd = ["run", "--name", name, "--cpuset-cpus", cpuset, "-v", f"{base}:/opt/ml"]
    for k, v in thread_env(threads).items():
        cmd += ["-e", f"{k}={v}"]
    began = time.perf_counter()
    proc = engine(*cmd, IMAGE, "train")
    wall = time.perf_counter() - began
    code = engine("inspect", "--format", "{{.State.ExitCode}}", name)
    engine("rm", "-f", name)
    logs = proc.stdout + proc.stderr
    assert code.returncode == 0 and code.stdout.strip() == "0", logs[-3000:]
    hps = json.loads((base / "input" / "config" / "hyperparameters.json").read_text())
    from smalgos_forecasting_deepar.model import batches_per_epoch

    n = len((base / "input" / "data" / "train" / "train.json").read_text().splitlines())
    windows = batches_per_epoch(n, int(hps["mini_batch_size"])) * int(hps["mini_batch_size"])
    rates = [float(x) for x in re.findall(r"train throughput=([\d.e+-]+) records/second", logs)]
    runner = float(re.search(r"Training finished in ([\d.]+) s", logs).group(1))
    return {"wall_s": wall, "runner_s": runner, "loop_s": sum(windows / r for r in rates), "epochs": len(rates)}


def peer_process(base: Path, cpuset: str, threads: int) -> dict:
    env = {**os.environ, **thread_env(threads)}
    cmd = ["taskset", "-c", cpuset, sys.executable, str(Path(__file__).resolve()), "--peer-job", str(base)]
    began = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    wall = time.perf_counter() - began
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    line = next(x for x in proc.stdout.splitlines()[::-1] if x.startswith("PEER "))
    return {"wall_s": wall, **json.loads(line[5:])}


def peer_job(base: Path) -> None:
    """`--peer-job`: GluonTS alone (the venv's interpreter, no smalgos trainer) on an /opt/ml tree."""
    hps = json.loads((base / "input" / "config" / "hyperparameters.json").read_text())
    records = [json.loads(x) for x in (base / "input" / "data" / "train" / "train.json").read_text().splitlines()]
    timer = epoch_timer()
    took, _, _ = train_peer(hps, records, timer)
    print("PEER " + json.dumps({"train_s": took, "loop_s": sum(timer.seconds), "epochs": len(timer.seconds),
                                "threads": torch.get_num_threads()}), flush=True)


def run_speed(args) -> dict:
    from smalgos.localjob import LocalJob

    case = related_case(argparse.Namespace(**{**vars(args), "epochs": args.speed_epochs}))
    base = Path(tempfile.mkdtemp(prefix="bench-deepar-speed-"))
    job = LocalJob(base)
    job.write_config(case.hps, {"train": {"ContentType": "application/jsonlines"}})
    job.add_file("train", "train.json", jsonl(case.train))
    ours, theirs = [], []
    for r in range(args.speed_repeats):
        ours.append(container_train(base, args.cpuset, args.threads))
        theirs.append(peer_process(base, args.cpuset, args.threads))
        print(f"[speed] repeat {r}: container {json.dumps(ours[-1])} | gluonts {json.dumps(theirs[-1])}", flush=True)
    shutil.rmtree(base, ignore_errors=True)

    def med(runs, key):
        return statistics.median(x[key] for x in runs)

    result = {"case": "speed", "note": case.note, "hps": case.hps, "repeats": args.speed_repeats,
              "cpuset": args.cpuset, "threads": args.threads,
              "container": {k: med(ours, k) for k in ("wall_s", "runner_s", "loop_s")},
              "gluonts": {k: med(theirs, k) for k in ("wall_s", "train_s", "loop_s")}}
    result["container"]["start_overhead_s"] = statistics.median(x["wall_s"] - x["runner_s"] for x in ours)
    result["ratio"] = {"wall": result["container"]["wall_s"] / result["gluonts"]["wall_s"],
                       "loop": result["container"]["loop_s"] / result["gluonts"]["loop_s"]}
    print(f"[speed] {json.dumps(result)}", flush=True)
    return result


# -- latency: a serving container and in-process ---------------------------------------------------


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_latency(args) -> dict:
    import requests

    from smalgos.formats.media import parse_media_type
    from smalgos_forecasting_deepar.serve import load_model

    case = related_case(argparse.Namespace(**{**vars(args), "epochs": args.latency_epochs}))
    seed_all(0)
    _, model_dir = train_ours(case)
    histories = [h for h, _ in case.evaluation]
    config = {"num_samples": NUM_SAMPLES, "output_types": ["mean", "quantiles"]}
    singles = [json.dumps({"instances": [h], "configuration": config}).encode() for h in histories[:args.requests]]
    batch = json.dumps({"instances": histories, "configuration": config}).encode()

    model = load_model(model_dir)
    media = parse_media_type("application/json")

    def in_process(body: bytes) -> None:
        model.encode(model.predict(model.decode(body, media)), media)

    in_process(singles[0])
    began = time.perf_counter()
    for body in singles:
        in_process(body)
    local_ms = 1e3 * (time.perf_counter() - began) / len(singles)
    began = time.perf_counter()
    in_process(batch)
    local_rate = len(histories) / (time.perf_counter() - began)

    port, name = free_port(), f"bench-deepar-serve-{uuid.uuid4().hex[:8]}"
    cmd = ["run", "-d", "--name", name, "--cpuset-cpus", args.cpuset, "-p", f"127.0.0.1:{port}:8080",
           "-v", f"{model_dir}:/opt/ml/model:ro", "-e", "SAGEMAKER_MODEL_SERVER_WORKERS=1"]
    for k, v in thread_env(args.threads).items():
        cmd += ["-e", f"{k}={v}"]
    started = time.perf_counter()
    out = engine(*cmd, IMAGE, "serve")
    assert out.returncode == 0, out.stderr
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if requests.get(url + "/ping", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.perf_counter() - started < 180, engine("logs", name).stderr[-3000:]
            time.sleep(0.1)
        ready = time.perf_counter() - started
        session = requests.Session()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}

        def post(body: bytes) -> dict:
            r = session.post(url + "/invocations", data=body, headers=headers, timeout=600)
            assert r.status_code == 200, r.text[:500]
            return r.json()

        post(singles[0])
        each = []
        for body in singles:
            began = time.perf_counter()
            post(body)
            each.append(time.perf_counter() - began)
        began = time.perf_counter()
        answer = post(batch)
        rate = len(histories) / (time.perf_counter() - began)
        assert len(answer["predictions"]) == len(histories)
    finally:
        engine("rm", "-f", name)
        shutil.rmtree(model_dir.parent, ignore_errors=True)
    result = {"case": "latency", "note": case.note, "requests": len(singles), "batch": len(histories),
              "cpuset": args.cpuset, "threads": args.threads, "ready_s": ready,
              "container": {"ms_median": 1e3 * statistics.median(each), "ms_mean": 1e3 * statistics.fmean(each),
                            "series_per_s": rate},
              "in_process": {"ms_mean": local_ms, "series_per_s": local_rate}}
    print(f"[latency] {json.dumps(result)}", flush=True)
    return result


# -- the README block ----------------------------------------------------------------------------


def markdown(results: list[dict]) -> str:
    rows = []
    quality = [r for r in results if "ratio" in r and r["case"] in QUALITY]
    if quality:
        rows += ["| data set | seeds | model | RMSE | mean_wQuantileLoss | 80% interval coverage | train s |",
                 "| --- | --- | --- | --- | --- | --- | --- |"]
        for r in quality:
            label = f"`{r['case']}` ({r['note']}; {r['points']} held-out points)"
            for name in ("ours", "gluonts"):
                s = r[name]
                rows.append(f"| {label} | {r['seeds']} | {'ours' if name == 'ours' else 'GluonTS DeepAREstimator'} | "
                            f"{s['RMSE']:.4g} | {s['mean_wQuantileLoss']:.4g} | {100 * s['coverage80']:.1f}% | "
                            f"{s['train_s']:.1f} |")
            n = r["seasonal naive"]
            rows.append(f"| {label} | – | seasonal naive | {n['RMSE']:.4g} | {n['mean_wQuantileLoss']:.4g} | – | – |")
            rows.append(f"| {label} | | **ratio ours/GluonTS** | **{r['ratio']['RMSE']:.3f}** | "
                        f"**{r['ratio']['mean_wQuantileLoss']:.3f}** | | |")
        rows.append("")
    for r in results:
        if r["case"] == "speed":
            c, g = r["container"], r["gluonts"]
            rows += ["| training (`related`, median of %d, cores %s, %d thread(s)) | wall s | train s | train loop s |"
                     % (r["repeats"], r["cpuset"], r["threads"]),
                     "| --- | --- | --- | --- |",
                     f"| `docker run {IMAGE} train` | {c['wall_s']:.1f} | {c['runner_s']:.1f} (start overhead "
                     f"{c['start_overhead_s']:.1f}) | {c['loop_s']:.1f} |",
                     f"| GluonTS DeepAREstimator, fresh process | {g['wall_s']:.1f} | {g['train_s']:.1f} | "
                     f"{g['loop_s']:.1f} |",
                     f"| **ratio** | **{r['ratio']['wall']:.3f}** | | **{r['ratio']['loop']:.3f}** |", ""]
        if r["case"] == "latency":
            c, p = r["container"], r["in_process"]
            rows += [f"| forecast (`related` model, {NUM_SAMPLES} samples, mean + quantiles, cores {r['cpuset']}, "
                     f"{r['threads']} thread(s)) | ms per one-series request | series/s in one request of "
                     f"{r['batch']} |",
                     "| --- | --- | --- |",
                     f"| container `serve` (1 worker; /ping after {r['ready_s']:.1f} s) | {c['ms_median']:.1f} "
                     f"(median of {r['requests']}; mean {c['ms_mean']:.1f}) | {c['series_per_s']:.0f} |",
                     f"| in-process (decode, predict, encode) | {p['ms_mean']:.1f} (mean) | {p['series_per_s']:.0f} |",
                     ""]
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", nargs="+", default=["synthetic"],
                    choices=[*QUALITY, "speed", "latency"], help="which cases to run (default: synthetic)")
    ap.add_argument("--seeds", type=int, default=3, help="quality: seeds per model")
    ap.add_argument("--epochs", type=int, default=None, help="quality: epochs (default: per case)")
    ap.add_argument("--series", type=int, default=200, help="synthetic: series")
    ap.add_argument("--length", type=int, default=400, help="synthetic: length")
    ap.add_argument("--windows", type=int, default=4, help="co2, elnino: rolling horizons scored")
    ap.add_argument("--related-series", type=int, default=300)
    ap.add_argument("--related-length", type=int, default=168, help="related: training days per series")
    ap.add_argument("--speed-epochs", type=int, default=20)
    ap.add_argument("--speed-repeats", type=int, default=3)
    ap.add_argument("--latency-epochs", type=int, default=5)
    ap.add_argument("--requests", type=int, default=50, help="latency: one-series requests")
    ap.add_argument("--threads", type=int, default=1, help="torch/OMP threads, every case")
    ap.add_argument("--cpuset", default="0", help="speed, latency: the cores both sides are pinned to")
    ap.add_argument("--markdown", type=Path, default=None, help="also write the README block here")
    ap.add_argument("--peer-job", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.peer_job is not None:
        peer_job(args.peer_job)
        return
    results = []
    for name in args.cases:
        if name in QUALITY:
            results.append(run_quality(QUALITY[name](args), args.seeds))
        elif name == "speed":
            results.append(run_speed(args))
        else:
            results.append(run_latency(args))
    block = markdown(results)
    print("\n" + block)
    if args.markdown:
        args.markdown.write_text(block + "\n")


if __name__ == "__main__":
    main()
