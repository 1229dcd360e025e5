"""Inference for BlazingText: `load_model(model_dir)` returns what the serving app calls, a
`Word2VecModel` (vectors.bin / vectors.txt) or a `SupervisedModel` (model.bin).

Word2Vec:
`application/json` in and out (AWS: Content-Type and Accept are both application/json):
`{"instances": ["awesome", "blazing"]}` → `[{"vector": [0.0654, ...], "word": "awesome"},
{"vector": [...], "word": "blazing"}]`, a JSON array in the instances' order. A word the model
has no vector for gets zeros, unless the model has character n-grams (trained with
subwords=True, or a fastText model brought by the user), which give it the average of its
n-grams' vectors (fastText's rule).

Supervised (text classification; AWS: Content-Type and Accept are equal, the answer is in the
request's type):
- `application/json`: `{"instances": ["the movie was excellent", ...], "configuration": {"k": 2}}`
  (configuration optional, k 1 by default) → `[{"label": ["__label__1", "__label__0"], "prob":
  [0.99, 0.01]}, ...]`, labels most probable first;
- `application/jsonlines` (batch transform): lines `{"source": "...", "k": 2}` (k optional) →
  lines `{"prob": [...], "label": [...]}`.
Sentences are split on white space, as in training.

Models are read without unpickling: `vectors.bin` (fastText's binary format, ours or fastText's
own) by gensim's fastText reader, else `vectors.txt` (word2vec text format); `model.bin` (a
supervised fastText model, ours or fastText's own) by `fasttext_format`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from smalgos.errors import ClientError, UnsupportedContentType
from smalgos.formats.media import JSON, JSONLINES, TEXT_PARAMS, MediaType, check_params

from .fasttext_format import FastTextModel, FormatError
from .supervised import MODEL_BIN, predict, tokenize
from .word2vec import VECTORS_BIN, VECTORS_TXT

_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_CANNOT = "Cannot load the BlazingText model in"


class Word2VecModel:
    """Word vectors to serve: `vectors` (gensim KeyedVectors or FastTextKeyedVectors);
    `subwords`: unseen words get vectors from their character n-grams."""

    def __init__(self, vectors, subwords: bool):
        self.vectors, self.subwords = vectors, subwords
        self.dim = int(vectors.vector_size)

    def decode(self, body: bytes, media: MediaType) -> list[str]:
        check_params(media, TEXT_PARAMS)
        if media.type != JSON:
            raise UnsupportedContentType(f"content type {media.type!r} is not supported by a Word2Vec model; "
                                         f"supported: {JSON}")
        doc = _loads(body, "request body")
        if not isinstance(doc, dict) or not isinstance(doc.get("instances"), list):
            raise ClientError('request body: expected {"instances": ["word", ...]}')
        words = doc["instances"]
        for i, word in enumerate(words):
            if not isinstance(word, str):
                raise ClientError(f"instance {i} is {_excerpt(word)}, not a string: expected "
                                  '{"instances": ["word", ...]}')
        return words

    def vector(self, word: str) -> np.ndarray:
        kv = self.vectors
        index = kv.key_to_index.get(word)
        if index is not None:
            return kv.vectors[index]
        if self.subwords:
            return kv.get_vector(word)  # the mean of its n-grams' vectors; zeros when it has none
        return np.zeros(self.dim, dtype=np.float32)

    def predict(self, words: list[str], accept: MediaType | None = None) -> list[dict]:
        return [{"vector": self.vector(w), "word": w} for w in words]

    def encode(self, predictions: list[dict], accept: MediaType) -> tuple[bytes, str]:
        return orjson.dumps(predictions, option=_NUMPY), JSON

    def warm_up(self) -> None:
        """Vectors of a known and an unknown word, before serving."""
        known = self.vectors.index_to_key[0] if len(self.vectors.index_to_key) else "a"
        self.encode(self.predict([known, "\u2063unseen\u2063"]), MediaType(JSON))


@dataclass
class Classification:
    """A decoded supervised request: each sentence's tokens and k, and the answer's format."""

    lines: list[list[str]]
    ks: list[int]
    media_type: str

    def __len__(self) -> int:
        return len(self.lines)


@dataclass
class Answers:
    items: list[dict]
    media_type: str


def _k(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ClientError(f"{where} {_excerpt(value)} is not a positive integer (the number of labels to return)")
    return value


class SupervisedModel:
    """A fastText classifier (`FastTextModel`) to serve."""

    def __init__(self, model: FastTextModel):
        self.model = model

    def decode(self, body: bytes, media: MediaType) -> Classification:
        check_params(media, TEXT_PARAMS)
        if media.type == JSON:
            doc = _loads(body, "request body")
            if not isinstance(doc, dict) or not isinstance(doc.get("instances"), list):
                raise ClientError('request body: expected {"instances": ["sentence", ...], "configuration": {"k": 1}}')
            config = doc.get("configuration") or {}
            if not isinstance(config, dict):
                raise ClientError('request body: "configuration" must be an object such as {"k": 2}')
            k = _k(config.get("k", 1), '"configuration"."k"')
            lines = []
            for i, text in enumerate(doc["instances"]):
                if not isinstance(text, str):
                    raise ClientError(f"instance {i} is {_excerpt(text)}, not a string (a sentence)")
                lines.append(tokenize(text))
            return Classification(lines, [k] * len(lines), JSON)
        if media.type == JSONLINES:
            lines, ks = [], []
            for number, raw in enumerate(body.splitlines(), start=1):
                if not raw.strip():
                    continue
                record = _loads(raw, f"line {number}")
                if not isinstance(record, dict) or not isinstance(record.get("source"), str):
                    raise ClientError(f'line {number}: expected {{"source": "sentence", "k": 1}} (k optional)')
                lines.append(tokenize(record["source"]))
                ks.append(_k(record.get("k", 1), f'line {number}: "k"'))
            return Classification(lines, ks, JSONLINES)
        raise UnsupportedContentType(f"content type {media.type!r} is not supported; supported: {JSON}, {JSONLINES}")

    def predict(self, request: Classification, accept: MediaType | None = None) -> Answers:
        top = max(request.ks, default=1)
        found = predict(self.model, request.lines, top)
        items = [{"label": labels[:k], "prob": probs[:k]} for (labels, probs), k in zip(found, request.ks)]
        return Answers(items, request.media_type)

    def encode(self, answers: Answers, accept: MediaType) -> tuple[bytes, str]:
        if answers.media_type == JSONLINES:
            return b"".join(orjson.dumps({"prob": a["prob"], "label": a["label"]}) + b"\n"
                            for a in answers.items), JSONLINES
        return orjson.dumps(answers.items), JSON

    def warm_up(self) -> None:
        self.encode(self.predict(Classification([["warm", "up"]], [1], JSON)), MediaType(JSON))


def _loads(data: bytes, where: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ClientError(f"{where} is not valid JSON: {exc}") from None


def _excerpt(value: Any) -> str:
    try:
        text = orjson.dumps(value).decode()  # JSON values as the request spelt them
    except TypeError:
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


FASTTEXT_MAGIC, FASTTEXT_VERSION = 793712314, 12  # fastText's args.h / fasttext.cc


def _check_fasttext_header(path: Path, model_dir: Path) -> None:
    """Refuse a file that does not start as a fastText model does, before reading its sizes."""
    with open(path, "rb") as f:
        head = f.read(8)
    magic, version = struct.unpack("<ii", head) if len(head) == 8 else (None, None)
    if magic != FASTTEXT_MAGIC or version > FASTTEXT_VERSION:
        raise ClientError(f"{_CANNOT} {model_dir}: {path.name} is not a fastText model file (it does not "
                          f"start with fastText's magic number {FASTTEXT_MAGIC} and a version up to "
                          f"{FASTTEXT_VERSION})")


def load_model(model_dir: Path | str) -> Word2VecModel:
    model_dir = Path(model_dir)
    binary, text = model_dir / VECTORS_BIN, model_dir / VECTORS_TXT
    if binary.is_file():
        from gensim.models.fasttext import load_facebook_vectors

        _check_fasttext_header(binary, model_dir)
        try:
            vectors = load_facebook_vectors(str(binary))
        except NotImplementedError as exc:  # gensim: "Supervised fastText models are not supported"
            raise ClientError(f"{_CANNOT} {model_dir}: {binary.name}: {exc}") from None
        except (OSError, ValueError, EOFError, KeyError, struct.error, UnicodeDecodeError) as exc:
            raise ClientError(f"{_CANNOT} {model_dir}: {binary.name} is not a fastText model file: "
                              f"{type(exc).__name__}: {exc}") from None
        return Word2VecModel(vectors, subwords=vectors.bucket > 0 and vectors.max_n >= vectors.min_n)
    if text.is_file():
        from gensim.models import KeyedVectors

        try:
            vectors = KeyedVectors.load_word2vec_format(str(text), binary=False)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise ClientError(f"{_CANNOT} {model_dir}: {text.name} is not in word2vec text format: "
                              f"{type(exc).__name__}: {exc}") from None
        return Word2VecModel(vectors, subwords=False)
    supervised = model_dir / MODEL_BIN
    if supervised.is_file():
        try:
            model = FastTextModel.load(supervised)
        except (FormatError, OSError) as exc:
            raise ClientError(f"{_CANNOT} {model_dir}: {exc}") from None
        if not model.is_supervised:
            raise ClientError(f"{_CANNOT} {model_dir}: {MODEL_BIN} holds word vectors, not a classifier; name it "
                              f"{VECTORS_BIN} to serve word vectors")
        return SupervisedModel(model)
    raise ClientError(f"{_CANNOT} {model_dir}: expected {VECTORS_BIN} (fastText's format) or {VECTORS_TXT} "
                      f"(Word2Vec), or {MODEL_BIN} (supervised)")
