"""Threshold calibration against brute force, and the final metrics against scikit-learn."""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from smalgos.metrics import MetricsLogger
from smalgos_linear_learner.declaration import ALGORITHM
from smalgos_linear_learner.evaluation import (BinaryMetrics, MulticlassMetrics, RegressionMetrics, _sorted_descending,
                                               calibrate, roc_auc)


def brute(scores, y, criterion, beta=1.0, tr=0.8, tp_=0.8):
    best = -np.inf
    cands = np.concatenate([[scores.max() + 1], np.unique(scores)])
    for t in cands:
        pred = scores >= t
        tp = np.sum(pred & (y == 1)); fp = np.sum(pred & (y == 0))
        prec = tp / (tp + fp) if tp + fp else 0.0
        rec = tp / max(np.sum(y == 1), 1)
        if criterion == "accuracy":
            v = np.mean(pred == y)
        elif criterion == "f_beta":
            v = (1 + beta**2) * prec * rec / (beta**2 * prec + rec) if prec + rec else 0.0
        elif criterion == "precision_at_target_recall":
            v = prec if rec >= tr else -np.inf
        else:
            v = rec if prec >= tp_ else -np.inf
        best = max(best, v)
    return best


@pytest.mark.parametrize("criterion", ["accuracy", "f_beta", "precision_at_target_recall", "recall_at_target_precision"])
def test_calibrate_matches_brute_force_with_ties(criterion):
    rng = np.random.default_rng(0)
    n, m = 300, 5
    y = (rng.random(n) < 0.3).astype(np.float32)
    scores = np.round(rng.random((n, m)) + 0.6 * y[:, None], 2).astype(np.float32)  # many ties
    values, thresholds = calibrate(torch.from_numpy(scores), torch.from_numpy(y), criterion, beta=0.5)
    for j in range(m):
        expected = brute(scores[:, j], y, criterion, beta=0.5)
        assert values[j] == pytest.approx(expected)
        pred = scores[:, j] >= thresholds[j]  # the threshold reproduces the value
        tp = np.sum(pred & (y == 1)); fp = np.sum(pred & (y == 0))
        if criterion == "accuracy":
            assert np.mean(pred == y) == pytest.approx(expected)
        elif criterion == "precision_at_target_recall":
            assert tp / (tp + fp) == pytest.approx(expected)


def test_cpu_sort_orders_like_torch_sort_with_non_finite_scores():
    rng = np.random.default_rng(2)
    n, m = 400, 4
    scores = np.round(rng.normal(size=(n, m)), 1).astype(np.float32)
    scores[rng.random((n, m)) < 0.05] = np.nan
    scores[rng.random((n, m)) < 0.05] = np.inf
    scores[rng.random((n, m)) < 0.05] = -np.inf
    y = torch.from_numpy((rng.random(n) < 0.4).astype(np.float32))
    s, ys = _sorted_descending(torch.from_numpy(scores), y)
    expected, order = torch.sort(torch.from_numpy(scores).t(), dim=1, descending=True, stable=True)
    np.testing.assert_array_equal(s.numpy(), expected.numpy())  # NaN first, as torch.sort puts it
    cuts = torch.ones(m, n, dtype=torch.bool)  # positives above every cut between distinct scores
    cuts[:, :-1] = expected[:, :-1] > expected[:, 1:]
    np.testing.assert_array_equal(ys.cumsum(1)[cuts].numpy(), y[order].cumsum(1)[cuts].numpy())


def test_threshold_with_nothing_positive_is_above_every_score():
    scores = torch.tensor([[0.1], [0.2], [0.3]])
    values, thr = calibrate(scores, torch.zeros(3), "accuracy")
    assert values[0] == 1.0 and thr[0] > 0.3


def test_final_metrics_match_scikit_learn():
    rng = np.random.default_rng(1)
    y = (rng.random(500) < 0.4).astype(np.float32)
    s = np.clip(rng.random(500) * 0.7 + 0.3 * y, 0, 1).astype(np.float32)
    acc = BinaryMetrics("binary_classification_cross_entropy_objective", threshold=0.5, beta=1.0)
    acc.update(s[:200], y[:200], np.ones(200))
    acc.update(s[200:], y[200:], np.ones(300))
    r = acc.result()
    pred = s >= 0.5
    assert r["binary_classification_accuracy"] == pytest.approx(np.mean(pred == y))
    assert r["precision"] == pytest.approx(precision_score(y, pred))
    assert r["recall"] == pytest.approx(recall_score(y, pred))
    assert r["binary_f_1.000"] == pytest.approx(f1_score(y, pred))
    assert r["roc_auc_score"] == pytest.approx(roc_auc_score(y, s))
    assert roc_auc(s, np.zeros(500)) is None


def test_binary_metrics_hold_a_bounded_sample_for_the_auc():
    """Beyond auc_rows the AUC comes from a uniform reservoir sample (memory flat as the channel
    grows); the counts behind accuracy, precision, recall and F stay exact."""
    rng = np.random.default_rng(2)
    n = 60_000
    y = (rng.random(n) < 0.3).astype(np.float32)
    s = np.clip(rng.normal(0.4 + 0.25 * y, 0.2), 0, 1).astype(np.float32)
    s[:20_000] = np.clip(s[:20_000] + 0.1, 0, 1)  # the first rows differ: a sample of them would show it
    acc = BinaryMetrics("binary_classification_cross_entropy_objective", threshold=0.5, beta=1.0, auc_rows=5_000)
    for i in range(0, n, 7_000):
        acc.update(s[i:i + 7_000], y[i:i + 7_000], np.ones(len(s[i:i + 7_000])))
    assert sum(map(len, acc.scores)) == 5_000
    r = acc.result()
    pred = s >= 0.5
    assert r["binary_classification_accuracy"] == pytest.approx(np.mean(pred == y))
    assert r["precision"] == pytest.approx(precision_score(y, pred))
    assert r["binary_f_1.000"] == pytest.approx(f1_score(y, pred))
    assert r["roc_auc_score"] == pytest.approx(roc_auc_score(y, s), abs=0.02)


def test_multiclass_metrics_match_scikit_learn():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(4), size=300)
    yc = rng.integers(0, 4, size=300)
    mc = MulticlassMetrics("multiclass_cross_entropy_objective", num_classes=4, top_k=2, beta=1.0)
    mc.update(p, yc, np.zeros(300))
    r = mc.result()
    assert r["multiclass_accuracy"] == pytest.approx(np.mean(p.argmax(1) == yc))
    assert r["macro_recall"] == pytest.approx(recall_score(yc, p.argmax(1), average="macro"))
    assert r["macro_f_1.000"] == pytest.approx(f1_score(yc, p.argmax(1), average="macro"))
    top2 = np.argsort(-p, axis=1)[:, :2]
    assert r["multiclass_top_k_accuracy_2"] == pytest.approx(np.mean([yc[i] in top2[i] for i in range(300)]))
    assert 0 < r["dcg"] <= 1

    reg = RegressionMetrics("mse_objective")
    reg.update(np.array([1.0, 2.0]), np.array([2.0, 2.0]), np.array([1.0, 0.0]))
    assert reg.result() == {"mse_objective": 0.5, "mse": 0.5, "rmse": pytest.approx(0.5 ** 0.5), "absolute_loss": 0.5}
    # each metric's <loss>/<score> kind is its declaration's
    declared = MetricsLogger(metrics=ALGORITHM.metrics).declared
    assert declared("test", "mse").kind == "loss" and declared("test", "dcg").kind == "score"
    assert declared("test", "x_objective").kind == "loss" and declared("train", "rmse").kind == "loss"
