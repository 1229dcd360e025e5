"""`smalgos.formats.text`: UTF-8 text copied as is, sources joined at line breaks, bad bytes
named by source and line; `text/plain` in the registry, refusing numeric batches."""
import io

import pytest

from smalgos.errors import ClientError, UnsupportedContentType
from smalgos.formats import DECODERS, get_decoder, parse_media_type
from smalgos.formats.text import TEXT_PLAIN, TextStats, copy_text


def copy_all(*texts: bytes, chunk_size: int = 1 << 20) -> tuple[bytes, TextStats]:
    out, stats = io.BytesIO(), TextStats()
    for i, text in enumerate(texts):
        copy_text(io.BytesIO(text), out, f"file{i}", stats, chunk_size=chunk_size)
    return out.getvalue(), stats


def test_text_is_copied_unchanged_and_counted():
    text = "the quick brown fox\njumps over\n\nthe lazy dog ünïcode\n".encode()
    for chunk_size in (3, 7, 1 << 20):  # chunks that cut a UTF-8 character in two are fine
        data, stats = copy_all(text, chunk_size=chunk_size)
        assert data == text and stats.lines == 4 and stats.bytes == len(text)


def test_sources_are_joined_at_a_line_break():
    data, stats = copy_all(b"a b\nc d", b"e f\n", b"", b"g")
    assert data == b"a b\nc d\ne f\ng" and stats.lines == 4


def test_a_byte_order_mark_is_dropped():
    data, _ = copy_all(b"\xef\xbb\xbfhello world\n")
    assert data == b"hello world\n"


@pytest.mark.parametrize("chunk_size", [4, 1 << 20])
def test_bytes_that_are_not_utf8_are_named_by_source_and_line(chunk_size):
    with pytest.raises(ClientError, match=r"file1: line 3 is not UTF-8 text \(invalid start byte at byte 0xff\)"):
        copy_all(b"fine\n", b"one\ntwo\nthr\xffee\n", chunk_size=chunk_size)
    with pytest.raises(ClientError, match="file0: ends inside a UTF-8 character"):
        copy_all("caf\u00e9".encode()[:-1])


def test_text_plain_is_registered_and_refuses_numeric_batches():
    assert TEXT_PLAIN in DECODERS
    decoder = get_decoder("text/plain; charset=utf-8", allowed=[TEXT_PLAIN])
    with pytest.raises(ClientError, match="text/plain holds text"):
        decoder.decode(b"a b c\n", parse_media_type(TEXT_PLAIN), default_label_size=0, source="request body")
    with pytest.raises(ClientError, match="text/plain holds text"):
        list(decoder.iter_batches(io.BytesIO(b"a\n"), parse_media_type(TEXT_PLAIN), default_label_size=0,
                                  batch_size=10, source="x"))
    with pytest.raises(UnsupportedContentType, match="latin-1"):
        get_decoder("text/plain; charset=latin-1", allowed=[TEXT_PLAIN])
