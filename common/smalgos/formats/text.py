"""`text/plain`: UTF-8 text, one sentence (or document) per line, tokens separated by spaces, as
BlazingText's channels carry it (AWS: "a single preprocessed text file ... one sentence per line").

Text is not numeric records, so this type has no `Batch` form: `TextDecoder` is registered so
that a channel may declare `text/plain` (its charset parameter checked like every text type's),
and an algorithm that reads text takes the channel's byte streams (`ChannelInput.streams()`:
File or Pipe mode, gzip, RecordIO-wrapped objects) through `copy_text`, which checks that the
bytes are UTF-8 (naming the source and line of the first bad byte) and joins several sources
into one text with a line break between them. Asked for numeric batches, the decoder says why not.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import BinaryIO, Iterator

from smalgos.errors import ClientError

from .batch import Batch
from .media import TEXT_PARAMS, MediaType, check_params
from .recordio import read_full

TEXT_PLAIN = "text/plain"
CHUNK = 1 << 20


@dataclass
class TextStats:
    """What `copy_text` wrote: bytes, lines (a last line without its newline counts) and whether
    the text written so far ends at a line break."""

    bytes: int = 0
    lines: int = 0
    ends_with_newline: bool = True


def copy_text(stream: BinaryIO, out: BinaryIO, source: str, stats: TextStats | None = None,
              chunk_size: int = CHUNK) -> TextStats:
    """Copy the UTF-8 text of `stream` to `out`, unchanged, and return (or update) `stats`.

    A text appended after one that did not end with a line break gets one first, so that the last
    line of one file and the first of the next are not joined. Bytes that are not UTF-8 are a
    `ClientError` naming `source` and the line; a UTF-8 byte-order mark at the start is dropped.
    """
    stats = stats if stats is not None else TextStats()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    line = 1
    first = True
    while True:
        chunk = read_full(stream, chunk_size)
        final = not chunk
        try:
            decoder.decode(chunk, final=final)
        except UnicodeDecodeError as exc:
            where = line + chunk[:max(exc.start, 0)].count(b"\n") if chunk else line
            raise ClientError(f"{source}: line {where} is not UTF-8 text ({exc.reason} at byte "
                              f"0x{chunk[exc.start]:02x})" if chunk else
                              f"{source}: ends inside a UTF-8 character (the file is cut short)") from None
        if final:
            break
        if first:
            first = False
            if chunk.startswith(codecs.BOM_UTF8):
                chunk = chunk[len(codecs.BOM_UTF8):]
            if not chunk:
                continue
            if not stats.ends_with_newline:
                out.write(b"\n")
                stats.bytes += 1
        newlines = chunk.count(b"\n")
        line += newlines
        out.write(chunk)
        stats.bytes += len(chunk)
        stats.lines += newlines
        stats.ends_with_newline = chunk.endswith(b"\n")
    if not stats.ends_with_newline and not first:
        stats.lines += 1  # the last line, without its line break (one is added before the next text)
    return stats


class TextDecoder:
    """`text/plain` in the registry: the type and its parameters (`charset=utf-8` only). Text has
    no numeric form: `decode` and `iter_batches` refuse it, saying so."""

    media_type = TEXT_PLAIN
    allowed_params = TEXT_PARAMS

    def _refuse(self, media: MediaType, source: str) -> ClientError:
        check_params(media, self.allowed_params)
        return ClientError(f"{source}: {TEXT_PLAIN} holds text (one sentence per line), not numeric records; "
                           "only an algorithm that reads text (BlazingText) takes it")

    def decode(self, data: bytes, media: MediaType, *, default_label_size: int = 0,
               source: str = "request body") -> Batch:
        raise self._refuse(media, source)

    def iter_batches(self, stream: BinaryIO, media: MediaType, *, default_label_size: int = 0,
                     batch_size: int = 1000, source: str = "stream") -> Iterator[Batch]:
        raise self._refuse(media, source)
