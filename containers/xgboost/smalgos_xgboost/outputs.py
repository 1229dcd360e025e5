"""What `/invocations` answers: XGBoost's raw predictions, or AWS's selectable outputs.

Default (no `SAGEMAKER_INFERENCE_OUTPUT`): one field `score`, the raw `Booster.predict` value
(probability for binary:logistic, class id for multi:softmax, the probability vector for
multi:softprob, the margin for binary:logitraw), so JSON is `{"predictions": [{"score": 0.43}]}`.

`SAGEMAKER_INFERENCE_OUTPUT="predicted_label,probabilities"` (comma list, case and spaces ignored)
switches to the named fields, in that order, with AWS's meaning per objective
(algorithm_mode/serve_utils.py): a key the objective cannot produce comes back as NaN, with a
warning, as AWS does. Beyond AWS, `predicted_score` is offered for every non-classification
objective (AWS: only reg:squarederror/logistic/gamma/absoluteerror/tweedie; others raised).

Encodings AWS fixed and the generic encoders cannot know:
- CSV with selectable outputs: values in the listed order, lists written `"[0.4, 0.6]"` (quoted),
  integers as integers, records joined by newlines, no trailing newline unless in batch transform;
- batch transform (`SAGEMAKER_BATCH`) without selectable outputs: one record per line, a vector
  written `[0.1, 0.2, 0.7]`, whatever the Accept (AWS's image ignored it there).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from smalgos.formats.predictions import Predictions

log = logging.getLogger("smalgos")

PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES = "predicted_label", "labels", "probability", "probabilities"
RAW_SCORE, RAW_SCORES, PREDICTED_SCORE = "raw_score", "raw_scores", "predicted_score"
ALL_KEYS = (PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES, RAW_SCORE, RAW_SCORES, PREDICTED_SCORE)
CLASSIFICATION = {
    "binary:logistic": (PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES, RAW_SCORE, RAW_SCORES),
    "multi:softprob": (PREDICTED_LABEL, LABELS, PROBABILITY, PROBABILITIES, RAW_SCORE, RAW_SCORES),
    "binary:logitraw": (PREDICTED_LABEL, LABELS, RAW_SCORE, RAW_SCORES),
    "binary:hinge": (PREDICTED_LABEL, LABELS, RAW_SCORE, RAW_SCORES),
    "multi:softmax": (PREDICTED_LABEL, LABELS, RAW_SCORE, RAW_SCORES),
}
INTEGER_KEYS = (PREDICTED_LABEL, LABELS)


def parse_selection(raw: str | None) -> list[str] | None:
    if raw is None or not raw.strip():
        return None
    return [k for k in raw.replace(" ", "").lower().split(",") if k]


def valid_keys(objective: str) -> tuple[str, ...]:
    return CLASSIFICATION.get(objective, (PREDICTED_SCORE,))


def selected_predictions(raw: np.ndarray, keys: list[str], objective: str, num_class: int) -> Predictions:
    """AWS's `get_selected_predictions`, vectorised: one field per key, in the order asked."""
    raw = np.asarray(raw, dtype=np.float32)
    n = raw.shape[0]
    valid = set(valid_keys(objective))
    invalid = [k for k in keys if k not in valid]
    if invalid:
        log.warning("Selected key(s) %s incompatible for objective '%s'. Please use list of compatible selectable "
                    "inference predictions: %s", invalid, objective, list(valid_keys(objective)))
    vector = raw.ndim == 2
    if objective == "multi:softprob" and not vector:
        raw = raw.reshape(n, -1)
        vector = True
    nan = np.full(n, np.nan, np.float32)
    fields: dict[str, np.ndarray] = {}
    for key in keys:
        if key not in valid:
            fields[key] = nan
        elif key == PREDICTED_LABEL:
            if objective in ("binary:hinge", "multi:softmax"):
                fields[key] = raw
            elif objective == "binary:logistic":
                fields[key] = (raw > 0.5).astype(np.float32)
            elif objective == "binary:logitraw":
                fields[key] = (raw > 0).astype(np.float32)
            else:  # softprob
                fields[key] = raw.argmax(axis=1).astype(np.float32)
        elif key == LABELS:
            k = 2 if objective.startswith("binary:") else int(num_class or (raw.shape[1] if vector else 0))
            fields[key] = np.broadcast_to(np.arange(k, dtype=np.float32), (n, k)) if k else nan
        elif key in (PROBABILITY, RAW_SCORE):
            fields[key] = raw.max(axis=1) if vector else raw
        elif key in (PROBABILITIES, RAW_SCORES):
            # [1 - x, x] even for margins (AWS's raw_scores quirk, kept for compatibility).
            fields[key] = raw if vector else np.stack([1.0 - raw, raw], axis=1)
        elif key == PREDICTED_SCORE:
            fields[key] = raw
    return Predictions(fields)


def _scalar(value: float, integer: bool) -> str:
    if math.isnan(value):
        return "nan"
    if integer and float(value).is_integer():
        return str(int(value))
    return repr(float(np.float32(value)))  # Python's str of the float32 value, as AWS's image prints it


def _list(values, integer: bool) -> str:
    return "[" + ", ".join(_scalar(float(v), integer) for v in values) + "]"


def selected_csv(predictions: Predictions, batch: bool) -> bytes:
    """AWS's `_encode_selected_predictions_csv`: `1,"[0.3, 0.7]"` per record."""
    n = len(predictions)
    columns = []
    for key, arr in predictions.fields.items():
        integer = key in INTEGER_KEYS
        if arr.ndim == 2:
            columns.append(['"' + _list(row, integer) + '"' for row in arr])
        else:
            columns.append([_scalar(float(v), integer) for v in arr])
    text = "\n".join(",".join(col[i] for col in columns) for i in range(n))
    return (text + "\n" if batch else text).encode()


def batch_lines(predictions: Predictions) -> bytes:
    """AWS's batch-transform body: `str(prediction)` per line, newline-terminated."""
    (arr,) = predictions.fields.values()
    if arr.ndim == 2:
        lines = [_list(row, False) for row in arr]
    else:
        lines = [_scalar(float(v), False) for v in arr]
    return ("\n".join(lines) + "\n").encode()
