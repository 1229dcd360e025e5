"""The lines SageMaker's metric definitions for Ray read (`RLEstimator.default_metric_definitions`:
`episode_reward_mean: <x>`, `episode_reward_max: <x>`), printed from an RLlib training result.

Ray's old Tune reporter printed those names; RLlib's new API stack calls them
`env_runners/episode_return_mean` and `episode_return_max`. A script calls `log_result(algo.train())`
once an iteration and CloudWatch (or the SDK's local log) shows the curve under the SDK's names:

    iteration 3: episode_reward_mean: 86.8 episode_reward_max: 200 episode_len_mean: 86.8 timesteps_total: 16006
"""

from __future__ import annotations

import math
from typing import Any, Mapping

# printed name -> the new API stack's key under result["env_runners"]
FIELDS = (("episode_reward_mean", "episode_return_mean"), ("episode_reward_max", "episode_return_max"),
          ("episode_len_mean", "episode_len_mean"), ("timesteps_total", "num_env_steps_sampled_lifetime"))


def _number(value: Any) -> str | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(x):
        return None
    return f"{x:.6g}"


def result_line(result: Mapping[str, Any]) -> str:
    """One line of the metrics an RLlib result carries (those it lacks, e.g. before the first
    finished episode, are left out)."""
    runners = result.get("env_runners") or {}
    parts = [f"iteration {result.get('training_iteration', '?')}:"]
    for printed, key in FIELDS:
        text = _number(runners.get(key, result.get(printed)))
        if text is not None:
            parts.append(f"{printed}: {text}")
    return " ".join(parts)


def log_result(result: Mapping[str, Any]) -> float | None:
    """Print `result_line(result)` (flushed: the job's log shows it at once); return the mean
    episode reward (None before the first finished episode)."""
    print(result_line(result), flush=True)
    value = (result.get("env_runners") or {}).get("episode_return_mean")
    return float(value) if _number(value) is not None else None
