"""MIME types as SageMaker sends them: `Content-Type` and `Accept` header parsing.

`parse_media_type("text/csv; label_size=0")` gives ``MediaType("text/csv", {"label_size": "0"})``.
Types and parameter names are lower-cased, quoted parameter values unquoted, and the aliases
people use in the wild mapped to one canonical name (`ALIASES`). Which parameters a type may
carry is the decoder's business (`check_params`), so that an unknown one is refused by name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Collection, Mapping

from smalgos.errors import ClientError, UnsupportedContentType

CSV = "text/csv"
LIBSVM = "text/libsvm"
JSON = "application/json"
JSONLINES = "application/jsonlines"
RECORDIO_PROTOBUF = "application/x-recordio-protobuf"

#: Spellings seen in the wild → the canonical name the registries use.
ALIASES: dict[str, str] = {
    "text/x-libsvm": LIBSVM,
    "application/x-jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
}

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TYPE_RE = re.compile(rf"^({_TOKEN})/({_TOKEN})$")
# An unquoted value may hold commas (RFC 9110 says quote them): AWS's Object2Vec documents
# `Content-Type: application/json; infer_max_seqlens=4,1`. Accept headers are split at their
# commas before their entries get here, so there a comma still separates media ranges.
_VALUE = r"[!#$%&'*+\-.^_`|~0-9A-Za-z,]+"
_PARAM_RE = re.compile(rf'^\s*({_TOKEN})\s*=\s*({_VALUE}|"(?:[^"\\]|\\.)*")\s*$')


@dataclass(frozen=True)
class MediaType:
    """A parsed media type: `type` is ``"<type>/<subtype>"`` lower-cased, `params` lower-cased keys."""

    type: str
    params: Mapping[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return "; ".join([self.type] + [f"{k}={v}" for k, v in self.params.items()])

    def __hash__(self) -> int:  # params is a dict: hash on the sorted items
        return hash((self.type, tuple(sorted(self.params.items()))))

    @property
    def is_wildcard(self) -> bool:
        return self.type.endswith("/*")

    def matches(self, concrete: str) -> bool:
        """True if `concrete` (``"text/csv"``) is this type or falls under its wildcard."""
        if self.type == "*/*":
            return True
        if self.is_wildcard:
            return concrete.split("/", 1)[0] == self.type.split("/", 1)[0]
        return self.type == concrete


def parse_media_type(header: str, *, aliases: Mapping[str, str] | None = None) -> MediaType:
    """Parse one media type (``type/subtype; k=v; ...``); `ClientError` naming `header` on garbage.

    `aliases` adds to `ALIASES` (e.g. XGBoost's bare ``csv`` or ``libsvm``); keys are lower-case.
    """
    if not isinstance(header, str):
        raise ClientError(f"media type {header!r} is not a string")
    parts = _split_params(header)
    main = parts[0].strip().lower()
    table = {**ALIASES, **(aliases or {})}
    main = table.get(main, main)
    if not _TYPE_RE.match(main):
        raise ClientError(f"cannot parse media type {header!r}: expected 'type/subtype[; name=value]...'")
    params: dict[str, str] = {}
    for raw in parts[1:]:
        if not raw.strip():
            continue  # "text/csv;" is tolerated
        m = _PARAM_RE.match(raw)
        if not m:
            raise ClientError(f"cannot parse parameter {raw.strip()!r} of media type {header!r}")
        value = m.group(2)
        if value.startswith('"'):
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        params[m.group(1).lower()] = value
    return MediaType(main, params)


def parse_accept(header: str | None, *, aliases: Mapping[str, str] | None = None) -> list[MediaType]:
    """The media ranges of an Accept header, order kept, without their q-values
    (`parse_accept_weighted` keeps them). A missing or blank header gives ``[]``; callers treat
    that like ``*/*``."""
    return [media for media, _ in parse_accept_weighted(header, aliases=aliases)]


_QVALUE_RE = re.compile(r"^(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)$")


def parse_accept_weighted(header: str | None, *,
                          aliases: Mapping[str, str] | None = None) -> list[tuple[MediaType, float]]:
    """Parse an Accept header into ``(media range, q)`` pairs, order kept (RFC 9110 §12.5.1).

    `q` defaults to 1; a q-value that is not a number in [0, 1] with at most three decimals is a
    `ClientError` naming it. The media range keeps the parameters before ``q``; those after it
    are accept-extensions and are dropped. A missing or blank header gives ``[]``.
    """
    if header is None or not header.strip():
        return []
    out = []
    for entry in _split_list(header):
        if not entry.strip():
            continue
        mt = parse_media_type(entry, aliases=aliases)
        params: dict[str, str] = {}
        q = 1.0
        for name, value in mt.params.items():  # dicts keep the header's order
            if name == "q":
                if not _QVALUE_RE.match(value.strip()):
                    raise ClientError(f"bad q-value {value!r} in Accept entry {entry.strip()!r}: "
                                      "expected a number from 0 to 1 with at most 3 decimals")
                q = float(value)
                break
            params[name] = value
        out.append((MediaType(mt.type, params), q))
    return out


#: Parameters that name the body's character set (``encoding`` is what AWS's k-NN docs send).
CHARSET_PARAMS = frozenset({"charset", "encoding"})
#: The text parameters every text decoder accepts: a charset, which must be UTF-8.
TEXT_PARAMS = CHARSET_PARAMS
_UTF8 = ("utf-8", "utf8")


def check_params(media: MediaType, allowed: Collection[str]) -> None:
    """Refuse any parameter not in `allowed` by name, and a charset (or encoding) other than UTF-8.

    Both are `UnsupportedContentType` (a `ClientError`, HTTP 415): the body is in a variant of
    the type that is not read.
    """
    for name, value in media.params.items():
        if name not in allowed:
            ok = ", ".join(sorted(allowed)) or "none"
            raise UnsupportedContentType(f"unsupported parameter {name!r} in content type {str(media)!r} "
                              f"(parameters accepted for {media.type}: {ok})")
        if name in CHARSET_PARAMS and value.strip().lower() not in _UTF8:
            raise UnsupportedContentType(f"unsupported {name} {value!r} in content type {str(media)!r}: "
                              "only utf-8 is read")


def int_param(media: MediaType, name: str, default: int, *, minimum: int = 0) -> int:
    """An integer parameter such as ``label_size``, with a `ClientError` naming it when bad."""
    raw = media.params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ClientError(f"parameter {name}={raw!r} of content type {str(media)!r} is not an integer") from None
    if value < minimum:
        raise ClientError(f"parameter {name}={value} of content type {str(media)!r} must be >= {minimum}")
    return value


def _split_params(header: str) -> list[str]:
    return _split_outside_quotes(header, ";")


def _split_list(header: str) -> list[str]:
    return _split_outside_quotes(header, ",")


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    if '"' not in text:
        return text.split(sep)
    parts, cur, quoted, escaped = [], [], False, False
    for ch in text:
        if escaped:
            escaped = False
        elif ch == "\\" and quoted:
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif ch == sep and not quoted:
            parts.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    parts.append("".join(cur))
    return parts
