"""Inference for PCA: `load_model(model_dir)` returns what the serving app calls.

Per record: {"projection": [p_1, ..., p_num_components]} with p = (x − mean)·v (mean = 0 when the
model was trained with subtract_mean=false). Components come in AWS's order: ascending singular
value, so the most significant component is the LAST element. JSON answers wrap the records in
{"projections": [...]}; recordIO-protobuf answers carry `label["projection"]`.
"""

from __future__ import annotations

from pathlib import Path

from smalgos.artifacts import require_file
from smalgos.errors import ClientError
from smalgos.formats.batch import Batch
from smalgos.maths.inputs import check_features
from smalgos.formats.predictions import Predictions
from smalgos.serving.app import check_feature_count

from .model import META_FILE, MODEL_FILE, StreamingPCA


class PCAModel:
    def __init__(self, estimator: StreamingPCA):
        self.estimator = estimator

    def predict(self, batch: Batch, accept=None) -> Predictions:
        check_feature_count(batch, self.estimator.n_features_in_)
        check_features(batch.features, None, "Request")
        return Predictions({"projection": self.estimator.transform(batch.features)})


def load_model(model_dir: Path | str) -> PCAModel:
    model_dir = Path(model_dir)
    require_file(model_dir, MODEL_FILE)
    require_file(model_dir, META_FILE)
    try:
        return PCAModel(StreamingPCA.load(model_dir))
    except (ValueError, KeyError) as exc:
        raise ClientError(f"Cannot load the PCA model in {model_dir}: {exc}") from None
