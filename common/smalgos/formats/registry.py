"""The MIME registries: content type → decoder, Accept → encoder, shared by training and serving.

    dec = get_decoder(request.content_type, allowed=ALGO_CONTENT_TYPES)   # 415 if not served
    batch = dec.decode(body, parse_media_type(request.content_type), default_label_size=0,
                       source="request body")
    enc = negotiate_accept(request.headers.get("Accept"), ALGO_ACCEPTS, default="application/json")
    body = enc.encode(predictions, root_key=ALGO_JSON_ROOT_KEY)   # JSON: "predictions" (PCA: "projections")

`get_decoder` refuses a type (415, naming it and the supported ones) and the parameters its
decoder does not declare (415, naming the parameter); `negotiate_accept` picks the supported type
the Accept list prefers, q-values honoured (406 naming what was asked and what is offered).
"""

from __future__ import annotations

from typing import BinaryIO, Collection, Iterator, Protocol, Sequence, runtime_checkable

from smalgos.errors import ClientError, UnsupportedAccept, UnsupportedContentType

from .batch import Batch
from .media import MediaType, check_params, parse_accept_weighted, parse_media_type
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


def _specificity(media: MediaType) -> int:
    """RFC 9110 §12.5.1: ``*/*`` < ``type/*`` < ``type/subtype`` < ``type/subtype;params``."""
    if media.type == "*/*":
        return 0
    if media.is_wildcard:
        return 1
    return 3 if media.params else 2


def negotiate_media_type(accept_header: str | None, supported: Sequence[str], default: str) -> MediaType:
    """The Accept entry to answer with (its parameters kept, e.g. ``verbose=true``).

    Missing or blank → `default`. Otherwise q-values are honoured (RFC 9110): each candidate type
    takes the q of the most specific entry that matches it, and ``q=0`` makes it unacceptable
    (``text/*, text/csv;q=0`` refuses CSV). Among acceptable candidates the higher q wins, then
    the more specific entry, then the earlier one in the header. ``*/*`` stands for `default`
    first, then the other supported types; ``text/*`` for the supported ``text/`` types in order.
    """
    try:
        entries = parse_accept_weighted(accept_header)
    except ClientError as e:
        raise UnsupportedAccept(e.message) from None
    if not entries:
        return MediaType(default, {})
    candidates = [default] + [t for t in supported if t != default]
    best_key, best = None, None
    for rank, concrete in enumerate(candidates):
        governing = None  # (specificity, -index, media, q) of the most specific entry matching it
        for index, (media, q) in enumerate(entries):
            if not media.matches(concrete):
                continue
            if media.type != "*/*" and concrete not in supported:
                continue  # only */* stands for a default the algorithm does not list
            spec = _specificity(media)
            if governing is None or spec > governing[0]:
                governing = (spec, -index, media, q)
        if governing is None or governing[3] <= 0:
            continue
        spec, neg_index, media, q = governing
        # A wildcard's candidates come in its own order: */* the default first, type/* `supported`'s.
        order = rank if media.type == "*/*" else list(supported).index(concrete)
        key = (q, spec, neg_index, -order)
        if best_key is None or key > best_key:
            best_key, best = key, MediaType(concrete, dict(media.params))
    if best is not None:
        return best
    raise UnsupportedAccept(f"none of the types in Accept {accept_header!r} is supported; "
                            f"supported: {_offered(supported)}")


def negotiate_accept(accept_header: str | None, supported: Sequence[str], default: str) -> Encoder:
    """The encoder for `negotiate_media_type`'s choice."""
    return get_encoder(negotiate_media_type(accept_header, supported, default), allowed=supported)
