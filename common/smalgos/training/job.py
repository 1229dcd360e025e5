"""`TrainingJob`: what an algorithm's trainer receives — validated hyperparameters, its channels,
where to write the model and checkpoints, a metrics printer, and whether SIGTERM asked it to stop.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..channels import ChannelInput
from ..config import JobConfig, ResourceConfig
from ..declaration import Algorithm
from ..environment import Paths, TrainingEnv
from ..errors import ClientError
from ..metrics import MetricsLogger

log = logging.getLogger("smalgos")


@dataclass
class TrainingJob:
    algorithm: Algorithm
    hyperparameters: dict
    channels: dict[str, ChannelInput]
    resources: ResourceConfig
    paths: Paths
    checkpoint_dir: Path
    metrics: MetricsLogger
    env: TrainingEnv = field(default_factory=TrainingEnv.from_env)
    stop_event: threading.Event = field(default_factory=threading.Event)
    log: logging.Logger = log
    # True when SageMaker wrote checkpointconfig.json (the job asked for checkpoints): only then
    # should a trainer write to, or resume from, checkpoint_dir.
    checkpoint_configured: bool = False

    @classmethod
    def from_config(cls, algorithm: Algorithm, config: JobConfig, paths: Paths,
                    stop_event: threading.Event | None = None, env: TrainingEnv | None = None) -> "TrainingJob":
        stop_event = stop_event or threading.Event()
        env = env or TrainingEnv.from_env()
        hyperparameters = algorithm.hyperparameters.parse(config.hyperparameters)
        channels = {}
        unknown = sorted(set(config.channels) - {c.name for c in algorithm.channels})
        if unknown:
            raise ClientError(
                f"Extraneous channel{'s' if len(unknown) > 1 else ''} found: {', '.join(unknown)}"
                f" ({algorithm.name} reads {', '.join(c.name for c in algorithm.channels)})")
        for declared in algorithm.channels:
            cfg = config.channels.get(declared.name)
            if cfg is None:
                if declared.required:
                    raise ClientError(f"Missing required channel: {declared.name}")
                continue
            if cfg.input_mode not in declared.input_modes:
                raise ClientError(f"Channel {declared.name!r}: input mode {cfg.input_mode} is not supported"
                                  f" (supported: {', '.join(declared.input_modes)})")
            if cfg.distribution not in declared.distributions:
                raise ClientError(f"Channel {declared.name!r}: S3DistributionType {cfg.distribution} is not"
                                  f" supported (supported: {', '.join(declared.distributions)})")
            label_size = 1 if algorithm.supervised else 0
            channels[declared.name] = ChannelInput(declared, cfg, paths, default_label_size=label_size,
                                                   should_stop=stop_event.is_set,
                                                   aliases=algorithm.content_type_aliases,
                                                   decoder_options=algorithm.decoder_options,
                                                   pipe_wait_seconds=env.pipe_wait_seconds)
        return cls(
            algorithm=algorithm,
            hyperparameters=hyperparameters,
            channels=channels,
            resources=config.resources,
            paths=paths,
            checkpoint_dir=config.checkpoint_dir,
            checkpoint_configured=config.checkpoint_configured,
            metrics=MetricsLogger(host=config.resources.current_host, algorithm=algorithm.display_name,
                                  metrics=algorithm.metrics),
            env=env,
            stop_event=stop_event,
        )

    @property
    def model_dir(self) -> Path:
        return self.paths.model_dir

    @property
    def output_data_dir(self) -> Path:
        return self.paths.output_data_dir

    def channel(self, name: str) -> ChannelInput | None:
        return self.channels.get(name)

    def require_one_host(self, what: str, note: str = "") -> None:
        """A ClientError unless the job has one host: `what` (e.g. "LDA", "BlazingText mode cbow")
        trains on a single instance, as AWS's image does; `note` is added in parentheses."""
        hosts = self.resources.hosts
        if len(hosts) > 1:
            raise ClientError(f"{what} trains on a single instance only; this job has {len(hosts)} hosts "
                              f"({', '.join(hosts)}): set instance_count=1" + (f" ({note})" if note else ""))

    def should_stop(self) -> bool:
        """True once SageMaker asked the job to stop (SIGTERM): finish the batch, save, return."""
        return self.stop_event.is_set()
