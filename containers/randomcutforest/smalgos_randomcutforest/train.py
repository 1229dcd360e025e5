"""Training for Random Cut Forest: one pass of `train` into every tree's reservoir sample, the
trees grown, the labelled `test` channel scored by the three-sigma rule.

Log lines: `#quality_metric: host=algo-1, test f1 <score>=...` (and accuracy, precision, recall as
`eval_metrics` asks), `#test_score (algo-1) : ('f1', ...)`, progress and throughput, and a
`#metrics` timing line with Algorithm `RandomCutForest`.
"""

from smalgos.training.streaming import streaming_trainer

from .model import RandomCutForest

train = streaming_trainer(RandomCutForest, timings={
    "update.time": ("initialize", "update"), "finalize.time": ("finalize",),
    "model.serialize.time": ("save",), "test.time": ("test",)})
