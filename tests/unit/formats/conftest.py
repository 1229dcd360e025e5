"""Shared helpers for the wire-format tests: bytes made by the SageMaker SDK v2, and streams
that behave like Pipe mode (a real pipe, fed in small pieces by another thread)."""

from __future__ import annotations

import io
import os
import threading

os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def sdk_dense(sdk):
    def make(array, labels=None) -> bytes:
        buf = io.BytesIO()
        sdk.write_numpy_to_dense_tensor(buf, array, labels)
        return buf.getvalue()

    return make


@pytest.fixture(scope="session")
def sdk_sparse(sdk):
    def make(matrix, labels=None) -> bytes:
        buf = io.BytesIO()
        sdk.write_spmatrix_to_sparse_tensor(buf, matrix, labels)
        return buf.getvalue()

    return make


class PipeFeed:
    """`with PipeFeed(data, piece=7) as stream:` a raw (unbuffered) read end of os.pipe() while a
    thread writes `data` into the other end `piece` bytes at a time, so reads come back short."""

    def __init__(self, data: bytes, piece: int = 7):
        self.data, self.piece = data, piece

    def __enter__(self):
        r, w = os.pipe()
        self.stream = os.fdopen(r, "rb", buffering=0)

        def feed():
            with os.fdopen(w, "wb", buffering=0) as out:
                for i in range(0, len(self.data), self.piece):
                    try:
                        out.write(self.data[i:i + self.piece])
                    except BrokenPipeError:
                        return

        self.thread = threading.Thread(target=feed, daemon=True)
        self.thread.start()
        return self.stream

    def __exit__(self, *exc):
        self.stream.close()
        self.thread.join(timeout=10)


@pytest.fixture
def require_arrow():
    """For the "arrow" case of a reader parametrised over Arrow and its fallback: pyarrow must be
    importable (a test dependency, the xgboost extra), so that case fails, not silently reruns the
    fallback, where it is absent. Returns (pyarrow, pyarrow.csv)."""
    from smalgos.formats._arrow import arrow_csv

    arrow = arrow_csv()
    assert arrow is not None, "pyarrow is a test dependency (the xgboost extra)"
    return arrow


@pytest.fixture
def pipe_feed():
    return PipeFeed


@pytest.fixture
def fifo_feed(tmp_path):
    """A named FIFO (Pipe mode's `/opt/ml/input/data/<channel>_<epoch>`) fed by a thread."""

    class FifoFeed:
        def __init__(self, data: bytes, piece: int = 4096):
            self.data, self.piece = data, piece

        def __enter__(self):
            path = tmp_path / "train_0"
            os.mkfifo(path)

            def feed():
                with open(path, "wb") as out:
                    for i in range(0, len(self.data), self.piece):
                        out.write(self.data[i:i + self.piece])

            self.thread = threading.Thread(target=feed, daemon=True)
            self.thread.start()
            self.stream = open(path, "rb")
            return self.stream

        def __exit__(self, *exc):
            self.stream.close()
            self.thread.join(timeout=10)

    return FifoFeed
