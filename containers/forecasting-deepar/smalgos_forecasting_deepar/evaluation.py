"""The test channel's accuracy, as GluonTS's `Evaluator` computes it (AWS's DeepAR logs the same
names): each series' last prediction_length points are forecast from the rest and scored.

Per series, over its non-missing horizon points y (NaN: missing), with the mean forecast m and the
sample quantiles ŷ_q (GluonTS's `SampleForecast.quantile`: the sorted samples' round((n-1)·q)-th):
MSE = mean((y - m)²), QuantileLoss[q] = 2·Σ|(ŷ_q - y)·(1{y ≤ ŷ_q} - q)|, abs_target_sum = Σ|y|.
Over series: RMSE = sqrt(mean of the MSEs, NaN ones skipped), wQuantileLoss[q] =
ΣQuantileLoss[q] / Σabs_target_sum, mean_wQuantileLoss = their mean over the quantiles.
Also `coverage[q]`: the share of horizon points at or below ŷ_q (an 80% interval covers
coverage[0.9] - coverage[0.1]). numpy only.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def sample_quantiles(samples: np.ndarray, quantiles: Sequence[float]) -> np.ndarray:
    """(len(quantiles), horizon) quantiles of (num_samples, horizon) sample paths, as GluonTS picks them."""
    ordered = np.sort(samples, axis=0)
    rows = [int(np.round((ordered.shape[0] - 1) * q)) for q in quantiles]
    return ordered[rows]


def quantile_key(q: float) -> str:
    """`0.1` → `wQuantileLoss[0.1]`'s inner text, as GluonTS and AWS print it."""
    return repr(float(q))


def score_forecasts(targets: Sequence[np.ndarray], samples: Sequence[np.ndarray],
                    quantiles: Sequence[float]) -> dict[str, float]:
    """`targets[i]` (horizon,) held-out values with NaN gaps; `samples[i]` (num_samples, horizon)
    forecast paths. Returns RMSE, mean_wQuantileLoss, ND, wQuantileLoss[q], coverage[q]."""
    mse, abs_sum, abs_error = [], 0.0, 0.0
    losses, covered = np.zeros(len(quantiles)), np.zeros(len(quantiles))
    observed = 0
    for y, paths in zip(targets, samples):
        y = np.asarray(y, dtype=np.float64)
        paths = np.asarray(paths, dtype=np.float64)
        keep = ~np.isnan(y)
        if not keep.any():
            continue
        y = y[keep]
        mean = paths.mean(axis=0)[keep]
        q_pred = sample_quantiles(paths, quantiles)[:, keep]
        mse.append(np.mean((y - mean) ** 2))
        abs_sum += np.sum(np.abs(y))
        abs_error += np.sum(np.abs(y - sample_quantiles(paths, [0.5])[0][keep]))
        losses += 2 * np.sum(np.abs((q_pred - y) * ((y <= q_pred) - np.asarray(quantiles)[:, None])), axis=1)
        covered += np.sum(y <= q_pred, axis=1)
        observed += y.size
    if not mse:
        raise ValueError("no series has an observed value in its forecast horizon")
    weighted = losses / abs_sum
    scores = {"RMSE": float(np.sqrt(np.mean(mse))), "mean_wQuantileLoss": float(weighted.mean()),
              "ND": float(abs_error / abs_sum)}
    for q, w, c in zip(quantiles, weighted, covered):
        scores[f"wQuantileLoss[{quantile_key(q)}]"] = float(w)
        scores[f"coverage[{quantile_key(q)}]"] = float(c / observed)
    return scores
