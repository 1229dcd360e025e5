"""A test-only algorithm that does no work: the HTTP floor of the serving stack for the benchmarks
(bench/bench_xgboost.py --part serve). Its model "decodes" a CSV body by counting its lines and
answers one score of 0 per line, so a request crosses the same gunicorn / Flask / negotiation /
encoding path as a real model's, with the parsing and the maths left out. Never shipped."""
import dataclasses

import numpy as np

from smalgos.formats.predictions import Predictions
from smalgos_test_centroid.declaration import ALGORITHM as CENTROID

ALGORITHM = dataclasses.replace(CENTROID, name="test-noop", model_loader="smalgos_test_noop.declaration:load_model")


class NoopModel:
    def decode(self, body: bytes, media):
        return range(body.count(b"\n") or 1)  # the "records": one per line

    def predict(self, rows: range, accept=None) -> Predictions:
        return Predictions({"score": np.zeros(len(rows), dtype=np.float32)})


def load_model(model_dir):
    return NoopModel()
