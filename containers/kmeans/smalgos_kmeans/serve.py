"""Inference for K-Means: `load_model(model_dir)` returns what the serving app calls.

Per record (AWS's `km-in-formats` shapes, every number a float):
    {"closest_cluster": 1.0, "distance_to_cluster": 3.0}
`distance_to_cluster` is the Euclidean distance to the closest centroid (the metrics msd/ssd are
squared). recordIO-protobuf answers carry both in each record's `label` map; CSV answers are
`closest_cluster,distance_to_cluster` lines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from smalgos.artifacts import require_file
from smalgos.errors import ClientError
from smalgos.formats.batch import Batch
from smalgos.maths.inputs import check_features
from smalgos.formats.predictions import Predictions
from smalgos.serving.app import check_feature_count

from .model import META_FILE, MODEL_FILE, WebScaleKMeans


class KMeansModel:
    def __init__(self, estimator: WebScaleKMeans):
        self.estimator = estimator

    def predict(self, batch: Batch, accept=None) -> Predictions:
        check_feature_count(batch, self.estimator.n_features_in_)
        check_features(batch.features, None, "Request")
        cluster, distance = self.estimator.closest(batch.features)
        return Predictions({"closest_cluster": cluster.astype(np.float32), "distance_to_cluster": distance})


def load_model(model_dir: Path | str) -> KMeansModel:
    model_dir = Path(model_dir)
    require_file(model_dir, MODEL_FILE)
    require_file(model_dir, META_FILE)
    try:
        return KMeansModel(WebScaleKMeans.load(model_dir))
    except (ValueError, KeyError) as exc:
        raise ClientError(f"Cannot load the k-means model in {model_dir}: {exc}") from None
