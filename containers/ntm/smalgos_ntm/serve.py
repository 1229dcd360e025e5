"""Inference for NTM: `load_model(model_dir)` returns what the serving app calls.

Per record: {"topic_weights": [θ_1, ..., θ_num_topics]}, softmax of the encoder's mean (no noise:
the same request always gets the same answer), non-negative and summing to 1. JSON answers wrap
the records in {"predictions": [...]}; recordIO-protobuf answers carry `label["topic_weights"]`.
"""

from __future__ import annotations

from pathlib import Path

from smalgos.serving.estimator import EstimatorModel, load_estimator

from .model import META_FILE, MODEL_FILE, NeuralTopicModel


class NTMModel(EstimatorModel):
    def fields(self, features, accept) -> dict:
        return {"topic_weights": self.estimator.transform(features)}


def load_model(model_dir: Path | str) -> NTMModel:
    return NTMModel(load_estimator(model_dir, (MODEL_FILE, META_FILE), NeuralTopicModel.load, "NTM"))
