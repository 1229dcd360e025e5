"""What the user's training process receives: command-line arguments and `SM_*` variables, as
AWS's `sagemaker-training` toolkit (5.x, `environment.py` / `mapping.py`) derives them from the
job's configuration files.

Hyperparameter values are JSON-decoded (the SDK `json.dumps` each one; a value that is not JSON
stays the string it is). Those the platform sends (`sagemaker_program`, `sagemaker_submit_directory`,
...) are not the user's: other `sagemaker_*` names become `SM_FRAMEWORK_PARAMS`, the rest are the
user's hyperparameters (`SM_HPS`, `SM_HP_<NAME>`, `--name value` in sorted order).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..config import read_json
from ..environment import Paths
from . import PROGRAM_PARAM, SUBMIT_DIR_PARAM

log = logging.getLogger("smalgos")

# The toolkit's `params.SAGEMAKER_HYPERPARAMETERS`: the platform's own names, never the user's.
PLATFORM_HYPERPARAMETERS = (
    PROGRAM_PARAM, SUBMIT_DIR_PARAM, "sagemaker_enable_cloudwatch_metrics", "sagemaker_region",
    "sagemaker_container_log_level", "sagemaker_job_name", "default_user_module_name",
    "_tuning_objective_metric", "sagemaker_s3_output",
)
SAGEMAKER_PREFIX = "sagemaker_"


def decode_hyperparameters(raw: Mapping[str, Any]) -> dict:
    """Each value JSON-decoded where it is JSON text (`'"a"'` → `a`, `'3'` → 3), else kept."""
    out = {}
    for name, value in raw.items():
        try:
            out[name] = json.loads(value) if isinstance(value, str) else value
        except ValueError:
            out[name] = value
    return out


@dataclass(frozen=True)
class Hyperparameters:
    user: dict  # the script's own: SM_HPS and the command line
    platform: dict  # sagemaker_program, sagemaker_submit_directory, ...
    framework: dict  # other sagemaker_* names: SM_FRAMEWORK_PARAMS

    @classmethod
    def split(cls, raw: Mapping[str, Any]) -> "Hyperparameters":
        hps = decode_hyperparameters(raw)
        ours = {k: v for k, v in hps.items() if k in PLATFORM_HYPERPARAMETERS or k.startswith(SAGEMAKER_PREFIX)}
        return cls(user={k: v for k, v in hps.items() if k not in ours},
                   platform={k: v for k, v in ours.items() if k in PLATFORM_HYPERPARAMETERS},
                   framework={k: v for k, v in ours.items() if k not in PLATFORM_HYPERPARAMETERS})


def _arg_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin1")
    return str(value)


def cmd_args(hyperparameters: Mapping[str, Any]) -> list[str]:
    """`--name value` per hyperparameter in sorted order (`-n` for a one-letter name; a mapping
    value as `k=v,k2=v2`), as the toolkit's `mapping.to_cmd_args`."""
    args = []
    for name in sorted(hyperparameters):
        value = hyperparameters[name]
        key = _arg_text(name)
        args.append(("--" if len(key) > 1 else "-") + key if key else "")
        if hasattr(value, "items"):
            args.append(",".join(f"{k}={v}" for k, v in sorted(value.items())))
        else:
            args.append(_arg_text(value))
    return args


def env_vars(mapping: Mapping[str, Any]) -> dict[str, str]:
    """`SM_<KEY>`: strings as they are, None as "", anything else compact sorted JSON (the
    toolkit's `mapping.to_env_vars`)."""
    def text(value: Any) -> str:
        if isinstance(value, bytes):
            return value.decode("latin1")
        if value is None:
            return ""
        if isinstance(value, str):
            return value
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)

    return {f"SM_{str(key).upper()}": text(value) for key, value in mapping.items() if key}


def count_gpus() -> int:
    """The GPUs `nvidia-smi --list-gpus` lists (0 without the tool), as the toolkit counts them."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "--list-gpus"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def training_env_vars(paths: Paths, hps: Hyperparameters, code_dir: Path, module_dir: str,
                      num_gpus: int) -> dict[str, str]:
    """Every `SM_*` variable of the toolkit's `Environment.to_env_vars()` for this job."""
    data_config = read_json(paths.input_data_config_file, default={}) or {}
    resource_config = read_json(paths.resource_config_file, default={}) or {}
    current_host = resource_config.get("current_host") or "algo-1"
    hosts = sorted(resource_config.get("hosts") or [current_host])
    resource_config = {"current_host": current_host, "hosts": hosts, **resource_config}
    group = resource_config.get("current_group_name", "homogeneousCluster")
    instance_type = resource_config.get("current_instance_type", "local")
    groups = resource_config.get("instance_groups") or [
        {"instance_group_name": group, "instance_type": instance_type, "hosts": hosts}]
    program = str(hps.platform.get(PROGRAM_PARAM))
    channels = {name: str(paths.channel_dir(name)) for name in data_config}
    env: dict[str, Any] = {
        "hosts": hosts,
        "network_interface_name": resource_config.get("network_interface_name", "eth0"),
        "hps": hps.user,
        "user_entry_point": program,
        "framework_params": hps.framework,
        "resource_config": resource_config,
        "input_data_config": data_config,
        "output_data_dir": str(paths.output_data_dir),
        "channels": sorted(channels),
        "current_host": current_host,
        "current_instance_type": instance_type,
        "current_instance_group": group,
        "current_instance_group_hosts": hosts if len(groups) == 1 else next(
            (g.get("hosts", []) for g in groups if g.get("instance_group_name") == group), []),
        "instance_groups": [g.get("instance_group_name") for g in groups],
        "instance_groups_dict": {g.get("instance_group_name"): g for g in groups},
        "distribution_instance_groups": hps.framework.get("sagemaker_distribution_instance_groups", []),
        "is_hetero": len(groups) > 1,
        "module_name": program[:-3] if program.endswith(".py") else program,
        "log_level": hps.platform.get("sagemaker_container_log_level", logging.INFO),
        "framework_module": None,
        "input_dir": str(paths.base / "input"),
        "input_config_dir": str(paths.config_dir),
        "output_dir": str(paths.output_dir),
        "num_cpus": os.cpu_count() or 1,
        "num_gpus": num_gpus,
        "num_neurons": 0,
        "model_dir": str(paths.model_dir),
        "module_dir": module_dir,
        "user_args": cmd_args(hps.user),
        "output_intermediate_dir": str(paths.output_dir / "intermediate"),
    }
    env["training_env"] = {
        **{k: v for k, v in env.items() if k not in ("hps", "framework_params", "channels", "user_args")},
        "hyperparameters": hps.user,
        "additional_framework_parameters": hps.framework,
        "channel_input_dirs": channels,
        "job_name": hps.platform.get("sagemaker_job_name", ""),
        "is_master": current_host == hosts[0],
        "master_hostname": hosts[0],
        "code_dir": str(code_dir),
    }
    env.update({f"channel_{name}": path for name, path in channels.items()})
    env.update({f"hp_{name}": value for name, value in hps.user.items()})
    return env_vars(env)
