"""The algorithms that have an image (containers/<name>/Dockerfile) and what their code needs that
this environment may lack: DeepAR's gluonts and lightning live in their own venv
(scripts/deepar-venv.sh; its checks in tests/unit/deepar/in_venv) and in its image."""
from __future__ import annotations

import importlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
ALGORITHMS = sorted(p.parent.name for p in ROOT.glob("containers/*/Dockerfile")
                    if (p.parent / f"smalgos_{p.parent.name.replace('-', '_')}" / "declaration.py").exists())


def pinned(name: str) -> set[str]:
    """The distributions algorithm `name`'s image pins (its requirements files), normalised."""
    pins = set()
    for path in (ROOT / "containers" / name).glob("requirements*.txt"):
        for line in path.read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-"):
                pins.add(line.split("=")[0].strip().lower().replace("_", "-"))
    return pins


def import_here(name: str, call):
    """`call()` (an import, or what imports), or None when it fails only because a library that
    algorithm `name`'s image pins is not installed here; any other missing module is an error."""
    try:
        return call()
    except ModuleNotFoundError as e:
        missing = (e.name or "").split(".")[0]
        if missing.lower().replace("_", "-") not in pinned(name):
            raise
        return None


def import_module_here(name: str, module: str):
    return import_here(name, lambda: importlib.import_module(module))
