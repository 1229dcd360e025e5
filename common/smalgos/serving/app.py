"""The inference HTTP app: `/ping`, `/invocations`, `/execution-parameters` (a multi-model
endpoint's /models API is multi_model.py's, on the same `base_app` and `Invoker`).

One request goes: size cap → Content-Type → Accept (negotiated before any work) → decode into a
`Batch` (by the model's own `decode` where it has one) → `model.predict` → encode. Every error
is an exception of `smalgos.errors`; one handler maps it to its status (400 malformed, 413 too
large, 415 content type, 406 Accept, 500 ours; a `ClientError` subclass may carry another, as
multi_model.py's 404/409/507) with a JSON body naming what was wrong, and the server keeps
serving.

Every response carries an ``X-Request-Id`` (uuid4 hex). A 4xx is logged as one line (method,
path, status, message); a 500 answers only ``Internal error; request id <id>`` and logs the
traceback under that id. The size cap holds however the body arrives: a Content-Length over it
is refused unread, and a chunked body is read to at most cap + 1 bytes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Protocol

from flask import Flask, Response, g, request
from gunicorn.http.errors import ParseException
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..declaration import Algorithm
from ..environment import ServingEnv
from ..errors import ClientError, PayloadTooLarge, SMAlgoError, UnsupportedAccept, UnsupportedContentType
from ..formats.batch import Batch
from ..formats.media import MediaType, parse_accept_weighted, parse_media_type
from ..formats.predictions import Predictions
from ..formats.registry import get_decoder, get_encoder, negotiate_media_type

log = logging.getLogger("smalgos")


class Model(Protocol):
    """What an algorithm's `model_loader(model_dir)` returns.

    It may also define `decode(body: bytes, media: MediaType) -> object | None` for requests the
    algorithm reads itself (XGBoost's serving `label_size` and LibSVM index rules, IP Insights'
    rows of strings). `/invocations` calls it once Content-Type and Accept are negotiated against
    the declaration and the (non-empty) body is read, instead of the registry's decoder; it returns
    what `predict` takes (anything with `len()`: zero records is an empty request), or None to
    fall back to the registry's decoder. It raises the usual errors: `ClientError` (400),
    `UnsupportedContentType` (415).

    A model that sets `open_content_types = True` (script mode: the user's input_fn/output_fn) takes
    any Content-Type and answers any Accept type the request names outright (else its
    `default_accept`); its `decode` and `encode` must then handle every request themselves.

    It may also define `encode(predictions, accept) -> (body, mimetype) | None` for answers whose
    shape the algorithm fixes itself (XGBoost's CSV and batch-transform lines); None falls back
    to the registry's encoder for `accept`.

    It may also define `warm_up() -> None`: one prediction on a one-record batch of zeros of the
    model's width, which each worker runs after loading the model and before serving; if it
    raises, the worker exits instead of serving a model that cannot predict (server.py).

    `predict` need not be thread-safe: a worker serves requests on several threads, but calls
    `predict` under one lock (per worker), so its maths libraries' threads are not oversubscribed.
    """

    def predict(self, batch: Batch, accept: MediaType) -> Predictions: ...


def error_body(error: str, message: str) -> bytes:
    """Every error answer's body, the app's and the server's own: `{"error", "message"}`."""
    return (json.dumps({"error": error, "message": message}) + "\n").encode()


def error_response(status: int, error: str, message: str) -> Response:
    return Response(error_body(error, message), status=status, mimetype="application/json")


def request_content_type() -> str | None:
    # SageMaker forwards Content-Type; some clients spell it ContentType.
    return request.headers.get("Content-Type") or request.headers.get("ContentType")


def request_id() -> str:
    rid = g.get("request_id")
    if rid is None:
        rid = g.request_id = uuid.uuid4().hex
    return rid


def read_body(limit: int) -> bytes:
    """The request body, or `RequestEntityTooLarge` if it is over `limit` bytes.

    A chunked body has no Content-Length to check up front, and werkzeug's stream stops quietly at
    the cap; reading one byte past it tells a body of exactly `limit` bytes from a longer one.
    """
    stream = request.stream
    buf = bytearray()
    while len(buf) <= limit:
        try:
            chunk = stream.read(min(1 << 20, limit + 1 - len(buf)))
        except (ParseException, OSError, ValueError) as exc:  # bad chunk framing, a body cut short
            raise ClientError(f"Request body could not be read: malformed chunked framing or a body that"
                              f" ended early ({type(exc).__name__}: {exc})") from None
        if not chunk:
            break
        buf += chunk
    if len(buf) > limit:
        raise RequestEntityTooLarge()
    return bytes(buf)


def read_decoded_body(limit: int) -> bytes:
    """The request body with its Content-Encoding undone: `read_body`'s cap holds on what was sent
    and again on the decoded bytes, of which at most limit + 1 are ever produced (a gzip bomb is a
    413). ``gzip`` (``x-gzip``) and ``deflate`` (zlib or raw) are read, ``identity`` is nothing; any
    other coding is `UnsupportedContentType` (415) naming it, refused before the body is read."""
    import zlib

    header = request.headers.get("Content-Encoding") or ""
    codings = [c.strip().lower() for c in header.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    for coding in codings:
        if coding not in ("gzip", "x-gzip", "deflate"):
            raise UnsupportedContentType(f"Content-Encoding {coding!r} is not supported; supported: "
                                         "gzip, deflate, identity")
    body = read_body(limit)
    for coding in reversed(codings):  # codings are listed in the order they were applied
        if not body:
            break
        gzip = coding != "deflate"
        # RFC 9110's deflate is zlib-wrapped; some clients send raw deflate, told by its header.
        zlib_wrapped = len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0
        wbits = 16 + zlib.MAX_WBITS if gzip else (zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
        out, data = bytearray(), body
        decoder = zlib.decompressobj(wbits)
        try:
            while True:
                chunk = decoder.decompress(data, limit + 1 - len(out))  # never 0: len(out) <= limit
                out += chunk
                if len(out) > limit:
                    raise RequestEntityTooLarge()
                if decoder.eof:
                    data = decoder.unused_data
                    if gzip and data.strip(b"\0"):  # concatenated gzip members (RFC 1952)
                        decoder = zlib.decompressobj(wbits)
                        continue
                    break
                tail = decoder.unconsumed_tail
                if not chunk and len(tail) == len(data):
                    raise ClientError(f"Request body is truncated {coding} data (Content-Encoding: {header})")
                data = tail
        except zlib.error as exc:
            raise ClientError(f"Request body is not valid {coding} data (Content-Encoding: {header}): {exc}") from None
        body = bytes(out)
    return body


def _log_client_error(status: int, message: str) -> None:
    log.info("%s %s %d: %s", request.method, request.path, status, message)


def _internal_error(exc: BaseException) -> Response:
    rid = request_id()
    log.error("%s %s 500 (request id %s): %s: %s", request.method, request.path, rid,
              type(exc).__name__, exc, exc_info=(type(exc), exc, exc.__traceback__))
    return error_response(500, "AlgorithmError", f"Internal error; request id {rid}")


def base_app(algorithm: Algorithm, env: ServingEnv) -> Flask:
    """The Flask app every server shares: request ids, the error handlers, `/ping`,
    `/execution-parameters`. The prediction routes are added by `create_app` (one model) and
    `multi_model.create_multi_model_app` (a multi-model endpoint)."""
    app = Flask(f"smalgos-{algorithm.name}")
    # One byte over the cap, so that `read_body` can see a streamed body run past it.
    app.config["MAX_CONTENT_LENGTH"] = env.max_payload_bytes + 1

    @app.before_request
    def assign_request_id():
        request_id()

    @app.after_request
    def send_request_id(response: Response):
        response.headers["X-Request-Id"] = request_id()
        return response

    @app.errorhandler(SMAlgoError)
    def on_our_error(exc: SMAlgoError):
        if not isinstance(exc, ClientError):  # a ClientError's message is for the caller, even a 507's
            return _internal_error(exc)
        _log_client_error(exc.status, exc.message)
        return error_response(exc.status, type(exc).__name__, exc.message)

    @app.errorhandler(RequestEntityTooLarge)
    def on_too_large(exc):
        message = (f"Request body is larger than the {env.max_payload_mb} MB limit"
                   " (raise it with SAGEMAKER_MAX_PAYLOAD_IN_MB)")
        _log_client_error(413, message)
        return error_response(413, PayloadTooLarge.__name__, message)

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException):
        status = exc.code or 500
        if status >= 500:
            return _internal_error(exc)
        message = exc.description or str(exc)
        _log_client_error(status, message)
        return error_response(status, type(exc).__name__, message)

    @app.errorhandler(Exception)
    def on_unexpected(exc: Exception):
        return _internal_error(exc)

    @app.get("/ping")
    def ping():
        return Response(status=200)

    @app.get("/execution-parameters")
    def execution_parameters():
        return {
            "MaxConcurrentTransforms": env.workers,
            "BatchStrategy": env.batch_strategy,
            "MaxPayloadInMB": env.max_payload_mb,
        }

    return app


def _concrete_types(accept_header: str | None) -> list[str]:
    """The types an Accept header names outright (no wildcards), in order."""
    try:
        return [media.type for media, _ in parse_accept_weighted(accept_header) if "*" not in media.type]
    except ClientError as e:
        raise UnsupportedAccept(e.message) from None


class Invoker:
    """One prediction request against a loaded model, as `/invocations` answers it (and a
    multi-model endpoint's `/models/<name>/invoke`): the same bodies, types and errors."""

    def __init__(self, algorithm: Algorithm, env: ServingEnv):
        self.serving = algorithm.serving
        self.env = env
        self.default_accept = env.default_accept or self.serving.default_accept
        self.aliases, self.decoder_options = algorithm.content_type_aliases, algorithm.decoder_options
        self.predict_lock = threading.Lock()  # one prediction at a time per worker (see Model)

    def respond(self, model: Model) -> Response:
        started = time.perf_counter()
        env, serving = self.env, self.serving
        length = request.content_length
        if length is not None and length > env.max_payload_bytes:
            raise RequestEntityTooLarge()
        raw_type = request_content_type()
        try:
            media = parse_media_type(raw_type or serving.content_types[0], aliases=self.aliases)
        except ClientError as e:  # an unparseable Content-Type is one we do not read
            raise UnsupportedContentType(e.message) from None
        accept_header = request.headers.get("Accept")
        if getattr(model, "open_content_types", False):  # the model's own decode/encode take any type
            decoder = encoder = None
            accept = negotiate_media_type(accept_header, _concrete_types(accept_header),
                                          env.default_accept or model.default_accept)
        else:
            decoder = get_decoder(media, allowed=serving.content_types)
            accept = negotiate_media_type(accept_header, serving.accepts, self.default_accept)
            encoder = get_encoder(accept, allowed=serving.accepts)
        body = read_decoded_body(env.max_payload_bytes)
        batch = None
        if body:
            custom_decode = getattr(model, "decode", None)
            batch = custom_decode(body, media) if custom_decode else None
            if batch is None and decoder is not None:
                batch = decoder.decode(body, media, default_label_size=0, source="request body",
                                       **self.decoder_options.get(media.type, {}))
        if batch is None or len(batch) == 0:
            if serving.empty_body_status == 204:
                return Response(status=204)
            raise ClientError("Request body is empty or holds no records: send at least one")
        with self.predict_lock:
            predictions = model.predict(batch, accept)
        custom_encode = getattr(model, "encode", None)
        custom = custom_encode(predictions, accept) if custom_encode else None
        # the JSON wrapper is declared once per algorithm (PCA: "projections")
        payload, mimetype = custom if custom else (encoder.encode(predictions, root_key=serving.json_root_key),
                                                   encoder.media_type)
        log.debug("%d records in %.2f ms", len(batch), 1e3 * (time.perf_counter() - started))
        return Response(payload, status=200, mimetype=mimetype)


def create_app(algorithm: Algorithm, model: Model, env: ServingEnv | None = None) -> Flask:
    """The app serving one model: `/ping`, `/execution-parameters`, `/invocations`."""
    env = env or ServingEnv.from_env()
    app = base_app(algorithm, env)
    invoker = Invoker(algorithm, env)

    @app.post("/invocations")
    def invocations():
        return invoker.respond(model)

    return app
