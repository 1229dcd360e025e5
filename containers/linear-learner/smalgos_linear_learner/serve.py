"""Inference for Linear Learner: `load_model(model_dir)` returns what the serving app calls.

Responses, per record (AWS's shapes; every number written as a float):
    binary_classifier      {"score": 0.87, "predicted_label": 1.0}
                           score = P(label=1) for logistic loss, the raw margin for hinge_loss;
                           predicted_label = score >= the threshold calibrated in training
    multiclass_classifier  {"score": [p0, p1, ...], "predicted_label": 2.0}
    regressor              {"score": 12.5}
recordIO-protobuf responses carry the same names in each record's `label` map.
"""

from __future__ import annotations

from pathlib import Path

from smalgos.serving.estimator import EstimatorModel, load_estimator

from .model import METADATA_FILE, WEIGHTS_FILE, LinearLearner


class LinearLearnerModel(EstimatorModel):
    def fields(self, features, accept) -> dict:
        scores, labels = self.estimator.predict_with_scores(features)
        return {"score": scores} if labels is None else {"score": scores, "predicted_label": labels}


def load_model(model_dir: Path | str) -> LinearLearnerModel:
    return LinearLearnerModel(load_estimator(model_dir, (METADATA_FILE, WEIGHTS_FILE), LinearLearner.load,
                                             "Linear Learner", errors=(ValueError, KeyError, TypeError, OSError)))
