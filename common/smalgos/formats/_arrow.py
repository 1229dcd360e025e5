"""Arrow's CSV reader, where pyarrow is installed (the XGBoost image): multi-threaded C++ with a
fast float parser, used for large CSV bodies and for the numbers of LibSVM text. Callers keep a
pandas or numpy path for images without pyarrow, and for text Arrow declines (their slower path
then names the faulty line).

Arrow's reader, called from the main thread, listens for SIGTERM itself while it runs (where Python
has a handler for it, as the training runner does): it hands the signal on to that handler and gives
up the read with `ArrowCancelled`, which is raised here as `TrainingStopped`, so that a job stopped
mid-read ends the way a job stopped between batches does (exit 143, failure file, model so far)."""

from __future__ import annotations

import functools

import numpy as np

from smalgos.errors import TrainingStopped


@functools.cache
def arrow_csv():
    """(pyarrow, pyarrow.csv), or None without pyarrow."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pacsv
    except ImportError:
        return None
    return pa, pacsv


def float_table(text: bytes, width: int, dtype=np.float32, block_size: int | None = None) -> np.ndarray | None:
    """Comma-separated `text` as a (rows, width) array of `dtype`: no quotes, empty fields NaN, blank
    lines skipped, parsed as float64 then rounded (float32: as pandas and Python's float() round). None without
    pyarrow, or when some line is not `width` numbers: declining is how a caller learns to look closer."""
    arrow = arrow_csv()
    if arrow is None:
        return None
    pa, pacsv = arrow
    names = [str(j) for j in range(width)]
    # By default blocks of len/threads bytes, so that every thread of Arrow's pool gets one.
    block = block_size or max(1 << 16, -(-len(text) // max(1, pa.cpu_count())))
    try:
        table = pacsv.read_csv(
            pa.py_buffer(text),
            read_options=pacsv.ReadOptions(column_names=names, block_size=block),
            parse_options=pacsv.ParseOptions(quote_char=False),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(names, pa.float64()),
                                                 null_values=[""], strings_can_be_null=False))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):  # not a clean numeric table: the caller diagnoses
        return None
    except pa.ArrowCancelled as exc:  # a signal (SIGTERM) arrived during the read; its handler has run
        raise TrainingStopped(f"Stopped while reading CSV numbers ({exc})") from None
    values = np.empty((table.num_rows, width), dtype)
    for j, column in enumerate(table.columns):
        values[:, j] = column.to_numpy()
    return values


def numbers_per_line(text: bytes) -> np.ndarray | None:
    """The float64 value of every non-blank line of `text` (~5x `np.fromstring` on one core), or None
    (see `float_table`)."""
    table = float_table(text, 1, dtype=np.float64, block_size=4 << 20)
    return None if table is None else table[:, 0]
