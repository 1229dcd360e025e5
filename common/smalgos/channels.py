"""Training channels: the bytes of `/opt/ml/input/data/<channel>` (File mode) or of the FIFOs
`<channel>_<epoch>` (Pipe mode), decoded into mini-batches by the wire-format registry.

One pass over a channel is one call of `ChannelInput.batches()`. In File mode every pass re-reads
the files (recursive, sorted, dotfiles skipped, gzip read transparently); in Pipe mode every
pass opens the next FIFO, waiting for SageMaker to create it. Memory stays bounded by the
mini-batch size: nothing is read whole unless `read_all()` is asked for.
"""

from __future__ import annotations

import contextlib
import copy
import errno
import fcntl
import gzip
import io
import logging
import os
import select
import stat
import time
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Mapping

import numpy as np

from .config import ChannelConfig
from .declaration import Channel
from .environment import PIPE_WAIT_ENV, Paths, TrainingEnv
from .errors import ClientError, PlatformError, TrainingStopped
from .formats.batch import Batch
from .formats.media import MediaType, parse_media_type
from .formats.recordio import iter_records
from .formats.registry import get_decoder

log = logging.getLogger("smalgos")

GZIP_MAGIC = b"\x1f\x8b"
READ_BUFFER = 1 << 20
STOP_POLL_SECONDS = 0.25  # how often a Pipe mode wait looks at the stop request
GZIP_ERRORS = (gzip.BadGzipFile, EOFError, zlib.error)  # corrupt or truncated gzip data: the user's

# A check on each decoded block's features: check(features, where, record=row -> place), which
# raises to refuse them (`smalgos.maths.inputs.check_finite`).
FeatureCheck = Callable[..., None]


