"""Model artifacts are untrusted input: list them carefully, extract tarballs safely, never unpickle."""

from __future__ import annotations

import tarfile
from pathlib import Path

from .errors import ClientError


def model_files(model_dir: Path) -> list[Path]:
    """The files of a model directory, sorted, without dotfiles and without `*.tar.gz` leftovers."""
    if not model_dir.is_dir():
        raise ClientError(f"Model directory {model_dir} does not exist")
    return sorted(p for p in model_dir.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(model_dir).parts)
                  and not p.name.endswith(".tar.gz"))


def require_file(model_dir: Path, name: str, what: str = "model") -> Path:
    path = model_dir / name
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
