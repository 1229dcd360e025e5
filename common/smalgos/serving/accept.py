"""Flags carried as parameters of the negotiated Accept type (`application/json; verbose=True`)."""

from __future__ import annotations

from ..errors import ClientError
from ..formats.media import MediaType


def accept_flag(accept: MediaType | None, name: str = "verbose") -> bool:
    """The boolean Accept parameter `name` (True/False, any case); absent: False. Another value is a
    ClientError naming it."""
    raw = None if accept is None else accept.params.get(name)
    if raw is None:
        return False
    value = str(raw).strip().lower()
    if value not in ("true", "false"):
        raise ClientError(f"Accept parameter {name}={raw!r} must be true or false")
    return value == "true"
