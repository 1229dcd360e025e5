"""Fixtures for the container tests: an engine, the algorithms' CPU images, a trained model,
SageMaker SDK local mode.

Every test here is marked `container`. They need a Docker-compatible engine (docker, or podman
behind its Docker API: scripts/setup-engine.sh). With no engine they skip, except under CI
(`CI` set to anything but false/0/no), where a missing engine is a failure.

Knobs:
  ENGINE=docker|podman       the CLI to drive (default: whichever answers, docker first)
  SMALGOS_TEST_NO_BUILD=1    use the existing smalgos/<algorithm>:1-cpu images instead of running
                             `make build` (cached: quick when nothing changed)
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .helpers import (
    ALGO, DATA, ROOT, Endpoint, Engine, answers, free_port, hyperparameters, remove_local_mode_containers,
    skip_or_fail,
)


@pytest.fixture(scope="session")
def engine() -> Engine:
    wanted = os.environ.get("ENGINE")
    for cmd in ([wanted] if wanted else ["docker", "podman"]):
        if answers(cmd):
            return Engine(cmd)
    skip_or_fail(f"no container engine answers ({wanted or 'docker info / podman info'}); run "
                 "scripts/setup-engine.sh (root, Debian/Ubuntu) or install Docker")


def build_image(engine: Engine, variant: str = "cpu", algo: str = ALGO) -> str:
    name = subprocess.run(["make", "-s", "image-name", f"ALGO={algo}", f"VARIANT={variant}"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()
    if os.environ.get("SMALGOS_TEST_NO_BUILD"):
        if engine("image", "inspect", name, check=False).returncode != 0:
            pytest.fail(f"SMALGOS_TEST_NO_BUILD is set but {name} does not exist")
        return name
    (ROOT / "build").mkdir(exist_ok=True)
    log = ROOT / "build" / f"test-build-{algo}-{variant}.log"
    # One build at a time on this machine: other test sessions may be building the same image.
    with open(ROOT / "build" / ".image-build.lock", "w") as lock, open(log, "w") as out:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(["make", "build", f"ALGO={algo}", f"VARIANT={variant}", f"ENGINE={engine.command}"],
                              cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        pytest.fail(f"make build failed (exit {proc.returncode}); end of {log}:\n{log.read_text()[-4000:]}")
    return name


_built: dict[tuple[str, str], str] = {}


@pytest.fixture(scope="session")
def algo_image(engine):
    """`algo_image("kmeans")` → smalgos/kmeans:1-cpu, each image built once per session (through
    the build cache)."""
    def get(algo: str, variant: str = "cpu") -> str:
        if (algo, variant) not in _built:
            _built[algo, variant] = build_image(engine, variant, algo)
        return _built[algo, variant]
    return get


@pytest.fixture(scope="session")
def image(algo_image) -> str:
    """smalgos/linear-learner:1-cpu, built once per session (through the build cache)."""
    return algo_image(ALGO)


@pytest.fixture(scope="session")
def trained(engine, image, tmp_path_factory) -> Path:
    """/opt/ml of one training run on the CSV data (train + validation channels)."""
    from smalgos.localjob import LocalJob

    base = tmp_path_factory.mktemp("trained") / "opt_ml"
    job = LocalJob(base)
    job.write_config(hyperparameters(), {"train": {"ContentType": "text/csv"},
                                         "validation": {"ContentType": "text/csv"}})
    job.add_file("train", "train.csv", (DATA / "train.csv").read_bytes())
    job.add_file("validation", "test.csv", (DATA / "test.csv").read_bytes())
    result = engine.run(image, "train", volumes={str(base): "/opt/ml"})
    assert result.returncode == 0, result.logs[-4000:]
    (base / "train.log").write_text(result.logs)
    return base


@pytest.fixture(scope="module")
def endpoint(engine, image, trained):
    """A serving container on the trained model, with a published port; removed afterwards."""
    ep = Endpoint(engine, image, trained / "model")
    try:
        ep.wait_ready()
        yield ep
    finally:
        ep.remove()


# ---- SageMaker SDK local mode ----------------------------------------------------------------

@pytest.fixture(scope="module")
def sdk_env(tmp_path_factory, engine):
    """Environment local mode needs, without AWS: region, dummy credentials, telemetry off. Yields
    the module's container_root; the compose containers left under it are removed afterwards."""
    if not shutil.which("docker-compose") and not shutil.which("docker"):
        skip_or_fail("SageMaker local mode needs docker-compose (or `docker compose`)")
    if not os.path.exists("/var/run/docker.sock") and not os.environ.get("DOCKER_HOST"):
        skip_or_fail("SageMaker local mode needs a Docker API (DOCKER_HOST or /var/run/docker.sock)")
    tmp = tmp_path_factory.mktemp("sdk")
    config = tmp / "sagemaker-config.yaml"
    config.write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n      TelemetryOptOut: true\n")
    values = {
        "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config),
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield tmp
    finally:
        remove_local_mode_containers(engine, tmp)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def session(sdk_env):
    """A LocalSession whose container_root is the module's sdk_env folder."""
    from sagemaker.local import LocalSession

    sess = LocalSession()
    sess.config = {"local": {"local_code": True, "container_root": str(sdk_env),
                             "serving_port": free_port()}}
    return sess
