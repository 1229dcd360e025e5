"""Model artifacts are untrusted input: list them carefully, extract tarballs safely, never unpickle."""

from __future__ import annotations

import os
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from .errors import ClientError

# SageMaker does not upload checkpoint files whose names end so (a file half written is never synced).
TEMP_SUFFIX = ".sagemaker-ignore"


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """`write(tmp)` to a temporary file beside `path`, then rename it into place: readers (and
    SageMaker's checkpoint sync) see the old file or the new one whole, never a torn one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=TEMP_SUFFIX)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def inside_model_dir(model_dir: Path, path: Path) -> Path:
    """`path`, once its resolved location (symlinks followed) is checked to lie in the resolved
    `model_dir`; a ClientError naming it otherwise, so that a link to /etc/passwd is never read."""
    model_dir, path = Path(model_dir), Path(path)
    try:
        target = path.resolve(strict=False)
        root = model_dir.resolve(strict=False)
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise ClientError(f"Refusing to read {path} from the model directory {model_dir}: {exc}") from None
    if target != root and root not in target.parents:
        raise ClientError(f"Refusing to read {path}: it resolves to {target}, outside the model directory "
                          f"{model_dir}")
    return path


REPACKED_CODE = "code"  # model.tar.gz's folder for the inference code the SDK repacks into it


def model_files(model_dir: Path) -> list[Path]:
    """The files of a model directory, sorted, without dotfiles, `*.tar.gz` leftovers and the
    top-level `code/` folder (where the SageMaker SDK repacks an inference script into model.tar.gz).

    A file that resolves outside `model_dir` (a symlink out of it) is a ClientError naming it."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ClientError(f"Model directory {model_dir} does not exist")
    files = sorted(p for p in model_dir.rglob("*")
                   if p.is_file() and not any(part.startswith(".") for part in p.relative_to(model_dir).parts)
                   and not p.name.endswith(".tar.gz") and p.relative_to(model_dir).parts[0] != REPACKED_CODE)
    return [inside_model_dir(model_dir, p) for p in files]


def require_file(model_dir: Path, name: str, what: str = "model") -> Path:
    """`model_dir / name`, a regular file inside `model_dir` (symlinks resolved); a ClientError
    naming it when it is missing or resolves outside the directory."""
    model_dir = Path(model_dir)
    path = model_dir / name
    if path.is_symlink() or path.exists():
        inside_model_dir(model_dir, path)
    if not path.is_file():
        present = ", ".join(p.name for p in model_files(model_dir)) if model_dir.is_dir() else "none"
        raise ClientError(f"The {what} file {name} is missing from {model_dir} (files present: {present})")
    return path


def safe_extract(tarball: Path, dest: Path) -> list[Path]:
    """Extract a model.tar.gz refusing absolute paths, `..`, links out of `dest` and device files."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:*") as tar:
        try:
            tar.extractall(dest, filter="data")
        except tarfile.FilterError as exc:
            raise ClientError(f"Refusing to extract {tarball}: {exc}") from None
        return [dest / m.name for m in tar.getmembers() if m.isfile()]


def load_arrays(path: Path, shapes: Mapping[str, tuple[int, ...]]):
    """The named arrays of a safetensors file as float32, each of its expected shape; a ValueError
    naming the file and the tensor that is missing or of another shape."""
    import numpy as np
    from safetensors.numpy import load_file

    arrays = load_file(str(path))
    for name, shape in shapes.items():
        if name not in arrays or arrays[name].shape != tuple(shape):
            raise ValueError(f"{Path(path).name}: tensor {name!r} missing or not of shape {tuple(shape)}")
    return {name: arrays[name].astype(np.float32, copy=False) for name in shapes}
