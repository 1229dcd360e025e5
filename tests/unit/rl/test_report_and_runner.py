"""The rl image's metric lines (read by the SDK's Ray metric regexes) and its script-only runner."""

import re

from smalgos.declaration import load_algorithm
from smalgos.localjob import LocalJob
from smalgos.training.runner import run_training
from smalgos_rl.report import log_result, result_line

RESULT = {"training_iteration": 3,
          "env_runners": {"episode_return_mean": 86.77777, "episode_return_max": 221.0, "episode_len_mean": 86.77777,
                          "num_env_steps_sampled_lifetime": 16006}}


def test_result_line_is_read_by_the_sdks_metric_definitions(capsys):
    assert log_result(RESULT) == 86.77777
    line = capsys.readouterr().out.strip()
    assert line == ("iteration 3: episode_reward_mean: 86.7778 episode_reward_max: 221 episode_len_mean: 86.7778"
                    " timesteps_total: 16006")
    # The regexes SageMaker runs over the log (the SDK's RLEstimator.default_metric_definitions(RAY)).
    metrics = {m.name: m.regex for m in load_algorithm("rl").metrics}
    assert float(re.search(metrics["episode_reward_mean"], line).group(1)) == 86.7778
    assert float(re.search(metrics["episode_reward_max"], line).group(1)) == 221


def test_an_iteration_before_any_finished_episode_prints_no_reward(capsys):
    result = {"training_iteration": 1, "env_runners": {"episode_return_mean": float("nan"),
                                                       "num_env_steps_sampled_lifetime": 4000}}
    assert log_result(result) is None
    assert capsys.readouterr().out.strip() == "iteration 1: timesteps_total: 4000"
    assert result_line({}) == "iteration ?:"


def test_a_job_without_a_program_is_refused_naming_the_hyperparameter(tmp_path):
    job = LocalJob(tmp_path / "job")
    job.write_config({"episodes": "10"}, {})
    assert run_training("rl", job.paths, install_signal_handler=False) != 0
    first = job.paths.failure_file.read_text().splitlines()[0]
    assert first.startswith("ClientError: Hyperparameter sagemaker_program is missing: the rl image runs your"
                            " training script")
