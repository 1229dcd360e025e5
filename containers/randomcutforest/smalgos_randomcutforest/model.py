"""Random Cut Forest as SageMaker's `randomcutforest:1` computes it, usable from a notebook with
numpy arrays or scipy CSR matrices:

    rcf = RandomCutForest(num_trees=100, num_samples_per_tree=256).fit(X)
    scores = rcf.anomaly_score(X)          # higher = more anomalous; AWS flags > mean + 3 sigma

1. One pass over the records: every tree keeps its own uniform reservoir sample of
   `num_samples_per_tree` records (`forest.Reservoirs`).
2. `finalize`: one random cut tree per sample (`forest.build_forest`).
3. Scores: each tree's expected change in complexity were the point inserted, scaled by
   log2(sample size + 1), averaged over the trees (`forest.Forest.score`, the formula of AWS's
   open RCF library).

A fixed `random_state` gives the same forest for the same records in the same mini-batches.

Across hosts each host fills every tree's reservoir from its own records (its own random keys);
at `finalize` the reservoirs are gathered and merged (`forest.Reservoirs.gathered`: per tree the
smallest keys of all, a uniform sample of all the records) and every host grows the same forest
from them with the same seed (the master's is saved).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import load_file, save_file

from smalgos.distributed import host_seed
from smalgos.errors import InputError
from smalgos.estimator import StreamingEstimator
from smalgos.maths.inputs import as_float32, check_labels, conform_width

from .declaration import HYPERPARAMETERS
from .forest import Forest, Reservoirs, build_forest

log = logging.getLogger("smalgos")

MODEL_FILE = "model_algo-1.safetensors"  # the forest's node arrays (forest.Forest.ARRAYS)
META_FILE = "model_algo-1.json"
SIGMAS = 3.0  # AWS's three-sigma rule: a test record is anomalous above mean + 3 sd of the scores


def _dense(x) -> np.ndarray:
    return x.toarray() if sp.issparse(x) else np.ascontiguousarray(x)


class RandomCutForest(StreamingEstimator):
    """Random cut forest anomaly scores (SageMaker RCF's algorithm).

    Parameters are the declared hyperparameters (AWS's names and defaults) plus `random_state`
    and `device` (CPU only; accepted for the kit's protocol). Fitted attributes: `forest_` (the
    trees), `n_features_in_`, `n_samples_seen_` (records read), `sample_size_` (records per tree:
    min(num_samples_per_tree, records read)).
    """

    hyperparameters = HYPERPARAMETERS
    format_name = "smalgos-randomcutforest"
    fitted_attribute = "forest_"
    test_uses_labels = True  # learns from unlabelled records; the test channel's labels score it

    # -- notebook API ---------------------------------------------------------------------------

    def anomaly_score(self, X) -> np.ndarray:
        """(n,) float32 anomaly scores of the rows of X: low normal, high anomalous."""
        self.check_fitted()
        x = _dense(conform_width(as_float32(X), self.n_features_in_, "the records"))
        return self.forest_.score(x).astype(np.float32)

    # -- streaming API --------------------------------------------------------------------------

    def begin(self, n_features: int) -> None:
        """Start a fit on records of `n_features` features."""
        self.validated_parameters(feature_dim=n_features)
        rank = self.cluster.rank  # each host draws its own keys (host 1's are a single host's)
        self._reservoirs = Reservoirs(int(self.num_trees), int(self.num_samples_per_tree), int(n_features),
                                      np.random.default_rng(host_seed(self.random_state, rank)))
        self._width = int(n_features)

    def partial_fit(self, X, y=None) -> "RandomCutForest":
        """Offer one mini-batch to every tree's reservoir sample."""
        self._reservoirs.add(_dense(conform_width(as_float32(X), self._width, "the mini-batch")))
        return self

    def finalize(self) -> "RandomCutForest":
        """Grow one random cut tree per reservoir sample (with several hosts, of the hosts'
        gathered samples: every host grows the same forest); sets `forest_`."""
        # Several hosts grow with a stream none of them sampled with (ranks are 0 .. size - 1).
        reservoirs = self._reservoirs.gathered(self.cluster, seed=[self.random_state, self.cluster.size])
        if reservoirs.seen == 0:
            raise InputError("no records were seen")
        samples = reservoirs.samples()
        if reservoirs.seen < self.num_samples_per_tree:
            log.warning("Only %d records were read: each tree holds all of them (num_samples_per_tree=%d)",
                        reservoirs.seen, self.num_samples_per_tree)
        self.forest_ = build_forest(samples, reservoirs.rng)
        self.n_features_in_ = self._width
        self.n_samples_seen_ = reservoirs.seen
        self.sample_size_ = samples.shape[1]
        log.info("Built %d random cut trees of %d sampled records each from %d records",
                 self.forest_.n_trees, self.sample_size_, self.n_samples_seen_)
        return self

    # -- artifacts ------------------------------------------------------------------------------

    def save(self, model_dir) -> list[Path]:
        """Write the forest's arrays (safetensors) and their metadata (JSON); never pickle."""
        self.check_fitted()
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        save_file(self.forest_.arrays(), str(model_dir / MODEL_FILE))
        meta = self.write_metadata(model_dir / META_FILE, {
            "feature_dim": self.n_features_in_, "num_trees": self.forest_.n_trees,
            "sample_size": self.forest_.sample_size, "num_samples_per_tree": int(self.num_samples_per_tree),
            "records_seen": int(self.n_samples_seen_), "eval_metrics": list(self.eval_metrics)})
        return [model_dir / MODEL_FILE, meta]

    @classmethod
    def load(cls, model_dir) -> "RandomCutForest":
        """A fitted estimator from `save()`'s files (ValueError if they are inconsistent)."""
        model_dir = Path(model_dir)
        meta = cls.read_metadata(model_dir / META_FILE)
        try:
            forest = Forest.from_arrays(load_file(str(model_dir / MODEL_FILE)), int(meta["num_trees"]),
                                        int(meta["sample_size"]))
        except ValueError as exc:
            raise ValueError(f"{MODEL_FILE}: {exc}") from None
        if forest.n_features != int(meta["feature_dim"]):
            raise ValueError(f"{MODEL_FILE}: boxes of {forest.n_features} features, but feature_dim is "
                             f"{meta['feature_dim']}")
        est = cls(num_trees=forest.n_trees, num_samples_per_tree=int(meta["num_samples_per_tree"]),
                  eval_metrics=list(meta.get("eval_metrics", cls.parameter_defaults()["eval_metrics"])))
        est.forest_, est.n_features_in_ = forest, forest.n_features
        est.sample_size_, est.n_samples_seen_ = forest.sample_size, int(meta.get("records_seen", forest.sample_size))
        return est

    # -- what the training driver reports -------------------------------------------------------

    def model_arrays(self) -> dict:
        return {"bounds": self.forest_.bounds, "cut_value": self.forest_.cut_value}

    def test_scorer(self) -> "ThreeSigmaScorer":
        return ThreeSigmaScorer(self)


class ThreeSigmaScorer:
    """The labelled test channel (1 anomalous, 0 normal): records scoring above mean + 3 standard
    deviations of the test scores are called anomalous (AWS's rule), then compared with the labels:
    `accuracy`, and precision / recall / F1 of the anomalous class (`precision_recall_fscore`;
    the normal class's are logged)."""

    def __init__(self, rcf: RandomCutForest):
        self.rcf, self.scores, self.labels = rcf, [], []

    def update(self, features, labels) -> None:
        self.labels.append(check_labels(labels, "Channel 'test'", predictor="binary_classifier",
                                        needed_by="randomcutforest's test channel"))
        self.scores.append(self.rcf.anomaly_score(features))

    def result(self, records: int) -> dict[str, float]:
        scores = np.concatenate(self.scores).astype(np.float64)
        truth = np.concatenate(self.labels) == 1
        flagged = scores > scores.mean() + SIGMAS * scores.std()
        log.info("Test: %d records, %d labelled anomalous, %d above the three-sigma threshold %.6g",
                 records, int(truth.sum()), int(flagged.sum()), scores.mean() + SIGMAS * scores.std())
        out = {}
        if "accuracy" in self.rcf.eval_metrics:
            out["accuracy"] = float((flagged == truth).mean())
        if "precision_recall_fscore" in self.rcf.eval_metrics:
            positive, negative = _precision_recall_f1(flagged, truth), _precision_recall_f1(~flagged, ~truth)
            log.info("precision_recall_fscore: anomalous class (precision, recall, f1) = %s; normal class = %s",
                     tuple(round(v, 6) for v in positive), tuple(round(v, 6) for v in negative))
            out.update(zip(("precision", "recall", "f1"), positive))
        return out


def _precision_recall_f1(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """Precision, recall and F1 of the class marked True (0 where undefined)."""
    hits = float((predicted & truth).sum())
    precision = hits / predicted.sum() if predicted.any() else 0.0
    recall = hits / truth.sum() if truth.any() else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)
