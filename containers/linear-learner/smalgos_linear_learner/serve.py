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

from smalgos.formats.batch import Batch
from smalgos.formats.predictions import Predictions

from .model import LinearLearner


class LinearLearnerModel:
    def __init__(self, estimator: LinearLearner):
        self.estimator = estimator

    @property
    def feature_dim(self) -> int:
        return self.estimator.feature_dim_

    def predict(self, batch: Batch, accept=None) -> Predictions:
        # A feature-count mismatch raises InputError (a ClientError: HTTP 400) naming both counts.
        scores, labels = self.estimator.predict_with_scores(batch.features)
        fields = {"score": scores}
        if labels is not None:
            fields["predicted_label"] = labels
        return Predictions(fields)


def load_model(model_dir: Path | str) -> LinearLearnerModel:
    return LinearLearnerModel(LinearLearner.load(model_dir))
