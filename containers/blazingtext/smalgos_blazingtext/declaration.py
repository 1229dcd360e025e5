"""BlazingText (`blazingtext:1`) as SageMaker declares it: hyperparameters, channels, metrics,
serving.

Sources: AWS Developer Guide `blazingtext`, `blazingtext_hyperparameters`, `blazingtext-tuning`;
the blazingtext_* example notebooks' logs (see /work/shared/spec/algorithms-neural.md §3).
Standard library only.

- `mode` is required: `cbow`, `skipgram`, `batch_skipgram` (Word2Vec) or `supervised` (text
  classification). The two families' hyperparameters are declared together; each mode reads its
  own (`WORD2VEC_ONLY`, `SUPERVISED_ONLY`) and the others keep their defaults unread, as AWS
  documents one table per family.
- Mode-dependent checks: `subwords=True` is for cbow and skipgram only (AWS: "not
  batch_skipgram"); with subwords, `min_char` must not exceed `max_char`.
- `sampling_threshold` is a fraction in (0, 1).
- Channels: `train` (required) and `validation` (supervised only; the trainer refuses it in the
  Word2Vec modes), `text/plain` one sentence per line, File or Pipe mode; for supervised also
  `application/jsonlines`, the augmented manifest's `{"source": "...", "label": 1}` lines (AWS
  documents it for Pipe mode; File mode reads it too).
- Metrics: `train:mean_rho` (`#mean_rho: <rho>`, WS-353 Spearman rho after Word2Vec training with
  evaluation=True), `train:accuracy` and `validation:accuracy` (`#train_accuracy:`,
  `#validation_accuracy:`, supervised). `METRIC_LINES` says how each line is printed; the trainer
  prints it only through `metric_line`, which checks it against the declared regex.
- Serving: `application/json` (`{"instances": [...]}` → a JSON array) and, for supervised models,
  `application/jsonlines` (batch transform); the answer is in the request's type (AWS: Content-Type
  and Accept are equal).
"""

from __future__ import annotations

import re

from smalgos.declaration import (
    CPU, FILE, FULLY_REPLICATED, GPU, MAXIMIZE, PIPE, SHARDED, Algorithm, Boolean, Categorical, Channel, Float,
    Hyperparameters, Integer, Interval, Metric, Serving,
)
from smalgos.errors import ClientError

TEXT_PLAIN = "text/plain"  # smalgos.formats.text's name (not imported: the declaration needs no numpy)
JSON, JSONLINES = "application/json", "application/jsonlines"

CBOW, SKIPGRAM, BATCH_SKIPGRAM, SUPERVISED = "cbow", "skipgram", "batch_skipgram", "supervised"
WORD2VEC_MODES = (CBOW, SKIPGRAM, BATCH_SKIPGRAM)
POSITIVE = Interval(1, None)
NON_NEGATIVE = Interval(0, None)
ABOVE_ZERO = Interval(0, None, low_inclusive=False)

# HPO's `_tuning_objective_metric`: accepted and dropped. Any other underscore name is refused.
ACCEPTED_HIDDEN = ("_tuning_objective_metric",)

WORD2VEC_ONLY = ("batch_size", "evaluation", "min_char", "max_char", "negative_samples", "sampling_threshold",
                 "subwords", "window_size")
SUPERVISED_ONLY = ("early_stopping", "min_epochs", "patience", "word_ngrams")


def _subwords_mode(hp: dict) -> None:
    if hp.get("subwords") and hp.get("mode") not in (None, CBOW, SKIPGRAM):
        raise ClientError(f"Hyperparameter subwords: subword vectors are learnt in modes {CBOW} and {SKIPGRAM} "
                          f"only, not in mode {hp['mode']}; set subwords=False or mode to {CBOW} or {SKIPGRAM}")


def _char_range(hp: dict) -> None:
    low, high = hp.get("min_char"), hp.get("max_char")
    if hp.get("subwords") and low is not None and high is not None and low > high:
        raise ClientError(f"Hyperparameters min_char ({low}) and max_char ({high}): min_char must not exceed "
                          "max_char (the character n-grams are min_char to max_char long)")


