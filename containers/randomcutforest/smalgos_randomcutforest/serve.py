"""Inference for Random Cut Forest: `load_model(model_dir)` returns what the serving app calls.

Per record, as `rcf-in-formats` documents: JSON `{"scores": [{"score": 0.52}, ...]}`, JSON Lines
`{"score": 0.52}` per line, recordIO-protobuf `label["score"]` (float32).
"""

from __future__ import annotations

from pathlib import Path

from smalgos.serving.estimator import EstimatorModel, load_estimator

from .model import META_FILE, MODEL_FILE, RandomCutForest


class RandomCutForestModel(EstimatorModel):
    def fields(self, features, accept) -> dict:
        return {"score": self.estimator.anomaly_score(features)}


def load_model(model_dir: Path | str) -> RandomCutForestModel:
    return RandomCutForestModel(load_estimator(model_dir, (MODEL_FILE, META_FILE), RandomCutForest.load,
                                               "random cut forest"))
