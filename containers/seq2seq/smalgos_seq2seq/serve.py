"""Inference for Seq2Seq: `load_model(model_dir)` returns what the serving app calls.

Requests (spec §4.3), decoded by the model itself (`decode`):
- `application/json`: {"instances": [{"data": "you are so good !"}, ...]}; an instance may add
  "configuration": {"attention_matrix": "true"} to get its attention weights back;
- `application/jsonlines`: one {"source": "..."} per line (batch transform);
- `application/x-recordio-protobuf`: Records whose features["source"] holds int32 ids.
Text is split on whitespace and mapped with the source vocabulary (unknown tokens are <unk>).

Answers (`encode`), whatever the request's type:
- `application/json`: {"predictions": [{"target": "..."}, {"target": "...", "matrix": [[...]]}]},
  the matrix [target tokens][source tokens] of attention weights;
- `application/jsonlines`: one {"target": "..."} per line;
- `application/x-recordio-protobuf`: Records whose features["target"] holds int32 ids.
A malformed request is a 400 naming the instance, line or record and the field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from smalgos.errors import ClientError, UnsupportedContentType
from smalgos.formats import recordio
from smalgos.formats.media import MediaType, TEXT_PARAMS, check_params
from smalgos.serving.estimator import load_estimator

from .data import record_bytes, record_ids
from .declaration import JSON, JSONLINES, RECORDIO_PROTOBUF
from .model import FILES, Seq2Seq
from .search import Hypothesis


@dataclass
class Requests:
    sources: list[list[int]]
    attention: list[bool]

    def __len__(self) -> int:
        return len(self.sources)


def _flag(value, where: str) -> bool:
    text = str(value).strip().lower() if not isinstance(value, bool) else str(value).lower()
    if text not in ("true", "false"):
        raise ClientError(f"{where} must be \"true\" or \"false\", not {value!r}")
    return text == "true"


def _text(value, where: str) -> str:
    if not isinstance(value, str):
        raise ClientError(f"{where} must be a string of whitespace-separated tokens, not {type(value).__name__}")
    if not value.split():
        raise ClientError(f"{where} holds no tokens")
    return value


def _json_body(body: bytes, where: str):
    try:
        return json.loads(body)
    except UnicodeDecodeError as exc:
        raise ClientError(f"{where} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except ValueError as exc:
        raise ClientError(f"{where} is not valid JSON: {exc}") from None


class Seq2SeqModel:
    def __init__(self, estimator: Seq2Seq):
        self.estimator = estimator

    def _ids(self, text: str) -> list[int]:
        return self.estimator.source_vocab_.ids(text)

    def decode(self, body: bytes, media: MediaType) -> Requests:
        if media.type == JSON:
            check_params(media, TEXT_PARAMS)
            doc = _json_body(body, "Request body")
            if not isinstance(doc, dict) or not isinstance(doc.get("instances"), list):
                raise ClientError('Request body must be a JSON object {"instances": [{"data": "..."}, ...]}: '
                                  'field "instances" (a list) is missing')
            out = Requests([], [])
            for i, inst in enumerate(doc["instances"]):
                where = f"instances[{i}]"
                if not isinstance(inst, dict) or "data" not in inst:
                    raise ClientError(f'{where}: field "data" is missing (an object {{"data": "..."}})')
                out.sources.append(self._ids(_text(inst["data"], f"{where}.data")))
                config = inst.get("configuration", {})
                if not isinstance(config, dict):
                    raise ClientError(f"{where}.configuration must be an object, e.g. "
                                      '{"attention_matrix": "true"}')
                out.attention.append(_flag(config.get("attention_matrix", "false"),
                                           f"{where}.configuration.attention_matrix"))
            return out
        if media.type == JSONLINES:
            check_params(media, TEXT_PARAMS)
            out = Requests([], [])
            for n, line in enumerate(body.splitlines(), 1):
                if not line.strip():
                    continue
                doc = _json_body(line, f"Request line {n}")
                if not isinstance(doc, dict) or "source" not in doc:
                    raise ClientError(f'Request line {n}: field "source" is missing (one {{"source": "..."}} '
                                      "per line)")
                out.sources.append(self._ids(_text(doc["source"], f"Request line {n}: source")))
                out.attention.append(False)
            return out
        if media.type == RECORDIO_PROTOBUF:
            size = len(self.estimator.source_vocab_)
            out = Requests([], [])
            for i, payload in enumerate(recordio.read_records(body, source="request body")):
                where = f"Request record {i}"
                ids = record_ids(payload, where, {"source": size}, required=("source",))["source"]
                if not len(ids):
                    raise ClientError(f'{where}: field features["source"] holds no ids')
                out.sources.append(ids.tolist())
                out.attention.append(False)
            return out
        raise UnsupportedContentType(f"content type {media.type!r} is not supported; supported: "
                                     f"{JSON}, {JSONLINES}, {RECORDIO_PROTOBUF}")

    def predict(self, requests: Requests, accept: MediaType | None = None) -> list[tuple[Hypothesis, bool]]:
        found = self.estimator.translate(requests.sources)
        return list(zip(found, requests.attention))

    def encode(self, predictions, accept: MediaType):
        tv = self.estimator.target_vocab_
        if accept.type == RECORDIO_PROTOBUF:
            return recordio.frame_records(record_bytes(None, h.ids) for h, _ in predictions), RECORDIO_PROTOBUF
        if accept.type == JSONLINES:
            return "".join(json.dumps({"target": tv.text(h.ids)}, ensure_ascii=False) + "\n"
                           for h, _ in predictions).encode(), JSONLINES
        answers = [{"target": tv.text(h.ids), **({"matrix": h.attention} if want else {})} for h, want in predictions]
        return json.dumps({"predictions": answers}, ensure_ascii=False).encode(), JSON

    def warm_up(self) -> None:
        """One translation before serving (a model that cannot translate is not served)."""
        self.estimator.translate([[1]])


def load_model(model_dir: Path | str) -> Seq2SeqModel:
    return Seq2SeqModel(load_estimator(model_dir, FILES, Seq2Seq.load, "Seq2Seq"))
