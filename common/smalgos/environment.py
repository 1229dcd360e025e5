"""Every path and environment variable of the container contract, read once into typed snapshots.

`/opt/ml` moves with `SAGEMAKER_BASE_DIR` (the name AWS's toolkits use), so the whole contract
runs in a temporary directory in tests. No other module reads `os.environ`, and nothing here reads
it at import time: a snapshot is taken when a job or the server starts (`Paths`, `TrainingEnv`,
`XGBoostEnv`, `ServingEnv`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
ALGORITHM_ENV = "SMALGOS_ALGORITHM"  # baked into each image: which algorithm `train`/`serve` run
DEVICE_ENV = "SMALGOS_DEVICE"  # cpu, cuda, cuda:1: overrides the automatic device choice
PIPE_WAIT_ENV = "SMALGOS_PIPE_WAIT_SECONDS"
# The maths libraries' (and Arrow's CSV reader's) threads per serving worker.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

DEFAULT_MAX_PAYLOAD_MB = 6
# Request threads per serving worker (gunicorn's gthread): an idle or slow client holds one thread
# at most, never a whole worker. Predictions within a worker still run one at a time.
DEFAULT_SERVER_THREADS = 8


@dataclass(frozen=True)
class Paths:
    """The `/opt/ml` tree."""

    base: Path

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Paths":
        env = os.environ if environ is None else environ
        return cls(Path(env.get(BASE_DIR_ENV) or "/opt/ml"))

    @property
    def config_dir(self) -> Path:
        return self.base / "input" / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.config_dir / "hyperparameters.json"

    @property
    def input_data_config_file(self) -> Path:
        return self.config_dir / "inputdataconfig.json"

    @property
    def resource_config_file(self) -> Path:
        return self.config_dir / "resourceconfig.json"

    @property
    def checkpoint_config_file(self) -> Path:
        return self.config_dir / "checkpointconfig.json"

    @property
    def data_dir(self) -> Path:
        return self.base / "input" / "data"

    def channel_dir(self, channel: str) -> Path:
        return self.data_dir / channel

    def channel_fifo(self, channel: str, epoch: int) -> Path:
        return self.data_dir / f"{channel}_{epoch}"

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    @property
    def success_file(self) -> Path:
        return self.output_dir / "success"

    @property
    def default_checkpoint_dir(self) -> Path:
        return self.base / "checkpoints"


def _int_env(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not an integer") from None


def _float_env(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a number") from None


def _bool_env(env: Mapping[str, str], name: str) -> bool:
    return (env.get(name) or "").strip().lower() in ("1", "true", "yes")


def device_override(environ: Mapping[str, str] | None = None) -> str | None:
    """`$SMALGOS_DEVICE` (``cpu``, ``cuda``, ``cuda:1``), or None for the automatic choice."""
    env = os.environ if environ is None else environ
    return env.get(DEVICE_ENV) or None


@dataclass(frozen=True)
class TrainingEnv:
    """The training side's environment variables, with their defaults beside them."""

    pipe_wait_seconds: float  # SMALGOS_PIPE_WAIT_SECONDS, 600 s: how long Pipe mode waits for each FIFO
    device: str | None  # SMALGOS_DEVICE, None (CUDA when present, else CPU)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "TrainingEnv":
        env = os.environ if environ is None else environ
        return cls(
            pipe_wait_seconds=_float_env(env, PIPE_WAIT_ENV, 600.0),
            device=device_override(env),
        )


@dataclass(frozen=True)
class XGBoostEnv:
    """XGBoost's distributed training (Rabit) settings, with their defaults beside them."""

    tracker_port: int  # SMALGOS_XGBOOST_TRACKER_PORT, 9099: the master's tracker
    connect_seconds: int  # SMALGOS_XGBOOST_CONNECT_SECONDS, 300 s: to resolve and reach the other hosts
    # How long a host waits for the others at any step: hosts finish reading their data at different
    # times (a large shard, a slow disk), and XGBoost's first exchange waits for the last of them.
    wait_seconds: int  # SMALGOS_XGBOOST_WAIT_SECONDS, 3600 s

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "XGBoostEnv":
        env = os.environ if environ is None else environ
        return cls(
            tracker_port=_int_env(env, "SMALGOS_XGBOOST_TRACKER_PORT", 9099),
            connect_seconds=_int_env(env, "SMALGOS_XGBOOST_CONNECT_SECONDS", 300),
            wait_seconds=_int_env(env, "SMALGOS_XGBOOST_WAIT_SECONDS", 3600),
        )


