"""Training channels: the bytes of `/opt/ml/input/data/<channel>` (File mode) or of the FIFOs
`<channel>_<epoch>` (Pipe mode), decoded into mini-batches by the wire-format registry.

One pass over a channel is one call of `ChannelInput.batches()`. In File mode every pass re-reads
the files (recursive, sorted, dotfiles skipped, gzip read transparently); in Pipe mode every
pass opens the next FIFO, waiting for SageMaker to create it. Memory stays bounded by the
mini-batch size: nothing is read whole unless `read_all()` is asked for.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator, Mapping

from .config import ChannelConfig
from .declaration import Channel
from .environment import Paths
from .errors import ClientError, PlatformError, TrainingStopped
from .formats.batch import Batch
from .formats.media import MediaType, parse_media_type
from .formats.recordio import iter_records
from .formats.registry import get_decoder

log = logging.getLogger("smalgos")

GZIP_MAGIC = b"\x1f\x8b"
PIPE_WAIT_SECONDS = float(os.environ.get("SMALGOS_PIPE_WAIT_SECONDS", "600"))
READ_BUFFER = 1 << 20


def data_files(root: Path) -> list[Path]:
    """Every regular file under `root`, recursively, sorted by path, skipping dot-files and dot-dirs."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if not name.startswith("."):
                found.append(Path(dirpath) / name)
    return sorted(found)


def _open_maybe_gzip(raw: BinaryIO) -> BinaryIO:
    """Wrap a stream in a gzip reader when its first bytes are gzip's magic number."""
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw, READ_BUFFER)
    if buffered.peek(2)[:2] == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    return buffered


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
            yield _slice(merged, 0, size)
            rest = _slice(merged, size, len(merged))
            pending, count = ([rest], len(rest)) if len(rest) else ([], 0)
    if count:
        yield Batch.concat(pending)


def _slice(batch: Batch, start: int, stop: int) -> Batch:
    return Batch(
        batch.features[start:stop],
        None if batch.labels is None else batch.labels[start:stop],
        None if batch.weights is None else batch.weights[start:stop],
    )


class ChannelInput:
    """One configured channel of a training job."""

    def __init__(self, declared: Channel, config: ChannelConfig, paths: Paths, default_label_size: int,
                 should_stop: Callable[[], bool] = lambda: False,
                 aliases: Mapping[str, str] | None = None,
                 decoder_options: Mapping[str, Mapping[str, Any]] | None = None):
        self.should_stop = should_stop
        self.name = declared.name
        self.declared = declared
        self.config = config
        self.paths = paths
        self.default_label_size = default_label_size
        try:
            self.media: MediaType = parse_media_type(
                config.content_type or declared.default_content_type or declared.content_types[0],
                aliases=aliases)
            self.decoder = get_decoder(self.media, allowed=declared.content_types)
            self.decoder_options = dict((decoder_options or {}).get(self.media.type, {}))
        except ClientError as exc:
            raise type(exc)(f"Channel {self.name!r}: {exc.message}") from None
        self._next_pipe_epoch = 0

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
        deadline = time.monotonic() + PIPE_WAIT_SECONDS
        while not fifo.exists():
            if self.should_stop():
                raise TrainingStopped(f"Stopped while waiting for Pipe mode FIFO {fifo}")
            if time.monotonic() > deadline:
                raise PlatformError(f"Channel {self.name!r}: Pipe mode FIFO {fifo} did not appear "
                                    f"within {PIPE_WAIT_SECONDS:.0f} s")
            time.sleep(0.05)
        if not stat.S_ISFIFO(fifo.stat().st_mode) and not fifo.is_file():
            raise PlatformError(f"Channel {self.name!r}: {fifo} is neither a FIFO nor a file")
        with open(fifo, "rb", buffering=0) as raw:
            yield str(fifo), raw

    def streams(self) -> Iterator[tuple[str, BinaryIO]]:
        """One pass over the channel's bytes: (source name, binary stream) pairs."""
        if self.is_pipe:
            with self._open_pipe() as (source, raw):
                yield from self._unwrap(source, _open_maybe_gzip(raw))
            return
        for path in self.files():
            with open(path, "rb", buffering=0) as raw:
                yield from self._unwrap(str(path), _open_maybe_gzip(raw))

    def _unwrap(self, source: str, stream: BinaryIO) -> Iterator[tuple[str, BinaryIO]]:
        """With RecordWrapperType=RecordIO each S3 object arrives as one RecordIO record."""
        if self.config.record_wrapper != "RecordIO" or self.media.type == "application/x-recordio-protobuf":
            yield source, stream
            return
        for i, payload in enumerate(iter_records(stream, source=source)):
            yield f"{source} (wrapped object {i})", io.BytesIO(payload)

    # -- decoded batches ------------------------------------------------------------------------

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """One pass over the channel, in mini-batches of `batch_size` records."""
        if batch_size < 1:
            raise ValueError("batch_size must be positive")

        def decoded() -> Iterator[Batch]:
            for source, stream in self.streams():
                yield from self.decoder.iter_batches(
                    stream, self.media, default_label_size=self.default_label_size,
                    batch_size=batch_size, source=source, **self.decoder_options)

        return rebatch(decoded(), batch_size)

    def read_sample(self, n: int, batch_size: int = 10_000) -> Batch | None:
        """The first `n` records (one pass in Pipe mode, closed early). None if the channel is empty."""
        taken: list[Batch] = []
        count = 0
        gen = self.batches(min(batch_size, max(n, 1)))
        try:
            for batch in gen:
                taken.append(batch)
                count += len(batch)
                if count >= n:
                    break
        finally:
            gen.close()
        if not taken:
            return None
        merged = Batch.concat(taken)
        return _slice(merged, 0, min(n, len(merged)))

    def read_all(self, batch_size: int = 100_000) -> Batch | None:
        """Every record of one pass, in memory. None if the channel is empty."""
        parts = list(self.batches(batch_size))
        return Batch.concat(parts) if parts else None
