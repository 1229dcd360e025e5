"""Inference for LDA: `load_model(model_dir)` returns what the serving app calls.

Per record: {"topic_mixture": [θ_1, ..., θ_num_topics]}, the document's mixture (non-negative,
summing to 1, often with exact zeros) that maximises its posterior given the model's α and β
(`mixture.topic_mixtures`). JSON answers wrap the records in {"predictions": [...]};
recordIO-protobuf answers carry `label["topic_mixture"]`.
"""

from __future__ import annotations

from pathlib import Path

from smalgos.serving.estimator import EstimatorModel, load_estimator

from .model import META_FILE, MODEL_FILE, SpectralLDA


class LDAModel(EstimatorModel):
    def fields(self, features, accept) -> dict:
        return {"topic_mixture": self.estimator.transform(features)}


def load_model(model_dir: Path | str) -> LDAModel:
    return LDAModel(load_estimator(model_dir, (MODEL_FILE, META_FILE), SpectralLDA.load, "LDA"))
