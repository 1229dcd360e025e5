"""The inference HTTP app: `/ping`, `/invocations`, `/execution-parameters`.

One request goes: size cap → Content-Type → Accept (negotiated before any work) → decode into a
`Batch` → `model.predict` → encode. Every error is an exception of `smalgos.errors`; one handler
maps it to its status (400 malformed, 413 too large, 415 content type, 406 Accept, 500 ours)
with a JSON body naming what was wrong, and the server keeps serving.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Protocol

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..declaration import Algorithm
from ..environment import ServingEnv
from ..errors import ClientError, PayloadTooLarge, SMAlgoError
from ..formats.batch import Batch
from ..formats.media import MediaType, parse_media_type
from ..formats.predictions import Predictions
from ..formats.registry import get_decoder, get_encoder, negotiate_media_type

log = logging.getLogger("smalgos")


class Model(Protocol):
    """What an algorithm's `model_loader(model_dir)` returns.

    It may also define `encode(predictions, accept) -> (body, mimetype) | None` for answers whose
    shape the algorithm fixes itself (XGBoost's CSV and batch-transform lines); None falls back
    to the registry's encoder for `accept`.
    """

    def predict(self, batch: Batch, accept: MediaType) -> Predictions: ...


def error_response(status: int, error: str, message: str) -> Response:
    body = json.dumps({"error": error, "message": message}) + "\n"
    return Response(body, status=status, mimetype="application/json")


def request_content_type() -> str | None:
    # SageMaker forwards Content-Type; some clients spell it ContentType.
    return request.headers.get("Content-Type") or request.headers.get("ContentType")


def create_app(algorithm: Algorithm, model: Model, env: ServingEnv | None = None) -> Flask:
    env = env or ServingEnv.from_env()
    serving = algorithm.serving
    default_accept = env.default_accept or serving.default_accept
    aliases, decoder_options = algorithm.content_type_aliases, algorithm.decoder_options
    custom_encode = getattr(model, "encode", None)
    root_key = serving.json_root_key  # the JSON wrapper, declared once per algorithm (PCA: "projections")
    app = Flask(f"smalgos-{algorithm.name}")
    app.config["MAX_CONTENT_LENGTH"] = env.max_payload_bytes

    @app.errorhandler(SMAlgoError)
    def on_our_error(exc: SMAlgoError):
        if exc.status >= 500:
            log.exception("Invocation failed")
        return error_response(exc.status, type(exc).__name__, exc.message)

    @app.errorhandler(RequestEntityTooLarge)
    def on_too_large(exc):
        return error_response(413, PayloadTooLarge.__name__,
                              f"Request body is larger than the {env.max_payload_mb} MB limit"
                              " (raise it with SAGEMAKER_MAX_PAYLOAD_IN_MB)")

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException):
        return error_response(exc.code or 500, type(exc).__name__, exc.description or str(exc))

    @app.errorhandler(Exception)
    def on_unexpected(exc: Exception):
        log.exception("Invocation failed")
        return error_response(500, "AlgorithmError", f"{type(exc).__name__}: {exc}")

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

    @app.post("/invocations")
    def invocations():
        started = time.perf_counter()
        length = request.content_length
        if length is not None and length > env.max_payload_bytes:
            raise RequestEntityTooLarge()
        raw_type = request_content_type()
        media = parse_media_type(raw_type or serving.content_types[0], aliases=aliases)
        decoder = get_decoder(media, allowed=serving.content_types)
        accept = negotiate_media_type(request.headers.get("Accept"), serving.accepts, default_accept)
        encoder = get_encoder(accept, allowed=serving.accepts)
        body = request.get_data(cache=False)
        batch = decoder.decode(body, media, default_label_size=0, source="request body",
                               **decoder_options.get(media.type, {})) if body else None
        if batch is None or len(batch) == 0:
            if serving.empty_body_status == 204:
                return Response(status=204)
            raise ClientError("Request body is empty or holds no records: send at least one")
        predictions = model.predict(batch, accept)
        custom = custom_encode(predictions, accept) if custom_encode else None
        payload, mimetype = custom if custom else (encoder.encode(predictions, root_key=root_key),
                                                   encoder.media_type)
        log.debug("%d records in %.2f ms", len(batch), 1e3 * (time.perf_counter() - started))
        return Response(payload, status=200, mimetype=mimetype)

    return app
