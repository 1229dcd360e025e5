"""Training for PCA: one pass over `train` accumulating the mode's summary, then the
decomposition; the optional `test` channel is scored by the final model.

Log lines: `<n> feature(s) found in 'data'.`, progress and throughput, the test channel's mean
squared reconstruction error (AWS names no metric for it), and a `#metrics` timing line with
Algorithm `PCA` (update, finalize and model.serialize times: the driver's default).
"""

from smalgos.training.streaming import streaming_trainer

from .model import StreamingPCA

train = streaming_trainer(StreamingPCA)
