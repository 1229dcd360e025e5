"""The content types of the vision algorithms, in the spine's MIME registry: MXNet RecordIO image
records (`application/x-recordio`), encoded images (`application/x-image`, `image/jpeg`,
`image/png`) and model artifacts (`application/x-sagemaker-model`, the incremental-training
`model` channel). Their bytes are not numeric records: the registered decoders only carry the type
(and refuse parameters), and the algorithms read the bytes themselves; `decode` and
`iter_batches` say so if asked. Importing this module registers them (the declarations of the
vision algorithms do).
"""

from __future__ import annotations

from smalgos.errors import ClientError
from smalgos.formats.media import MediaType, check_params
from smalgos.formats.registry import DECODERS, register_decoder
from smalgos.formats.text import TextDecoder

RECORDIO = "application/x-recordio"
X_IMAGE = "application/x-image"
JPEG = "image/jpeg"
PNG = "image/png"
MODEL = "application/x-sagemaker-model"
IMAGE_TYPES = (X_IMAGE, JPEG, PNG)


class OpaqueDecoder(TextDecoder):
    """A registry entry for bytes that only the algorithm reads (images, RecordIO image records):
    `decode` and `iter_batches` (TextDecoder's) refuse, naming the type."""

    def __init__(self, media_type: str, what: str, params: frozenset[str] = frozenset()):
        self.media_type, self.what, self.allowed_params = media_type, what, params

    def _refuse(self, media: MediaType, source: str) -> ClientError:
        check_params(media, self.allowed_params)
        return ClientError(f"{source}: {self.media_type} holds {self.what}, not numeric records; "
                           "only the vision algorithms read it")


def register() -> None:
    # label-format (multi-hot, class-id): an augmented manifest's multi-label values (Image Classification)
    for media_type, what, params in ((RECORDIO, "MXNet RecordIO image records", frozenset({"label-format"})),
                                     (X_IMAGE, "encoded images", frozenset()), (JPEG, "JPEG images", frozenset()),
                                     (PNG, "PNG images", frozenset()), (MODEL, "model artifacts", frozenset())):
        if media_type not in DECODERS:
            register_decoder(OpaqueDecoder(media_type, what, params))


register()
