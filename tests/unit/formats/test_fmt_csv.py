import io
import re

import numpy as np
import pandas as pd
import pytest

from smalgos.errors import ClientError, UnsupportedContentType
from smalgos.formats import CSVDecoder, CSVEncoder, Predictions, parse_csv, parse_media_type
from smalgos.formats.csv import LARGE_BODY

DEC = CSVDecoder()


def _decode(data, header="text/csv", default=1, source="request body"):
    return DEC.decode(data, parse_media_type(header), default_label_size=default, source=source)


def test_label_columns_come_first_default_and_param():
    data = b"1,2,3,4\n5,6,7,8\n"
    b = _decode(data)
    np.testing.assert_array_equal(b.labels, [1, 5])
    np.testing.assert_array_equal(b.features, [[2, 3, 4], [6, 7, 8]])
    b = _decode(data, "text/csv; label_size=0")
    assert b.labels is None and b.features.shape == (2, 4)
    b = _decode(data, "text/csv;label_size=2")
    np.testing.assert_array_equal(b.labels, [[1, 2], [5, 6]])
    np.testing.assert_array_equal(b.features, [[3, 4], [7, 8]])
    assert b.features.dtype == np.float32 and b.features.flags.c_contiguous


def test_empty_fields_and_nan_text_are_nan():
    b = parse_csv(b",1,,,2,\nnan,NaN,3,inf,-inf,4\n")
    expected = np.array([[np.nan, 1, np.nan, np.nan, 2, np.nan],
                         [np.nan, np.nan, 3, np.inf, -np.inf, 4]], np.float32)
    np.testing.assert_array_equal(b.features, expected)


def test_crlf_blank_lines_and_spaces_are_tolerated():
    b = parse_csv(b"1, 2\r\n\r\n3 ,4\r\n\n\n")
    np.testing.assert_array_equal(b.features, [[1, 2], [3, 4]])


def test_single_line_without_newline_and_single_column():
    np.testing.assert_array_equal(parse_csv(b"1.5,2").features, [[1.5, 2]])
    np.testing.assert_array_equal(parse_csv(b"1\n2\n3").features, [[1], [2], [3]])


def test_empty_body_is_zero_rows():
    b = parse_csv(b"\n\n", label_size=1)
    assert b.features.shape == (0, 0) and len(b) == 0


def test_ragged_line_names_line_and_counts():
    with pytest.raises(ClientError) as e:
        _decode(b"1,2,3\n4,5,6\n\n7,8\n", source="train/a.csv")
    assert e.value.message == ("train/a.csv: line 4 has 2 columns, but line 1 has 3 (every line must "
                               "have the same number of fields)")


def test_non_numeric_field_names_line_and_column():
    with pytest.raises(ClientError) as e:
        _decode(b"1,2,3\n4,5,abc\n")
    assert e.value.message == "request body: line 2, column 3: 'abc' is not a number"


def test_header_row_is_refused():
    with pytest.raises(ClientError, match="line 1, column 1: 'label' is not a number"):
        _decode(b"label,f1\n1,2\n")


def test_unicode_garbage():
    with pytest.raises(ClientError) as e:
        _decode(b"1,2\n\xff\xfe,3\n")
    assert e.value.message == "request body: line 2, column 1: '\ufffd\ufffd' is not a number"


def test_label_size_leaving_no_features():
    with pytest.raises(ClientError, match=r"line 1: 2 columns, but label_size=2 leaves no feature"):
        _decode(b"1,2\n", "text/csv; label_size=2")


def test_bad_params():
    with pytest.raises(ClientError, match="label_size='one'"):
        _decode(b"1,2\n", "text/csv; label_size=one")
    with pytest.raises(UnsupportedContentType, match="unsupported parameter 'header'"):
        _decode(b"1,2\n", "text/csv; header=absent")


def test_matches_pandas_on_random_data():
    rng = np.random.default_rng(1)
    X = (rng.standard_normal((300, 9)) * 10.0 ** rng.integers(-5, 6, (300, 9))).astype(np.float32)
    X[rng.random(X.shape) < 0.05] = np.nan
    text = pd.DataFrame(X).to_csv(header=False, index=False, float_format="%.9g").encode()
    ref = pd.read_csv(io.BytesIO(text), header=None, dtype=np.float32).to_numpy()
    np.testing.assert_array_equal(parse_csv(text).features, ref)
    np.testing.assert_array_equal(parse_csv(text).features, X)


