"""`make push`: to a real registry on loopback (Debian's docker-registry), and ECR's API calls
against moto's server (`AWS_ENDPOINT_URL_ECR`)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import requests

from .helpers import ROOT, free_port, skip_or_fail, wait_http

pytestmark = pytest.mark.container


def _start(cmd: list[str], log_path) -> subprocess.Popen:
    log = open(log_path, "w")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def registry(tmp_path):
    exe = shutil.which("docker-registry") or shutil.which("registry")
    if not exe:
        skip_or_fail("no registry binary (apt-get install docker-registry)")
    port = free_port()
    config = tmp_path / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {tmp_path / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    proc = _start([exe, "serve", str(config)], tmp_path / "registry.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/v2/", timeout=30)
        yield f"127.0.0.1:{port}"
    finally:
        _stop(proc)


@pytest.fixture
def moto(tmp_path):
    exe = shutil.which("moto_server")
    if not exe:
        skip_or_fail("moto_server not installed (pip install 'moto[server]')")
    port = free_port()
    proc = _start([exe, "-H", "127.0.0.1", "-p", str(port)], tmp_path / "moto.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/", timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


def make_push(engine, **variables) -> subprocess.CompletedProcess:
    args = ["make", "-s", "push", "ALGO=linear-learner", "VARIANT=cpu", f"ENGINE={engine.command}",
            f"PYTHON={sys.executable}"]
    args += [f"{k}={v}" for k, v in variables.items()]
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=1200)


def test_push_to_a_registry_on_loopback(engine, image, registry):
    target = f"{registry}/smalgos/linear-learner:1-cpu"
    try:
        proc = make_push(engine, REGISTRY=registry)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        assert proc.stdout.strip().splitlines()[-1] == target
        tags = requests.get(f"http://{registry}/v2/smalgos/linear-learner/tags/list", timeout=10).json()
        assert tags["tags"] == ["1-cpu"]
        manifest = requests.get(f"http://{registry}/v2/smalgos/linear-learner/manifests/1-cpu", timeout=10,
                                headers={"Accept": "application/vnd.oci.image.manifest.v1+json, "
                                                   "application/vnd.docker.distribution.manifest.v2+json"})
        assert manifest.status_code == 200
        assert len(manifest.json()["layers"]) >= 3
    finally:
        engine("rmi", target, check=False)


def test_push_to_ecr_api_on_moto(engine, image, moto, monkeypatch):
    """Repository created if missing, token fetched, login/tag/push commands for the ECR host."""
    import boto3

    for k, v in {"AWS_ENDPOINT_URL_ECR": moto, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(k, v)
    ecr = boto3.client("ecr", region_name="eu-west-1", endpoint_url=moto)

    first = make_push(engine, REGION="eu-west-1", DRY_RUN="1")
    assert first.returncode == 0, first.stderr[-3000:]
    assert "created repository smalgos/linear-learner" in first.stderr
    repos = ecr.describe_repositories()["repositories"]
    assert [r["repositoryName"] for r in repos] == ["smalgos/linear-learner"]
    uri = first.stdout.strip().splitlines()[-1]
    assert uri.endswith(".dkr.ecr.eu-west-1.amazonaws.com/smalgos/linear-learner:1-cpu")
    registry_host = uri.split("/")[0]
    assert f"login --username AWS --password-stdin {registry_host}" in first.stdout
    assert f"push {uri}" in first.stdout

    second = make_push(engine, REGION="eu-west-1", DRY_RUN="1", REPOSITORY="team/ll")
    assert second.returncode == 0, second.stderr[-3000:]
    third = make_push(engine, REGION="eu-west-1", DRY_RUN="1")
    assert "repository smalgos/linear-learner exists" in third.stderr
    names = sorted(r["repositoryName"] for r in ecr.describe_repositories()["repositories"])
    assert names == ["smalgos/linear-learner", "team/ll"]
