"""A channel's feature check (`batches(check=...)`, `read_all(check=...)`) names where a bad record
is: the file and line (CSV in File mode, blank lines counted, gzip too), the file and record number
(recordIO, a RecordIO-wrapped object), the FIFO and record number (Pipe mode)."""
import functools
import gzip
import io
import os
import threading

import numpy as np
import pytest

from smalgos.channels import ChannelInput
from smalgos.config import ChannelConfig
from smalgos.declaration import Channel
from smalgos.errors import InputError
from smalgos.formats.protobuf import dense_to_recordio
from smalgos.formats.recordio import write_record
from smalgos.localjob import LocalJob
from smalgos.maths.inputs import check_finite

MESSAGE = "Channel 'train': {n} feature value(s) are {what}, the first in {place} (feature column {col})"


def channel(tmp_path, content_type="text/csv", mode="File", wrapper="None"):
    job = LocalJob(tmp_path)
    job.paths.channel_dir("train").mkdir(parents=True, exist_ok=True)
    config = ChannelConfig("train", mode, content_type, record_wrapper=wrapper)
    return job, ChannelInput(Channel("train", content_types=(content_type,)), config, job.paths, 1)


@pytest.mark.parametrize("read", ["batches", "read_all"])
@pytest.mark.parametrize("compress", [False, True])
def test_csv_in_file_mode_names_the_file_and_line(tmp_path, read, compress):
    job, ch = channel(tmp_path)
    job.add_file("train", "a.csv", b"1,1,1\n0,2,2\n" * 3)
    text = b"1,1,1\n\n0,1,nan\n1,inf,2\n"
    bad = job.add_file("train", "b.csv.gz" if compress else "b.csv", gzip.compress(text) if compress else text)
    with pytest.raises(InputError) as e:
        list(ch.batches(10, check=check_finite)) if read == "batches" else ch.read_all(check=check_finite)
    assert e.value.message.startswith(MESSAGE.format(n=2, what="NaN or infinite", place=f"line 3 of {bad}", col=2))


def test_allow_nan_refuses_only_infinity(tmp_path):
    job, ch = channel(tmp_path)
    bad = job.add_file("train", "a.csv", b"1,nan,1\n0,2,-inf\n")
    with pytest.raises(InputError) as e:
        ch.read_all(check=functools.partial(check_finite, allow_nan=True))
    assert e.value.message.startswith(MESSAGE.format(n=1, what="infinite", place=f"line 2 of {bad}", col=2))
    job.add_file("train", "a.csv", b"1,nan,1\n0,2,3\n")
    assert ch.read_all(check=functools.partial(check_finite, allow_nan=True)).features.shape == (2, 2)


def test_recordio_names_the_record(tmp_path):
    job, ch = channel(tmp_path, "application/x-recordio-protobuf")
    x = np.ones((7, 3), np.float32)
    x[5, 0] = np.inf
    bad = job.add_file("train", "a.pbr", dense_to_recordio(x, labels=np.zeros(7, np.float32)))
    with pytest.raises(InputError) as e:
        list(ch.batches(3, check=check_finite))
    assert e.value.message.startswith(MESSAGE.format(n=1, what="NaN or infinite", place=f"record 6 of {bad}", col=1))


def test_a_recordio_wrapped_object_is_named_with_its_record(tmp_path):
    job, ch = channel(tmp_path, wrapper="RecordIO")
    buf = io.BytesIO()
    write_record(buf, b"1,1,1\n")
    write_record(buf, b"1,1,1\n0,nan,1\n")
    bad = job.add_file("train", "w.rec", buf.getvalue())
    with pytest.raises(InputError) as e:
        list(ch.batches(10, check=check_finite))
    place = f"record 2 of {bad} (wrapped object 1)"
    assert e.value.message.startswith(MESSAGE.format(n=1, what="NaN or infinite", place=place, col=1))


def test_pipe_mode_names_the_fifo_and_record(tmp_path):
    job, ch = channel(tmp_path, mode="Pipe")
    fifo = job.paths.channel_fifo("train", 0)
    os.mkfifo(fifo)

    def write():
        with open(fifo, "wb") as out:
            out.write(b"1,1,1\n\n0,1,1\n1,nan,2\n")

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    with pytest.raises(InputError) as e:
        list(ch.batches(10, check=check_finite))
    writer.join(5)
    assert e.value.message.startswith(MESSAGE.format(n=1, what="NaN or infinite", place=f"record 3 of {fifo}", col=1))


def test_without_a_check_values_pass_through(tmp_path):
    job, ch = channel(tmp_path)
    job.add_file("train", "a.csv", b"1,nan,1\n")
    assert np.isnan(next(iter(ch.batches(10))).features[0, 0])
