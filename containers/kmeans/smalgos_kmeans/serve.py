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

from smalgos.serving.estimator import EstimatorModel, load_estimator

from .model import META_FILE, MODEL_FILE, WebScaleKMeans


class KMeansModel(EstimatorModel):
    def fields(self, features, accept) -> dict:
        cluster, distance = self.estimator.closest(features)
        return {"closest_cluster": cluster.astype(np.float32), "distance_to_cluster": distance}


def load_model(model_dir: Path | str) -> KMeansModel:
    return KMeansModel(load_estimator(model_dir, (MODEL_FILE, META_FILE), WebScaleKMeans.load, "k-means"))
