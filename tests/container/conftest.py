"""Fixtures for the container tests: an engine, the linear-learner CPU image, a trained model.

Every test here is marked `container`. They need a Docker-compatible engine (docker, or podman
behind its Docker API: scripts/setup-engine.sh). With no engine they skip, except under CI
(`CI` set to anything but false/0/no), where a missing engine is a failure.

Knobs:
  ENGINE=docker|podman       the CLI to drive (default: whichever answers, docker first)
  SMALGOS_TEST_NO_BUILD=1    use the existing smalgos/linear-learner:1-cpu instead of running
                             `make build` (cached: quick when nothing changed)
"""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

import pytest

from .helpers import ALGO, DATA, ROOT, Endpoint, Engine, answers, hyperparameters, skip_or_fail


@pytest.fixture(scope="session")
def engine() -> Engine:
    wanted = os.environ.get("ENGINE")
    for cmd in ([wanted] if wanted else ["docker", "podman"]):
        if answers(cmd):
            return Engine(cmd)
    skip_or_fail(f"no container engine answers ({wanted or 'docker info / podman info'}); run "
                 "scripts/setup-engine.sh (root, Debian/Ubuntu) or install Docker")


def build_image(engine: Engine, variant: str = "cpu") -> str:
    name = subprocess.run(["make", "-s", "image-name", f"ALGO={ALGO}", f"VARIANT={variant}"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()
    if os.environ.get("SMALGOS_TEST_NO_BUILD"):
        if engine("image", "inspect", name, check=False).returncode != 0:
            pytest.fail(f"SMALGOS_TEST_NO_BUILD is set but {name} does not exist")
        return name
    (ROOT / "build").mkdir(exist_ok=True)
    log = ROOT / "build" / f"test-build-{ALGO}-{variant}.log"
    # One build at a time on this machine: other test sessions may be building the same image.
    with open(ROOT / "build" / ".image-build.lock", "w") as lock, open(log, "w") as out:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run(["make", "build", f"ALGO={ALGO}", f"VARIANT={variant}", f"ENGINE={engine.command}"],
                              cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        pytest.fail(f"make build failed (exit {proc.returncode}); end of {log}:\n{log.read_text()[-4000:]}")
    return name


@pytest.fixture(scope="session")
def image(engine) -> str:
    """smalgos/linear-learner:1-cpu, built once per session (through the build cache)."""
    return build_image(engine)


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
