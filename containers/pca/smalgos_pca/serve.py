"""Inference for PCA: `load_model(model_dir)` returns what the serving app calls.

Per record: {"projection": [p_1, ..., p_num_components]} with p = (x − mean)·v (mean = 0 when the
model was trained with subtract_mean=false). Components come in AWS's order: ascending singular
value, so the most significant component is the LAST element. JSON answers wrap the records in
{"projections": [...]}; recordIO-protobuf answers carry `label["projection"]`.
"""

from __future__ import annotations

from pathlib import Path

from smalgos.serving.estimator import EstimatorModel, load_estimator

from .model import META_FILE, MODEL_FILE, StreamingPCA


class PCAModel(EstimatorModel):
    def fields(self, features, accept) -> dict:
        return {"projection": self.estimator.transform(features)}


def load_model(model_dir: Path | str) -> PCAModel:
    return PCAModel(load_estimator(model_dir, (MODEL_FILE, META_FILE), StreamingPCA.load, "PCA"))
