from smalgos.declaration import (
    MAXIMIZE, Algorithm, Boolean, Categorical, Channel, Float, Hyperparameters, Integer, Interval, Metric,
    Serving, quality_metric,
)
from smalgos.errors import ClientError


def _manhattan_needs_raw(values: dict) -> None:
    if values["distance"] == "manhattan" and values["normalize"]:
        raise ClientError("Hyperparameters distance=manhattan and normalize=true cannot be combined")


ALGORITHM = Algorithm(
    name="test-centroid",
    hyperparameters=Hyperparameters(
        (
            Integer("num_classes", required=True, range=Interval(2, 1000)),
            Integer("epochs", default=1, range=Interval(1, 100)),
            Integer("mini_batch_size", default=100, range=Interval(1, None)),
            Categorical("distance", default="euclidean", choices=("euclidean", "manhattan")),
            Float("shrink", default="auto", allow_auto=True, range=Interval(0, 1)),
            Boolean("normalize", default=False),
        ),
        validators=(_manhattan_needs_raw,),
        accept_unknown=("force_dense",),
    ),
    channels=(
        Channel("train", required=True),
        Channel("test"),
    ),
    metrics=(
        quality_metric("train", "accuracy", MAXIMIZE, per_epoch=True),
        quality_metric("test", "accuracy", MAXIMIZE),
        Metric("train:progress", MAXIMIZE, r"#progress_metric: host=\S+, completed (\S+) %", tunable=False),
        Metric("train:throughput", MAXIMIZE, r"#throughput_metric: host=\S+, train throughput=(\S+) records/second",
               tunable=False),
    ),
    trainer="smalgos_test_centroid.algorithm:train",
    model_loader="smalgos_test_centroid.algorithm:load_model",
    serving=Serving(),
    variants=("cpu",),
)
