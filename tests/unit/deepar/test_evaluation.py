"""The test channel's scores: GluonTS's Evaluator definitions, checked by hand and (where gluonts is
installed: build/deepar-venv) against the Evaluator itself on the same forecasts."""
import numpy as np
import pytest

from smalgos_forecasting_deepar.evaluation import sample_quantiles, score_forecasts

QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def test_by_hand():
    y = np.array([1.0, np.nan, 3.0])
    paths = np.array([[0.0, 5.0, 2.0], [2.0, 5.0, 4.0], [4.0, 5.0, 6.0]])  # mean 2, 5, 4; median = middle row
    scores = score_forecasts([y], [paths], [0.5])
    assert scores["RMSE"] == pytest.approx(1.0)  # errors 1 and 1 on the observed points
    # QL_0.5 = 2 * (|2 - 1| * 0.5 + |4 - 3| * 0.5) = 2; divided by |1| + |3|
    assert scores["wQuantileLoss[0.5]"] == pytest.approx(0.5) == scores["mean_wQuantileLoss"]
    assert scores["coverage[0.5]"] == 1.0


def test_quantiles_pick_gluonts_sample_rank():
    paths = np.arange(10.0)[::-1, None]  # 10 samples, unsorted
    np.testing.assert_array_equal(sample_quantiles(paths, [0.1, 0.5, 0.9])[:, 0], [1.0, 4.0, 8.0])


def test_series_with_no_observed_horizon_are_skipped():
    good = score_forecasts([np.array([2.0])], [np.array([[1.0], [3.0]])], [0.5])
    both = score_forecasts([np.array([2.0]), np.array([np.nan])], [np.array([[1.0], [3.0]])] * 2, [0.5])
    assert good == both


def forecasts(seed=0, n=30, horizon=12):
    rng = np.random.default_rng(seed)
    targets = [rng.gamma(2.0, 5.0, horizon) for _ in range(n)]
    samples = [t + rng.normal(0, 2.0, (100, horizon)) for t in targets]
    targets[3][[2, 5]] = np.nan  # gaps in the held-out values
    return targets, samples
