import io

import numpy as np
import pytest
import scipy.sparse as sp

from smalgos.errors import ClientError
from smalgos.formats import (Predictions, RecordIOProtobufDecoder, RecordIOProtobufEncoder,
                             decode_predictions, dense_to_recordio, parse_media_type,
                             sparse_to_recordio)
from smalgos.formats import protobuf as pb
from smalgos.formats import recordio
from smalgos.formats.record_pb2 import Record

RNG = np.random.default_rng(7)
PB = parse_media_type("application/x-recordio-protobuf")


def _matrix(dtype, n=23, d=6):
    if np.dtype(dtype) == np.dtype(int):
        return RNG.integers(-300, 300, (n, d)).astype(dtype)
    return (RNG.standard_normal((n, d)) * 100).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("with_labels", [False, True])
def test_dense_sdk_bytes_decode_and_our_writer_is_byte_identical(sdk_dense, dtype, with_labels):
    X = _matrix(dtype)
    y = np.arange(X.shape[0]).astype(dtype) * 3 - 5 if with_labels else None
    data = sdk_dense(X, y)
    assert dense_to_recordio(X, y) == data
    batch = pb.decode(data)
    np.testing.assert_array_equal(batch.features, X.astype(np.float32))
    assert batch.features.dtype == np.float32 and batch.features.flags.c_contiguous
    if with_labels:
        np.testing.assert_array_equal(batch.labels, y.astype(np.float32))
    else:
        assert batch.labels is None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_labels", [False, True])
def test_sparse_sdk_bytes_decode_to_csr(sdk_sparse, dtype, with_labels):
    M = sp.random(40, 300, density=0.05, random_state=3, format="csr", dtype=dtype)
    M = sp.vstack([M[:5], sp.csr_matrix((1, 300), dtype=dtype), M[5:]]).tocsr()  # an empty row
    y = np.linspace(0, 1, 41).astype(dtype) if with_labels else None
    data = sdk_sparse(M, y)
    assert sparse_to_recordio(M, y) == data
    batch = pb.decode(data)
    assert batch.is_sparse and batch.features.shape == (41, 300)
    assert batch.features.dtype == np.float32
    np.testing.assert_array_equal(batch.features.toarray(), M.toarray().astype(np.float32))
    if with_labels:
        np.testing.assert_array_equal(batch.labels, y.astype(np.float32))


def test_sdk_record_serializer_request_decodes(sdk):
    from sagemaker.serializers import RecordSerializer

    X = _matrix(np.float32, n=5, d=3)
    body = RecordSerializer().serialize(X).read()
    np.testing.assert_array_equal(RecordIOProtobufDecoder().decode(body, PB).features, X)
    one = RecordSerializer().serialize(X[0]).read()       # a 1-D array: one record
    np.testing.assert_array_equal(pb.decode(one).features, X[:1])


def _records(*recs):
    return recordio.frame_records(r.SerializeToString() for r in recs)


def test_one_record_without_its_recordio_framing_decodes(sdk):
    # Batch transform with SplitType=RecordIO + SingleRecord sends each record with its framing stripped.
    from sagemaker.serializers import RecordSerializer

    X = _matrix(np.float32, n=1, d=4)
    framed = RecordSerializer().serialize(X).read()
    (bare,) = recordio.read_records(framed)
    assert bare[:4] != recordio.MAGIC_BYTES
    np.testing.assert_array_equal(RecordIOProtobufDecoder().decode(bare, PB).features, X)
    with pytest.raises(ClientError):  # bytes that are neither framed nor a Record stay a client error
        RecordIOProtobufDecoder().decode(b"\xff\xfe not a record", PB)


def _dense_record(values, label=None, uid=None, tensor="float32_tensor"):
    r = Record()
    getattr(r.features["values"], tensor).values.extend(values)
    if label is not None:
        r.label["values"].float32_tensor.values.extend(np.atleast_1d(label))
    if uid is not None:
        r.uid = uid
    return r


def _sparse_record(values, keys, shape=None, tensor="float32_tensor"):
    r = Record()
    t = getattr(r.features["values"], tensor)
    t.values.extend(values)
    t.keys.extend(keys)
    if shape is not None:
        t.shape.extend(shape)
    return r


