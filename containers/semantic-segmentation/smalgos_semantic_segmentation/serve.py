"""Inference for Semantic Segmentation: `load_model(model_dir)` returns what the serving app calls.

A request is one encoded image (`image/jpeg`, `image/png` or `application/x-image`), segmented
whole at its own size. The answer (spec §9.3):
- `image/png` (the default): a mode-"P" PNG (greyscale palette) of the image's size, one class id
  per pixel (the training labels' encoding: class ids, not a label map's encoded values);
- `application/x-recordio-protobuf` (or `application/x-protobuf`, as AWS's notebooks ask): one
  RecordIO-wrapped `Record` with features "target" = the float32 class probabilities flattened in
  C order of (num_classes, H, W), and "shape" = int32 [1, num_classes, H, W] (channels first, as
  the notebooks read it: drop the batch dimension, argmax over axis 0).
Another content type is a 415, another Accept a 406 (the serving app, from the declaration, before
any work); bytes that are not an image a 400 naming the problem.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from smalgos.errors import ClientError
from smalgos.formats import recordio
from smalgos.formats.media import MediaType, check_params
from smalgos.formats.opaque import PNG
from smalgos.serving.estimator import load_estimator
from smalgos.vision.estimator import FILES
from smalgos.vision.recordio_images import decode_image

from .model import Segmenter


def mask_png(mask: np.ndarray) -> bytes:
    """(H, W) uint8 class ids → a palette PNG (palette entry k = grey k, so viewers show the ids)."""
    from PIL import Image

    img = Image.fromarray(np.asarray(mask, np.uint8), mode="L").convert("P")
    img.putpalette([v for k in range(256) for v in (k, k, k)])
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def probabilities_record(probs: np.ndarray) -> bytes:
    """(C, H, W) float32 → one RecordIO-framed Record: target (flattened), shape [1, C, H, W]."""
    from smalgos.formats.record_pb2 import Record

    record = Record()
    record.features["target"].float32_tensor.values.extend(np.asarray(probs, np.float32).ravel().tolist())
    record.features["shape"].int32_tensor.values.extend([1, *map(int, probs.shape)])
    buf = io.BytesIO()
    recordio.write_record(buf, record.SerializeToString())
    return buf.getvalue()


class SemanticSegmentationModel:
    def __init__(self, estimator: Segmenter):
        self.estimator = estimator

    def decode(self, body: bytes, media: MediaType) -> list:
        check_params(media, frozenset())
        return [decode_image(body, f"Request body ({media.type}, {len(body)} bytes)")]

    def predict(self, images: list, accept: MediaType | None = None) -> np.ndarray:
        if not isinstance(images, list) or len(images) != 1:
            raise ClientError("Request body must be one encoded image")
        return self.estimator.predict_proba(images[0])

    def encode(self, probs: np.ndarray, accept: MediaType):
        if accept.type == PNG:
            return mask_png(probs.argmax(0).astype(np.uint8)), PNG
        return probabilities_record(probs), accept.type

    def warm_up(self) -> None:
        """One prediction on a black image before serving (a model that cannot predict is not served)."""
        self.estimator.predict_proba(np.zeros((32, 32, 3), np.uint8))


def load_model(model_dir: Path | str) -> SemanticSegmentationModel:
    return SemanticSegmentationModel(load_estimator(model_dir, FILES, Segmenter.load, "semantic-segmentation",
                                                    errors=(ValueError, KeyError, ClientError)))
