"""What a vision algorithm finds in its `model` channel (application/x-sagemaker-model): a model
this image wrote (a model.tar.gz, or its files), or one torchvision-format state dict.

    kind, path = find_start(job.channel("model"), scratch, META_FILE, MODEL_FILE)
    # kind "model": path is the folder holding META_FILE and MODEL_FILE (incremental training)
    # kind "state": path is the one state dict (.safetensors, .pth, .pt; read_state_dict reads it)

Tarballs are unpacked into `scratch` (smalgos.artifacts.safe_extract: no links, nothing outside).
AWS's own MXNet artifacts, several state dicts or none are ClientErrors that say what to give.
`mismatch` words the error of an incremental start whose settings differ from the job's.
"""

from __future__ import annotations

import re
from pathlib import Path

from smalgos.artifacts import safe_extract
from smalgos.errors import ClientError
from smalgos.vision.pretrained import STATE_SUFFIXES

WHERE = "Channel 'model'"


def find_start(channel, scratch: Path, meta_file: str, model_file: str) -> tuple[str, Path]:
    """("model", folder) or ("state", file): see the module docstring."""
    files = channel.files()
    for tarball in (f for f in files if f.name.endswith(".tar.gz")):
        safe_extract(tarball, scratch)
    found = [*(f for f in files if not f.name.endswith(".tar.gz")), *sorted(scratch.rglob("*"))]
    meta = next((f for f in found if f.name == meta_file), None)
    if meta is not None:
        if not (meta.parent / model_file).is_file():
            raise ClientError(f"{WHERE}: {meta_file} found without its {model_file}")
        return "model", meta.parent
    states = [f for f in found if f.suffix in STATE_SUFFIXES and f.is_file()]
    if len(states) == 1:
        return "state", states[0]
    if any(re.search(r"-symbol\.json$|\.params$", f.name) for f in found):
        raise ClientError(f"{WHERE}: AWS's MXNet artifacts (*-symbol.json, *.params) cannot be read by this image; "
                          "give a model.tar.gz it wrote, or a torchvision-format state dict")
    if states:
        raise ClientError(f"{WHERE}: several state dicts ({', '.join(f.name for f in states)}); give one")
    names = ", ".join(f.name for f in found if f.is_file()) or "none"
    raise ClientError(f"{WHERE}: no model found (files: {names}); give a model.tar.gz this image wrote, or one "
                      "torchvision-format state dict (.safetensors, .pth or .pt)")


def mismatch(theirs: dict, ours: dict) -> None:
    """A ClientError at the first setting in which the model (`theirs`) and the job (`ours`) differ."""
    for name, value in theirs.items():
        if value != ours[name]:
            raise ClientError(f"{WHERE}: the model was trained with {name}={value} but this job has "
                              f"{name}={ours[name]}; incremental training needs the same value")
