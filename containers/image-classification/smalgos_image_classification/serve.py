"""Inference for Image Classification: `load_model(model_dir)` returns what the serving app calls.

A request is one encoded image (`image/jpeg`, `image/png` or `application/x-image`: any format
Pillow reads), scaled to the model's image_shape (aspect not kept, no crop, as AWS serves). The
answer, the probability of every class (softmax; independent sigmoid scores with multi_label=1):
- `application/json` (the default): a bare JSON list `[p0, p1, ...]`, as AWS's examples read it;
- `application/jsonlines`: `{"prediction": [p0, p1, ...]}` and a newline (batch transform's line).
Bytes that are not an image are a 400 naming the problem.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from smalgos.errors import ClientError
from smalgos.formats.media import MediaType, check_params
from smalgos.serving.estimator import load_estimator
from smalgos.vision.estimator import FILES
from smalgos.vision.recordio_images import decode_image

from .declaration import JSONLINES
from .model import ImageClassifier


class Images(list):
    """The decoded images of one request (one, as AWS: one image per request)."""


class ImageClassificationModel:
    def __init__(self, estimator: ImageClassifier):
        self.estimator = estimator

    def decode(self, body: bytes, media: MediaType) -> Images:
        check_params(media, frozenset())
        return Images([decode_image(body, f"Request body ({media.type}, {len(body)} bytes)",
                                    self.estimator.image_shape[0])])

    def predict(self, images: Images, accept: MediaType | None = None) -> np.ndarray:
        if not isinstance(images, list):
            raise ClientError("Request body must be one encoded image")
        return self.estimator.predict_proba(list(images))

    def encode(self, probabilities: np.ndarray, accept: MediaType):
        rows = [[float(p) for p in row] for row in np.asarray(probabilities, np.float32)]
        if accept.type == JSONLINES:
            return "".join(json.dumps({"prediction": r}) + "\n" for r in rows).encode(), JSONLINES
        return json.dumps(rows[0] if len(rows) == 1 else rows).encode(), "application/json"

    def warm_up(self) -> None:
        """One prediction on a black image before serving (a model that cannot predict is not served)."""
        c, h, w = self.estimator.image_shape
        self.estimator.predict_proba([np.zeros((h, w, c), np.uint8)])


def load_model(model_dir: Path | str) -> ImageClassificationModel:
    return ImageClassificationModel(load_estimator(model_dir, FILES, ImageClassifier.load, "image-classification",
                                                   errors=(ValueError, KeyError, ClientError)))
