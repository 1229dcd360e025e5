"""Training for K-Means: `epochs` passes of `train` through web-scale k-means, reduced to k, `test` scored.

Log lines follow AWS's image: `local kmeans attempt #i. Current mean square distance x`,
`#quality_metric: host=algo-1, train msd <loss>=...`, `#quality_metric: host=algo-1, test msd
<loss>=...` (and `ssd`), `#test_score (algo-1) : ('msd', ...)`, progress and throughput per epoch,
and a `#metrics` timing line with Algorithm `AWS/KMeansWebscale`.
"""

from smalgos.training.streaming import streaming_trainer

from .model import WebScaleKMeans

train = streaming_trainer(WebScaleKMeans, timings={
    "initialize.time": ("initialize",), "update.time": ("update",), "_shrink.time": ("finalize",),
    "model.serialize.time": ("save",), "finalize.time": ("finalize", "save", "test")})