@pytest.mark.parametrize("piece,chunk", [(3, 16), (1000, 64)])
def test_iter_batches_through_a_pipe_equals_whole_decode(pipe_feed, piece, chunk):
    rng = np.random.default_rng(2)
    X = rng.integers(0, 1000, (53, 4)).astype(np.float32) / 8
    text = "\n".join(",".join(map(str, row)) for row in X.tolist()).encode() + b"\n\n"
    with pipe_feed(text, piece=piece) as stream:
        batches = list(DEC.iter_batches(stream, parse_media_type("text/csv"), default_label_size=1,
                                        batch_size=10, source="train", chunk_size=chunk))
    assert [len(b) for b in batches] == [10] * 5 + [3]
    np.testing.assert_array_equal(np.concatenate([b.features for b in batches]), X[:, 1:])
    np.testing.assert_array_equal(np.concatenate([b.labels for b in batches]), X[:, 0])


def test_streaming_errors_use_line_numbers_of_the_whole_stream(pipe_feed):
    text = b"1,2,3\n" * 30 + b"\n4,5\n"
    with pipe_feed(text, piece=7) as stream, pytest.raises(ClientError) as e:
        list(DEC.iter_batches(stream, parse_media_type("text/csv"), default_label_size=1,
                              batch_size=8, source="train_0", chunk_size=20))
    assert e.value.message == ("train_0: line 32 has 2 columns, but the lines before have 3 (every "
                               "line must have the same number of fields)")
    text = b"1,2\n" * 30 + b"1,x\n"
    with pipe_feed(text, piece=7) as stream, pytest.raises(ClientError) as e:
        list(DEC.iter_batches(stream, parse_media_type("text/csv"), default_label_size=1,
                              batch_size=8, source="train_0", chunk_size=20))
    assert e.value.message == "train_0: line 31, column 2: 'x' is not a number"


def test_encoder_one_line_per_record():
    preds = Predictions({"predicted_label": np.array([1, 0]),
                         "score": np.array([0.3, 0.7], np.float32),
                         "probs": np.array([[0.1, np.nan], [1e-7, 2.5e10]], np.float32)})
    assert CSVEncoder().encode(preds) == b"1.0,0.3,0.1,nan\n0.0,0.7,1e-7,25000000000.0\n"
    assert CSVEncoder().encode(Predictions({"score": np.zeros(0)})) == b""


# -- large bodies take Arrow's reader (pandas' where pyarrow is absent): same answers, same messages --

@pytest.fixture(params=["arrow", "pandas"])
def engine(request, monkeypatch):
    import smalgos.formats.csv as csvmod

    if request.param == "pandas":
        monkeypatch.setattr(csvmod, "arrow_csv", lambda: None)
    else:
        request.getfixturevalue("require_arrow")
        assert csvmod.arrow_csv() is not None
    return request.param


def _large(rows: int = 20000) -> tuple[np.ndarray, bytes]:
    x = np.arange(rows * 4, dtype=np.float32).reshape(rows, 4) / 8
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in x).encode() + b"\n"
    assert len(body) >= LARGE_BODY
    return x, body


def test_large_body_parses_like_a_small_one(engine):
    x, body = _large()
    b = parse_csv(body, label_size=1)
    np.testing.assert_array_equal(b.labels, x[:, 0])
    np.testing.assert_array_equal(b.features, x[:, 1:])


def test_large_body_missing_values_blank_lines_crlf_and_spaces(engine):
    x, body = _large()
    lines = body.split(b"\n")
    lines[5] = b"1.5,,nan, 2"
    lines[7] = b",NaN,-inf,inf"
    lines.insert(9, b"")
    text = b"\n\n" + b"\r\n".join(lines)
    import smalgos.formats.csv as csvmod

    assert csvmod._parse_large(text) is not None  # read by the engine itself, not the slow fallback
    b = parse_csv(text, label_size=0)
    want = x.copy()
    want[5] = [1.5, np.nan, np.nan, 2]
    want[7] = [np.nan, np.nan, -np.inf, np.inf]
    np.testing.assert_array_equal(b.features, want)
    # one rounding for every engine: text -> float64 -> float32, as Python's float() and numpy
    odd = b"\n".join([b"0.1000000014901161193847656250000001,1"] * 5000) + b"\n"
    assert len(odd) >= LARGE_BODY
    assert parse_csv(odd).features[0, 0] == np.float32(float("0.1000000014901161193847656250000001"))


