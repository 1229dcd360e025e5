import json
import time
from pathlib import Path

import numpy as np

from smalgos.artifacts import require_file
from smalgos.errors import ClientError
from smalgos.formats.predictions import Predictions
from smalgos.maths.inputs import conform_width


class CentroidModel:
    def __init__(self, centroids: np.ndarray, distance: str):
        self.centroids = centroids.astype(np.float32)
        self.distance = distance

    def distances(self, x: np.ndarray) -> np.ndarray:
        diff = x[:, None, :] - self.centroids[None, :, :]
        if self.distance == "manhattan":
            return np.abs(diff).sum(axis=2)
        return np.sqrt((diff ** 2).sum(axis=2))

    def predict(self, batch, accept=None) -> Predictions:
        x = conform_width(batch.features, self.centroids.shape[1])
        d = self.distances(np.asarray(x.toarray() if hasattr(x, "toarray") else x, dtype=np.float32))
        label = d.argmin(axis=1)
        return Predictions({"predicted_label": label.astype(np.float32),
                            "distance": d[np.arange(len(d)), label].astype(np.float32)})


def accuracy(model: CentroidModel, batches) -> float:
    right = total = 0
    for b in batches:
        right += int((model.predict(b).fields["predicted_label"] == b.labels).sum())
        total += len(b)
    return right / max(total, 1)


def train(job) -> None:
    hp = job.hyperparameters
    train_ch = job.channel("train")
    k = hp["num_classes"]
    model = None
    for epoch in range(hp["epochs"]):
        started, seen = time.time(), 0
        sums = counts = None
        for batch in train_ch.batches(hp["mini_batch_size"]):
            if batch.labels is None:
                raise ClientError("Channel 'train' has no labels")
            x, y = batch.dense_features(), batch.labels.astype(int)
            if y.min() < 0 or y.max() >= k:
                raise ClientError(f"Channel 'train': labels must be 0..{k - 1}, found {y.min()}..{y.max()}")
            if sums is None:
                sums, counts = np.zeros((k, x.shape[1])), np.zeros(k)
            np.add.at(sums, y, x)
            counts += np.bincount(y, minlength=k)
            seen += len(batch)
            if job.should_stop():
                break
        if sums is None:
            raise ClientError("Channel 'train' holds no records")
        model = CentroidModel(sums / np.maximum(counts, 1)[:, None], hp["distance"])
        job.metrics.quality("train", "accuracy", accuracy(model, train_ch.batches(hp["mini_batch_size"])),
                            epoch=epoch)
        job.metrics.progress(100.0 * (epoch + 1) / hp["epochs"])
        job.metrics.throughput(seen / max(time.time() - started, 1e-9))
        if job.should_stop():
            break
    np.save(job.model_dir / "centroids.npy", model.centroids, allow_pickle=False)
    (job.model_dir / "meta.json").write_text(json.dumps({"distance": model.distance}))
    if "test" in job.channels:
        job.metrics.quality("test", "accuracy", accuracy(model, job.channel("test").batches(1000)))


def load_model(model_dir: Path) -> CentroidModel:
    centroids = np.load(require_file(model_dir, "centroids.npy"), allow_pickle=False)
    meta = json.loads(require_file(model_dir, "meta.json").read_text())
    return CentroidModel(centroids, meta["distance"])
