"""Log set-up shared by the `train` and `serve` programs."""

from __future__ import annotations

import logging
import sys


def setup_logging() -> None:
    """Log lines in first-party images' shape: `[11/24/2026 19:50:00 INFO 1403] message`."""
    root = logging.getLogger()
    if any(getattr(h, "_smalgos", False) for h in root.handlers):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s %(thread)d] %(message)s",
                                           datefmt="%m/%d/%Y %H:%M:%S"))
    handler._smalgos = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)
