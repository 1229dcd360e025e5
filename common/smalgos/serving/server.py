"""The `serve` program: gunicorn on 0.0.0.0:$SAGEMAKER_BIND_TO_PORT (8080), one worker per CPU
by default, the model loaded once in each worker after the fork (OpenMP-using libraries hang in
workers forked from a master that already loaded them), maths libraries at cores // workers threads
(one with the default one worker per core).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from gunicorn.app.base import BaseApplication

from ..declaration import Algorithm, load_algorithm, resolve
from ..environment import Paths, ServingEnv
from ..logs import setup_logging
from .app import create_app

log = logging.getLogger("smalgos")


def load_model(algorithm: Algorithm, model_dir: Path):
    return resolve(algorithm.model_loader)(model_dir)


def build_app(algorithm_name: str, paths: Paths | None = None, env: ServingEnv | None = None):
    """Import the algorithm, load its model from /opt/ml/model and build the Flask app."""
    algorithm = load_algorithm(algorithm_name)
    paths = paths or Paths.from_env()
    model = load_model(algorithm, paths.model_dir)
    return create_app(algorithm, model, env)


class _Gunicorn(BaseApplication):
    def __init__(self, algorithm_name: str, options: dict):
        self.algorithm_name = algorithm_name
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        setup_logging()
        return build_app(self.algorithm_name)


def serve(algorithm_name: str) -> int:
    setup_logging()
    env = ServingEnv.from_env()
    # The workers' maths libraries (and Arrow's CSV reader) use this many threads; one already set stays.
    os.environ.update(env.worker_thread_vars)
    log.info("Serving %s on port %d with %d worker(s), timeout %d s", algorithm_name, env.port, env.workers,
             env.timeout)
    _Gunicorn(algorithm_name, {
        "bind": f"0.0.0.0:{env.port}",
        "workers": env.workers,
        "timeout": env.timeout,
        "keepalive": 60,
        "worker_class": "sync",
        "preload_app": False,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
    }).run()
    return 0
