"""SageMaker Python SDK v2 local mode drives the image exactly as SageMaker would:
`Estimator(image_uri=ours, instance_type="local")`, `fit` with file:// channels, `deploy`, `predict`.

Local mode runs `docker-compose up --abort-on-container-exit`, which exits 0 even when the
training container fails (docker-compose 1.29), so `fit` not raising proves nothing: the test
reads the artifacts (model.tar.gz holds the model; output.tar.gz holds no `failure`).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from .helpers import DATA, ROLE, hyperparameters, load_split, model_artifact

pytestmark = pytest.mark.container


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


def test_fit_writes_model_artifacts(estimator):
    model_artifact(estimator)


def test_deploy_and_predict_csv_json_and_recordio(estimator):
    from sagemaker.amazon.common import RecordDeserializer, RecordSerializer
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import CSVSerializer

    X, y = load_split("test")
    # wait=False: local create_endpoint already waits for /ping; wait=True adds a fixed 30 s sleep.
    predictor = estimator.deploy(initial_instance_count=1, instance_type="local", wait=False)
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
