"""SageMaker Python SDK v2 local mode drives the image exactly as SageMaker would:
`Estimator(image_uri=ours, instance_type="local")`, `fit` with file:// channels, `deploy`, `predict`.

Local mode runs `docker-compose up --abort-on-container-exit`, which exits 0 even when the
training container fails (docker-compose 1.29), so `fit` not raising proves nothing: the test
reads the artifacts (model.tar.gz holds the model; output.tar.gz holds no `failure`).
"""

from __future__ import annotations

import os
import shutil
import tarfile

import numpy as np
import pytest

from .helpers import DATA, free_port, hyperparameters, load_split, skip_or_fail

pytestmark = pytest.mark.container

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def _remove_local_mode_containers(engine, root) -> None:
    """Local mode leaves its compose containers behind; remove those whose compose project lives
    under this test's container_root (and nothing else)."""
    out = engine("ps", "-a", "--format", '{{.ID}} {{.Label "com.docker.compose.project.working_dir"}}',
                 check=False).stdout
    for line in out.splitlines():
        cid, _, workdir = line.partition(" ")
        if workdir.strip().startswith(str(root)):
            engine("rm", "-f", cid, check=False)


@pytest.fixture(scope="module")
def sdk_env(tmp_path_factory, engine):
    """Environment local mode needs, without AWS: region, dummy credentials, telemetry off."""
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
        _remove_local_mode_containers(engine, tmp)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def session(sdk_env):
    from sagemaker.local import LocalSession

    sess = LocalSession()
    sess.config = {"local": {"local_code": True, "container_root": str(sdk_env),
                             "serving_port": free_port()}}
    return sess


@pytest.fixture(scope="module")
def estimator(session, sdk_env, image):
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput

    data = sdk_env / "data"
    for channel, name in (("train", "train.csv"), ("validation", "test.csv")):
        (data / channel).mkdir(parents=True)
        shutil.copy(DATA / name, data / channel / name)
    est = Estimator(image_uri=image, role=ROLE, instance_count=1, instance_type="local",
                    output_path=f"file://{sdk_env / 'output'}", sagemaker_session=session,
                    hyperparameters=hyperparameters(epochs=5))
    est.fit({channel: TrainingInput(f"file://{data / channel}", content_type="text/csv")
             for channel in ("train", "validation")}, wait=True, logs=False)
    return est


def test_fit_writes_model_artifacts(estimator, sdk_env):
    model_tar = estimator.model_data
    if isinstance(model_tar, dict):
        model_tar = model_tar["S3DataSource"]["S3Uri"]
    path = model_tar.removeprefix("file://")
    assert path.endswith("model.tar.gz") and os.path.exists(path), model_tar
    with tarfile.open(path) as tar:
        names = tar.getnames()
    assert names, "model.tar.gz is empty: training failed (local mode does not raise)"
    output = os.path.join(os.path.dirname(path), "output.tar.gz")
    if os.path.exists(output):
        with tarfile.open(output) as tar:
            assert not any(n.endswith("failure") for n in tar.getnames()), tar.extractfile(
                next(m for m in tar.getmembers() if m.name.endswith("failure"))).read()[:1000]


def test_deploy_and_predict_csv_json_and_recordio(estimator):
    from sagemaker.amazon.common import RecordDeserializer, RecordSerializer
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import CSVSerializer

    X, y = load_split("test")
    predictor = estimator.deploy(initial_instance_count=1, instance_type="local")
    try:
        predictor.serializer = CSVSerializer()
        predictor.deserializer = JSONDeserializer()
        answer = predictor.predict(X)
        labels = np.array([p["predicted_label"] for p in answer["predictions"]])
        assert labels.shape == y.shape and np.mean(labels == y) > 0.9

        predictor.serializer = RecordSerializer()
        predictor.deserializer = RecordDeserializer()
        records = predictor.predict(X)
        labels = np.array([r.label["predicted_label"].float32_tensor.values[0] for r in records])
        assert labels.shape == y.shape and np.mean(labels == y) > 0.9
    finally:
        predictor.delete_endpoint()
