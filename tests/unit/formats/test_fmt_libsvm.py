import numpy as np
import pytest

from smalgos.errors import ClientError
from smalgos.formats import LibSVMDecoder, parse_libsvm, parse_media_type

LIBSVM = parse_media_type("text/x-libsvm")


@pytest.fixture(autouse=True, params=["arrow", "numpy"])
def number_reader(request, monkeypatch):
    """Every test twice: numbers read by Arrow (pyarrow installed) and by np.fromstring (without).
    The "arrow" case fails where pyarrow is absent rather than rerun the numpy path."""
    import smalgos.formats.libsvm as libsvm

    if request.param == "numpy":
        monkeypatch.setattr(libsvm, "numbers_per_line", lambda text: None)
    else:
        request.getfixturevalue("require_arrow")
        # ... and the reader libsvm calls really is Arrow's (it declines, None, only without pyarrow).
        np.testing.assert_array_equal(libsvm.numbers_per_line(b"1\n2.5\n"), [1.0, 2.5])
    return request.param


def test_large_text_reads_the_same_with_either_number_reader():
    rng = np.random.default_rng(0)
    X = np.where(rng.random((3000, 12)) < 0.4, 0, rng.standard_normal((3000, 12))).astype(np.float32)
    y = rng.integers(0, 2, 3000)
    text = "\n".join(f"{y[i]} " + " ".join(f"{j}:{float(X[i, j])!r}" for j in np.flatnonzero(X[i])) for i in range(3000))
    batch, _ = parse_libsvm((text + "\n").encode(), zero_based=True)
    np.testing.assert_array_equal(batch.features.toarray(), X[:, :batch.num_features])
    np.testing.assert_array_equal(batch.labels, y)


def test_one_based_indices_are_shifted_by_auto():
    b, shifted = parse_libsvm(b"1 1:0.5 3:2\n0 2:1.5\n")
    assert shifted
    np.testing.assert_array_equal(b.features.toarray(), [[0.5, 0, 2], [0, 1.5, 0]])
    np.testing.assert_array_equal(b.labels, [1, 0])
    assert b.weights is None and b.features.dtype == np.float32


def test_zero_based_data_is_kept_by_auto():
    b, shifted = parse_libsvm(b"1 0:0.5 3:2\n")
    assert not shifted
    np.testing.assert_array_equal(b.features.toarray(), [[0.5, 0, 0, 2]])


def test_explicit_zero_based_choices():
    b, _ = parse_libsvm(b"1 1:0.5\n", zero_based=True)
    np.testing.assert_array_equal(b.features.toarray(), [[0, 0.5]])
    b, _ = parse_libsvm(b"1 1:0.5\n", zero_based=False)
    np.testing.assert_array_equal(b.features.toarray(), [[0.5]])
    with pytest.raises(ClientError) as e:
        parse_libsvm(b"1 1:0.5\n2 0:1\n", zero_based=False)
    assert e.value.message == "request body: line 2: token '0:1' has index 0, but indices were declared 1-based"


def test_weights_blank_lines_tabs_and_label_only_lines():
    b, _ = parse_libsvm(b"1:2.5 1:1\n\n0\t2:3\r\n-1:0.5\n")
    np.testing.assert_array_equal(b.labels, [1, 0, -1])
    np.testing.assert_array_equal(b.weights, [2.5, 1, 0.5])
    np.testing.assert_array_equal(b.features.toarray(), [[1, 0], [0, 3], [0, 0]])


@pytest.mark.parametrize("data,message", [
    (b"1 1:2\n0 abc\n", "request body: line 2: token 'abc' is not '<index>:<value>'"),
    (b"1 1:2 2:3:4\n", "request body: line 1: token '2:3:4' is not '<index>:<value>'"),
    (b"1:2:3 1:2\n", "request body: line 1: token '1:2:3' is not '<label>[:<weight>]'"),
    (b"1 3:\n", "request body: line 1: token '3:' has an empty part around ':'"),
    (b"1 1:2\n\n1 1.5:2\n", "request body: line 3: token '1.5:2' has an index that is not a non-negative integer"),
    (b"1 1:2\n1 2:x\n", "request body: line 2: token '2:x' holds something that is not a number"),
    (b"1 qid:3 1:2\n", "request body: line 1: token 'qid:3' holds something that is not a number"),
])
def test_errors_name_line_and_token(data, message):
    with pytest.raises(ClientError) as e:
        LibSVMDecoder().decode(data, LIBSVM)
    assert e.value.message == message


def test_iter_batches_settles_auto_on_the_first_chunk(pipe_feed):
    lines = [f"{i % 2} {1 + i % 4}:{i}" for i in range(23)]
    body = ("\n".join(lines) + "\n").encode()
    with pipe_feed(body, piece=5) as stream:
        batches = list(LibSVMDecoder().iter_batches(stream, LIBSVM, batch_size=10, source="train",
                                                    chunk_size=24))
    assert [len(b) for b in batches] == [10, 10, 3]
    whole, _ = parse_libsvm(body)
    got = np.concatenate([b.features.toarray() for b in batches])
    np.testing.assert_array_equal(got, whole.features.toarray())
    body += b"1 0:5\n"
    with pipe_feed(body, piece=50) as stream, pytest.raises(ClientError) as e:
        list(LibSVMDecoder().iter_batches(stream, LIBSVM, batch_size=10, source="train", chunk_size=24))
    assert e.value.message == "train: line 24: token '0:5' has index 0, but indices were declared 1-based"
