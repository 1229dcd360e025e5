"""XGBoost in SageMaker's algorithm mode (`sagemaker-xgboost:1.7-1` / `:3.0-5`), declared once.

Sources: /work/shared/spec/algorithms-tabular.md §3 and contract.md §2.5, §4.3 (code reading of
aws/sagemaker-xgboost-container). Standard library only.

Channels: `train` (required) and `validation`; any other name fails as AWS's image fails
("Extraneous channel found"). Content types `text/libsvm` (the default when the channel names
none, as AWS), `text/csv` (label first, no header), `application/x-parquet` (column 0 the label),
`application/x-recordio-protobuf`. File, FastFile and Pipe mode for every type: AWS dropped Pipe
mode in 3.0-5; we keep it.

Metrics: XGBoost's evaluation lines (`[3]\ttrain-rmse:0.41\tvalidation-rmse:0.44`) scraped by
AWS's regexes, which spell the tab as CloudWatch shows it (`#011`). AWS declares the validation
metrics; we declare the train ones too.

Serving: requests in LibSVM (the default when no Content-Type is sent, as AWS's
`get_content_type(None)`: the app reads a missing Content-Type as `Serving.content_types[0]`),
CSV, recordIO-protobuf and, beyond AWS, JSON / JSON Lines; answers in CSV (default, as AWS), JSON,
JSON Lines and recordIO-protobuf.
"""

from __future__ import annotations

from smalgos.declaration import (
    CPU, FASTFILE, FILE, GPU, MAXIMIZE, MINIMIZE, PIPE, Algorithm, Channel, Metric, Serving,
)

from .hyperparameters import HYPERPARAMETERS, MAXIMIZE_METRICS, MINIMIZE_METRICS

LIBSVM = "text/libsvm"
CSV = "text/csv"
PARQUET = "application/x-parquet"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"
JSON = "application/json"
JSONLINES = "application/jsonlines"

TRAINING_CONTENT_TYPES = (LIBSVM, CSV, PARQUET, RECORDIO_PROTOBUF)

# Bare spellings AWS's image accepts for a channel's ContentType (and a request's Content-Type).
CONTENT_TYPE_ALIASES = {
    "csv": CSV, "libsvm": LIBSVM, "text/x-libsvm": LIBSVM, "parquet": PARQUET,
    "recordio-protobuf": RECORDIO_PROTOBUF,
}


def metric_regex(channel: str, metric: str) -> str:
    """AWS's regex (algorithm_mode/metrics.py): the tab before `<channel>-` is CloudWatch's `#011`."""
    return r".*\[[0-9]+\].*#011" + channel + "-" + metric + r":(\S+)"


def _metrics() -> tuple[Metric, ...]:
    out = []
    for channel in ("validation", "train"):
        for names, direction in ((MAXIMIZE_METRICS, MAXIMIZE), (MINIMIZE_METRICS, MINIMIZE)):
            out += [Metric(f"{channel}:{m}", direction, metric_regex(channel, m)) for m in names]
    return tuple(out)


METRICS = _metrics()
METRIC_DIRECTIONS = {m.name.split(":", 1)[1]: m.direction for m in METRICS}

ALGORITHM = Algorithm(
    name="xgboost",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, content_types=TRAINING_CONTENT_TYPES, default_content_type=LIBSVM,
                input_modes=(FILE, FASTFILE, PIPE),
                doc="Training data; CSV and Parquet carry the label in column 0."),
        Channel("validation", content_types=TRAINING_CONTENT_TYPES, default_content_type=LIBSVM,
                input_modes=(FILE, FASTFILE, PIPE),
                doc="Evaluated every round; drives early_stopping_rounds."),
    ),
    metrics=METRICS,
    trainer="smalgos_xgboost.train:train",
    model_loader="smalgos_xgboost.serve:load_model",
    serving=Serving(
        # The first is what a request without a Content-Type is read as: libsvm, as AWS's image.
        content_types=(LIBSVM, CSV, RECORDIO_PROTOBUF, JSON, JSONLINES),
        accepts=(CSV, JSON, JSONLINES, RECORDIO_PROTOBUF),
        default_accept=CSV,
        empty_body_status=204,  # as AWS's image
        multi_model=True,  # AWS's image serves CPU multi-model endpoints
    ),
    variants=(CPU, GPU),
    supervised=True,
    content_type_aliases=CONTENT_TYPE_ALIASES,
    # LibSVM indices are column numbers as written (XGBoost's own reader, which AWS's image used):
    # `1:0.5` is column 1, whatever the smallest index in the data.
    decoder_options={LIBSVM: {"zero_based": True}},
    # Framework mode (`sagemaker.xgboost.XGBoost(entry_point=...)`): the user's script trains, and
    # the user's model_fn / input_fn / predict_fn / output_fn serve (smalgos.scriptmode).
    script_mode=True,
    doc="XGBoost gradient-boosted trees, SageMaker algorithm mode (no user script).",
)
