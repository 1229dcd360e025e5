"""The image itself: what SageMaker's container contract asks of its configuration."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.container


@pytest.fixture(scope="module")
def config(engine, image) -> dict:
    return json.loads(engine("image", "inspect", "--format", "{{json .Config}}", image).stdout)


def test_entrypoint_is_exec_form_and_takes_train_or_serve_as_argument(config):
    assert config["Entrypoint"] == ["python", "-m", "smalgos.cli"]
    assert not config.get("Cmd")  # `docker run IMAGE train` supplies the command word


def test_contract_settings(config):
    assert "8080/tcp" in (config.get("ExposedPorts") or {})
    labels = config.get("Labels") or {}
    assert labels.get("com.amazonaws.sagemaker.capabilities.accept-bind-to-port") == "true"
    env = dict(e.split("=", 1) for e in config["Env"])
    assert env["SMALGOS_ALGORITHM"] == "linear-learner"
    assert config.get("User", "") in ("", "root", "0")


def test_train_and_serve_executables_and_describe(engine, image):
    out = engine("run", "--rm", "--entrypoint", "sh", image, "-c",
                 "command -v train && command -v serve && id -u && "
                 "python -m smalgos.cli describe linear-learner --field variants").stdout.split()
    assert out[:3] == ["/usr/local/bin/train", "/usr/local/bin/serve", "0"]
    assert out[3:] == ["cpu", "gpu"]


def test_cpu_image_has_cpu_only_torch(engine, image):
    out = engine("run", "--rm", "--entrypoint", "python", image, "-c",
                 "import torch, safetensors; print(torch.__version__, torch.version.cuda)").stdout.split()
    assert out[0].startswith("2.13.0") and out[0].endswith("+cpu")
    assert out[1] == "None"


def test_cpu_image_size(engine, image):
    size = int(engine("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())
    assert size <= 1.6e9, f"{image} is {size / 1e9:.2f} GB (goal: 1.6 GB)"


def test_no_build_leftovers_in_image(engine, image):
    out = engine("run", "--rm", "--entrypoint", "sh", image, "-c",
                 "ls -d /wheels /requirements /opt/algo-prefix 2>/dev/null; "
                 "find /opt/smalgos -name '*.egg-info' | head -1; true").stdout.strip()
    assert out == ""