@pytest.mark.parametrize("line, fragment", [
    (b"1,2,3", "line 10001 has 3 columns, but line 1 has 4"),
    (b"1,2,3,4,5", "line 10001 has 5 columns, but line 1 has 4"),
    (b"1,2,x,4", "line 10001, column 3: 'x' is not a number"),
    (b'1,2,"3",4', "line 10001, column 3: '\"3\"' is not a number"),
    (b"1,NA,3,4", "line 10001, column 2: 'NA' is not a number"),
])
def test_large_body_faults_are_named(engine, line, fragment):
    _, body = _large()
    lines = body.split(b"\n")
    lines[10000] = line
    with pytest.raises(ClientError, match=re.escape(fragment)):
        parse_csv(b"\n".join(lines), source="big.csv")


# -- whole files (File mode training channels): one pandas read of the path -----------------------

def test_whole_file_reader_equals_the_streaming_decoder(tmp_path):
    from smalgos.formats.csv import read_csv_file

    x, body = _large()
    lines = body.split(b"\n")
    lines[3] = b"1,,3,nan"
    path = tmp_path / "train.csv"
    path.write_bytes(b"\n".join(lines))
    whole = read_csv_file(path, label_size=1)
    streamed = DEC.iter_batches(io.BytesIO(path.read_bytes()), parse_media_type("text/csv"),
                                default_label_size=1, batch_size=10 ** 6)
    streamed = next(streamed)
    np.testing.assert_array_equal(whole.features, streamed.features)
    np.testing.assert_array_equal(whole.labels, streamed.labels)


@pytest.mark.parametrize("line", [b"1,2,3", b"1,2,x,4", b"a,b,c,d"])
def test_whole_file_reader_declines_what_it_cannot_read_cleanly(tmp_path, line):
    """None sends the file to the streaming decoder, whose message names the line."""
    from smalgos.formats.csv import read_csv_file

    _, body = _large()
    lines = body.split(b"\n")
    lines[0 if line.startswith(b"a") else 500] = line
    path = tmp_path / "bad.csv"
    path.write_bytes(b"\n".join(lines))
    assert read_csv_file(path, label_size=1) is None


def test_lines_of_only_spaces_are_blank_in_every_reader(tmp_path, engine):
    """A body, a stream and a whole file agree (pandas skips such lines in files)."""
    from smalgos.formats.csv import read_csv_file

    x, body = _large()
    lines = body.split(b"\n")
    lines.insert(7, b"   ")
    lines.insert(3, b"\t")
    text = b"\n".join(lines)
    want = parse_csv(text, label_size=1)
    np.testing.assert_array_equal(want.features, x[:, 1:])
    path = tmp_path / "f.csv"
    path.write_bytes(text)
    np.testing.assert_array_equal(read_csv_file(path, label_size=1).features, x[:, 1:])
    small = parse_csv(b"1,2\n   \n3,4\n", label_size=1)
    np.testing.assert_array_equal(small.features, [[2], [4]])


# -- wide lines: fields counted per line in bytes, then read as one column (linear in the bytes) ----

def _wide(fields: int) -> tuple[np.ndarray, bytes]:
    v = np.random.default_rng(3).random(fields).astype(np.float32)
    return v, (",".join(map(repr, v.tolist())) + "\n").encode()


def test_a_wide_line_is_read_in_linear_time_by_every_engine(engine):
    """300,000 fields on one line (Arrow and pandas pay per column: 20 s and more before)."""
    import time

    v, line = _wide(300_000)
    started = time.perf_counter()
    b = parse_csv(line)
    seconds = time.perf_counter() - started
    np.testing.assert_array_equal(b.features, v[None, :])
    assert seconds < 4, seconds
    two = parse_csv(b"\n," + line.split(b",", 1)[1] + b"\r\n" + line, label_size=1)  # an empty field: NaN
    np.testing.assert_array_equal(two.features, np.tile(v[1:], (2, 1)))
    np.testing.assert_array_equal(two.labels, [np.nan, v[0]])