@dataclass(frozen=True)
class ClusterEnv:
    """Training across hosts on torch.distributed (`smalgos.distributed`), with the defaults beside them."""

    port: int  # SMALGOS_DIST_PORT, 29500: the master's rendezvous store
    # SMALGOS_DIST_MASTER_ADDR: the master's address when its host name does not resolve (two jobs
    # on one machine); unset: the master host's name is resolved.
    master_addr: str | None
    connect_seconds: int  # SMALGOS_DIST_CONNECT_SECONDS, 300 s: to resolve the master, reach it and all join
    # How long a host waits for the others at one exchange: hosts read their data at different speeds.
    # A host that dies is noticed at once (its connections close); one that hangs, after this.
    wait_seconds: int  # SMALGOS_DIST_WAIT_SECONDS, 1800 s
    gloo_socket_ifname: str | None = None  # GLOO_SOCKET_IFNAME: gloo's interface; unset: resourceconfig's
    # The whole environment: what `LocalCluster` passes on to its hosts' processes.
    inherited: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ClusterEnv":
        env = os.environ if environ is None else environ
        return cls(
            port=_int_env(env, "SMALGOS_DIST_PORT", 29500),
            master_addr=env.get("SMALGOS_DIST_MASTER_ADDR") or None,
            connect_seconds=_int_env(env, "SMALGOS_DIST_CONNECT_SECONDS", 300),
            wait_seconds=_int_env(env, "SMALGOS_DIST_WAIT_SECONDS", 1800),
            gloo_socket_ifname=env.get("GLOO_SOCKET_IFNAME") or None,
            inherited=dict(env),
        )

    def gloo_settings(self, interface: str | None) -> dict[str, str]:
        """The variables gloo reads, to set before the process group starts: its interface is
        resourceconfig.json's `network_interface_name` unless GLOO_SOCKET_IFNAME names one."""
        return {"GLOO_SOCKET_IFNAME": interface} if interface and not self.gloo_socket_ifname else {}


