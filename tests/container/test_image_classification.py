"""The image-classification image under SageMaker Python SDK v2 local mode: `fit` on a `.rec` of
scikit-learn's digits rendered as small JPEGs (CIFAR-style ResNet-20 at 8x8), `deploy`, `predict`
one JPEG with the SDK's IdentitySerializer, the JSON list of probabilities checked against the model
the job wrote; a body that is not an image answered with an error body while the server keeps
serving. One lean test (CI has two cores)."""

from __future__ import annotations

import json
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest

from .test_more_algorithms import deployed, extract, fit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from image_classification.digits import digit_images, rec_bytes  # noqa: E402

pytestmark = pytest.mark.container
RECORDIO = "application/x-recordio"


def test_image_classification_rec_fit_then_jpeg_predictions(algo_image, session, sdk_env, tmp_path):
    from sagemaker.deserializers import JSONDeserializer
    from sagemaker.serializers import IdentitySerializer
    from smalgos.vision.recordio_images import decode_image, encode_image
    from smalgos.vision.estimator import FILES, META_FILE
    from smalgos_image_classification.model import ImageClassifier

    image = algo_image("image-classification")
    x, y = digit_images(8)
    hps = {"num_classes": 10, "num_training_samples": 800, "num_layers": 20, "image_shape": "3,8,8",
           "epochs": 5, "mini_batch_size": 32, "optimizer": "adam", "learning_rate": 0.01}
    est, model_tar = fit(session, sdk_env, image, hps,
                         {"train": (RECORDIO, {"train.rec": rec_bytes(x[:800], y[:800], tmp_path, "t.rec")}),
                          "validation": (RECORDIO, {"val.rec": rec_bytes(x[1400:], y[1400:], tmp_path, "v.rec")})})
    output_tar = Path(str(model_tar).replace("model.tar.gz", "output.tar.gz"))
    if output_tar.exists():
        with tarfile.open(output_tar) as tar:
            assert "failure" not in {Path(m.name).name for m in tar.getmembers()}
    model_dir = tmp_path / "model"
    for member in FILES:
        extract(model_tar, member, model_dir)
    assert json.loads((model_dir / META_FILE).read_text())["best_accuracy"] >= 0.9
    clf = ImageClassifier.load(model_dir)

    jpeg = encode_image(x[1500], "JPEG")
    with deployed(est, IdentitySerializer("image/jpeg"), JSONDeserializer()) as predictor:
        answer = predictor.predict(jpeg)
        bad = predictor.predict(b"this is not an image")  # local mode hands a 4xx body back as an answer
        again = predictor.predict(jpeg)
    assert isinstance(answer, list) and len(answer) == 10, answer
    np.testing.assert_allclose(answer, clf.predict_proba([decode_image(jpeg, "jpeg")])[0], atol=1e-5)
    assert abs(sum(answer) - 1) < 1e-4
    assert sorted(bad) == ["error", "message"] and "cannot be decoded" in bad["message"], bad
    np.testing.assert_allclose(again, answer, atol=1e-6)