@pytest.mark.parametrize("bad, fragment", [
    (b"1,2\n", "line 3 has 2 columns, but line 1 has 300000"),
    (b"1," * 299_999 + b"x\n", "line 3, column 300000: 'x' is not a number"),
    (b"1," * 299_999 + b"1_0\n", "line 3, column 300000: '1_0' is not a number"),
], ids=["narrow", "text", "underscore"])
def test_a_wide_body_fault_is_named_quickly(engine, bad, fragment):
    import time

    _, line = _wide(300_000)
    started = time.perf_counter()
    with pytest.raises(ClientError, match=re.escape(fragment)):
        parse_csv(line + b"\n" + bad, source="wide.csv")
    assert time.perf_counter() - started < 6


def test_a_wide_file_is_streamed_not_read_by_pandas(tmp_path):
    from smalgos.formats.csv import read_csv_file

    v, line = _wide(5000)
    path = tmp_path / "wide.csv"
    path.write_bytes(line * 3)
    assert read_csv_file(path, label_size=1) is None
    b = next(DEC.iter_batches(io.BytesIO(line * 3), parse_media_type("text/csv"), default_label_size=1,
                              chunk_size=1000))
    np.testing.assert_array_equal(b.features, np.tile(v[1:], (3, 1)))
    with pytest.raises(ClientError, match="line 3 has 2 columns, but the lines before have 5000"):
        list(DEC.iter_batches(io.BytesIO(line * 2 + b"1,2\n"), parse_media_type("text/csv"),
                              chunk_size=1000))


# -- SIGTERM during an Arrow read: Arrow cancels it, which is a stop, not a failure --------------------

def test_arrow_cancelled_read_raises_training_stopped(require_arrow, monkeypatch):
    from smalgos.errors import TrainingStopped
    from smalgos.formats._arrow import float_table, numbers_per_line

    pa, pacsv = require_arrow

    def cancelled(*args, **kwargs):
        raise pa.ArrowCancelled("Operation cancelled", signum=15)

    monkeypatch.setattr(pacsv, "read_csv", cancelled)
    with pytest.raises(TrainingStopped):
        float_table(b"1,2\n", 2)
    with pytest.raises(TrainingStopped):
        numbers_per_line(b"1\n2\n")
    _, body = _large()
    with pytest.raises(TrainingStopped):
        parse_csv(body)


def test_a_real_sigterm_during_arrow_reads_is_training_stopped(require_arrow):
    """A subprocess with a SIGTERM handler (as the training runner has) parses a large body in a loop;
    one SIGTERM at a time is sent until one lands inside Arrow's reader (most do), which must end the
    read as TrainingStopped once the handler has run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    child = subprocess.Popen([sys.executable, "-c", """
import signal, sys, threading
from smalgos.errors import TrainingStopped
from smalgos.formats.csv import parse_csv
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *a: stop.set())
body = b"\\n".join([b"0.125,1.5,2.75,3.0,4.5,5.25,6.0,7.125"] * 1_000_000) + b"\\n"
print("ready", flush=True)
for _ in range(200):
    try:
        parse_csv(body)
    except TrainingStopped:
        print("stopped", stop.is_set(), flush=True)
        sys.exit(0)
    if stop.is_set():  # the signal came between two reads: ask for another
        stop.clear()
        print("missed", flush=True)
