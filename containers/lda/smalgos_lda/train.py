"""Training for LDA: two passes over `train` (word moments, then the whitened third moment), the
tensor decomposition, then the optional `test` channel scored by the final model (`test:pwll`).

Single host only, as AWS rules: a job on more hosts is a ClientError before any data is read.
Log lines: `<n> feature(s) found in 'data'.`, `Running LDA for 13 topics (10 requested)`,
progress and throughput per pass, `Best reconstruction error: ...`, the test channel's
`#quality_metric: host=algo-1, test pwll <score>=...` and `#test_score` lines, and a `#metrics`
timing line with Algorithm `LDA`.
"""

from smalgos.training.streaming import streaming_trainer

from .model import SpectralLDA

_train = streaming_trainer(SpectralLDA)


def train(job) -> None:
    job.require_one_host("LDA")
    _train(job)


train.estimator_class = SpectralLDA
