"""MXNet image records (IRHeader), .rec files, .lst files and image decoding."""
import struct

import numpy as np
import pytest

from smalgos.errors import ClientError
from smalgos.formats.recordio import MAGIC, frame
from smalgos.vision.recordio_images import (
    Header, RecordFile, decode_image, encode_image, pack, pack_img, read_lst, unpack, write_rec)


def test_single_label_header_is_mxnet_s_layout():
    payload = pack(Header(0, 3.0, 7, 0), b"IMG")
    assert payload == struct.pack("<IfQQ", 0, 3.0, 7, 0) + b"IMG"
    header, image = unpack(payload)
    assert (header.flag, header.label, header.id, image) == (0, 3.0, 7, b"IMG")


def test_multi_label_header_sets_flag_and_follows_with_float32_labels():
    payload = pack(Header(0, [1, 0, 1], 8, 2), b"JPEG")
    assert payload[:24] == struct.pack("<IfQQ", 3, 0.0, 8, 2)
    assert payload[24:36] == np.array([1, 0, 1], "<f4").tobytes() and payload[36:] == b"JPEG"
    header, image = unpack(payload)
    assert header.flag == 3 and header.labels.tolist() == [1, 0, 1] and image == b"JPEG"


def test_short_payloads_are_named():
    with pytest.raises(ClientError, match="record 4: 10 bytes, shorter than the 24-byte image record header"):
        unpack(b"x" * 10, "record 4")
    with pytest.raises(ClientError, match="header says 5 labels follow"):
        unpack(struct.pack("<IfQQ", 5, 0, 0, 0) + b"abcd", "r")


def test_rec_file_indexes_records_and_joins_multi_part_ones(tmp_path):
    pixels = np.full((4, 5, 3), 200, np.uint8)
    magic = struct.pack("<I", MAGIC)
    a, b = pack_img(Header(0, 1.0, 0), pixels, img_fmt=".png"), pack(Header(0, [0, 1], 1), magic + b"tail")
    # b as dmlc's writer stores a record holding the magic at an aligned offset (32): parts cflag 1
    # and 3, the magic itself left out
    first, last = b[:32], b[36:]
    path = tmp_path / "d.rec"
    path.write_bytes(frame(a) + frame(first, cflag=1) + frame(last, cflag=3))
    rec = RecordFile(path)
    assert len(rec) == 2
    assert rec.payload(0) == a
    assert rec.payload(1) == b
    assert rec.header(0, "r0").label == 1.0 and rec.header(1, "r1").labels.tolist() == [0, 1]
    assert (decode_image(unpack(rec.payload(0))[1], "r0") == pixels).all()


def test_rec_file_errors_name_file_record_and_offset(tmp_path):
    path = tmp_path / "bad.rec"
    write_rec(path, [b"a" * 30])
    path.write_bytes(path.read_bytes() + b"\0" * 8)
    with pytest.raises(ClientError, match=r"bad.rec: record index 1 at byte offset 40: bad RecordIO magic "
                                          r"0x00000000 \(expected 0xced7230a\)"):
        RecordFile(path)


def test_undecodable_image_is_named():
    with pytest.raises(ClientError, match=r"^train.rec: record 3: the image cannot be decoded \(Unidentified"):
        decode_image(b"not an image", "train.rec: record 3")
    grey = decode_image(encode_image(np.zeros((3, 3, 3), np.uint8), "PNG"), "x", channels=1)
    assert grey.shape == (3, 3, 1)


@pytest.mark.parametrize("text, message", [
    ("0\t1\n", "x.lst line 1: expected index<TAB>label(s)<TAB>image path, found 2 tab-separated field(s)"),
    ("a\t1\tp.jpg\n", "x.lst line 1: index 'a' is not an integer"),
    ("0\tcat\tp.jpg\n", "x.lst line 1: labels ['cat'] are not numbers"),
    ("0\t1\tp.jpg\n\n0\t2\tq.jpg\n", "x.lst line 3: index 0 is also on line 1 (indices must be unique)"),
    ("0\t1\t \n", "x.lst line 1: the image path (last field) is empty"),
    ("\n", "x.lst: the list file holds no entries"),
])
def test_lst_errors(tmp_path, text, message):
    (tmp_path / "x.lst").write_text(text)
    with pytest.raises(ClientError) as info:
        read_lst(tmp_path / "x.lst", "x.lst")
    assert info.value.message == message


def test_lst_single_and_multi_label(tmp_path):
    (tmp_path / "x.lst").write_text("5\t2\ta/b.jpg\n6\t1\t0\t1\tc.png\n")
    one, many = read_lst(tmp_path / "x.lst")
    assert (one.index, one.labels.tolist(), one.path, one.line) == (5, [2.0], "a/b.jpg", 1)
    assert many.labels.tolist() == [1, 0, 1] and many.path == "c.png"
