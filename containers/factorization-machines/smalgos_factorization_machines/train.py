"""Training for Factorization Machines: `epochs` passes of `train` (recordIO-protobuf, sparse or
dense) through mini-batch Adam; `test` scored by the final model.

Log lines: each pass's training metrics, progress and throughput; the final pass's `train`
metrics and the `test` channel's (`rmse`, or `binary_classification_accuracy`,
`binary_classification_cross_entropy`, `binary_f_1.000`) as `#quality_metric` lines, AWS's
`#test_score` summaries, and a `#metrics` timing line (the driver's default).
"""

from smalgos.training.streaming import streaming_trainer

from .model import FactorizationMachines

train = streaming_trainer(FactorizationMachines)
