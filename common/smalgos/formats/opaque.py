"""Types whose bytes are not numeric records, registered so that a channel or request may declare
them: MXNet RecordIO image records (`application/x-recordio`), encoded images
(`application/x-image`, `image/jpeg`, `image/png`) and model artifacts
(`application/x-sagemaker-model`, the incremental-training `model` channel). The algorithms that
take them read the bytes themselves; `decode` and `iter_batches` refuse, naming the type.
Likewise the answers only an algorithm writes (a PNG mask, `application/x-protobuf` as AWS's
segmentation notebooks ask): registered so that a declaration may offer them and the serving app
negotiates them; the model's own `encode` writes the bytes, the entry's refuses.
"""

from __future__ import annotations

from smalgos.errors import ClientError

from .media import MediaType, check_params
from .text import TextDecoder

RECORDIO = "application/x-recordio"
X_IMAGE = "application/x-image"
JPEG = "image/jpeg"
PNG = "image/png"
PROTOBUF = "application/x-protobuf"
MODEL = "application/x-sagemaker-model"
IMAGE_TYPES = (X_IMAGE, JPEG, PNG)


class OpaqueDecoder(TextDecoder):
    """A registry entry for bytes that only the algorithm reads: `decode` and `iter_batches`
    (TextDecoder's) refuse, naming the type."""

    def __init__(self, media_type: str, what: str, params: frozenset[str] = frozenset()):
        self.media_type, self.what, self.allowed_params = media_type, what, params

    def _refuse(self, media: MediaType, source: str) -> ClientError:
        check_params(media, self.allowed_params)
        return ClientError(f"{source}: {self.media_type} holds {self.what}, not numeric records; "
                           "only the vision algorithms read it")


def opaque_decoders() -> list[OpaqueDecoder]:
    # label-format (multi-hot, class-id): an augmented manifest's multi-label values (Image Classification)
    return [OpaqueDecoder(RECORDIO, "MXNet RecordIO image records", frozenset({"label-format"})),
            OpaqueDecoder(X_IMAGE, "encoded images"), OpaqueDecoder(JPEG, "JPEG images"),
            OpaqueDecoder(PNG, "PNG images"), OpaqueDecoder(MODEL, "model artifacts")]


class OpaqueEncoder:
    """A registry entry for an answer that only the algorithm's model writes (its `encode`)."""

    def __init__(self, media_type: str, what: str):
        self.media_type, self.what = media_type, what

    def encode(self, predictions, *, root_key: str = "") -> bytes:
        raise TypeError(f"{self.media_type} ({self.what}) is written by the algorithm's model, not the registry")


def opaque_encoders() -> list[OpaqueEncoder]:
    return [OpaqueEncoder(PNG, "PNG images"), OpaqueEncoder(PROTOBUF, "protobuf records")]
