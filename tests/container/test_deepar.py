"""The forecasting-deepar image as a user drives it: SageMaker Python SDK v2 local mode `fit` on
JSON Lines with `cat` and `dynamic_feat`, `deploy`, `predict` with the SDK's JSONSerializer; a
model without features trained by `docker run IMAGE train` (its log lines read) and used by a
local batch transform with DEEPAR_INFERENCE_CONFIG; and a bad record, a ClientError naming its
file, line and field. Lean (CI has two cores): a few dozen short daily series, a few epochs."""

from __future__ import annotations

import json
import re
import tarfile

import numpy as np
import pytest

from .helpers import ROLE
from .test_more_algorithms import deployed, fit

pytestmark = pytest.mark.container

ALGO = "forecasting-deepar"
JSONLINES = "application/jsonlines"
START = "2024-01-01 00:00:00"
P = 7  # prediction_length: a week of days
HPS = {"time_freq": "D", "prediction_length": str(P), "context_length": "14", "epochs": "40",
       "num_cells": "20", "num_layers": "1", "mini_batch_size": "16", "learning_rate": "0.01",
       "num_eval_samples": "50"}


def related_series(n: int, length: int, seed: int = 0):
    """Daily series that share a weekly pattern: a level per series, the weekly amplitude set by
    its group (`cat`), and a promotion flag (`dynamic_feat`) that lifts the day it is on."""
    rng = np.random.default_rng(seed)
    t = np.arange(length + P)
    series = []
    for i in range(n):
        group = i % 3
        promo = (rng.random(length + P) < 0.1).astype(float)
        level = rng.uniform(20, 60)
        y = level * (1 + (0.2 + 0.2 * group) * np.sin(2 * np.pi * t / 7)) + 15 * promo
        y = y + rng.normal(0, 1.5, length + P)
        series.append({"cat": [group], "promo": promo, "target": y})
    return series


def record(s: dict, length: int, *, features: bool, feature_length: int | None = None) -> dict:
    out = {"start": START, "target": [round(float(v), 3) for v in s["target"][:length]]}
    if features:
        out["cat"] = s["cat"]
        out["dynamic_feat"] = [s["promo"][:feature_length or length].tolist()]
    return out


