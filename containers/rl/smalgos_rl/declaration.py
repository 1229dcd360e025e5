"""The `rl` image: SageMaker RL's Ray toolkit on PyTorch, declared once.

AWS's RL offering is a framework image, not an algorithm: `sagemaker.rl.RLEstimator(entry_point=...,
toolkit=RLToolkit.RAY, framework=RLFramework.PYTORCH)` ships the user's script and the container runs
it under the training-script contract. So there are no hyperparameters of ours: every one the job
carries is the script's (`--name value`, `SM_HPS`), and a job without `sagemaker_program` is refused.
Any channel name is the script's too (`SM_CHANNEL_<NAME>`).

Metrics: the SDK's `RLEstimator.default_metric_definitions(RLToolkit.RAY)` — `episode_reward_mean`
and `episode_reward_max` read from `episode_reward_mean: <x>` lines (`smalgos_rl.report` prints
them from an RLlib result).

Serving: a policy saved by `smalgos_rl.policy` answers observations with actions; with the SDK's
deploy (SAGEMAKER_PROGRAM set) the script's own model_fn / input_fn / predict_fn / output_fn come
first and these are the defaults.
"""

from __future__ import annotations

from smalgos.declaration import CPU, GPU, MAXIMIZE, Algorithm, Hyperparameters, Metric, Serving

JSON = "application/json"
JSONLINES = "application/jsonlines"
CSV = "text/csv"

# sagemaker/rl/estimator.py's float regex, its exponent group made non-capturing: the number is the
# regex's one group.
FLOAT_REGEX = "[-+]?[0-9]*[.]?[0-9]+(?:[eE][-+]?[0-9]+)?"
METRIC_NAMES = ("episode_reward_mean", "episode_reward_max")

ALGORITHM = Algorithm(
    name="rl",
    hyperparameters=Hyperparameters(()),
    channels=(),
    metrics=tuple(Metric(name, MAXIMIZE, f"{name}: ({FLOAT_REGEX})") for name in METRIC_NAMES),
    model_loader="smalgos_rl.serve:load_model",
    serving=Serving(content_types=(JSON, CSV, JSONLINES), accepts=(JSON, JSONLINES, CSV), default_accept=JSON),
    variants=(CPU, GPU),
    supervised=False,
    script_mode=True,
    script_only=True,
    script_runner="smalgos_rl.cluster:run_script",
    doc="Reinforcement learning with Ray RLlib on PyTorch (SageMaker RL's Ray toolkit): the user's script.",
)
