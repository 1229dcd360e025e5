"""Inference for Object2Vec: `load_model(model_dir)` returns what the serving app calls.

Requests (`object2vec-inference-formats`, `object2vec-encoder-embeddings`), `application/json`
`{"instances": [{"in0": [ids], "in1": [ids]}, ...]}` or `application/jsonlines`, one instance a line:
- every instance holds both sides → per instance {"scores": [p_0, ..., p_k-1]} (softmax
  probabilities) or {"scores": [value]} (regression);
- every instance holds only `in0` (or every one only `in1`) → {"embeddings": [... enc_dim ...]},
  that side's encoder output;
- a mix is a 400 naming the first instance that differs from the first one.
The content type may carry `infer_max_seqlens=<in0 length>,<in1 length>` (each 1 .. 5000): the
sequences are cut to those lengths (and always to the encoders' max_seq_len). JSON answers wrap
the records in {"predictions": [...]}; JSON Lines answers are one object a line.

`INFERENCE_PREFERRED_MODE` (`classification` or `embedding`; unset: classification) chooses which
kind of request the warm-up prediction makes (AWS: which inference graph a GPU loads first);
both kinds are answered either way. Any other value stops the server at start-up.

The app's content-type check would refuse the `infer_max_seqlens` parameter, so the model reads
any content type itself (`open_content_types`): JSON and JSON Lines, else 415; it answers JSON or
JSON Lines, else 406 (before any work).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from smalgos.environment import ServingEnv
from smalgos.errors import ClientError, UnsupportedAccept, UnsupportedContentType
from smalgos.formats.media import CHARSET_PARAMS, JSON, JSONLINES, MediaType, check_params
from smalgos.formats.predictions import Predictions
from smalgos.formats.registry import get_encoder
from smalgos.serving.estimator import load_estimator

from .model import META_FILE, MODEL_FILE, Object2Vec
from .records import SIDES, Pairs, Schema, Sequences, check_ids, pairs_of, parse_lines, sequences

MAX_SEQLENS_PARAM = "infer_max_seqlens"
MODES = ("classification", "embedding")
MODE_ENV = "INFERENCE_PREFERRED_MODE"
FORMATS = (JSON, JSONLINES)
ROOT_KEY = "predictions"


def infer_max_seqlens(media: MediaType) -> tuple[int | None, int | None]:
    """The `infer_max_seqlens=<a>,<b>` parameter, or (None, None)."""
    raw = media.params.get(MAX_SEQLENS_PARAM)
    if raw is None:
        return None, None
    parts = [p.strip() for p in raw.split(",")]
    if len(parts) != 2 or not all(p.isdigit() and 1 <= int(p) <= 5000 for p in parts):
        raise ClientError(f"Content-Type parameter {MAX_SEQLENS_PARAM}={raw!r} must be two integers 1 .. 5000, "
                          "the longest in0 and in1 sequences: infer_max_seqlens=<in0>,<in1>")
    return int(parts[0]), int(parts[1])


@dataclass
class Request:
    """Pairs to score, or one side's sequences to embed."""

    pairs: Pairs | None = None
    side: str | None = None
    sequences: Sequences | None = None

    def __len__(self) -> int:
        return len(self.pairs if self.pairs is not None else self.sequences)


def _has(sides: tuple) -> str:
    return " and ".join(f'"{s}"' for s in sides) + (" (a pair)" if len(sides) == 2 else " only")


def request_of(instances: list, schema: Schema, where) -> Request:
    """Instances (parsed JSON objects) → a `Request`; `where(i)` names instance i in messages."""
    kinds = []
    for i, inst in enumerate(instances):
        if not isinstance(inst, dict):
            raise ClientError(f'{where(i)}: expected an object with "in0" and/or "in1", got {json.dumps(inst)[:40]}')
        has = tuple(s for s in SIDES if s in inst)
        if not has:
            raise ClientError(f'{where(i)}: no "in0" and no "in1" field')
        if kinds and has != kinds[0]:
            raise ClientError(f"{where(i)} holds {_has(has)} but {where(0)} holds {_has(kinds[0])}: a request is "
                              "either pairs (scores) or one side only (embeddings), not a mix")
        kinds.append(has)
    if not kinds:
        return Request(sequences=Sequences(np.zeros((0, 1), np.int64), np.zeros(0, np.int64)), side="in0")
    if len(kinds[0]) == 2:
        return Request(pairs=pairs_of(instances, schema, where, labelled=False))
    side = kinds[0][0]
    rules = schema.sides[SIDES.index(side)]
    lists = [inst[side] for inst in instances]
    check_ids(lists, rules, where, side)
    return Request(side=side, sequences=sequences(lists, rules))


def decode_request(body: bytes, media: MediaType, estimator: Object2Vec) -> Request:
    if media.type not in FORMATS:
        raise UnsupportedContentType(f"content type {media.type!r} is not supported; supported: {', '.join(FORMATS)}")
    check_params(media, CHARSET_PARAMS | {MAX_SEQLENS_PARAM})
    schema = estimator.schema(infer_max_seqlens(media))
    if media.type == JSONLINES:
        instances, lines = parse_lines(body, lambda n: f"request body: line {n}")
        return request_of(instances, schema, lambda i: f"request body: line {lines[i]}")
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ClientError(f"request body: not valid JSON ({exc})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("instances"), list):
        raise ClientError('request body: expected {"instances": [{"in0": [...], "in1": [...]}, ...]}')
    return request_of(obj["instances"], schema, lambda i: f"request body: instance {i}")


def preferred_mode(environ=None) -> str:
    """`INFERENCE_PREFERRED_MODE` (ServingEnv's), checked (a ClientError naming it otherwise)."""
    raw = ServingEnv.from_env(environ).inference_preferred_mode or MODES[0]
    mode = raw.strip().lower()
    if mode not in MODES:
        raise ClientError(f"Environment variable {MODE_ENV}={raw!r} must be classification or embedding")
    return mode


class Object2VecModel:
    open_content_types = True  # infer_max_seqlens: see the module docstring
    default_accept = JSON

    def __init__(self, estimator: Object2Vec, mode: str = MODES[0]):
        self.estimator, self.mode = estimator, mode

    def decode(self, body: bytes, media: MediaType) -> Request:
        self.estimator.check_fitted()
        return decode_request(body, media, self.estimator)

    def predict(self, request, accept: MediaType | None = None) -> Predictions:
        self.estimator.check_fitted()
        if accept is not None and accept.type not in FORMATS:
            raise UnsupportedAccept(f"accept type {accept.type!r} is not supported; supported: {', '.join(FORMATS)}")
        if not isinstance(request, Request):  # records as a notebook holds them
            request = request_of(list(request), self.estimator.schema(), lambda i: f"instance {i}")
        if request.pairs is not None:
            return Predictions({"scores": self.estimator.scores(request.pairs)})
        return Predictions({"embeddings": self.estimator.embed(request.side, request.sequences)})

    def encode(self, predictions: Predictions, accept: MediaType) -> tuple[bytes, str]:
        encoder = get_encoder(accept.type, allowed=FORMATS)
        return encoder.encode(predictions, root_key=ROOT_KEY), encoder.media_type

    def warm_up(self) -> None:
        """One prediction of the preferred kind before serving (a model that cannot predict is not served)."""
        instance = {"in0": [0], "in1": [0]} if self.mode == "classification" else {"in0": [0]}
        self.predict([instance])


def load_model(model_dir: Path | str) -> Object2VecModel:
    mode = preferred_mode()
    return Object2VecModel(load_estimator(model_dir, (MODEL_FILE, META_FILE), Object2Vec.load, "Object2Vec"), mode)
