"""Inference for k-NN: `load_model(model_dir)` returns what the serving app calls.

Per record (AWS's `kNN-inference-formats` shapes, every number a float):
    {"predicted_label": 0.0}
and with `verbose=true` on the Accept type (`application/json; verbose=true`,
`application/jsonlines; verbose=true`, `application/x-recordio-protobuf; verbose=true`):
    {"predicted_label": 0.0, "distances": [d1, ..., dk], "labels": [l1, ..., lk]}
neighbours closest first; distances as the index measures them (squared Euclidean for L2).
recordIO-protobuf answers carry the same names in each record's `label` map.
"""

from __future__ import annotations

from pathlib import Path

from smalgos.serving.accept import accept_flag
from smalgos.serving.estimator import EstimatorModel, load_estimator

from .model import INDEX_FILE, LABELS_FILE, META_FILE, KNearestNeighbors


class KNNModel(EstimatorModel):
    def fields(self, features, accept) -> dict:
        verbose = accept_flag(accept, "verbose")
        predicted, labels, distances = self.estimator.predict_neighbors(features)
        fields = {"predicted_label": predicted}
        if verbose:
            fields["distances"] = distances
            fields["labels"] = labels
        return fields


def load_model(model_dir: Path | str) -> KNNModel:
    return KNNModel(load_estimator(model_dir, (INDEX_FILE, LABELS_FILE, META_FILE), KNearestNeighbors.load, "k-NN",
                                   errors=(ValueError, KeyError, RuntimeError)))
