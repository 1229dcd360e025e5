"""Random Cut Forest (`randomcutforest:1`) as SageMaker declares it: hyperparameters, channels,
metrics, serving.

Sources: AWS Developer Guide `randomcutforest`, `rcf_how-it-works`, `rcf_hyperparameters`,
`random-cut-forest-tuning`, `rcf-in-formats`; the SageMaker Python SDK's `RandomCutForest`
(see /work/shared/spec/algorithms-tabular.md §8). Standard library only.

- `mini_batch_size` is not an AWS hyperparameter of RCF's page, but the SDK always sends it
  (fixed at 1000): declared with that default. It only sizes the reads.
- `train` is unlabelled (CSV `label_size=0`, the unsupervised default); `test` is labelled
  (CSV `text/csv;label_size=1`, column 0 = 1 anomalous / 0 normal; recordIO `label["values"]`).
  A test record is called anomalous when its score is above mean + 3 standard deviations of the
  test scores (AWS's three-sigma rule); `eval_metrics` picks accuracy and/or precision, recall, F1.
- AWS accepts only ShardedByS3Key for `train` and FullyReplicated for `test`. `test` is declared so;
  `train` also accepts FullyReplicated because the kit reads an absent S3DistributionType as
  FullyReplicated, and SageMaker SDK local mode never writes the key.
- Hidden keys of the family's default configurations and HPO's `_tuning_objective_metric` are
  accepted and dropped (`ACCEPTED_HIDDEN`); other underscore names are unknown hyperparameters.
- Responses: JSON `{"scores": [{"score": 0.52}, ...]}` (root key `scores`), JSON Lines
  `{"score": 0.52}` per line, recordIO-protobuf `label["score"]`. AWS documents no CSV answer.
  AWS serves RCF from multi-model endpoints: declared `multi_model`.
"""

from __future__ import annotations

from smalgos.declaration import (
    CPU, FULLY_REPLICATED, MAXIMIZE, SHARDED, Algorithm, Channel, Hyperparameters, Integer, Interval,
    Serving, StringList, progress_metric, quality_metric, throughput_metric,
)

ACCEPTED_HIDDEN = ("_kvstore", "_log_level", "_num_gpus", "_num_kv_servers", "_tuning_objective_metric")

EVAL_METRICS = ("accuracy", "precision_recall_fscore")

HYPERPARAMETERS = Hyperparameters(
    params=(
        Integer("feature_dim", required=True, range=Interval(1, 10000), doc="number of features per record"),
        Integer("num_trees", default=100, range=Interval(50, 1000),
                doc="trees in the forest; the score is their mean (more trees, less noise)"),
        Integer("num_samples_per_tree", default=256, range=Interval(1, 2048),
                doc="reservoir sample size of each tree; 1/num_samples_per_tree ~ the expected anomaly rate"),
        StringList("eval_metrics", default=list(EVAL_METRICS), choices=EVAL_METRICS,
                   doc="scores reported on the labelled test channel"),
        Integer("mini_batch_size", default=1000, range=Interval(1, None),
                doc="records per read (the SageMaker SDK always sends 1000)"),
    ),
    accept_unknown=ACCEPTED_HIDDEN,
)

ALGORITHM = Algorithm(
    name="randomcutforest",
    display_name="RandomCutForest",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, distributions=(SHARDED, FULLY_REPLICATED),
                doc="read once: each tree keeps a reservoir sample of num_samples_per_tree records"),
        Channel("test", distributions=(FULLY_REPLICATED,),
                doc="labelled (1 anomalous, 0 normal); scored with eval_metrics by the three-sigma rule"),
    ),
    metrics=(
        quality_metric("test", "f1", MAXIMIZE),
        quality_metric("test", "accuracy", MAXIMIZE, tunable=False),
        quality_metric("test", "precision", MAXIMIZE, tunable=False),
        quality_metric("test", "recall", MAXIMIZE, tunable=False),
        progress_metric(),
        throughput_metric(),
    ),
    serving=Serving(  # the family's request and answer types (no CSV answer); JSON by default
        json_root_key="scores",
        multi_model=True,  # AWS's image serves CPU multi-model endpoints
    ),
    variants=(CPU,),
    supervised=False,
    doc="Anomaly scores from a forest of random cut trees, each built on a reservoir sample (Guha et al. 2016).",
)