def _forbid(monkeypatch, *names):
    def boom(*a, **k):
        raise AssertionError("tier not expected here")
    for name in names:
        monkeypatch.setattr(pb, name, boom)


@pytest.mark.parametrize("tier", ["template", "lockstep", "general"])
def test_each_tier_decodes_the_same(monkeypatch, tier):
    X = _matrix(np.float32, n=40, d=4)      # 16 records or more: the bulk tiers are used
    y = np.arange(40, dtype=np.float32)
    if tier == "template":
        data = dense_to_recordio(X, y)
        _forbid(monkeypatch, "_flat_from_scan", "_flat_general")
    elif tier == "lockstep":
        data = dense_to_recordio(X, y)
        monkeypatch.setattr(pb._Template, "of", classmethod(lambda cls, *a: None))
        _forbid(monkeypatch, "_flat_general")
    else:
        data = _records(*[_dense_record(X[i], y[i], uid=f"r{i}") for i in range(40)])
        _forbid(monkeypatch, "_flat_from_scan")
        monkeypatch.setattr(pb._Template, "of", classmethod(lambda cls, *a: pytest.fail("tier 1 tried")))
    batch = pb.decode(data)
    np.testing.assert_array_equal(batch.features, X)
    np.testing.assert_array_equal(batch.labels, y)


def test_template_refuses_records_that_differ_outside_values(monkeypatch):
    # same sizes, but record 1 names its map entry "valueX": not the SDK layout → general path
    recs = [_dense_record([1, 2]), _dense_record([3, 4])]
    recs[1].features["valueX"].CopyFrom(recs[1].features["values"])
    del recs[1].features["values"]
    with pytest.raises(ClientError, match=r'record index 1 .*no features\["values"\] tensor'):
        pb.decode(_records(*recs))


def test_int32_negative_values_and_varying_lengths_take_the_lockstep_path():
    vals = [[-1, 2, -2147483648], [2147483647, 0, 5], [-7, 300, 1]]
    data = _records(*[_dense_record(v, tensor="int32_tensor") for v in vals])
    np.testing.assert_array_equal(pb.decode(data).features, np.array(vals, np.float32))


def test_vector_labels_become_2d():
    data = _records(_dense_record([1, 2], [0.5, 1.5]), _dense_record([3, 4], [2.5, 3.5]))
    np.testing.assert_array_equal(pb.decode(data).labels, [[0.5, 1.5], [2.5, 3.5]])


def test_sparse_rank2_shape_flattens_row_major():
    data = _records(_sparse_record([1.0, 2.0], [0, 5], shape=[2, 3]))
    np.testing.assert_array_equal(pb.decode(data).features.toarray(), [[1, 0, 0, 0, 0, 2]])


def test_dense_record_inside_a_sparse_batch_keeps_its_positions():
    data = _records(_sparse_record([5.0], [3], shape=[4]), _dense_record([1, 2]))
    np.testing.assert_array_equal(pb.decode(data).features.toarray(), [[0, 0, 0, 5], [1, 2, 0, 0]])


@pytest.mark.parametrize("extra_uid", [False, True], ids=["lockstep", "general"])
def test_sparse_without_shape_names_the_record(extra_uid):
    recs = [_sparse_record([1.0], [0], shape=[3]), _sparse_record([1.0, 2.0], [0, 2])]
    if extra_uid:
        recs[0].uid = "x"
    data = _records(*recs)
    offset = len(recordio.frame(recs[0].SerializeToString()))
    with pytest.raises(ClientError) as e:
        pb.decode(data)
    assert e.value.message == (f"request body: record index 1 at byte offset {offset}: sparse features "
                               "(keys) without a shape; a sparse tensor must give its shape")


@pytest.mark.parametrize("extra_uid", [False, True], ids=["lockstep", "general"])
def test_dense_records_of_different_lengths(extra_uid):
    recs = [_dense_record([1, 2, 3, 4], uid="a" if extra_uid else None), _dense_record([1, 2, 3])]
    offset = len(recordio.frame(recs[0].SerializeToString()))
    with pytest.raises(ClientError) as e:
        pb.decode(_records(*recs))
    assert e.value.message == (f"request body: record index 1 at byte offset {offset}: 3 feature "
                               "values, but record index 0 has 4 (dense records must all have the "
                               "same length)")