sys.exit(3)
"""], stdout=subprocess.PIPE, text=True)
    try:
        seen = [child.stdout.readline().strip()]
        deadline = time.monotonic() + 12
        while seen[-1] in ("ready", "missed") and time.monotonic() < deadline:
            time.sleep(0.02 * (len(seen) % 5))
            os.kill(child.pid, signal.SIGTERM)
            seen.append(child.stdout.readline().strip())
        assert seen[-1] == "stopped True", seen  # the handler ran, then the read stopped
        assert child.wait(5) == 0
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()


# -- a UTF-8 byte order mark at the start is skipped, true/false refused: in every reader -----------

def test_byte_order_mark_at_the_start_is_skipped_by_every_reader(engine, tmp_path):
    from smalgos.formats.csv import BOM, read_csv_file

    x, body = _large()
    np.testing.assert_array_equal(parse_csv(BOM + b"1,2\n3,4\n", label_size=1).features, [[2], [4]])  # numpy
    np.testing.assert_array_equal(parse_csv(BOM + body, label_size=1).features, x[:, 1:])  # Arrow / pandas
    np.testing.assert_array_equal(parse_csv(BOM + b"\n1,2\n", label_size=1).features, [[2]])
    streamed = list(DEC.iter_batches(io.BytesIO(BOM + body), parse_media_type("text/csv"), default_label_size=1,
                                     batch_size=10 ** 6, chunk_size=1000))
    np.testing.assert_array_equal(streamed[0].features, x[:, 1:])
    path = tmp_path / "excel.csv"
    path.write_bytes(BOM + body)
    np.testing.assert_array_equal(read_csv_file(path, label_size=1).features, x[:, 1:])


def test_byte_order_mark_elsewhere_is_refused_by_every_reader(engine):
    from smalgos.formats.csv import BOM

    _, body = _large()
    lines = body.split(b"\n")
    lines[100] = BOM + lines[100]
    for text in (b"1,2\n" + BOM + b"3,4\n", b"\n".join(lines)):
        with pytest.raises(ClientError, match=r"column 1: '\\ufeff"):
            parse_csv(text)
    # at the start of a later block of a stream (Arrow and pandas skip a mark at a buffer's start)
    text = b"1,2\n" * 20000 + BOM + b"3,4\n"
    with pytest.raises(ClientError, match=r"line 20001, column 1: '\\ufeff3' is not a number"):
        list(DEC.iter_batches(io.BytesIO(text), parse_media_type("text/csv"), chunk_size=len(text) - 8))


@pytest.mark.parametrize("word", [b"true", b"false", b"True", b"FALSE"])
def test_true_false_cells_are_refused_by_every_reader(engine, tmp_path, word):
    from smalgos.formats.csv import read_csv_file

    other = b"true" if word.lower() == b"false" else b"false"
    small = b"1," + word + b"\n0," + other + b"\n"
    _, body = _large()
    lines = body.split(b"\n")[:-1]
    column = [b"%s,%s,%s" % (ln.split(b",")[0], word if i % 2 else other, b",".join(ln.split(b",")[2:]))
              for i, ln in enumerate(lines)]
    large = b"\n".join(column) + b"\n"
    first = other.decode()
    with pytest.raises(ClientError, match=re.escape(f"line 1, column 2: '{word.decode()}' is not a number")):
        parse_csv(small)
    with pytest.raises(ClientError, match=re.escape(f"big.csv: line 1, column 2: '{first}' is not a number")):
        parse_csv(large, source="big.csv")
    with pytest.raises(ClientError, match=re.escape(f"line 1, column 2: '{first}' is not a number")):
        list(DEC.iter_batches(io.BytesIO(large), parse_media_type("text/csv"), chunk_size=5000))
    path = tmp_path / "bools.csv"
    path.write_bytes(large)
    assert read_csv_file(path, label_size=1) is None  # the streaming path then names the cell (above)


@pytest.mark.parametrize("chunk", [4, 1 << 20])
def test_line_of_record_counts_blank_lines_as_the_decoder_does(chunk):
    """A record's line, for messages found after decoding: blank and space-only lines, CRLF ends
    and a leading BOM are counted as `iter_batches` counts them in its own messages."""
    data = b"\xef\xbb\xbf1,2\n\n  \n3,4\r\n\r\n5,6"
    decoder = CSVDecoder()
    assert [decoder.line_of_record(io.BytesIO(data), i, chunk_size=chunk) for i in range(4)] == [1, 4, 6, None]
    with pytest.raises(ClientError, match="line 6"):  # the decoder's own message names the same line
        list(decoder.iter_batches(io.BytesIO(data.replace(b"5,6", b"5,x")), parse_media_type("text/csv")))
