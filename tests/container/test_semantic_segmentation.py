"""The semantic-segmentation image under SageMaker Python SDK v2 local mode: `fit` fcn/resnet-50 on
eight generated 24x24 shape images (File mode: train, validation and their *_annotation PNG masks),
`deploy`, `predict` raw JPEG bytes with the SDK's IdentitySerializer: the answer is a palette PNG
mask of the request's size, equal to the job's model's; a body that is not an image is answered
with an error body while the server keeps serving. One lean test (CI has two cores)."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from .test_more_algorithms import deployed, extract, fit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from semantic_segmentation.shapes import mask_png, shapes  # noqa: E402

pytestmark = pytest.mark.container


def test_semantic_segmentation_fit_then_png_mask(algo_image, session, sdk_env, tmp_path):
    from PIL import Image
    from sagemaker.deserializers import BytesDeserializer
    from sagemaker.serializers import IdentitySerializer
    from smalgos.vision.recordio_images import decode_image, encode_image
    from smalgos.vision.estimator import FILES, META_FILE
    from smalgos_semantic_segmentation.model import Segmenter

    image = algo_image("semantic-segmentation")
    x, y = shapes(14, 24, seed=3)
    hps = {"num_classes": 3, "num_training_samples": 8, "crop_size": 24, "base_size": 24, "epochs": 1,
           "mini_batch_size": 4, "validation_mini_batch_size": 4, "optimizer": "adam", "use_pretrained_model": "False"}
    split = {"train": range(8), "validation": range(8, 12)}
    channels = {}
    for name, rows in split.items():
        channels[name] = ("image/jpeg", {f"s{i}.jpg": encode_image(x[i], "JPEG") for i in rows})
        channels[f"{name}_annotation"] = ("image/png", {f"s{i}.png": mask_png(y[i]) for i in rows})
    est, model_tar = fit(session, sdk_env, image, hps, channels)
    model_dir = tmp_path / "model"
    for member in FILES:
        extract(model_tar, member, model_dir)
    assert json.loads((model_dir / META_FILE).read_text())["architecture"]["algorithm"] == "fcn"
    seg = Segmenter.load(model_dir)

    request = np.concatenate([x[12], x[13][:, :8]], 1)  # 24 high, 32 wide
    jpeg = encode_image(request, "JPEG")
    with deployed(est, IdentitySerializer("image/jpeg"), BytesDeserializer()) as predictor:
        answer = predictor.predict(jpeg)
        bad = predictor.predict(b"this is not an image")  # local mode hands a 4xx body back as an answer
        again = predictor.predict(jpeg)
    mask = Image.open(io.BytesIO(answer))
    assert mask.mode == "P" and mask.size == (32, 24)
    np.testing.assert_array_equal(np.array(mask), seg.predict_mask(decode_image(jpeg, "jpeg")))
    body = json.loads(bad)
    assert sorted(body) == ["error", "message"] and "cannot be decoded" in body["message"], body
    assert again == answer
