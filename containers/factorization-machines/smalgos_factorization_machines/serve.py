"""Inference for Factorization Machines: `load_model(model_dir)` returns what the serving app calls.

Per record (AWS's `fm-in-formats` shapes, every number a float):
    binary_classifier  {"score": 0.87, "predicted_label": 1.0}   score = sigmoid(ŷ); label = score >= 0.5
    regressor          {"score": 12.5}                            score = ŷ
JSON answers wrap the records in {"predictions": [...]}; recordIO-protobuf answers carry the same
names in each record's `label` map. Requests: JSON, JSON Lines, recordIO-protobuf (no CSV, as AWS).
"""

from __future__ import annotations

from pathlib import Path

from smalgos.serving.estimator import EstimatorModel, load_estimator

from .model import META_FILE, MODEL_FILE, FactorizationMachines


class FactorizationMachinesModel(EstimatorModel):
    def fields(self, features, accept) -> dict:
        scores = self.estimator.predict_scores(features)
        if not self.estimator.binary:
            return {"score": scores}
        return {"score": scores, "predicted_label": (scores >= 0.5).astype(scores.dtype)}


def load_model(model_dir: Path | str) -> FactorizationMachinesModel:
    return FactorizationMachinesModel(load_estimator(model_dir, (MODEL_FILE, META_FILE), FactorizationMachines.load,
                                                     "factorization machines"))
