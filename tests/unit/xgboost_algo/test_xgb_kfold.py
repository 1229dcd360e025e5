"""k-fold cross-validation (`_kfold`, `_num_cv_round`): one model per fold, fold-mean metric lines,
out-of-fold predictions, and an ensemble the server averages."""

from __future__ import annotations

import re

import numpy as np
import pytest
import xgboost as xgb

from xgb_helpers import make_data, to_csv
from smalgos.environment import ServingEnv
from smalgos_xgboost.kfold import fold_indices, mean_report

PARAMS = {"max_depth": 3, "eta": 0.3}


def test_folds_partition_the_rows_and_stratify():
    labels = np.array([0] * 30 + [1] * 10 + [2] * 5, np.float32)
    splits = list(fold_indices(labels, k=5, repeats=2, stratify=True, seed=3))
    assert len(splits) == 10
    for r in range(2):
        held = [h for _, h in splits[5 * r:5 * r + 5]]
        np.testing.assert_array_equal(np.sort(np.concatenate(held)), np.arange(45))  # each row held out once
        for train, h in splits[5 * r:5 * r + 5]:
            assert np.intersect1d(train, h).size == 0 and train.size + h.size == 45
            assert np.bincount(labels[h].astype(int), minlength=3).tolist() == [6, 2, 1]  # every class in step
    assert not np.array_equal(splits[0][1], splits[5][1])  # each repeat is shuffled afresh
    again = list(fold_indices(labels, k=5, repeats=2, stratify=True, seed=3))
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again))  # the seed makes it repeatable


def test_mean_report_is_xgboosts_line_shape():
    folds = [[("train", "rmse", 1.0), ("validation", "rmse", 2.0)], [("train", "rmse", 3.0), ("validation", "rmse", 5.0)]]
    assert mean_report(10, folds) == "[10]\ttrain-rmse:2.00000\tvalidation-rmse:3.50000"


@pytest.mark.parametrize("objective, extra", [("reg:squarederror", {}), ("binary:logistic", {}),
                                              ("multi:softprob", {"num_class": 3})])
def test_kfold_trains_one_model_per_fold_as_plain_xgboost_would(job, capsys, objective, extra):
    X, y = make_data(objective, n=300, missing=0.05)
    Xv, yv = make_data(objective, n=60, seed=1)
    k, repeats, rounds = 3, 2, 5
    hps = {"num_round": rounds, "objective": objective, **extra, **PARAMS, "_kfold": k, "_num_cv_round": repeats}
    job.setup(hps, {"train": {"ContentType": "text/csv"}, "validation": {"ContentType": "text/csv"}},
              {("train", "a.csv"): to_csv(X, y), ("validation", "a.csv"): to_csv(Xv, yv)})
    assert job.run() == 0, job.failure

    models = sorted(p.name for p in job.paths.model_dir.iterdir())
    assert models == sorted(f"xgboost-model-{i}" for i in range(k * repeats))
    # Train and validation are joined; fold i is plain xgboost.train on that fold's rows.
    X_all, y_all = np.vstack([X, Xv]), np.concatenate([y, yv])
    classification = objective != "reg:squarederror"
    for i, (train_rows, _) in enumerate(fold_indices(y_all, k, repeats, classification, seed=0)):
        theirs = xgb.train({"objective": objective, **extra, **PARAMS},
                           xgb.DMatrix(X_all[train_rows], label=y_all[train_rows]), rounds)
        ours = xgb.Booster()
        ours.load_model(bytearray((job.paths.model_dir / f"xgboost-model-{i}").read_bytes()))
        np.testing.assert_array_equal(ours.predict(xgb.DMatrix(X_all)), theirs.predict(xgb.DMatrix(X_all)))

    out = capsys.readouterr().out
    per_round = [line for line in out.splitlines() if re.match(r"^\[\d+\]\t", line)]
    assert len(per_round) == k * repeats * rounds + repeats + 1  # every fold's rounds, then the means
    means = [line for line in per_round if line.startswith(f"[{rounds}]\t")]
    assert len(means) == repeats + 1 and means[0].split("\t")[1].startswith("train-")
    assert "validation-" in means[0]

    table = np.loadtxt(job.paths.output_data_dir / "predictions.csv", delimiter=",", ndmin=2)
    assert table.shape == (360, 3 if classification else 2)
    np.testing.assert_allclose(table[:, 0], y_all, atol=1e-6)

    # The server averages the fold models (SAGEMAKER_INFERENCE_ENSEMBLE, on by default).
    from smalgos.formats.batch import Batch
    from smalgos_xgboost.serve import load_model

    model = load_model(job.paths.model_dir, ServingEnv.from_env({}))
    assert len(model.boosters) == k * repeats
    want = np.mean([b.predict(xgb.DMatrix(X[:20])) for b in model.boosters], axis=0)
    np.testing.assert_allclose(model.raw_predict(Batch(X[:20])), want, rtol=1e-6)


