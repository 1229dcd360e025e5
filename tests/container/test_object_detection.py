"""The object-detection image under SageMaker Python SDK v2 local mode: `fit` SSD/VGG-16 on eight
generated 96x96 shape scenes at image_shape 64 (File mode: train and validation JPEGs, their
AWS-format JSON annotations in train_annotation / validation_annotation), `deploy`, `predict` raw
JPEG bytes with the SDK's IdentitySerializer: the answer is AWS's `{"prediction": [[class, score,
xmin, ymin, xmax, ymax], ...]}`, equal to the job's model's detections; a body that is not an image
is answered with an error body while the server keeps serving. Also: two instances under local mode
train one model. Lean tests (CI has two cores)."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from .test_more_algorithms import deployed, extract, fit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from object_detection.shapes import job_files, scene  # noqa: E402

pytestmark = pytest.mark.container


def test_object_detection_fit_then_json_detections(algo_image, session, sdk_env, tmp_path):
    from sagemaker.deserializers import BytesDeserializer
    from sagemaker.serializers import IdentitySerializer
    from smalgos.vision.recordio_images import decode_image, encode_image
    from smalgos.vision.estimator import FILES, META_FILE
    from smalgos_object_detection.model import ObjectDetector

    image = algo_image("object-detection")
    hps = {"num_classes": 3, "num_training_samples": 8, "image_shape": 64, "epochs": 1, "mini_batch_size": 4,
           "optimizer": "adam", "use_pretrained_model": 0}
    files = {**job_files(8, "train", seed=1), **job_files(4, "validation", seed=2)}
    types = {"train": "image/jpeg", "validation": "image/jpeg", "train_annotation": "application/json",
             "validation_annotation": "application/json"}
    channels = {name: (ctype, {file: body for (ch, file), body in files.items() if ch == name})
                for name, ctype in types.items()}
    est, model_tar = fit(session, sdk_env, image, hps, channels)
    model_dir = tmp_path / "model"
    for member in FILES:
        extract(model_tar, member, model_dir)
    assert json.loads((model_dir / META_FILE).read_text())["architecture"]["base_network"] == "vgg-16"
    det = ObjectDetector.load(model_dir)

    pixels, _ = scene(np.random.default_rng(7), 80)
    jpeg = encode_image(np.concatenate([pixels, pixels[:, :40]], 1), "JPEG")  # 80 high, 120 wide
    with deployed(est, IdentitySerializer("image/jpeg"), BytesDeserializer()) as predictor:
        answer = predictor.predict(jpeg)
        bad = predictor.predict(b"this is not an image")  # local mode hands a 4xx body back as an answer
        again = predictor.predict(jpeg)
    body = json.loads(answer)
    assert list(body) == ["prediction"]
    rows = np.array(body["prediction"], np.float64)
    assert rows.ndim == 2 and rows.shape[1] == 6 and len(rows) > 0
    assert (np.diff(rows[:, 1]) <= 0).all() and ((rows[:, 2:] >= 0) & (rows[:, 2:] <= 1)).all()
    # the image's torch may differ from this one in the last bits: the best detections agree
    expected = det.predict([decode_image(jpeg, "jpeg")])[0]
    np.testing.assert_allclose(rows[:3], expected[:3], atol=1e-3)
    error = json.loads(bad)
    assert sorted(error) == ["error", "message"] and "cannot be decoded" in error["message"], error
    assert again == answer


def test_object_detection_trains_on_two_instances_under_sdk_local_mode(algo_image, session, sdk_env):
    """instance_count=2: local mode starts algo-1-xxxxx and algo-2-xxxxx with every channel on both;
    the hosts meet on torch.distributed and train one SSD (a host that did not join would fail the
    job after its connect timeout), each on half of the images, and the master's model comes back."""
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from smalgos.vision.estimator import FILES

    from .helpers import ROLE, model_artifact

    files = {**job_files(8, "train", seed=3), **job_files(4, "validation", seed=4)}
    types = {"train": "image/jpeg", "validation": "image/jpeg", "train_annotation": "application/json",
             "validation_annotation": "application/json"}
    inputs = {}
    for name, ctype in types.items():
        folder = sdk_env / "od-two-hosts" / name
        folder.mkdir(parents=True)
        for (channel, file), body in files.items():
            if channel == name:
                (folder / file).write_bytes(body)
        inputs[name] = TrainingInput(f"file://{folder}", content_type=ctype)
    est = Estimator(image_uri=algo_image("object-detection"), role=ROLE, instance_count=2, instance_type="local",
                    output_path=f"file://{sdk_env / 'od-two-hosts-output'}", sagemaker_session=session,
                    hyperparameters={"num_classes": 3, "num_training_samples": 8, "image_shape": 64, "epochs": 1,
                                     "mini_batch_size": 2, "optimizer": "adam", "use_pretrained_model": 0})
    est.fit(inputs, wait=True, logs=False)
    with tarfile.open(model_artifact(est)) as tar:
        assert set(FILES) <= set(tar.getnames())
