"""Pretrained weights of the vision algorithms: nothing is downloaded. They come from the job's
`model` channel (a torchvision-format state dict) or from the image itself, where
`make build ALGO=<algo> PRETRAINED=DIR` converts the state dicts in DIR to safetensors at
`/opt/smalgos/pretrained/<algo>/<name>.safetensors` (`resnet50-0676ba61.pth` → `resnet50`).

    state = read_state_dict(path, "Channel 'model'")      # safetensors, or torch.load(weights_only=True)
    path = built_in("image-classification", "resnet50")   # None if the image has none
    python -m smalgos.vision.pretrained SRC_DIR DST_DIR    # the build's conversion
"""

from __future__ import annotations

import sys
from pathlib import Path

from smalgos.errors import ClientError

ROOT = Path("/opt/smalgos/pretrained")
STATE_SUFFIXES = (".safetensors", ".pth", ".pt")


def read_state_dict(path: Path, where: str) -> dict:
    """A state dict file: safetensors, or a torch file read with weights_only=True (no pickle code)."""
    import torch

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any reader failure is the file's fault
        raise ClientError(f"{where}: cannot read the state dict {path.name} ({type(exc).__name__}: {exc})") from None
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise ClientError(f"{where}: {path.name} is not a state dict (a mapping of parameter names to tensors)")
    return state


def built_in_path(algorithm: str, name: str) -> Path:
    """Where the image keeps `name`'s weights for `algorithm` (present or not)."""
    return ROOT / algorithm / f"{name}.safetensors"


def missing_weights(algorithm: str, name: str, what: str) -> ClientError:
    """The error of use_pretrained_model without weights: what to give, and where."""
    return ClientError(
        f"use_pretrained_model=1: no ImageNet weights for {what}, and this image downloads nothing. Supply a "
        f"torchvision-format state dict (e.g. torchvision's {name} weights, .pth or .safetensors) in the 'model' "
        f"channel (ContentType application/x-sagemaker-model), or build the image with them "
        f"(make build ALGO={algorithm} PRETRAINED=DIR puts them at {built_in_path(algorithm, name)}); "
        "or set use_pretrained_model=0")


def weights_name(path: Path) -> str:
    """The name a weights file is kept under: its stem up to the first '-' (torchvision's files
    end in `-<hash>`): `resnet50-0676ba61.pth` → `resnet50`."""
    return path.name.split(".")[0].split("-")[0]


def convert(src: Path, dst: Path) -> list[Path]:
    """Every state dict in `src` (.pth, .pt, .safetensors) written to `dst` as `<name>.safetensors`."""
    from safetensors.torch import save_file

    files = sorted(p for p in src.iterdir() if p.suffix in STATE_SUFFIXES and p.is_file())
    if not files:
        raise SystemExit(f"{src}: no state dicts (.pth, .pt or .safetensors)")
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for path in files:
        state = read_state_dict(path, str(src))
        out = dst / f"{weights_name(path)}.safetensors"
        if out in written:
            raise SystemExit(f"{src}: two files would both be {out.name}")
        save_file({k: v.detach().contiguous() for k, v in state.items()}, str(out))
        written.append(out)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m smalgos.vision.pretrained SRC_DIR DST_DIR")
    for out in convert(Path(sys.argv[1]), Path(sys.argv[2])):
        print(f"pretrained weights: {out}")
