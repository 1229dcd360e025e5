"""Training for k-NN: one pass over `train` (projected if asked, reservoir-sampled to
`sample_size`), the FAISS index built over the sample, `test` scored at the end.

Log lines: progress and throughput, `#quality_metric: host=algo-1, test accuracy <score>=...`
(classifier) or `test mse <loss>=...` (regressor), `#test_score (algo-1) : ('accuracy', ...)`,
and a `#metrics` timing line with Algorithm `AWS/KNN`.
"""

from smalgos.training.streaming import streaming_trainer

from .model import KNearestNeighbors

train = streaming_trainer(KNearestNeighbors, timings={"index.build.time": ("finalize",),
                                                     "model.serialize.time": ("save",)})
