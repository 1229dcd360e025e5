"""The image tooling that needs no engine: image names, variant checks, generated Dockerfiles,
docker-compose.yml. (Not marked `container`: `make test-fast` runs these.)"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .helpers import ROOT, skip_or_fail

ALGORITHMS = sorted(p.parent.name for p in (ROOT / "containers").glob("*/Dockerfile"))


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("variant", ["cpu", "gpu"])
def test_image_name(variant):
    out = make("-s", "image-name", "ALGO=linear-learner", f"VARIANT={variant}")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"smalgos/linear-learner:1-{variant}\n"


def test_build_refuses_a_variant_the_declaration_lacks():
    out = make("build", "ALGO=linear-learner", "VARIANT=tpu")
    assert out.returncode != 0
    assert "linear-learner has no 'tpu' variant: its declaration lists cpu, gpu" in out.stderr


def test_build_refuses_an_unknown_algorithm():
    out = make("build", "ALGO=no-such-algorithm")
    assert out.returncode != 0
    assert "Unknown ALGO 'no-such-algorithm'" in out.stderr and "linear-learner" in out.stderr


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_dockerfile_is_rendered_from_the_template(algo):
    """containers/<algo>/Dockerfile == scripts/new-dockerfile.sh's output (edit the template)."""
    rendered = subprocess.run([str(ROOT / "scripts" / "new-dockerfile.sh"), algo], capture_output=True, text=True,
                              env={**os.environ, "DOCKERFILE_OUT": "-"}, check=True).stdout
    assert rendered == (ROOT / "containers" / algo / "Dockerfile").read_text()


@pytest.mark.parametrize("algo", ALGORITHMS)
def test_every_variant_has_requirements(algo):
    variants = subprocess.run([str(ROOT / "scripts" / "variants.sh"), algo], capture_output=True, text=True,
                              check=True).stdout.split()
    for variant in variants:
        folder = ROOT / "containers" / algo
        assert (folder / f"requirements-{variant}.txt").exists() or (folder / "requirements.txt").exists()


def test_compose_file_is_valid():
    if not shutil.which("docker-compose"):
        skip_or_fail("docker-compose not installed")
    out = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "--services"],
                         cwd=ROOT, capture_output=True, text=True, env={**os.environ, "ALGO": "kmeans"})
    assert out.returncode == 0, out.stderr
    assert set(out.stdout.split()) == {"train", "serve", "algo-1", "algo-2"}
