"""The job's configuration files under `/opt/ml/input/config/`, read into typed objects.

Every key SageMaker may leave out has a default: SDK local mode writes only `TrainingInputMode`
(and `ContentType` when the caller set one) per channel, and no `instance_groups`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .environment import Paths
from .errors import ClientError

INPUT_MODES = ("File", "Pipe", "FastFile")
DISTRIBUTIONS = ("FullyReplicated", "ShardedByS3Key")
RECORD_WRAPPERS = ("None", "RecordIO")


def read_json(path: Path, default: Any = None, what: str = "") -> Any:
    if not path.exists():
        if default is not None:
            return default
        raise ClientError(f"Missing configuration file {path}" + (f" ({what})" if what else ""))
    try:
        return json.loads(path.read_text(encoding="utf-8") or "{}")
    except ValueError as exc:
        raise ClientError(f"Configuration file {path} is not valid JSON: {exc}") from None


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    input_mode: str = "File"
    content_type: str | None = None
    distribution: str = "FullyReplicated"
    record_wrapper: str = "None"

    @classmethod
    def parse(cls, name: str, raw: dict, job_input_mode: str = "File") -> "ChannelConfig":
        if not isinstance(raw, dict):
            raise ClientError(f"inputdataconfig.json: channel {name!r} must be a JSON object")
        mode = raw.get("TrainingInputMode") or raw.get("InputMode") or job_input_mode
        dist = raw.get("S3DistributionType") or "FullyReplicated"
        wrapper = raw.get("RecordWrapperType") or "None"
        for key, value, allowed in (("TrainingInputMode", mode, INPUT_MODES),
                                    ("S3DistributionType", dist, DISTRIBUTIONS),
                                    ("RecordWrapperType", wrapper, RECORD_WRAPPERS)):
            if value not in allowed:
                raise ClientError(f"inputdataconfig.json: channel {name!r} has {key}={value!r};"
                                  f" expected one of {', '.join(allowed)}")
        return cls(name=name, input_mode=mode, content_type=raw.get("ContentType") or None,
                   distribution=dist, record_wrapper=wrapper)


@dataclass(frozen=True)
class ResourceConfig:
    current_host: str = "algo-1"
    hosts: tuple[str, ...] = ("algo-1",)
    current_instance_type: str = "local"
    network_interface_name: str = "eth0"

    @classmethod
    def parse(cls, raw: dict) -> "ResourceConfig":
        current = raw.get("current_host") or "algo-1"
        hosts = tuple(sorted(raw.get("hosts") or [current]))
        if current not in hosts:
            raise ClientError(f"resourceconfig.json: current_host {current!r} is not among hosts {list(hosts)}")
        return cls(current_host=current, hosts=hosts,
                   current_instance_type=raw.get("current_instance_type") or "local",
                   network_interface_name=raw.get("network_interface_name") or "eth0")

    @property
    def rank(self) -> int:
        return self.hosts.index(self.current_host)

    @property
    def num_hosts(self) -> int:
        return len(self.hosts)

    @property
    def master_host(self) -> str:
        return self.hosts[0]

    @property
    def is_master(self) -> bool:
        return self.current_host == self.master_host


@dataclass(frozen=True)
class JobConfig:
    hyperparameters: dict
    channels: dict[str, ChannelConfig]
    resources: ResourceConfig
    checkpoint_dir: Path
    checkpoint_configured: bool = False

    @classmethod
    def load(cls, paths: Paths) -> "JobConfig":
        hps = read_json(paths.hyperparameters_file, default={})
        if not isinstance(hps, dict):
            raise ClientError(f"{paths.hyperparameters_file} must hold a JSON object")
        data = read_json(paths.input_data_config_file, default={})
        if not isinstance(data, dict):
            raise ClientError(f"{paths.input_data_config_file} must hold a JSON object")
        channels = {name: ChannelConfig.parse(name, raw) for name, raw in data.items()}
        resources = ResourceConfig.parse(read_json(paths.resource_config_file, default={}))
        ckpt_raw = read_json(paths.checkpoint_config_file, default={})
        local = (ckpt_raw or {}).get("LocalPath")
        ckpt_dir = Path(local) if local else paths.default_checkpoint_dir
        return cls(hyperparameters=hps, channels=channels, resources=resources, checkpoint_dir=ckpt_dir,
                   checkpoint_configured=paths.checkpoint_config_file.exists())
