"""Our DeepAR metrics against GluonTS's own Evaluator (needs gluonts: run in build/deepar-venv by
tests/unit/deepar/test_in_gluonts_venv.py)."""
import numpy as np
import pandas as pd
import pytest

from smalgos_forecasting_deepar.evaluation import score_forecasts

from ..test_evaluation import QUANTILES, forecasts


def test_agrees_with_gluonts_evaluator():
    from gluonts.evaluation import Evaluator
    from gluonts.model.forecast import SampleForecast

    targets, samples = forecasts()
    start = pd.Period("2020-01-01", freq="D")
    history = 20
    series, fcs = [], []
    for y, paths in zip(targets, samples):
        values = np.concatenate([np.ones(history), y])
        series.append(pd.DataFrame(values, index=pd.period_range(start, periods=len(values), freq="D")))
        fcs.append(SampleForecast(paths.astype(np.float32), start_date=start + history))
    agg, _ = Evaluator(quantiles=QUANTILES, num_workers=0, seasonality=1)(iter(series), iter(fcs), num_series=len(series))
    ours = score_forecasts(targets, [p.astype(np.float32) for p in samples], QUANTILES)
    for key in ["RMSE", "mean_wQuantileLoss", "ND"] + [f"wQuantileLoss[{q}]" for q in QUANTILES]:
        assert ours[key] == pytest.approx(agg[key], rel=1e-5), key
