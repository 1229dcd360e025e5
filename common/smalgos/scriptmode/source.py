"""The user's code: found, laid out in `/opt/ml/code`, its `requirements.txt` installed.

Where it comes from, as the toolkit's `files.download_and_extract` reads it:
  - `sagemaker_submit_directory`: a directory (SDK local mode mounts the code at `/opt/ml/code` and
    says so), a `file://` directory or tarball, a local `sourcedir.tar.gz`, or an `s3://` tarball
    (downloaded with boto3 where the image has it);
  - else the `code` channel (`/opt/ml/input/data/code`): the tarball in it, or its files.
Tarballs are extracted with `smalgos.artifacts.safe_extract` (no absolute paths, `..`, links out).
"""

from __future__ import annotations

import fcntl
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

from ..artifacts import safe_extract
from ..environment import Paths
from ..errors import ClientError
from . import PROGRAM_PARAM, SUBMIT_DIR_PARAM

log = logging.getLogger("smalgos")

CODE_CHANNEL = "code"
REQUIREMENTS = "requirements.txt"


def code_dir(paths: Paths) -> Path:
    """`/opt/ml/code`, where the user's program runs."""
    return paths.base / "code"


def _is_tarball(path: Path) -> bool:
    import tarfile

    return path.is_file() and tarfile.is_tarfile(path)


def _lay_out(source: Path, dest: Path, what: str) -> None:
    """`source` (a directory or a tarball) as the contents of `dest`."""
    if source.is_dir():
        if source.resolve() == dest.resolve():
            return
        shutil.copytree(source, dest, dirs_exist_ok=True)
    elif _is_tarball(source):
        safe_extract(source, dest)
    elif source.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest / source.name)
    else:
        raise ClientError(f"{what}: {source} does not exist")


def _download_s3(uri: str, dest: Path, what: str) -> None:
    try:
        import boto3
    except ImportError:
        raise ClientError(f"{what}: {uri} is on S3, but this image has no boto3 to download it; give a file://"
                          " directory or sourcedir.tar.gz, or the code channel") from None
    parsed = urlparse(uri)
    with tempfile.TemporaryDirectory() as tmp:
        tarball = Path(tmp) / "sourcedir.tar.gz"
        try:
            boto3.client("s3").download_file(parsed.netloc, parsed.path.lstrip("/"), str(tarball))
        except Exception as exc:  # botocore's errors share no base class worth naming here
            raise ClientError(f"{what}: could not download {uri}: {exc}") from None
        _lay_out(tarball, dest, what)


def fetch_code(uri: str, dest: Path, what: str, copy_dirs: bool = True) -> Path:
    """The directory holding the code `uri` names: an `s3://` or local tarball extracted into
    `dest`; a directory (or `file://` one) copied into `dest`, or used where it is (`copy_dirs`
    False). `what` names the setting in errors."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        _download_s3(uri, dest, what)
        return dest
    if parsed.scheme not in ("", "file"):
        raise ClientError(f"{what}: {uri!r} is neither a path, a file:// nor an s3:// URI")
    source = Path(parsed.netloc + parsed.path if parsed.scheme else uri)
    if source.is_dir() and not copy_dirs:
        return source
    _lay_out(source, dest, what)
    return dest


def prepare_code(paths: Paths, platform_hps: Mapping[str, object]) -> tuple[Path, str]:
    """Lay the user's code out in `/opt/ml/code`; (that directory, SM_MODULE_DIR)."""
    dest = code_dir(paths)
    submit = platform_hps.get(SUBMIT_DIR_PARAM)
    channel = paths.channel_dir(CODE_CHANNEL)
    if submit:
        return fetch_code(str(submit), dest, f"Hyperparameter {SUBMIT_DIR_PARAM}"), str(submit)
    if channel.is_dir():
        tarballs = [p for p in sorted(channel.iterdir()) if _is_tarball(p)]
        _lay_out(tarballs[0] if len(tarballs) == 1 else channel, dest, f"Channel '{CODE_CHANNEL}'")
        return dest, str(channel)
    if dest.is_dir() and any(dest.iterdir()):
        return dest, str(dest)  # the image or the platform put it there already
    raise ClientError(f"Hyperparameter {PROGRAM_PARAM} is set but there is no code to run: give"
                      f" {SUBMIT_DIR_PARAM} (a directory or sourcedir.tar.gz) or a '{CODE_CHANNEL}' channel")


def install_requirements(code: Path, environ: Mapping[str, str]) -> None:
    """`pip install -r requirements.txt` in the code directory, when there is one; a ClientError
    with pip's own reason when it fails (no index reachable, no such package...)."""
    requirements = code / REQUIREMENTS
    if not requirements.is_file():
        return
    log.info("Installing the script's requirements: %s", requirements)
    # One pip at a time: each serving worker loads the model (and so installs) on its own.
    with open(Path(tempfile.gettempdir()) / "smalgos-requirements.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        proc = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
                               "-r", str(requirements)], cwd=code, env=dict(environ), capture_output=True, text=True)
    sys.stdout.write(proc.stdout)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        errors = [line.strip() for line in proc.stderr.splitlines() if line.strip().startswith("ERROR")]
        reason = errors[-1] if errors else (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ClientError(f"{requirements}: pip could not install the script's requirements (exit"
                          f" {proc.returncode}; without network access only the image's packages and local"
                          f" wheels can be installed): {reason}")