@dataclass(frozen=True)
class ServingEnv:
    """The serving side's environment variables, with their defaults beside them."""

    port: int  # SAGEMAKER_BIND_TO_PORT, 8080
    workers: int  # SAGEMAKER_MODEL_SERVER_WORKERS, CPU count
    timeout: int  # SAGEMAKER_MODEL_SERVER_TIMEOUT, 60 s
    batch: bool  # SAGEMAKER_BATCH (batch transform)
    max_payload_mb: int  # SAGEMAKER_MAX_PAYLOAD_IN_MB, 6
    batch_strategy: str  # SAGEMAKER_BATCH_STRATEGY, MULTI_RECORD
    default_accept: str | None  # SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT
    inference_output: str | None  # SAGEMAKER_INFERENCE_OUTPUT (XGBoost's selectable outputs)
    ensemble: bool  # SAGEMAKER_INFERENCE_ENSEMBLE (XGBoost: predict with every model file), true
    server_threads: int = DEFAULT_SERVER_THREADS  # SAGEMAKER_MODEL_SERVER_THREADS, 8: request threads per worker
    preset_threads: tuple[tuple[str, str], ...] = ()  # THREAD_VARS already set (kept as they are)
    # Multi-model endpoints (serving/multi_model.py):
    multi_model: bool = False  # SAGEMAKER_MULTI_MODEL: serve the /models API instead of /opt/ml/model
    # SMALGOS_MME_MIN_AVAILABLE_MB, 256: the memory (the lower of /proc/meminfo's MemAvailable and
    # the cgroup's limit less its usage) a model load must leave; least recently used models are
    # evicted from a worker to keep it, and a model that still does not fit is refused (507).
    mme_min_available_mb: int = 256
    # SMALGOS_MME_REGISTRY_DIR: where the workers share which models are loaded; default a fresh
    # folder under the temp dir named after the gunicorn master process.
    mme_registry_dir: str | None = None
    deepar_inference_config: str | None = None  # DEEPAR_INFERENCE_CONFIG (DeepAR batch transform's JSON)
    inference_preferred_mode: str | None = None  # INFERENCE_PREFERRED_MODE (Object2Vec: classification, embedding)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ServingEnv":
        env = os.environ if environ is None else environ
        # The API spells it MultiRecord, the environment MULTI_RECORD: accept both.
        raw_strategy = (env.get("SAGEMAKER_BATCH_STRATEGY") or "MULTI_RECORD").replace("_", "").upper()
        strategy = "SINGLE_RECORD" if raw_strategy == "SINGLERECORD" else "MULTI_RECORD"
        return cls(
            port=_int_env(env, "SAGEMAKER_BIND_TO_PORT", 8080),
            workers=max(1, _int_env(env, "SAGEMAKER_MODEL_SERVER_WORKERS", os.cpu_count() or 1)),
            timeout=_int_env(env, "SAGEMAKER_MODEL_SERVER_TIMEOUT", 60),
            batch=_bool_env(env, "SAGEMAKER_BATCH"),
            max_payload_mb=_int_env(env, "SAGEMAKER_MAX_PAYLOAD_IN_MB", DEFAULT_MAX_PAYLOAD_MB),
            batch_strategy=strategy,
            default_accept=(env.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT") or None),
            inference_output=(env.get("SAGEMAKER_INFERENCE_OUTPUT") or None),
            ensemble=(env.get("SAGEMAKER_INFERENCE_ENSEMBLE") or "true").strip().lower() != "false",
            server_threads=max(1, _int_env(env, "SAGEMAKER_MODEL_SERVER_THREADS", DEFAULT_SERVER_THREADS)),
            preset_threads=tuple((var, env[var]) for var in THREAD_VARS if var in env),
            multi_model=_bool_env(env, "SAGEMAKER_MULTI_MODEL"),
            mme_min_available_mb=max(0, _int_env(env, "SMALGOS_MME_MIN_AVAILABLE_MB", 256)),
            mme_registry_dir=env.get("SMALGOS_MME_REGISTRY_DIR") or None,
            deepar_inference_config=env.get("DEEPAR_INFERENCE_CONFIG") or None,
            inference_preferred_mode=env.get("INFERENCE_PREFERRED_MODE") or None,
        )

    @property
    def max_payload_bytes(self) -> int:
        return self.max_payload_mb * 1024 * 1024

    @property
    def threads_per_worker(self) -> int:
        """The cores each worker may use: one with the default one worker per core, more when
        fewer workers are asked for (a large model): cores // workers."""
        return max(1, (os.cpu_count() or 1) // self.workers)

    @property
    def worker_thread_vars(self) -> dict[str, str]:
        """What each worker's `THREAD_VARS` should be: as already set, else `threads_per_worker`."""
        preset = dict(self.preset_threads)
        return {var: preset.get(var, str(self.threads_per_worker)) for var in THREAD_VARS}


def algorithm_name(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    name = env.get(ALGORITHM_ENV)
    if not name:
        raise RuntimeError(f"{ALGORITHM_ENV} is not set: the image must say which algorithm it runs")
    return name


@dataclass(frozen=True)
class ScriptModeEnv:
    """Script (framework) mode: the user's code, as the SDK's `Model` names it for serving, and the
    environment the user's training process inherits (the runner adds the `SM_*` variables)."""

    program: str | None  # SAGEMAKER_PROGRAM: the serving entry point (inference.py)
    submit_directory: str | None  # SAGEMAKER_SUBMIT_DIRECTORY: where it is (/opt/ml/model/code, file://...)
    inherited: Mapping[str, str]  # the whole environment, passed on to the user's process

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ScriptModeEnv":
        env = os.environ if environ is None else environ
        return cls(program=env.get("SAGEMAKER_PROGRAM") or None,
                   submit_directory=env.get("SAGEMAKER_SUBMIT_DIRECTORY") or None,
                   inherited=dict(env))