def jsonl(records: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def test_deepar_jsonlines_fit_with_cat_and_dynamic_feat_then_json_forecasts(algo_image, session, sdk_env,
                                                                           tmp_path):
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import JSONSerializer

    image = algo_image(ALGO)
    length = 84
    data = related_series(24, length)
    # train: the history; test: history + the next P days (AWS holds the last P out and scores them)
    train = [record(s, length, features=True) for s in data]
    test = [record(s, length + P, features=True) for s in data]
    est, model_tar = fit(session, sdk_env, image, {**HPS, "cardinality": "auto", "num_dynamic_feat": "auto"},
                         {"train": (JSONLINES, {"train.json": jsonl(train)}),
                          "test": (JSONLINES, {"test.json": jsonl(test)})})
    with tarfile.open(model_tar) as tar:
        meta = json.load(tar.extractfile("deepar.json"))
        assert {"deepar.json", "deepar.safetensors"} <= set(tar.getnames())
    assert meta["network"]["cardinality"] == [3] and meta["network"]["num_dynamic_feat"] == 1

    # Forecast the P held-out days of each series from its history and the promotions ahead.
    instances = [record(s, length, features=True, feature_length=length + P) for s in data]
    request = {"instances": instances,
               "configuration": {"num_samples": 50, "output_types": ["mean", "quantiles"], "quantiles": ["0.1", "0.9"]}}
    with deployed(est, JSONSerializer(), JSONDeserializer()) as predictor:
        answer = predictor.predict(request)
        # A dynamic_feat as long as the target only: the future promotions are missing. (Local
        # mode's runtime client hands back a 4xx body as an answer: it never reads the status.)
        bad = predictor.predict({"instances": [record(data[0], length, features=True)]})
        again = predictor.predict({"instances": instances[:1]})  # the server keeps serving
    assert sorted(bad) == ["error", "message"], bad
    assert "instance 0: field 'dynamic_feat'" in bad["message"] and f"{length + P}" in bad["message"], bad
    assert sorted(again["predictions"][0]) == ["mean", "quantiles"]

    assert list(answer) == ["predictions"] and len(answer["predictions"]) == len(instances)
    mean = np.array([p["mean"] for p in answer["predictions"]])
    low = np.array([p["quantiles"]["0.1"] for p in answer["predictions"]])
    high = np.array([p["quantiles"]["0.9"] for p in answer["predictions"]])
    truth = np.array([s["target"][length:length + P] for s in data])
    assert mean.shape == low.shape == high.shape == (len(data), P) and np.isfinite(mean).all()
    assert (low <= high).all()
    # Far better than repeating each series' last value or its mean level (here: MAE 2.8 against
    # 14.4 and 10.5), and the 10-90% band holds most of the held-out days (here: 73%).
    history = np.array([s["target"][:length] for s in data])
    naive = np.repeat(history[:, -1:], P, axis=1)
    level = np.repeat(history.mean(1, keepdims=True), P, axis=1)
    ours = np.abs(mean - truth).mean()
    assert ours < 0.5 * min(np.abs(naive - truth).mean(), np.abs(level - truth).mean()), (
        ours, np.abs(naive - truth).mean(), np.abs(level - truth).mean())
    assert 0.5 <= ((truth >= low) & (truth <= high)).mean() <= 1.0


def test_deepar_docker_train_log_lines_then_batch_transform_lines(algo_image, engine, session, sdk_env, tmp_path):
    from sagemaker.model import Model
    from smalgos.localjob import LocalJob

    image = algo_image(ALGO)
    length = 56
    data = related_series(12, length, seed=1)
    job = LocalJob(tmp_path / "opt_ml")
    job.write_config({**HPS, "epochs": "2"}, {"train": {"ContentType": "application/jsonlines"}, "test": {}})
    job.add_file("train", "series.json", jsonl([record(s, length, features=False) for s in data]))
    job.add_file("test", "series.json", jsonl([record(s, length + P, features=False) for s in data]))
    run = engine.run(image, "train", volumes={str(job.paths.base): "/opt/ml"})
    assert run.returncode == 0, run.logs[-4000:]
    for pattern in (r"#quality_metric: host=algo-1, epoch=0, train loss <loss>=[-\d.e]+",
                    r"#quality_metric: host=algo-1, epoch=1, train loss <loss>=",
                    r"#quality_metric: host=algo-1, train final_loss <loss>=",
                    r"#quality_metric: host=algo-1, test RMSE <loss>=\d",
                    r"#quality_metric: host=algo-1, test mean_wQuantileLoss <loss>=\d",
                    r"#test_score \(algo-1, wQuantileLoss\[0\.5\]\): \d"):
        assert re.search(pattern, run.logs), (pattern, run.logs[-3000:])

    model_tar = tmp_path / "model" / "model.tar.gz"
    model_tar.parent.mkdir()
    with tarfile.open(model_tar, "w:gz") as tar:
        for f in sorted(job.paths.model_dir.iterdir()):
            tar.add(f, arcname=f.name)
    folder = sdk_env / "transform" / "deepar"
    (folder / "in").mkdir(parents=True)
    lines = [record(s, length, features=False) for s in data[:5]]
    (folder / "in" / "series.json").write_bytes(jsonl(lines))
    config = {"num_samples": 20, "output_types": ["mean", "quantiles", "samples"], "quantiles": ["0.5", "0.9"]}
    model = Model(image_uri=image, model_data=f"file://{model_tar}", role=ROLE, sagemaker_session=session)
    transformer = model.transformer(instance_count=1, instance_type="local", strategy="MultiRecord",
                                    assemble_with="Line", accept=JSONLINES, output_path=f"file://{folder / 'out'}",
                                    env={"DEEPAR_INFERENCE_CONFIG": json.dumps(config)})
    transformer.transform(data=f"file://{folder / 'in'}", content_type=JSONLINES, split_type="Line",
                          wait=True, logs=False)
    out = folder / "out" / "series.json.out"
    assert out.exists(), sorted(p.name for p in folder.rglob("*"))
    answers = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert len(answers) == len(lines), answers[:2]
    for a in answers:
        assert sorted(a) == ["mean", "quantiles", "samples"], a
        assert len(a["mean"]) == P and sorted(a["quantiles"]) == ["0.5", "0.9"]
        assert np.array(a["samples"]).shape == (20, P)


def test_deepar_bad_record_is_a_client_error_naming_file_line_and_field(algo_image, engine, tmp_path):
    from smalgos.localjob import LocalJob

    image = algo_image(ALGO)
    data = related_series(4, 40, seed=2)
    lines = [record(s, 40, features=True) for s in data]
    lines[2]["dynamic_feat"] = [lines[2]["dynamic_feat"][0][:-3]]  # ragged: shorter than its target
    job = LocalJob(tmp_path / "opt_ml")
    job.write_config({**HPS, "epochs": "1"}, {"train": {"ContentType": "application/jsonlines"}})
    job.add_file("train", "bad.json", jsonl(lines))
    run = engine.run(image, "train", volumes={str(job.paths.base): "/opt/ml"})
    assert run.returncode != 0
    failure = (job.paths.base / "output" / "failure").read_text()
    first = failure.splitlines()[0]
    assert first.startswith("ClientError:") and "bad.json" in first and "line 3" in first, failure[:500]
    assert "dynamic_feat" in first, failure[:500]
