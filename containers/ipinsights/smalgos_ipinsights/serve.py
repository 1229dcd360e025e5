"""Inference for IP Insights: `load_model(model_dir)` returns what the serving app calls.

Requests (`ip-insights-inference-data-formats`): `text/csv` lines `entity,ip`; `application/json`
`{"instances": [{"data": {"features": {"values": ["entity_id_1", "192.168.1.2"]}}},
{"features": ["entity_id_2", "10.10.1.2"]}]}`; `application/jsonlines`, one such instance per line.
The model decodes them itself (`decode`, the serving app's model-level hook: the registry's
decoders read numbers), and a malformed line or instance is a 400 naming it.

Per record, as AWS answers (JSON `{"predictions": [...]}`, or JSON Lines):
    {"dot_product": 0.71}
and with `verbose=True` on the Accept type (`application/json; verbose=True`):
    {"dot_product": 0.71, "ip_embedding": [... vector_dim ...], "entity_embedding": [... vector_dim ...]}
"""

from __future__ import annotations

from pathlib import Path

from smalgos.errors import UnsupportedContentType
from smalgos.formats.media import CSV, JSON, JSONLINES, TEXT_PARAMS, MediaType, check_params
from smalgos.formats.predictions import Predictions
from smalgos.serving.accept import accept_flag
from smalgos.serving.estimator import load_estimator

from .model import META_FILE, MODEL_FILE, IPInsights
from .records import Pairs, pairs_of, parse_csv, parse_json, parse_jsonlines

PARSERS = {CSV: parse_csv, JSON: parse_json, JSONLINES: parse_jsonlines}


class IPInsightsModel:
    def __init__(self, estimator: IPInsights):
        self.estimator = estimator

    def decode(self, body: bytes, media: MediaType) -> Pairs:
        """The request's pairs (a ClientError naming the line or instance at fault)."""
        parse = PARSERS.get(media.type)
        if parse is None:
            raise UnsupportedContentType(f"content type {media.type!r} is not supported; supported: "
                                         f"{', '.join(PARSERS)}")
        check_params(media, TEXT_PARAMS)
        return parse(body, "request body")

    def predict(self, pairs, accept: MediaType | None = None) -> Predictions:
        dot, ip, entity = self.estimator.embeddings(pairs)
        if accept_flag(accept, "verbose"):
            return Predictions({"dot_product": dot, "ip_embedding": ip, "entity_embedding": entity})
        return Predictions({"dot_product": dot})

    def warm_up(self) -> None:
        """One prediction before serving (a model that cannot predict is not served)."""
        self.predict(pairs_of([("warm-up", "192.0.2.1")]))


def load_model(model_dir: Path | str) -> IPInsightsModel:
    return IPInsightsModel(load_estimator(model_dir, (MODEL_FILE, META_FILE), IPInsights.load, "IP Insights"))
