"""Inference for the rl image: `load_model(model_dir)` returns what the serving app calls.

Requests (`/invocations`), one observation per record, in the policy's observation shape (a
q_table's observation is one integer state in [0, n)):
    application/json       ``{"instances": [obs, ...]}``, ``{"observations": [obs, ...]}``, a bare
                           list of observations ``[obs, ...]``, or one ``{"observation": obs}``
                           (a bare list that is itself one observation is that one)
    application/jsonlines  one observation per line: ``[0.1, 0.2, 0.3, 0.4]``, ``3`` or
                           ``{"observation": ...}``
    text/csv               one observation per row, flattened (reshaped to the observation shape)
An observation of another shape, a value that is not a finite number, or a state that is not an
integer in range is a 400 naming the record ("request body: instance 2", "line 3", "row 4") and
what the policy takes.

Answers, one per observation:
    application/json       ``{"predictions": [{"action": 1}, ...]}``; box actions are lists
    application/jsonlines  one ``{"action": ...}`` per line
    text/csv               one action per line (box: comma-joined)
With ``verbose=true`` on the Accept type (``application/json; verbose=true``, as k-NN's), JSON and
JSON Lines records also carry ``"probabilities"`` (a logits policy: softmax) or ``"q_values"`` (a
Q-network or q_table). Floats are float32 printed shortest (``0.7310586``), as every answer of the
kit.

Script mode (SAGEMAKER_PROGRAM set: ``RLEstimator(image_uri=...).deploy()`` names the training
entry point): the user's handlers over `ScriptDefaults` (model_fn: `load_policy`, input_fn: the
requests above, predict_fn: `Policy.act`, output_fn: the answers above), so that a script with no
handlers answers what plain serving answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from smalgos.environment import ScriptModeEnv
from smalgos.errors import ClientError, UnsupportedAccept, UnsupportedContentType
from smalgos.formats._numfmt import float_strings
from smalgos.formats.media import CSV, JSON, JSONLINES, TEXT_PARAMS, MediaType, check_params, parse_media_type
from smalgos.formats.predictions import DEFAULT_ROOT_KEY
from smalgos.formats.registry import get_decoder
from smalgos.serving.accept import accept_flag

from .policy import Policy, load_policy

VERBOSE_FIELDS = ("probabilities", "q_values")  # answered only with verbose=true
_SOURCE = "request body"
_FORMS = ('{"instances": [obs, ...]}, {"observations": [obs, ...]}, {"observation": obs} or a list of'
          " observations")


class Observations:
    """A decoded request: the observations as parsed (a list, or CSV's array), not yet checked
    against a policy (a script's model_fn may load something else), and how to name record i."""

    def __init__(self, values: Any, record: Callable[[int], str]):
        self.values, self.record = values, record

    def __len__(self) -> int:
        return len(self.values)


def _as_media(content_type: MediaType | str, error: type[ClientError]) -> MediaType:
    if isinstance(content_type, MediaType):
        return content_type
    try:
        return parse_media_type(content_type)
    except ClientError as exc:
        raise error(exc.message) from None


def _loads(data: bytes, where: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ClientError(f"{where}: not valid JSON ({exc})") from None
    except RecursionError:
        raise ClientError(f"{where}: JSON nested too deeply to read") from None


def decode_observations(body: bytes, content_type: MediaType | str) -> Observations:
    """The observations of a request body (see the module's docstring); 415 for another type."""
    media = _as_media(content_type, UnsupportedContentType)
    if media.type == CSV:  # the kit's CSV reader: its messages name the line and column at fault
        batch = get_decoder(media, allowed=(CSV,)).decode(body, media, default_label_size=0, source=_SOURCE)
        return Observations(batch.dense_features(), lambda i: f"{_SOURCE}: row {i + 1}")
    if media.type == JSON:
        check_params(media, TEXT_PARAMS)
        return _decode_json(body)
    if media.type == JSONLINES:
        check_params(media, TEXT_PARAMS)
        return _decode_jsonlines(body)
    raise UnsupportedContentType(f"content type {media.type!r} is not supported; supported: {JSON}, {JSONLINES}, {CSV}")


def _decode_json(body: bytes) -> Observations:
    obj = _loads(body, _SOURCE)
    if isinstance(obj, dict):
        for key, noun in (("instances", "instance"), ("observations", "observation")):
            if key in obj:
                items = obj[key]
                if not isinstance(items, list):
                    raise ClientError(f'{_SOURCE}: "{key}" must be a list of observations')
                return Observations(items, lambda i, noun=noun: f"{_SOURCE}: {noun} {i}")
        if "observation" in obj:
            return Observations([obj["observation"]], lambda i: f'{_SOURCE}: "observation"')
        raise ClientError(f"{_SOURCE}: an object with keys {list(obj)[:5]}; expected {_FORMS}")
    if isinstance(obj, list):
        return Observations(obj, lambda i: f"{_SOURCE}: observation {i}")
    return Observations([obj], lambda i: _SOURCE)  # one bare number: a q_table's state


def _decode_jsonlines(body: bytes) -> Observations:
    lines = body.split(b"\n")
    live = [i for i, line in enumerate(lines) if line.strip()]
    where = lambda k: f"{_SOURCE}: line {live[k] + 1}"  # noqa: E731
    try:
        items = json.loads(b"[" + b",".join(lines[i] for i in live) + b"]")
    except (ValueError, UnicodeDecodeError, RecursionError):
        items = None  # find the line at fault one by one
    if items is None or len(items) != len(live):
        items = [_loads(lines[i], where(k)) for k, i in enumerate(live)]
    for k, item in enumerate(items):
        if isinstance(item, dict):
            if "observation" not in item:
                raise ClientError(f'{where(k)}: an object without "observation"; a line is an observation or'
                                  ' {"observation": ...}')
            items[k] = item["observation"]
    return Observations(items, where)


# ------------------------------------------------------------------------------------------------
# Answers
# ------------------------------------------------------------------------------------------------

def _text(value: Any) -> str:
    """One value of an answer: ints as they are, floats as float32 shortest, lists bracketed."""
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return float_strings(np.array([value]), "null")[0]
    if isinstance(value, (list, tuple, np.ndarray)):
        items = list(value)
        if items and all(isinstance(v, (float, np.floating)) for v in items):
            return "[" + ", ".join(float_strings(np.array(items), "null")) + "]"
        return "[" + ", ".join(_text(v) for v in items) + "]"
    return json.dumps(value)


def _csv_text(value: Any) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        return ",".join(_csv_text(v) for v in value)
    if isinstance(value, (float, np.floating)):
        return float_strings(np.array([value]))[0]
    return str(int(value)) if isinstance(value, (int, np.integer)) else str(value)


def encode_actions(records: list[dict], accept: MediaType | str) -> tuple[bytes, str]:
    """`Policy.act`'s records as the Accept type's body; the verbose fields only with verbose=true
    (a script's predict_fn answers them always, so that its output_fn can choose)."""
    media = _as_media(accept, UnsupportedAccept)
    if media.type == CSV:
        return "".join(_csv_text(r["action"]) + "\n" for r in records).encode(), CSV
    if media.type not in (JSON, JSONLINES):
        raise UnsupportedAccept(f"accept type {media.type!r} is not supported; supported: {JSON}, {JSONLINES}, {CSV}")
    verbose = accept_flag(media, "verbose")
    rows = ["{" + ", ".join(f"{json.dumps(k)}: {_text(v)}" for k, v in r.items()
                            if verbose or k not in VERBOSE_FIELDS) + "}" for r in records]
    if media.type == JSONLINES:
        return "".join(row + "\n" for row in rows).encode(), JSONLINES
    return f'{{"{DEFAULT_ROOT_KEY}": [{", ".join(rows)}]}}'.encode(), JSON


class PolicyModel:
    """The served policy (a `Model` of the kit's app, which negotiates Content-Type and Accept
    against the declaration first): its own decode and encode, as requests are observations and
    answers actions, not the kit's feature records and float fields."""

    def __init__(self, policy: Policy):
        self.policy = policy

    def decode(self, body: bytes, media: MediaType) -> Observations:
        return decode_observations(body, media)

    def predict(self, observations: Observations, accept: MediaType) -> list[dict]:
        return self.policy.act(observations.values, accept_flag(accept, "verbose"), observations.record)

    def encode(self, records: list[dict], accept: MediaType) -> tuple[bytes, str]:
        return encode_actions(records, accept)

    def warm_up(self) -> None:
        self.policy.warm_up()


class ScriptDefaults:
    """The handlers a script-mode inference module leaves out (`smalgos.scriptmode.serving`):
    plain serving's model, requests and answers, so that a deploy of a training script with no
    handlers answers the same bodies."""

    def model_fn(self, model_dir: Path) -> Policy:
        return load_policy(model_dir)

    def input_fn(self, body: bytes, content_type: str) -> Observations:
        return decode_observations(body, content_type)

    def predict_fn(self, data: Any, model: Any) -> Any:
        if isinstance(data, Observations):
            return model.act(data.values, verbose=True, record=data.record)
        return model.act(data, verbose=True)

    def output_fn(self, prediction: Any, accept: str) -> tuple[bytes, str]:
        if isinstance(prediction, list) and all(isinstance(r, dict) and "action" in r for r in prediction):
            return encode_actions(prediction, accept)
        from smalgos.scriptmode.serving import default_output_fn

        return default_output_fn(prediction, accept)  # a script's predict_fn answered something else


def load_model(model_dir: Path | str):
    """The PolicyModel of the model directory; with SAGEMAKER_PROGRAM set, the user's inference
    handlers over `ScriptDefaults`."""
    script = ScriptModeEnv.from_env()
    if script.program:
        from smalgos.scriptmode.serving import load_script_model

        return load_script_model(Path(model_dir), ScriptDefaults(), script)
    return PolicyModel(load_policy(model_dir))