def test_kfold_out_of_fold_predictions_are_informative(job):
    """Classification: the mean held-out probability ranks the labels well above chance."""
    X, y = make_data("binary:logistic", n=400)
    job.setup({"num_round": 10, "objective": "binary:logistic", **PARAMS, "_kfold": 4},
              {"train": {"ContentType": "text/csv"}}, {("train", "a.csv"): to_csv(X, y)})
    assert job.run() == 0, job.failure
    table = np.loadtxt(job.paths.output_data_dir / "predictions.csv", delimiter=",")
    accuracy = np.mean(table[:, 2] == table[:, 0])
    assert accuracy > 0.8, accuracy
    assert set(np.unique(table[:, 2])) <= {0.0, 1.0} and (0 <= table[:, 1]).all() and (table[:, 1] <= 1).all()


def test_kfold_with_too_few_records_is_a_client_error(job):
    X, y = make_data("reg:squarederror", n=3)
    job.setup({"num_round": 2, "_kfold": 5}, {"train": {"ContentType": "text/csv"}}, {("train", "a.csv"): to_csv(X, y)})
    assert job.run() == 1
    assert job.failure.startswith("ClientError: _kfold=5 needs at least 5 records")


def test_kfold_with_early_stopping_reports_each_folds_best_round(job, capsys):
    X, y = make_data("reg:squarederror", n=300)
    job.setup({"num_round": 60, "eta": 0.9, "max_depth": 6, "early_stopping_rounds": 2, "eval_metric": "rmse",
               "_kfold": 3}, {"train": {"ContentType": "text/csv"}}, {("train", "a.csv"): to_csv(X, y)})
    assert job.run() == 0, job.failure
    out = capsys.readouterr().out.splitlines()
    folds, current = [], []
    for line in out:
        if line.startswith("[0]\t") and current:
            folds.append(current)
            current = []
        if re.match(r"^\[\d+\]\t", line) and not line.startswith("[60]"):
            current.append(line)
    folds.append(current)
    assert len(folds) == 3 and all(len(f) < 60 for f in folds)  # every fold stopped early
    best = [min(float(re.search(r"validation-rmse:([0-9.]+)", line).group(1)) for line in f) for f in folds]
    mean_line = next(line for line in out if line.startswith("[60]\t"))
    assert float(re.search(r"validation-rmse:([0-9.]+)", mean_line).group(1)) == pytest.approx(np.mean(best),
                                                                                              abs=1e-5)


def test_kfold_softmax_probability_column_is_the_vote_share(job):
    X, y = make_data("multi:softmax", n=240)
    job.setup({"num_round": 4, "objective": "multi:softmax", "num_class": 3, **PARAMS, "_kfold": 3,
               "_num_cv_round": 3}, {"train": {"ContentType": "text/csv"}}, {("train", "a.csv"): to_csv(X, y)})
    assert job.run() == 0, job.failure
    table = np.loadtxt(job.paths.output_data_dir / "predictions.csv", delimiter=",")
    assert set(np.unique(table[:, 2])) <= {0.0, 1.0, 2.0}
    assert set(np.round(np.unique(table[:, 1]), 4)) <= {0.3333, 0.6667, 1.0} and (table[:, 1] >= 1 / 3 - 1e-6).all()