def data_files(root: Path) -> list[Path]:
    """Every regular file under `root`, recursively, sorted by path, skipping dot-files and dot-dirs."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith("."):
                found.append(Path(dirpath) / name)
    return sorted(found)


class _GzipGuard(io.RawIOBase):
    """A gzip stream whose corrupt or truncated data raises a ClientError naming the file."""

    def __init__(self, gz: gzip.GzipFile, where: str):
        self._gz, self._where = gz, where

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        try:
            data = self._gz.read1(len(b))
        except GZIP_ERRORS as exc:
            raise ClientError(f"{self._where}: corrupt or truncated gzip data ({type(exc).__name__}: {exc})"
                              ) from None
        n = len(data)
        b[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            self._gz.close()
        super().close()


def _open_maybe_gzip(raw: BinaryIO, where: str = "") -> BinaryIO:
    """Wrap a stream in a gzip reader when its first bytes are gzip's magic number; `where` (e.g.
    "Channel 'train': <path>") starts the ClientError raised on corrupt or truncated gzip data."""
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, READ_BUFFER)
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        gz = gzip.GzipFile(fileobj=buffered, mode="rb")
        return io.BufferedReader(_GzipGuard(gz, where or "gzip stream"), READ_BUFFER)  # type: ignore[return-value]
    return buffered


class _PipeReader(io.RawIOBase):
    """A Pipe mode FIFO opened non-blocking, so that no wait is unbounded.

    Until a writer connects and sends data (or closes), and whenever the FIFO runs dry, the reader
    polls in slices of `STOP_POLL_SECONDS`: a stop request raises TrainingStopped, and
    `wait_seconds` without a byte raises PlatformError naming the FIFO. Reads go straight to the fd
    (the caller asks for large chunks); poll only runs when a read would block.
    """

    def __init__(self, fifo: Path, channel: str, wait_seconds: float, should_stop: Callable[[], bool]):
        self.fifo, self.channel, self.wait_seconds, self.should_stop = fifo, channel, wait_seconds, should_stop
        self.fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        with contextlib.suppress(AttributeError, OSError):  # Linux: fewer wake-ups per MiB
            fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, READ_BUFFER)
        self._connected = False  # a writer has sent data or closed: a 0-byte read is now EOF
        self._received = 0
        self._poller = select.poll()
        self._poller.register(self.fd, select.POLLIN | select.POLLPRI)  # POLLHUP/POLLERR always reported

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self.fd

    def _wait(self) -> None:
        deadline = time.monotonic() + self.wait_seconds
        while True:
            if self.should_stop():
                raise TrainingStopped(f"Stopped while reading Pipe mode FIFO {self.fifo}")
            left = deadline - time.monotonic()
            if self._poller.poll(int(1000 * min(max(left, 0.0), STOP_POLL_SECONDS))):
                self._connected = True
                return
            if left <= 0:
                break
        if self._received == 0:
            raise PlatformError(
                f"Channel {self.channel!r}: no data arrived on Pipe mode FIFO {self.fifo} within "
                f"{self.wait_seconds:g} s: no writer opened it or the writer sent nothing (the wait is "
                f"${PIPE_WAIT_ENV})")
        raise PlatformError(
            f"Channel {self.channel!r}: Pipe mode FIFO {self.fifo} stalled: no data for {self.wait_seconds:g} s "
            f"after {self._received} byte(s) (the wait is ${PIPE_WAIT_ENV})")

    def readinto(self, b) -> int:
        if self.closed:
            raise ValueError("read from a closed Pipe mode FIFO")
        while True:
            if self._connected:
                try:
                    n = os.readv(self.fd, [b])
                except BlockingIOError:
                    pass
                except InterruptedError:
                    continue
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                        raise
                else:
                    self._received += n
                    return n
            self._wait()

    def close(self) -> None:
        if not self.closed:
            try:
                os.close(self.fd)
            finally:
                super().close()


def rebatch(batches: Iterator[Batch], size: int) -> Iterator[Batch]:
    """Regroup batches into batches of exactly `size` records (the last may be shorter)."""
    pending: list[Batch] = []
    count = 0
    for batch in batches:
        if len(batch) == 0:
            continue
        pending.append(batch)
        count += len(batch)
        while count >= size:
            merged = Batch.concat(pending)
            yield merged.slice(0, size)
            rest = merged.slice(size, len(merged))
            pending, count = ([rest], len(rest)) if len(rest) else ([], 0)
    if count:
        yield Batch.concat(pending)


def own_part(batches: Iterator[Batch], rank: int, size: int) -> Iterator[Batch]:
    """The records of `batches` whose index in the whole stream is `rank` modulo `size`."""
    first = 0
    for batch in batches:
        n = len(batch)
        start = (rank - first) % size
        if start < n:
            yield batch.take(np.arange(start, n, size))
        first += n


def _check_same_width(channel: str, earlier: list[tuple[Path, Batch]], batch: Batch, path: Path) -> None:
    if earlier and not batch.is_sparse and not earlier[0][1].is_sparse:
        first, seen = earlier[0]
        if seen.num_features != batch.num_features:
            raise ClientError(f"Channel {channel!r}: {path} has {batch.num_features} feature column(s) but {first} "
                              f"has {seen.num_features}: every file of a channel needs the same columns")


class ChannelInput:
    """One configured channel of a training job."""

    def __init__(self, declared: Channel, config: ChannelConfig, paths: Paths, default_label_size: int,
                 should_stop: Callable[[], bool] = lambda: False,
                 aliases: Mapping[str, str] | None = None,
                 decoder_options: Mapping[str, Mapping[str, Any]] | None = None,
                 pipe_wait_seconds: float | None = None):
        """`pipe_wait_seconds`: how long Pipe mode waits for each FIFO to appear; None takes
        `TrainingEnv`'s (`$SMALGOS_PIPE_WAIT_SECONDS`, 600 s), read now, when the job starts."""
        self.should_stop = should_stop
        self.name = declared.name
        self.declared = declared
        self.config = config
        self.paths = paths
        self.default_label_size = default_label_size
        self.pipe_wait_seconds = (TrainingEnv.from_env().pipe_wait_seconds if pipe_wait_seconds is None
                                  else float(pipe_wait_seconds))
        try:
            self.media: MediaType = parse_media_type(
                config.content_type or declared.default_content_type or declared.content_types[0],
                aliases=aliases)
            self.decoder = get_decoder(self.media, allowed=declared.content_types)
            self.decoder_options = dict((decoder_options or {}).get(self.media.type, {}))
        except ClientError as exc:
            raise type(exc)(f"Channel {self.name!r}: {exc.message}") from None
        self._next_pipe_epoch = 0
        self.part: tuple[int, int] | None = None  # (rank, hosts): see sliced()

    @property
    def input_mode(self) -> str:
        return self.config.input_mode

    @property
    def is_pipe(self) -> bool:
        return self.config.input_mode == "Pipe"

    @property
    def content_type(self) -> str:
        return self.media.type

    # -- raw byte streams -----------------------------------------------------------------------

    def files(self) -> list[Path]:
        root = self.paths.channel_dir(self.name)
        if not root.is_dir():
            raise ClientError(f"Channel {self.name!r}: directory {root} does not exist (File mode)")
        return data_files(root)

    @contextlib.contextmanager
    def _open_pipe(self) -> Iterator[tuple[str, BinaryIO]]:
        epoch = self._next_pipe_epoch
        self._next_pipe_epoch += 1
        fifo = self.paths.channel_fifo(self.name, epoch)
        deadline = time.monotonic() + self.pipe_wait_seconds
        while not fifo.exists():
            if self.should_stop():
                raise TrainingStopped(f"Stopped while waiting for Pipe mode FIFO {fifo}")
            if time.monotonic() > deadline:
                raise PlatformError(f"Channel {self.name!r}: Pipe mode FIFO {fifo} did not appear "
                                    f"within {self.pipe_wait_seconds:.0f} s (the wait is ${PIPE_WAIT_ENV})")
            time.sleep(0.05)
        mode = fifo.stat().st_mode
        if stat.S_ISREG(mode):
            with open(fifo, "rb", buffering=0) as raw:
                yield str(fifo), raw
            return
        if not stat.S_ISFIFO(mode):
            raise PlatformError(f"Channel {self.name!r}: {fifo} is neither a FIFO nor a file")
        with _PipeReader(fifo, self.name, self.pipe_wait_seconds, self.should_stop) as raw:
            yield str(fifo), raw  # type: ignore[misc]

    def streams(self) -> Iterator[tuple[str, BinaryIO]]:
        """One pass over the channel's bytes: (source name, binary stream) pairs."""
        if self.is_pipe:
            with self._open_pipe() as (source, raw):
                yield from self._unwrap(source, _open_maybe_gzip(raw, f"Channel {self.name!r}: {source}"))
            return
        for path in self.files():
            yield from self._file_streams(path)

    def _file_streams(self, path: Path) -> Iterator[tuple[str, BinaryIO]]:
        with open(path, "rb", buffering=0) as raw:
            yield from self._unwrap(str(path), _open_maybe_gzip(raw, f"Channel {self.name!r}: {path}"))

    def _unwrap(self, source: str, stream: BinaryIO) -> Iterator[tuple[str, BinaryIO]]:
        """With RecordWrapperType=RecordIO each S3 object arrives as one RecordIO record."""
        if self.config.record_wrapper != "RecordIO" or self.media.type == "application/x-recordio-protobuf":
            yield source, stream
            return
        for i, payload in enumerate(iter_records(stream, source=source)):
            yield f"{source} (wrapped object {i})", io.BytesIO(payload)

    # -- decoded batches ------------------------------------------------------------------------

    def batches(self, batch_size: int, check: FeatureCheck | None = None) -> Iterator[Batch]:
        """One pass over the channel, in mini-batches of `batch_size` records.

        `check` (e.g. `smalgos.maths.inputs.check_finite`) is called on the features of each block
        as decoded, before blocks are regrouped, as ``check(features, "Channel 'train'",
        record=...)``; `record(row)` names the row's place in its file or FIFO for the message
        ("line 7 of /opt/ml/input/data/train/a.csv", "record 3 of /opt/ml/input/data/train_0")."""
        if batch_size < 1:
            raise ValueError("batch_size must be positive")

        def decoded() -> Iterator[Batch]:
            for source, stream in self.streams():
                yield from self._decode(source, stream, batch_size, check)

        return rebatch(decoded() if self.part is None else own_part(decoded(), *self.part), batch_size)

    def sliced(self, rank: int, size: int) -> "ChannelInput":
        """This channel as host `rank` of `size` reads it for a job across hosts: with
        FullyReplicated (every host holds every record) only the records whose index is `rank`
        modulo `size`; with ShardedByS3Key (each host holds its own part) all of its records."""
        if size == 1 or self.config.distribution != "FullyReplicated":
            return self
        part = copy.copy(self)  # (the copy reads Pipe mode's FIFOs on from the same epoch)
        part.part = (rank, size)
        return part

    def _decode(self, source: str, stream: BinaryIO, batch_size: int,
                check: FeatureCheck | None = None) -> Iterator[Batch]:
        batches = self.decoder.iter_batches(stream, self.media, default_label_size=self.default_label_size,
                                            batch_size=batch_size, source=source, **self.decoder_options)
        return batches if check is None else self._checked(source, batches, check)

    def _checked(self, source: str, batches: Iterator[Batch], check: FeatureCheck) -> Iterator[Batch]:
        first = 0  # the index in `source` of the batch's first record
        for batch in batches:
            self._check(batch, source, first, check)
            first += len(batch)
            yield batch

    def _check(self, batch: Batch, source: str, first: int, check: FeatureCheck) -> None:
        check(batch.features, f"Channel {self.name!r}", record=lambda row: self._place(source, first + row))

    def _place(self, source: str, index: int) -> str:
        """Where record `index` (0-based) of `source` is: its line in a File-mode file of a line-based
        format (the decoder's `line_of_record`, which counts the blank lines it skips), else its number."""
        line_of = getattr(self.decoder, "line_of_record", None)
        if line_of is not None and not self.is_pipe and Path(source).is_file():  # a wrapped object is not
            with open(source, "rb", buffering=0) as raw:
                line = line_of(_open_maybe_gzip(raw, f"Channel {self.name!r}: {source}"), index)
            if line is not None:
                return f"line {line} of {source}"
        return f"record {index + 1} of {source}"

    def _whole_file(self, path: Path) -> Batch | None:
        """A plain file read in one call of a decoder's `read_file` (CSV: pandas over the path), when
        the decoder has one and the file is neither gzip nor RecordIO-wrapped; else None."""
        read_file = getattr(self.decoder, "read_file", None)
        if read_file is None or self.config.record_wrapper == "RecordIO":
            return None
        with open(path, "rb") as f:
            if f.read(2) == GZIP_MAGIC:
                return None
        return read_file(path, self.media, default_label_size=self.default_label_size, **self.decoder_options)

    def read_all(self, batch_size: int = 100_000, check: FeatureCheck | None = None) -> Batch | None:
        """Every record of one pass, in memory. None if the channel is empty. `check`: as `batches`'.

        In File mode a decoder with a whole-file reader reads each plain file at once; a file it
        declines (not a clean table) is streamed, which names the fault."""
        if self.is_pipe:
            parts = list(self.batches(batch_size, check))
        else:
            parts = []
            for path in self.files():
                whole = self._whole_file(path)
                if whole is not None and check is not None:
                    self._check(whole, str(path), 0, check)
                pieces = [whole] if whole is not None else list(self._decode_file(path, batch_size, check))
                if pieces:
                    whole = Batch.concat(pieces)
                    _check_same_width(self.name, parts, whole, path)
                    parts.append((path, whole))
            parts = [b for _, b in parts]
        return Batch.concat(parts) if parts else None

    def _decode_file(self, path: Path, batch_size: int, check: FeatureCheck | None = None) -> Iterator[Batch]:
        for source, stream in self._file_streams(path):
            yield from (b for b in self._decode(source, stream, batch_size, check) if len(b))
