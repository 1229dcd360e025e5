"""Inference for DeepAR (`deepar-in-formats`): `load_model(model_dir)` returns what the serving app calls.

`application/json`: `{"instances": [{"start", "target", "cat"?, "dynamic_feat"?}, ...],
"configuration": {"num_samples": 50, "output_types": ["mean", "quantiles", "samples"],
"quantiles": ["0.5", "0.9"]}}` (configuration optional) → `{"predictions": [{"mean": [...],
"quantiles": {"0.5": [...], "0.9": [...]}, "samples": [[...], ...]}, ...]}`, each array
prediction_length long, in the instances' order.
`application/jsonlines` (batch transform): one instance per line, the configuration from
`DEEPAR_INFERENCE_CONFIG` (JSON), one prediction object per line back.
A `dynamic_feat` must cover len(target) + prediction_length points; a category the model never saw,
or a `cat` / `dynamic_feat` count other than the model's, is a 400 naming the instance and field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from smalgos.environment import ServingEnv
from smalgos.errors import ClientError, UnsupportedContentType
from smalgos.formats.media import JSON, JSONLINES, TEXT_PARAMS, MediaType, check_params

from .declaration import DEFAULT_TEST_QUANTILES
from .evaluation import sample_quantiles
from .model import Network, load
from .series import Series, check_categories, decode_record

CONFIG_ENV = "DEEPAR_INFERENCE_CONFIG"  # named in messages; read by smalgos.environment
OUTPUT_TYPES = ("mean", "quantiles", "samples")
DEFAULT_CONFIGURATION = {"num_samples": 100, "output_types": ["mean", "quantiles"],
                         "quantiles": [repr(q) for q in DEFAULT_TEST_QUANTILES]}
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class Configuration:
    num_samples: int
    output_types: tuple[str, ...]
    quantiles: tuple[str, ...]  # as the request spells them: the answer's keys

    @classmethod
    def parse(cls, raw: Any, where: str = "configuration") -> "Configuration":
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ClientError(f"{where} must be a JSON object")
        merged = {**DEFAULT_CONFIGURATION, **raw}
        n = merged["num_samples"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ClientError(f"{where}.num_samples {n!r} is not a positive integer")
        types = merged["output_types"]
        if not isinstance(types, list) or not types or any(t not in OUTPUT_TYPES for t in types):
            raise ClientError(f"{where}.output_types {types!r}: expected a list of {', '.join(OUTPUT_TYPES)}")
        quantiles = merged["quantiles"]
        if not isinstance(quantiles, list) or not quantiles:
            raise ClientError(f"{where}.quantiles {quantiles!r}: expected a list of quantiles such as [\"0.5\"]")
        for q in quantiles:
            try:
                ok = 0.0 < float(q) < 1.0 and not isinstance(q, bool)
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise ClientError(f"{where}.quantiles: {q!r} is not a number in (0, 1)")
        return cls(n, tuple(types), tuple(str(q) for q in quantiles))


@dataclass
class Request:
    series: list[Series]
    configuration: Configuration

    def __len__(self) -> int:
        return len(self.series)


class DeepARModel:
    def __init__(self, network: Network, predictor, batch_configuration: Configuration):
        self.network, self.predictor = network, predictor
        self.batch_configuration = batch_configuration

    def _instance(self, obj: Any, where: str) -> Series:
        s = decode_record(obj, where, future=self.network.prediction_length)
        if self.network.cardinality:
            check_categories(s, self.network.cardinality)
        feats = 0 if s.dynamic_feat is None else s.dynamic_feat.shape[0]
        if self.network.num_dynamic_feat != feats and self.network.num_dynamic_feat:
            raise ClientError(f"{where}: field 'dynamic_feat' has {feats} series but the model was trained "
                              f"with {self.network.num_dynamic_feat}")
        return s

    def decode(self, body: bytes, media: MediaType) -> Request:
        check_params(media, TEXT_PARAMS)
        if media.type == JSON:
            doc = _loads(body, "request body")
            if not isinstance(doc, dict) or not isinstance(doc.get("instances"), list):
                raise ClientError("request body: expected {\"instances\": [...], \"configuration\": {...}}")
            series = [self._instance(obj, f"instance {i}") for i, obj in enumerate(doc["instances"])]
            return Request(series, Configuration.parse(doc.get("configuration")))
        if media.type == JSONLINES:
            series = [self._instance(_loads(line, f"line {i}"), f"line {i}")
                      for i, line in enumerate(body.splitlines(), start=1) if line.strip()]
            return Request(series, self.batch_configuration)
        raise UnsupportedContentType(f"content type {media.type!r} is not supported; supported: {JSON}, {JSONLINES}")

    def predict(self, request: Request, accept: MediaType | None = None) -> list[dict]:
        config = request.configuration
        forecasts = self.predictor.predict(self.network.entries(request.series), num_samples=config.num_samples)
        answers = []
        for forecast in forecasts:
            samples = np.asarray(forecast.samples, dtype=np.float32)
            answer: dict[str, Any] = {}
            if "quantiles" in config.output_types:
                values = sample_quantiles(samples, [float(q) for q in config.quantiles])
                answer["quantiles"] = dict(zip(config.quantiles, values))
            if "samples" in config.output_types:
                answer["samples"] = samples
            if "mean" in config.output_types:
                answer["mean"] = samples.mean(axis=0)
            answers.append(answer)
        return answers

    def encode(self, predictions: list[dict], accept: MediaType) -> tuple[bytes, str]:
        if accept.type == JSONLINES:
            return b"".join(orjson.dumps(p, option=_NUMPY) + b"\n" for p in predictions), JSONLINES
        return orjson.dumps({"predictions": predictions}, option=_NUMPY), JSON

    def warm_up(self) -> None:
        """One forecast before serving (a model that cannot forecast is not served)."""
        n = self.network.context_length + self.network.prediction_length
        instance = {"start": "2020-01-01", "target": [1.0] * self.network.context_length,
                    "cat": [0] * len(self.network.cardinality) or None,
                    "dynamic_feat": [[0.0] * n] * self.network.num_dynamic_feat or None}
        self.predict(Request([self._instance(instance, "warm-up")], Configuration.parse({"num_samples": 2})))


def _loads(data: bytes, where: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ClientError(f"{where} is not valid JSON: {exc}") from None


def load_model(model_dir: Path | str, batch_config: str | None = None) -> DeepARModel:
    """The model in `model_dir`; `batch_config` (JSON) is batch transform's configuration, by default
    `DEEPAR_INFERENCE_CONFIG` as `ServingEnv` reads it (unset: AWS's defaults)."""
    raw = batch_config if batch_config is not None else ServingEnv.from_env().deepar_inference_config
    batch = Configuration.parse(_loads(raw.encode(), CONFIG_ENV) if raw else None, CONFIG_ENV)
    try:
        network, predictor = load(Path(model_dir))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"DeepAR model in {model_dir}: {exc}") from None
    return DeepARModel(network, predictor, batch)
