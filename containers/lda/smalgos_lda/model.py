"""LDA as SageMaker's `lda:1` fits it: spectral (method of moments), from two streamed passes.
Usable from a notebook with numpy arrays or scipy CSR matrices of word counts:

    lda = SpectralLDA(num_topics=10).fit(counts)      # counts: (documents, vocabulary)
    lda.alpha_, lda.beta_                              # Dirichlet prior (k,), topics (k, V)
    theta = lda.transform(counts)                      # (documents, k) topic mixtures

Pass 1 sums the first and second word moments and whitens M2 (its leading eigenpairs), pass 2
sums the whitened third moment, which is decomposed (`spectral.decompose`) and un-whitened into
α and β, as AWS describes its image (lda-how-it-works). Unlike AWS's image, exactly num_topics
topics are fitted: AWS fits 25 % more and keeps those of the largest prior weight, but extra
components fitted to the noise directions of M2 get large prior weights and displace true
topics (on AWS's own 10-topic Griffiths data, seeds 1-4: mean topic L1 error 0.18-0.29 with the
extra 25 %, 0.04-0.06 without). Memory O(V² + k³), so the documents never need to fit in memory
(V up to ~10⁴ words: the V × V moment is float64).

Topics are ordered by decreasing α_i. The model's arrays have AWS's layout: `alpha` (k,) and
`beta` (k, V), each row of β a distribution over the vocabulary. Mixtures: `mixture.topic_mixtures`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from safetensors.numpy import save_file

from smalgos.artifacts import load_arrays
from smalgos.errors import InputError
from smalgos.estimator import StreamingEstimator
from smalgos.maths.inputs import as_float32, conform_width

from . import spectral
from .declaration import HYPERPARAMETERS
from .mixture import log_likelihood, topic_mixtures

log = logging.getLogger("smalgos")

MODEL_FILE = "model_algo-1.safetensors"  # tensors "alpha" (k,), "beta" (k, V), as AWS's [alpha, beta]
META_FILE = "model_algo-1.json"


def check_counts(x, where: str, first: int = 0) -> None:
    """Word counts are never negative; the first record at fault is named (`first`: the number of
    the batch's first record in its stream)."""
    if sp.issparse(x):
        coo = sp.coo_matrix(x)
        rows = coo.row[coo.data < 0]
    else:
        rows = np.nonzero((np.asarray(x) < 0).any(axis=1))[0]
    if rows.size:
        raise InputError(f"{where}: record {first + int(rows.min())} holds a negative word count "
                         f"({np.unique(rows).size} record(s) of its mini-batch do); LDA reads non-negative word counts")


class SpectralLDA(StreamingEstimator):
    """LDA by spectral decomposition from streamed mini-batches. See the module docstring.

    Parameters are the declared hyperparameters (AWS's names and defaults), plus `random_state`
    (the decomposition's random restarts) and `device` (unused: numpy on the CPU)."""

    hyperparameters = HYPERPARAMETERS
    positional = ("num_topics",)
    job_only = ("feature_dim", "epochs")
    notebook_defaults = {"mini_batch_size": 1000}
    format_name = "smalgos-lda"
    fitted_attribute = "beta_"

    # -- notebook API ---------------------------------------------------------------------------

    def transform(self, X) -> np.ndarray:
        """(n, num_topics) float32 topic mixtures, each non-negative and summing to 1."""
        self.check_fitted()
        X = conform_width(as_float32(X), self.n_features_in_)
        check_counts(X, "the request")
        return topic_mixtures(X, self.alpha_, self.beta_).astype(np.float32)

    def score(self, X) -> float:
        """Per-word log-likelihood of the documents `X` (AWS's pwll)."""
        scorer = self.test_scorer()
        scorer.update(as_float32(X), None)
        return scorer.result(X.shape[0])["pwll"]

    # -- streaming API --------------------------------------------------------------------------

    def passes(self) -> int:
        return 2  # first and second moments, then the whitened third moment

    def begin(self, n_features: int) -> None:
        self.validated_parameters(feature_dim=n_features)
        self.n_features_in_ = int(n_features)
        log.info("%d feature(s) found in 'data'.", n_features)
        log.info("Running LDA for %d topics; the word moments take %.3g GB (feature_dim² float64)",
                 self.num_topics, 8e-9 * n_features ** 2)
        self._pass = self._records = 0
        self._first = spectral.FirstPass(n_features)
        self._second = None

    def partial_fit(self, xb) -> "SpectralLDA":
        xb = conform_width(as_float32(xb), self.n_features_in_, "the mini-batch")
        check_counts(xb, f"pass {self._pass + 1}", self._records)
        self._records += xb.shape[0]
        if self._pass == 0:
            self._first.add(xb)
        else:
            self._second.add(xb)
        return self

    def end_epoch(self) -> None:
        if self._pass == 0:
            white = spectral.whitening(self._first, self.alpha0, self.num_topics)
            log.info("Whitened the second moment to %d dimension(s) from %d document(s)",
                     white.eigenvalues.shape[0], self._first.docs)
            rank = white.eigenvalues.shape[0]
            if rank < self.num_topics:
                raise InputError(f"the training documents' word moments have rank {rank}: fewer than "
                                 f"num_topics={self.num_topics} topics can be told apart (lower num_topics)")
            self._second = spectral.SecondPass(white)
            self._first = None
        self._pass += 1
        self._records = 0

    def finalize(self) -> "SpectralLDA":
        if self._second is None:
            raise InputError("no records were seen")
        second = self._second
        if second.docs == 0:
            raise InputError(f"no document has {spectral.MIN_WORDS} or more words")
        tensor = second.tensor(self.alpha0)
        rng = np.random.default_rng(self.random_state)
        lambdas, vectors, residual = spectral.decompose(
            tensor, tensor.shape[0], self.max_restarts, self.max_iterations, self.tol, self.allow_svd_init, rng)
        log.info("Best reconstruction error: %.6g (relative to the whitened tensor's norm)", residual)
        alpha, beta = spectral.topics(second.white, lambdas, vectors, self.alpha0)
        order = np.argsort(-alpha, kind="stable")
        self.alpha_ = alpha[order].astype(np.float32)
        self.beta_ = beta[order].astype(np.float32)
        self.n_documents_ = int(second.docs)
        self._second = None
        log.info("Dirichlet prior alpha: %s", np.array2string(self.alpha_, precision=4))
        return self

    # -- artifacts ------------------------------------------------------------------------------

    def save(self, model_dir) -> list[Path]:
        self.check_fitted()
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        save_file({"alpha": np.ascontiguousarray(self.alpha_), "beta": np.ascontiguousarray(self.beta_)},
                  str(model_dir / MODEL_FILE))
        meta = self.write_metadata(model_dir / META_FILE, {
            "num_topics": int(self.beta_.shape[0]), "feature_dim": int(self.beta_.shape[1]),
            "alpha0": float(self.alpha0), "num_documents": int(getattr(self, "n_documents_", 0))})
        return [model_dir / MODEL_FILE, meta]

    @classmethod
    def load(cls, model_dir, device: str | None = None) -> "SpectralLDA":
        model_dir = Path(model_dir)
        meta = cls.read_metadata(model_dir / META_FILE)
        k, v = int(meta["num_topics"]), int(meta["feature_dim"])
        arrays = load_arrays(model_dir / MODEL_FILE, {"alpha": (k,), "beta": (k, v)})
        est = cls(k, alpha0=float(meta.get("alpha0", 1.0)), device=device)
        est.alpha_, est.beta_ = arrays["alpha"], arrays["beta"]
        est.n_features_in_ = v
        est.n_documents_ = int(meta.get("num_documents", 0))
        return est

    # -- what the training driver reports -------------------------------------------------------

    def model_arrays(self) -> dict:
        return {"alpha": self.alpha_, "beta": self.beta_}

    def test_scorer(self) -> "_PerWordLikelihood":
        return _PerWordLikelihood(self)


class _PerWordLikelihood:
    """test:pwll — Σ c log(θ·β) / Σ c over the test documents, θ each document's mixture."""

    def __init__(self, lda: SpectralLDA):
        self.lda, self.total, self.words, self.records = lda, 0.0, 0.0, 0

    def update(self, features, labels) -> None:
        lda = self.lda
        check_counts(features, "the test data", self.records)
        self.records += features.shape[0]
        theta = topic_mixtures(features, lda.alpha_, lda.beta_)
        total, words = log_likelihood(features, theta, lda.beta_)
        self.total += total
        self.words += words

    def result(self, records: int) -> dict[str, float]:
        if self.words == 0:
            raise InputError(f"the {records} test record(s) hold no words")
        return {"pwll": self.total / self.words}
