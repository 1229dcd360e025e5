"""Inference for Object Detection: `load_model(model_dir)` returns what the serving app calls.

A request is one encoded image (`image/jpeg`, `image/png` or `application/x-image`), scaled to
image_shape × image_shape (aspect not kept, as AWS serves). The answer (spec §8.3):
- `application/json` (the default): `{"prediction": [[class_id, score, xmin, ymin, xmax, ymax], ...]}`,
  every detection after non-maximum suppression (no score threshold: AWS's clients apply their
  own), best score first, the class id a float (`4.0`), corners normalised by the image's width
  and height;
- `application/json;annotation=1`: AWS's annotation form, in the request image's pixels:
  `{"image_size": [{"width": W, "height": H, "depth": 3}], "annotations": [{"class_id": 0,
  "score": 0.94, "left": 111, "top": 134, "width": 61, "height": 128}, ...]}`.
Another content type is a 415, another Accept a 406; bytes that are not an image a 400 naming the
problem.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from smalgos.errors import ClientError, UnsupportedAccept
from smalgos.formats.media import MediaType, check_params
from smalgos.serving.estimator import load_estimator
from smalgos.vision.estimator import FILES
from smalgos.vision.recordio_images import decode_image

from .declaration import JSON
from .model import ObjectDetector


def prediction_body(detections: np.ndarray) -> dict:
    """AWS's default answer for one image's (d, 6) detections."""
    return {"prediction": [[float(v) for v in row] for row in np.asarray(detections, np.float64).reshape(-1, 6)]}


def annotation_body(detections: np.ndarray, width: int, height: int) -> dict:
    """AWS's `annotation=1` answer: boxes in pixels of the request image."""
    boxes = []
    for cls, score, x0, y0, x1, y1 in np.asarray(detections, np.float64).reshape(-1, 6):
        boxes.append({"class_id": int(cls), "score": float(score), "left": float(x0 * width),
                      "top": float(y0 * height), "width": float((x1 - x0) * width),
                      "height": float((y1 - y0) * height)})
    return {"image_size": [{"width": int(width), "height": int(height), "depth": 3}], "annotations": boxes}


def _annotation(accept: MediaType) -> bool:
    value = accept.params.get("annotation")
    if value not in (None, "0", "1"):
        raise UnsupportedAccept(f"accept type {str(accept)!r}: annotation={value!r} is not 0 or 1")
    return value == "1"


class ObjectDetectionModel:
    def __init__(self, estimator: ObjectDetector):
        self.estimator = estimator

    def decode(self, body: bytes, media: MediaType) -> list:
        check_params(media, frozenset())
        return [decode_image(body, f"Request body ({media.type}, {len(body)} bytes)")]

    def predict(self, images: list, accept: MediaType | None = None):
        if accept is not None and accept.type == JSON:
            _annotation(accept)  # a bad parameter is refused before any work
        if not isinstance(images, list) or len(images) != 1:
            raise ClientError("Request body must be one encoded image")
        height, width = images[0].shape[:2]
        return self.estimator.predict(images)[0], width, height

    def encode(self, answer, accept: MediaType):
        detections, width, height = answer
        body = annotation_body(detections, width, height) if _annotation(accept) else prediction_body(detections)
        return json.dumps(body).encode(), JSON

    def warm_up(self) -> None:
        """One prediction on a black image before serving (a model that cannot predict is not served)."""
        self.estimator.predict([np.zeros((32, 32, 3), np.uint8)])


def load_model(model_dir: Path | str) -> ObjectDetectionModel:
    return ObjectDetectionModel(load_estimator(model_dir, FILES, ObjectDetector.load, "object-detection",
                                               errors=(ValueError, KeyError, ClientError)))
