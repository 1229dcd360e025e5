"""The MIME registries: content type → decoder, Accept → encoder, shared by training and serving.

    dec = get_decoder(request.content_type, allowed=ALGO_CONTENT_TYPES)   # 415 if not served
    batch = dec.decode(body, parse_media_type(request.content_type), default_label_size=0,
                       source="request body")
    enc = negotiate_accept(request.headers.get("Accept"), ALGO_ACCEPTS, default="application/json")
    body = enc.encode(predictions, root_key=ALGO_JSON_ROOT_KEY)   # JSON: "predictions" (PCA: "projections")

`get_decoder` refuses a type (415, naming it and the supported ones) and the parameters its
decoder does not declare (415, naming the parameter); `negotiate_accept` picks the first entry of
the Accept list that is supported (406 naming what was asked and what is offered).
"""

from __future__ import annotations

from typing import BinaryIO, Collection, Iterator, Protocol, Sequence, runtime_checkable

from smalgos.errors import ClientError, UnsupportedAccept, UnsupportedContentType

from .batch import Batch
from .media import MediaType, check_params, parse_accept, parse_media_type
from .predictions import DEFAULT_ROOT_KEY, Predictions


@runtime_checkable
class Decoder(Protocol):
    media_type: str
    allowed_params: frozenset[str]

    def decode(self, data: bytes, media: MediaType, *, default_label_size: int,
               source: str) -> Batch:
        """The whole body → one Batch."""
        ...

    def iter_batches(self, stream: BinaryIO, media: MediaType, *, default_label_size: int,
                     batch_size: int, source: str) -> Iterator[Batch]:
        """A stream (File or Pipe mode) → Batches of `batch_size` records (the last shorter)."""
        ...


@runtime_checkable
class Encoder(Protocol):
    media_type: str

    def encode(self, predictions: Predictions, *, root_key: str = DEFAULT_ROOT_KEY) -> bytes:
        """The body. `root_key`: the JSON wrapper key (`Serving.json_root_key`); encoders whose
        format has no root (CSV, JSON Lines, protobuf) ignore it."""
        ...


DECODERS: dict[str, Decoder] = {}
ENCODERS: dict[str, Encoder] = {}


def register_decoder(decoder: Decoder) -> Decoder:
    DECODERS[decoder.media_type] = decoder
    return decoder


def register_encoder(encoder: Encoder) -> Encoder:
    ENCODERS[encoder.media_type] = encoder
    return encoder


def _as_media(media: MediaType | str, error: type[ClientError]) -> MediaType:
    if isinstance(media, MediaType):
        return media
    if media is None or not str(media).strip():
        raise error("no content type given")
    try:
        return parse_media_type(media)
    except ClientError as e:
        raise error(e.message) from None


def _offered(names: Collection[str]) -> str:
    return ", ".join(names) if names else "none"


def get_decoder(media_type: MediaType | str, allowed: Collection[str] | None = None) -> Decoder:
    """The decoder for a Content-Type, its parameters checked; `UnsupportedContentType` (415) else.

    `allowed`: the types this algorithm reads (a subset of the registry); None = all registered.
    """
    media = _as_media(media_type, UnsupportedContentType)
    supported = [t for t in (allowed if allowed is not None else DECODERS) if t in DECODERS]
    if media.type not in supported:
        raise UnsupportedContentType(f"content type {media.type!r} is not supported; supported: "
                                     f"{_offered(supported)}")
    decoder = DECODERS[media.type]
    check_params(media, decoder.allowed_params)
    return decoder


def get_encoder(media_type: MediaType | str, allowed: Collection[str] | None = None) -> Encoder:
    """The encoder for one concrete type; `UnsupportedAccept` (406) if there is none."""
    media = _as_media(media_type, UnsupportedAccept)
    supported = [t for t in (allowed if allowed is not None else ENCODERS) if t in ENCODERS]
    if media.type not in supported:
        raise UnsupportedAccept(f"accept type {media.type!r} is not supported; supported: "
                                f"{_offered(supported)}")
    return ENCODERS[media.type]


def negotiate_media_type(accept_header: str | None, supported: Sequence[str], default: str) -> MediaType:
    """The Accept entry to answer with (its parameters kept, e.g. ``verbose=true``).

    Missing, blank or ``*/*`` → `default`; ``text/*`` → the first supported ``text/`` type;
    otherwise the first entry that is supported, in the header's order (q-values ignored).
    """
    try:
        entries = parse_accept(accept_header)
    except ClientError as e:
        raise UnsupportedAccept(e.message) from None
    if not entries:
        return MediaType(default, {})
    for entry in entries:
        if entry.type == "*/*":
            return MediaType(default, entry.params)
        if entry.is_wildcard:
            family = [t for t in supported if entry.matches(t)]
            if family:
                return MediaType(family[0], entry.params)
            continue
        if entry.type in supported:
            return entry
    raise UnsupportedAccept(f"none of the types in Accept {accept_header!r} is supported; "
                            f"supported: {_offered(supported)}")


def negotiate_accept(accept_header: str | None, supported: Sequence[str], default: str) -> Encoder:
    """The encoder for `negotiate_media_type`'s choice."""
    return get_encoder(negotiate_media_type(accept_header, supported, default), allowed=supported)