def test_label_on_some_records_only():
    data = _records(_dense_record([1, 2], 1.0), _dense_record([3, 4]), _dense_record([5, 6], 0.0))
    with pytest.raises(ClientError, match=r"record index 1 at byte offset \d+: no label, but record "
                                          r"index 0 has one"):
        pb.decode(data)


def test_keys_outside_shape_and_key_value_count_mismatch():
    with pytest.raises(ClientError, match=r"record index 0 at byte offset 0: key 7 is outside the "
                                          r"shape \[5\]"):
        pb.decode(_records(_sparse_record([1.0], [7], shape=[5])))
    with pytest.raises(ClientError, match=r"record index 0 at byte offset 0: 2 keys but 1 values"):
        pb.decode(_records(_sparse_record([1.0], [1, 2], shape=[5])))


def test_not_a_record_and_unsupported_tensor():
    with pytest.raises(ClientError, match=r"record index 1 at byte offset 40: not a valid Record "
                                          r"protobuf"):
        pb.decode(_records(_dense_record([1, 2, 3, 4])) + recordio.frame(b"\xff\xff\xff"))
    r = Record()
    r.features["values"].bytes.value.append(b"jpeg")
    with pytest.raises(ClientError, match=r'features\["values"\] is bytes; only Float32, Float64 and '
                                          r'Int32 tensors are read'):
        pb.decode(_records(r))
    r = Record()
    r.features["other"].float32_tensor.values.append(1.0)
    with pytest.raises(ClientError, match=r"no features\[\"values\"\] tensor \(features has \['other'\]\)"):
        pb.decode(_records(r))


def test_empty_body_is_zero_records():
    batch = pb.decode(b"")
    assert len(batch) == 0 and batch.labels is None


def test_a_multipart_record_decodes():
    payload = _dense_record([1.5, -2.0, 3.0]).SerializeToString()
    # cut the payload in three parts as a dmlc writer would around magic words
    parts = [payload[:4], payload[4:9], payload[9:]]
    joined = recordio.MAGIC_BYTES.join(parts)
    data = b"".join(recordio.frame(p, f) for p, f in zip(parts, [1, 2, 3]))
    assert recordio.read_records(data) == [joined]


def test_encoder_is_read_by_the_sdk_record_deserializer():
    from sagemaker.deserializers import RecordDeserializer

    preds = Predictions({"closest_cluster": np.array([0, 3]),
                         "distance_to_cluster": np.array([7.25, 0.5], np.float32),
                         "probs": np.array([[0.1, 0.9], [0.6, 0.4]], np.float32)})
    body = RecordIOProtobufEncoder().encode(preds)
    records = RecordDeserializer().deserialize(io.BytesIO(body), "application/x-recordio-protobuf")
    assert len(records) == 2
    assert list(records[1].label["closest_cluster"].float32_tensor.values) == [3.0]
    assert list(records[0].label["distance_to_cluster"].float32_tensor.values) == [7.25]
    np.testing.assert_array_equal(records[1].label["probs"].float32_tensor.values,
                                  np.array([0.6, 0.4], np.float32))
    assert len(records[0].features) == 0
    expected = Record()
    for name, v in [("closest_cluster", [0.0]), ("distance_to_cluster", [7.25]), ("probs", [0.1, 0.9])]:
        expected.label[name].float32_tensor.values.extend(v)
    assert records[0] == expected
    back = decode_predictions(body)
    assert list(back.fields) == ["closest_cluster", "distance_to_cluster", "probs"]
    np.testing.assert_array_equal(back.fields["probs"], preds.fields["probs"])


def test_encoder_scalar_field_with_long_name_and_many_rows():
    name = "x" * 200          # a name over 127 bytes needs a two-byte length varint
    preds = Predictions({name: np.arange(300, dtype=np.float32)})
    back = decode_predictions(RecordIOProtobufEncoder().encode(preds))
    np.testing.assert_array_equal(back.fields[name], np.arange(300, dtype=np.float32))


