"""Serving with the user's inference handlers, as SageMaker's framework containers do
(sagemaker-inference-toolkit's `Transformer`): a model whose container is given
SAGEMAKER_PROGRAM (and SAGEMAKER_SUBMIT_DIRECTORY) is served by that module's

    model_fn(model_dir) -> model
    input_fn(request_body: bytes, content_type: str) -> data
    predict_fn(data, model) -> prediction
    output_fn(prediction, accept: str) -> body | (body, content_type)
    transform_fn(model, request_body, content_type, accept)   # instead of the three above

each one the user's where the module defines it, else the algorithm's default (`Defaults`; the
output default is the Defaults' `output_fn` where it has one, else `default_output_fn`). Where the
code is: SAGEMAKER_SUBMIT_DIRECTORY — a directory (SDK local mode mounts it at /opt/ml/code),
`file://`, a local or `s3://` sourcedir.tar.gz — else
`code/` in the model directory (where the SDK repacks it into model.tar.gz), else /opt/ml/code. Its
requirements.txt is installed first.

`ScriptModel` is a `Model` the kit's app serves unchanged: the app caps the body, checks the
Content-Type and negotiates Accept (any type: `open_content_types`), then hands the raw body to
`decode` (the user's input_fn), `predict` (predict_fn) and `encode` (output_fn). An error a handler
raises is the app's: a `smalgos.errors` one answers its status, anything else a 500 with a request id.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from ..artifacts import REPACKED_CODE
from ..declaration import Algorithm
from ..environment import Paths, ScriptModeEnv
from ..errors import AlgorithmError, ClientError, UnsupportedAccept
from ..formats.batch import Batch
from ..formats.media import MediaType, parse_media_type
from ..formats.registry import get_decoder
from ..formats._numfmt import float32_json, row_strings
from .source import code_dir, fetch_code, install_requirements

log = logging.getLogger("smalgos")

HANDLERS = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")


class Defaults(Protocol):
    """An algorithm's framework-mode defaults for the handlers a user module leaves out. It may also
    define `output_fn(prediction, accept) -> body | (body, content_type)`, used instead of
    `default_output_fn` (RL: the same answers as the image's plain serving)."""

    def model_fn(self, model_dir: Path) -> Any: ...

    def input_fn(self, body: bytes, content_type: str) -> Any: ...

    def predict_fn(self, data: Any, model: Any) -> Any: ...


def decode_request(algorithm: Algorithm, body: bytes, content_type: str) -> Batch:
    """A request body as the algorithm's serving decoders read it (its declared types and options):
    what a default `input_fn` starts from."""
    media = parse_media_type(content_type, aliases=algorithm.content_type_aliases)
    decoder = get_decoder(media, allowed=algorithm.serving.content_types)
    return decoder.decode(body, media, default_label_size=0, source="request body",
                          **algorithm.decoder_options.get(media.type, {}))


def default_output_fn(prediction: Any, accept: str) -> tuple[bytes, str]:
    """The prediction as JSON (a nested list), CSV (one line per record) or JSON Lines (one value or
    list per line), as the toolkit's encoders write arrays; float32 values in their shortest text."""
    media = parse_media_type(accept).type
    arr = np.asarray(prediction)
    numeric = arr.dtype.kind in "fiub"
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if media == "application/json":
        return (float32_json(arr) if numeric else json.dumps(arr.tolist()).encode()), media
    if media == "text/csv" and numeric and arr.ndim <= 2:
        return ("\n".join(row_strings(arr, ",")) + "\n").encode(), media
    if media == "application/jsonlines" and numeric and arr.ndim <= 2:
        return ("\n".join(row_strings(arr, ",", "null", brackets=arr.ndim == 2)) + "\n").encode(), media
    raise UnsupportedAccept(f"accept type {accept!r}: the default output_fn writes application/json, and"
                            " text/csv or application/jsonlines for numeric arrays of one or two dimensions;"
                            " define output_fn in the inference script for other answers")


def response(result: Any, accept: str) -> tuple[bytes, str]:
    """An output_fn's (or transform_fn's) result as (body, content type): a `(body, type)` pair, or
    a body (bytes or str) in the negotiated Accept type."""
    body, mimetype = result if isinstance(result, tuple) and len(result) == 2 else (result, accept)
    if isinstance(body, str):
        body = body.encode("utf-8")
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise AlgorithmError(f"The inference script's output_fn returned {type(body).__name__}: it must return"
                             " bytes or str (or a (body, content_type) pair)")
    return bytes(body), str(mimetype)


def user_code_dir(paths: Paths, env: ScriptModeEnv) -> Path:
    """Where the inference module is (see the module's docstring)."""
    if env.submit_directory:
        return fetch_code(env.submit_directory, code_dir(paths), "SAGEMAKER_SUBMIT_DIRECTORY", copy_dirs=False)
    for candidate in (paths.model_dir / REPACKED_CODE, code_dir(paths)):
        if (candidate / str(env.program)).is_file():
            return candidate
    raise ClientError(f"SAGEMAKER_PROGRAM={env.program}: no such file in {paths.model_dir / REPACKED_CODE} or"
                      f" {code_dir(paths)}, and SAGEMAKER_SUBMIT_DIRECTORY is not set")


def import_user_module(directory: Path, program: str) -> ModuleType:
    """The module `program` (``inference.py`` or ``inference``) of `directory`, imported from that
    file (the directory first on sys.path, for its own imports)."""
    name = program[:-3] if program.endswith(".py") else program
    path = next((p for p in (directory / f"{name}.py", directory / name / "__init__.py") if p.is_file()), None)
    if path is None:
        present = ", ".join(sorted(p.name for p in directory.iterdir())) if directory.is_dir() else "none"
        raise ClientError(f"SAGEMAKER_PROGRAM={program}: not in {directory} (files there: {present or 'none'})")
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    log.info("Importing the inference script %s", path)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


class _Input:
    """What `decode` hands `predict`: the input_fn's result (or, for transform_fn, the raw request),
    never empty to the app."""

    def __init__(self, data: Any, content_type: str):
        self.data, self.content_type = data, content_type

    def __len__(self) -> int:
        return 1


class ScriptModel:
    """The user's handlers over the algorithm's defaults (a `Model` for the kit's app). As in
    SageMaker's framework containers, any Content-Type reaches input_fn and any Accept type the
    request names reaches output_fn (the defaults refuse what they cannot read or write: 415, 406);
    no Accept, or only wildcards, is JSON."""

    open_content_types = True
    default_accept = "application/json"

    def __init__(self, module: ModuleType, model_dir: Path, defaults: Defaults):
        found = {name: getattr(module, name) for name in HANDLERS if callable(getattr(module, name, None))}
        log.info("Inference script handlers: %s (the others are the defaults)", ", ".join(found) or "none")
        self.transform_fn = found.get("transform_fn")
        self.input_fn = found.get("input_fn", defaults.input_fn)
        self.predict_fn = found.get("predict_fn", defaults.predict_fn)
        self.output_fn = found.get("output_fn", getattr(defaults, "output_fn", default_output_fn))
        self.model = found.get("model_fn", defaults.model_fn)(model_dir)
        if self.model is None:
            raise ClientError(f"The inference script's model_fn returned None for {model_dir}")

    def decode(self, body: bytes, media: MediaType) -> _Input:
        content_type = str(media)
        return _Input(body if self.transform_fn else self.input_fn(body, content_type), content_type)

    def predict(self, request: _Input, accept: MediaType) -> Any:
        if self.transform_fn:
            return self.transform_fn(self.model, request.data, request.content_type, str(accept))
        return self.predict_fn(request.data, self.model)

    def encode(self, prediction: Any, accept: MediaType) -> tuple[bytes, str]:
        result = prediction if self.transform_fn else self.output_fn(prediction, str(accept))
        return response(result, str(accept))


def load_script_model(model_dir: Path, defaults: Defaults, env: ScriptModeEnv | None = None,
                      paths: Paths | None = None) -> ScriptModel:
    """The model for SAGEMAKER_PROGRAM's handlers (`env.program` must be set)."""
    env = env or ScriptModeEnv.from_env()
    paths = paths or Paths(Path(model_dir).parent)
    directory = user_code_dir(paths, env)
    install_requirements(directory, env.inherited)
    return ScriptModel(import_user_module(directory, str(env.program)), Path(model_dir), defaults)
