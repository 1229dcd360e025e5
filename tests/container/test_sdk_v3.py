"""The images under the SageMaker Python SDK v3 (`sagemaker` 3.27), as a v3 user drives them.

v3 cannot share an environment with v2 (which the rest of the suite uses), so it lives in its
own venv, made by scripts/sdk3-venv.sh (quick when it exists), and each step runs
tests/container/sdk3_driver.py with that venv's python: JSON in, JSON out.

- `ModelTrainer(training_image=ours, training_mode=Mode.LOCAL_CONTAINER)` starts the training
  container with no command at all: the images train because the job's configuration is there.
- Serving: `ModelBuilder(image_uri=ours, mode=Mode.LOCAL_CONTAINER)` cannot serve an image that is
  not one of its model servers (TorchServe, MMS, Triton, DJL, TGI, TEI, TF Serving): given only an
  image it "passes through" with `model_server=None`, `LocalContainerMode.create_server` starts
  no container for that, then reads the logs of the container it did not start (the last test
  pins the exact failure). So the local endpoint here is v3's own local session
  (`sagemaker.core.local.LocalSession`: create_model / create_endpoint_config / create_endpoint,
  `invoke_endpoint`), which ModelBuilder's `LocalEndpoint` registers its endpoints with too.

No AWS account: dummy credentials and region, telemetry off (sdk_env), and
`SAGEMAKER_VALIDATE_ROLE=false` so v3 takes the role ARN as given instead of asking IAM.
As in v2, docker-compose 1.29 exits 0 when the training container fails, so each test reads the
artifacts (helpers.model_artifact) and checks the model they hold.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from .helpers import DATA, ROLE, ROOT, free_port, hyperparameters, load_split, model_artifact, skip_or_fail
from .test_batch_transform import served_answer
from .test_more_algorithms import RECORDIO, blobs, csv, recordio

pytestmark = pytest.mark.container

DRIVER = Path(__file__).with_name("sdk3_driver.py")


@pytest.fixture(scope="module")
def sdk3(sdk_env) -> str:
    """The python of the SDK v3 venv (made or refreshed by scripts/sdk3-venv.sh)."""
    proc = subprocess.run([str(ROOT / "scripts" / "sdk3-venv.sh")], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        skip_or_fail(f"scripts/sdk3-venv.sh failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout.strip().splitlines()[-1]


def drive(python: str, action: str, **request) -> dict:
    env = {**os.environ, "SAGEMAKER_VALIDATE_ROLE": "false", "PYTHONNOUSERSITE": "1"}
    proc = subprocess.run([python, str(DRIVER)], input=json.dumps({"action": action, **request}), text=True,
                          capture_output=True, env=env, timeout=900)
    assert proc.returncode == 0, f"{action} failed (exit {proc.returncode}):\n{proc.stderr[-6000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def train(sdk3, sdk_env, name: str, image: str, hps: dict, channels: dict) -> Path:
    """ModelTrainer local-container training on `channels` ({name: (content type, file name, bytes)});
    the checked model.tar.gz."""
    root = sdk_env / "v3" / name
    root.mkdir(parents=True)
    specs = {}
    for channel, (content_type, file_name, body) in channels.items():
        (sdk_env / "v3-data" / name / channel).mkdir(parents=True)
        (sdk_env / "v3-data" / name / channel / file_name).write_bytes(body)
        specs[channel] = {"path": str(sdk_env / "v3-data" / name / channel), "content_type": content_type}
    answer = drive(sdk3, "train", image=image, hyperparameters={k: str(v) for k, v in hps.items()},
                   channels=specs, root=str(root), job_name=f"smalgos-v3-{name}", role=ROLE)
    return model_artifact(SimpleNamespace(model_data=f"file://{answer['model_tar']}"))


def extract_all(model_tar: Path, into: Path) -> Path:
    with tarfile.open(model_tar) as tar:
        tar.extractall(into, filter="data")
    return into


@pytest.fixture(scope="module")
def linear_learner_tar(sdk3, sdk_env, image) -> Path:
    return train(sdk3, sdk_env, "linear-learner", image, hyperparameters(epochs=5),
                 {"train": ("text/csv", "train.csv", (DATA / "train.csv").read_bytes()),
                  "validation": ("text/csv", "test.csv", (DATA / "test.csv").read_bytes())})


def test_model_trainer_trains_linear_learner_with_no_command(linear_learner_tar, tmp_path):
    model_dir = extract_all(linear_learner_tar, tmp_path / "model")
    x, y = load_split("test")
    answer = json.loads(served_answer("linear-learner", model_dir, csv(x), "text/csv", "application/json"))
    labels = np.array([p["predicted_label"] for p in answer["predictions"]])
    assert labels.shape == y.shape and np.mean(labels == y) > 0.9


def test_model_trainer_trains_kmeans_on_recordio(sdk3, sdk_env, algo_image, tmp_path):
    from safetensors.numpy import load_file

    centres = np.array([[0, 0, 0, 0], [10, 0, 0, 0], [0, 10, 0, 0]], np.float32)
    x, _ = blobs(centres, 40, 0.5, seed=0)
    model_tar = train(sdk3, sdk_env, "kmeans", algo_image("kmeans"), {"k": 3, "feature_dim": 4, "mini_batch_size": 40},
                      {"train": (RECORDIO, "train.pbr", recordio(x))})
    centroids = load_file(str(extract_all(model_tar, tmp_path / "model") / "model_algo-1.safetensors"))["centroids"]
    assert centroids.shape == (3, 4)
    # Each true centre has a centroid within the blobs' spread, a different one each.
    nearest = np.sqrt(((centres[:, None] - centroids[None]) ** 2).sum(-1)).argmin(1)
    assert sorted(nearest) == [0, 1, 2]
    np.testing.assert_allclose(centroids[nearest], centres, atol=0.5)


def test_local_endpoint_answers_what_the_model_computes(sdk3, sdk_env, image, linear_learner_tar, tmp_path):
    x, y = load_split("test")
    body = csv(x)
    # The tarball alone in its folder: local mode mounts that folder, extracted, as /opt/ml/model.
    model_data = sdk_env / "v3-serve" / "model.tar.gz"
    model_data.parent.mkdir(parents=True)
    shutil.copy(linear_learner_tar, model_data)
    answer = drive(sdk3, "serve", image=image, model_data=f"file://{model_data}", body=base64.b64encode(body).decode(),
                   content_type="text/csv", accept="application/json", root=str(sdk_env / "v3-serve"),
                   port=free_port())
    assert answer["status"] == 200, base64.b64decode(answer["body"])[:2000]
    got = json.loads(base64.b64decode(answer["body"]))["predictions"]
    expected = json.loads(served_answer("linear-learner", extract_all(linear_learner_tar, tmp_path / "model"), body,
                                        "text/csv", "application/json"))["predictions"]
    assert len(got) == len(expected) == len(y)
    np.testing.assert_array_equal([p["predicted_label"] for p in got], [p["predicted_label"] for p in expected])
    np.testing.assert_allclose([p["score"] for p in got], [p["score"] for p in expected], rtol=1e-6, atol=1e-7)
    assert np.mean(np.array([p["predicted_label"] for p in got]) == y) > 0.9


def test_model_builder_local_container_starts_nothing_for_an_image_without_a_model_server(
        sdk3, image, linear_learner_tar, tmp_path):
    """Pins where SDK v3 (3.27) stops, so that a newer SDK that can serve our images is noticed."""
    model_dir = extract_all(linear_learner_tar, tmp_path / "model")
    answer = drive(sdk3, "model_builder", image=image, model_path=str(model_dir), role=ROLE)
    assert answer["served"] is False, answer
    assert answer["exception"] == "AttributeError" and "'NoneType' object has no attribute 'logs'" in answer["message"]
    assert answer["raised_at"].startswith("sagemaker/serve/mode/local_container_mode.py:"), answer
    assert "self.container.logs" in answer["raised_at"], answer