@pytest.mark.parametrize("sparse", [False, True])
def test_iter_batches_through_a_pipe_equals_whole_decode(pipe_feed, sparse, sdk_dense, sdk_sparse):
    if sparse:
        M = sp.random(57, 40, density=0.1, random_state=5, format="csr", dtype=np.float32)
        data = sdk_sparse(M, np.arange(57, dtype=np.float32))
    else:
        data = sdk_dense(_matrix(np.float32, n=57, d=5), np.arange(57, dtype=np.float32))
    whole = pb.decode(data)
    with pipe_feed(data, piece=13) as stream:
        batches = list(RecordIOProtobufDecoder().iter_batches(stream, PB, batch_size=10,
                                                              source="train", chunk_size=100))
    assert [len(b) for b in batches] == [10] * 5 + [7]
    got = pb.Batch.concat(batches)
    a = got.features.toarray() if sparse else got.features
    b = whole.features.toarray() if sparse else whole.features
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(got.labels, whole.labels)


def test_iter_batches_error_names_the_stream_record(pipe_feed):
    good = dense_to_recordio(_matrix(np.float32, n=12, d=2))
    bad = _records(_sparse_record([1.0], [0]))
    with pipe_feed(good + bad, piece=50) as stream, pytest.raises(ClientError) as e:
        list(RecordIOProtobufDecoder().iter_batches(stream, PB, batch_size=5, source="train_0",
                                                    chunk_size=64))
    assert e.value.message.startswith(f"train_0: record index 12 at byte offset {len(good)}: sparse "
                                      "features (keys) without a shape")


def test_pipe_mode_fifo_sparse_training_stream(fifo_feed, sdk_sparse):
    M = sp.random(300, 50, density=0.1, random_state=9, format="csr", dtype=np.float32)
    y = np.arange(300, dtype=np.float32)
    data = sdk_sparse(M, y)
    with fifo_feed(data, piece=333) as stream:
        batches = list(RecordIOProtobufDecoder().iter_batches(stream, PB, batch_size=128,
                                                              source="train_0", chunk_size=1000))
    assert [len(b) for b in batches] == [128, 128, 44]
    np.testing.assert_array_equal(sp.vstack([b.features for b in batches]).toarray(), M.toarray())
    np.testing.assert_array_equal(np.concatenate([b.labels for b in batches]), y)


def test_streaming_dense_width_must_not_change_between_batches(pipe_feed):
    data = dense_to_recordio(_matrix(np.float32, n=6, d=3)) + dense_to_recordio(_matrix(np.float32, n=4, d=2))
    with pipe_feed(data, piece=64) as stream, pytest.raises(ClientError) as e:
        list(RecordIOProtobufDecoder().iter_batches(stream, PB, batch_size=3, source="train_0"))
    assert e.value.message == ("train_0: record index 6 at byte offset 216: 2 feature values, but the "
                               "records before have 3 (dense records must all have the same length)")


def test_a_stream_scans_its_layout_once_and_reads_the_rest_by_it(monkeypatch):
    X, y = _matrix(np.float32, n=200, d=5), np.arange(200, dtype=np.float32)
    calls = []
    scan = pb._scan
    monkeypatch.setattr(pb, "_scan", lambda *a: calls.append(1) or scan(*a))
    batches = list(RecordIOProtobufDecoder().iter_batches(io.BytesIO(dense_to_recordio(X, y)), PB,
                                                          batch_size=20, source="train"))
    assert len(batches) == 10 and len(calls) == 1
    np.testing.assert_array_equal(pb.Batch.concat(batches).features, X)
    np.testing.assert_array_equal(pb.Batch.concat(batches).labels, y)


def test_a_later_block_off_the_known_layout_is_read_and_judged_afresh():
    # record 25 (in the second block) names its map entry "valueX": the first block's layout does
    # not fit it, so the block is parsed again and the record is named, as without a known layout
    data = bytearray(dense_to_recordio(_matrix(np.float32, n=40, d=3)))
    stride = len(data) // 40
    at = data.index(b"values", 25 * stride)
    data[at:at + 6] = b"valueX"
    with pytest.raises(ClientError, match=r'record index 25 .*no features\["values"\] tensor'):
        list(RecordIOProtobufDecoder().iter_batches(io.BytesIO(bytes(data)), PB, batch_size=20,
                                                    source="train"))
