"""A test-only algorithm whose prediction sleeps: the first feature of the first record is the
number of seconds. It serves a test-centroid model directory (its loader reads nothing) and
drives the server's timeout tests. Never shipped."""
import dataclasses
import time

import numpy as np

from smalgos.formats.predictions import Predictions
from smalgos_test_centroid.declaration import ALGORITHM as CENTROID

ALGORITHM = dataclasses.replace(CENTROID, name="test-sleepy",
                                model_loader="smalgos_test_sleepy.declaration:load_model")


class SleepyModel:
    def predict(self, batch, accept=None) -> Predictions:
        x = batch.dense_features()
        time.sleep(float(x[0, 0]) if len(x) else 0.0)
        return Predictions({"predicted_label": np.zeros(len(x), dtype=np.float32)})


def load_model(model_dir):
    return SleepyModel()