HYPERPARAMETERS = Hyperparameters(
    params=(
        Categorical("mode", required=True, choices=(CBOW, SKIPGRAM, BATCH_SKIPGRAM, SUPERVISED),
                    doc="Word2Vec (cbow, skipgram, batch_skipgram) or text classification (supervised)"),
        # both families
        Integer("buckets", default=2000000, range=POSITIVE,
                doc="hash buckets of the character n-grams (subwords) or word n-grams (supervised)"),
        Integer("epochs", default=5, range=POSITIVE, doc="passes over the training data"),
        Float("learning_rate", default=0.05, range=ABOVE_ZERO,
              doc="the step size, decayed linearly to 0 over the training"),
        Integer("min_count", default=5, range=NON_NEGATIVE, doc="words seen fewer times are dropped"),
        Integer("vector_dim", default=100, range=POSITIVE, doc="size of the word vectors (embeddings)"),
        # Word2Vec
        Integer("batch_size", default=11, range=POSITIVE,
                doc="batch_skipgram: words sharing their negative samples (2 * window_size + 1 is usual)"),
        Boolean("evaluation", default=True,
                doc="score the vectors on WordSim-353 after training (eval.json, #mean_rho)"),
        Integer("min_char", default=3, range=POSITIVE, doc="subwords: shortest character n-gram"),
        Integer("max_char", default=6, range=POSITIVE, doc="subwords: longest character n-gram"),
        Integer("negative_samples", default=5, range=POSITIVE, doc="negative samples per positive one"),
        Float("sampling_threshold", default=0.0001, range=Interval(0, 1, low_inclusive=False, high_inclusive=False),
              doc="frequent words are down-sampled above this frequency (1e-3 to 1e-5 are usual)"),
        Boolean("subwords", default=False,
                doc="cbow, skipgram: also learn character n-gram vectors, which give unseen words vectors"),
        Integer("window_size", default=5, range=POSITIVE, doc="context words on each side of a word"),
        # supervised
        Boolean("early_stopping", default=False,
                doc="supervised: stop when validation accuracy has not improved for `patience` epochs"),
        Integer("min_epochs", default=5, range=POSITIVE, doc="supervised: epochs before early stopping may stop"),
        Integer("patience", default=4, range=POSITIVE,
                doc="supervised: epochs without a better validation accuracy before stopping"),
        Integer("word_ngrams", default=2, range=POSITIVE, doc="supervised: word n-grams up to this length"),
    ),
    validators=(_subwords_mode, _char_range),
    accept_unknown=ACCEPTED_HIDDEN,
)

MEAN_RHO, TRAIN_ACCURACY, VALIDATION_ACCURACY = "train:mean_rho", "train:accuracy", "validation:accuracy"

# How each metric's line is printed (AWS's own lines); the regex SageMaker scrapes is beside it.
METRIC_LINES = {
    MEAN_RHO: "#mean_rho: {!r}",
    TRAIN_ACCURACY: "#train_accuracy: {!r}",
    VALIDATION_ACCURACY: "#validation_accuracy: {!r}",
}


def metric_line(algorithm: Algorithm, name: str, value: float) -> str:
    """The log line of the declared metric `name`, checked against its declared regex."""
    line = METRIC_LINES[name].format(float(value))
    regex = algorithm.metric(name).regex
    match = re.fullmatch(regex, line)
    if match is None or float(match.group(1)) != float(value):
        raise RuntimeError(f"{line!r} does not match the regex of {name}: {regex}")
    return line


ALGORITHM = Algorithm(
    name="blazingtext",
    display_name="BlazingText",
    hyperparameters=HYPERPARAMETERS,
    channels=(
        Channel("train", required=True, content_types=(TEXT_PLAIN, JSONLINES), input_modes=(FILE, PIPE),
                distributions=(FULLY_REPLICATED, SHARDED),
                doc="one sentence per line, tokens separated by spaces (supervised: __label__ tokens, or the "
                    "augmented manifest's JSON Lines {source, label})"),
        Channel("validation", content_types=(TEXT_PLAIN, JSONLINES), input_modes=(FILE, PIPE),
                distributions=(FULLY_REPLICATED, SHARDED),
                doc="supervised: labelled sentences scored after each epoch (validation:accuracy)"),
    ),
    metrics=(
        Metric(MEAN_RHO, MAXIMIZE, r"#mean_rho: (\S+)"),
        Metric(TRAIN_ACCURACY, MAXIMIZE, r"#train_accuracy: (\S+)", tunable=False),
        Metric(VALIDATION_ACCURACY, MAXIMIZE, r"#validation_accuracy: (\S+)"),
    ),
    serving=Serving(content_types=(JSON, JSONLINES), accepts=(JSON, JSONLINES), default_accept=JSON),
    variants=(CPU, GPU),
    supervised=False,
    doc="Word2Vec (cbow, skipgram, subword vectors) on gensim and fastText's text classifier in torch; "
        "fastText-compatible binaries.",
)
