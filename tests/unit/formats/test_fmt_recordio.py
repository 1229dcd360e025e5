import io
import struct

import numpy as np
import pytest

from smalgos.errors import ClientError
from smalgos.formats import recordio
from smalgos.formats.recordio import MAGIC_BYTES, frame, iter_record_blocks, iter_records, split_records


def test_frame_matches_the_contract_example():
    assert frame(b"abcde") == bytes.fromhex("0a23d7ce 05000000 6162636465 000000")


@pytest.mark.parametrize("n", range(9))
def test_frame_is_the_sdks(sdk, n):
    payload = bytes(range(1, n + 1))
    buf = io.BytesIO()
    sdk._write_recordio(buf, payload)
    assert frame(payload) == buf.getvalue()
    assert list(sdk.read_recordio(io.BytesIO(frame(payload)))) == [payload]


def _payloads(lengths, seed=0):
    rng = np.random.default_rng(seed)
    # bytes 0x00..0x7f only: they can never form the magic word by chance
    return [rng.integers(0, 0x80, n, dtype=np.uint8).tobytes() for n in lengths]


@pytest.mark.parametrize("lengths", [
    [12, 12, 12, 12],          # uniform stride path
    [5, 0, 17, 3, 64, 1],      # chain path
    [7],
])
def test_split_finds_every_record(lengths):
    payloads = _payloads(lengths)
    split = split_records(recordio.frame_records(payloads))
    assert split.payloads() == payloads
    assert split.end == len(recordio.frame_records(payloads))


def test_magic_inside_data_falls_back_to_the_checked_loop():
    tricky = b"\0" * 4 + MAGIC_BYTES + struct.pack("<I", 4) + b"zzzz"   # a fake record inside
    payloads = [b"abc", tricky, b"hello"]
    assert split_records(recordio.frame_records(payloads)).payloads() == payloads


def test_empty_buffer():
    split = split_records(b"")
    assert len(split) == 0 and split.end == 0


def test_bad_magic_names_source_index_and_offset():
    data = frame(b"abcd") + b"\x01\x02\x03\x04\x04\x00\x00\x00abcd"
    with pytest.raises(ClientError) as e:
        split_records(data, source="train/part-0.pbr")
    assert e.value.message == ("train/part-0.pbr: record index 1 at byte offset 12: bad RecordIO "
                               "magic 0x04030201 (expected 0xced7230a)")


def test_truncated_record():
    data = frame(b"abcd") + frame(b"x" * 40)[:20]
    with pytest.raises(ClientError) as e:
        split_records(data)
    assert e.value.message == ("request body: record index 1 at byte offset 12: truncated record: "
                               "header gives 40 bytes, only 12 remain")


def test_truncated_header():
    with pytest.raises(ClientError, match=r"record index 1 at byte offset 12: truncated record "
                                          r"header \(3 bytes left, 8 needed\)"):
        split_records(frame(b"abcd") + b"\x0a\x23\xd7")


def test_partial_mode_stops_before_an_incomplete_tail():
    full = frame(b"abcd") + frame(b"efgh")
    split = split_records(full + frame(b"ijklmnop")[:9], partial=True)
    assert split.payloads() == [b"abcd", b"efgh"] and split.end == len(full)


def _multipart(parts):
    flags = [1] + [2] * (len(parts) - 2) + [3]
    return b"".join(frame(p, f) for p, f in zip(parts, flags))


def test_continuation_parts_are_joined_with_the_magic():
    data = frame(b"head") + _multipart([b"aaaa", b"bb", b"cccc"]) + frame(b"tail")
    assert recordio.read_records(data) == [b"head", b"aaaa" + MAGIC_BYTES + b"bb" + MAGIC_BYTES + b"cccc",
                                           b"tail"]


def test_continuation_errors():
    with pytest.raises(ClientError, match=r"record index 0 at byte offset 0: continuation part "
                                          r"\(cflag 3\) with no first part"):
        split_records(frame(b"abcd", 3))
    with pytest.raises(ClientError, match=r"record index 0 at byte offset 0: multi-part record not "
                                          "finished by the end of the data"):
        split_records(frame(b"abcd", 1) + frame(b"efgh", 2))
    with pytest.raises(ClientError, match="whole record inside a multi-part record"):
        split_records(frame(b"abcd", 1) + frame(b"efgh"))


def test_iter_records_through_a_pipe_matches_the_sdk_reader(sdk, pipe_feed):
    payloads = _payloads([3, 0, 70, 8, 1, 33, 2, 5])
    data = recordio.frame_records(payloads)
    with pipe_feed(data, piece=5) as stream:
        got = list(iter_records(stream, source="train", chunk_size=16))
    assert got == payloads == list(sdk.read_recordio(io.BytesIO(data)))


def test_iter_record_blocks_gives_full_blocks_then_the_rest(pipe_feed):
    payloads = _payloads([4, 9, 1, 30, 2, 2, 7, 11, 5, 6, 3])
    with pipe_feed(recordio.frame_records(payloads), piece=3) as stream:
        blocks = list(iter_record_blocks(stream, source="train", max_records=4, chunk_size=10))
    assert [len(b) for b in blocks] == [4, 4, 3]
    assert [p for b in blocks for p in b.payloads()] == payloads
    assert [b.first_index for b in blocks] == [0, 4, 8]


def test_iter_records_joins_multipart_across_chunks(pipe_feed):
    data = frame(b"a") + _multipart([b"xxxxxxxx", b"yyyy", b"zz"]) + frame(b"b")
    with pipe_feed(data, piece=2) as stream:
        got = list(iter_records(stream, source="x.rec", chunk_size=6))
    assert got == [b"a", b"xxxxxxxx" + MAGIC_BYTES + b"yyyy" + MAGIC_BYTES + b"zz", b"b"]


def test_stream_errors_carry_stream_offsets(pipe_feed):
    data = recordio.frame_records([b"abcd"] * 5) + b"\xff" * 12
    with pipe_feed(data, piece=5) as stream, pytest.raises(ClientError) as e:
        list(iter_records(stream, source="/opt/ml/input/data/train_0", chunk_size=8))
    assert e.value.message == ("/opt/ml/input/data/train_0: record index 5 at byte offset 60: "
                               "bad RecordIO magic 0xffffffff (expected 0xced7230a)")


def test_stream_truncated_at_eof(pipe_feed):
    data = recordio.frame_records([b"abcd"] * 2) + frame(b"0123456789")[:13]
    with pipe_feed(data, piece=4) as stream, pytest.raises(ClientError) as e:
        list(iter_records(stream, source="train", chunk_size=8))
    assert "record index 2 at byte offset 24: truncated record: header gives 10 bytes, only 5 remain" \
        in e.value.message


def test_reading_a_fifo(fifo_feed):
    payloads = _payloads(list(range(1, 200)))
    with fifo_feed(recordio.frame_records(payloads), piece=1000) as stream:
        assert list(iter_records(stream, source="train_0", chunk_size=512)) == payloads
