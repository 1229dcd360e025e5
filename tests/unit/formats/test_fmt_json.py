import json

import numpy as np
import pytest

from smalgos.errors import ClientError
from smalgos.formats import (JSONDecoder, JSONEncoder, JSONLinesDecoder, JSONLinesEncoder, Predictions,
                             decode_json, decode_jsonlines, parse_media_type)


def test_instances_features_form():
    b = decode_json(b'{"instances": [{"features": [1.5, 16.0, 14, 23]}, {"features": [0, 1, 2, 3]}]}')
    np.testing.assert_array_equal(b.features, [[1.5, 16, 14, 23], [0, 1, 2, 3]])
    assert b.features.dtype == np.float32 and b.labels is None


def test_instances_data_form_and_mixing():
    body = json.dumps({"instances": [
        {"data": {"features": {"values": [1, 2, 3]}}},
        {"features": [4, 5, 6], "configuration": {"k": 1}},
    ]}).encode()
    np.testing.assert_array_equal(decode_json(body).features, [[1, 2, 3], [4, 5, 6]])


def test_sparse_instances_give_csr():
    body = json.dumps({"instances": [
        {"data": {"features": {"keys": [1, 3], "shape": [5], "values": [0.5, 2]}}},
        {"features": [1, 2]},
        {"data": {"features": {"keys": [], "shape": [5], "values": []}}},
    ]}).encode()
    b = decode_json(body)
    assert b.is_sparse
    np.testing.assert_array_equal(b.features.toarray(), [[0, 0.5, 0, 2, 0], [1, 2, 0, 0, 0], [0] * 5])


@pytest.mark.parametrize("body,message", [
    (b'{"instances": [{"features": [1]}, {"feature": [2]}]}',
     'request body: instance 1: no "features" and no "data" field; expected {"features": [...]}'),
    (b'{"instances": [{"features": [1, 2]}, {"features": [1, "x"]}]}',
     'request body: instance 1: "features"[1] is "x", not a number'),
    (b'{"instances": [{"features": [1, 2]}, {"features": [1, null]}]}',
     'request body: instance 1: "features"[1] is null, not a number'),
    (b'{"instances": [{"features": [1, 2]}, {"features": [1, 2, 3]}]}',
     "request body: instance 1: 3 features, but request body: instance 0 has 2 (dense instances"),
    (b'{"instances": [{"data": {"features": {"keys": [1], "values": [2]}}}]}',
     'request body: instance 0: sparse features ("keys") without a "shape"'),
    (b'{"instances": [{"data": {"features": {"keys": [9], "shape": [5], "values": [2]}}}]}',
     "request body: instance 0: key 9 is not an integer in [0, 5)"),
    (b'{"instances": [{"data": {"features": {"keys": [1, 2], "shape": [5], "values": [2]}}}]}',
     'request body: instance 0: 2 "keys" but 1 "values"'),
    (b'{"instances": [{"data": {"features": {"vals": [1]}}}]}',
     'request body: instance 0: "data"."features" has no "values" field'),
    (b'{"instances": [[1, 2]]}', "request body: instance 0: expected an object"),
    (b'[[1, 2]]', 'request body: expected {"instances": [...]}'),
    (b'{"instances": [', "request body: not valid JSON (Expecting value: line 1 column 16"),
    (b'\xff{', "request body: not valid JSON"),
])
def test_json_errors_name_the_instance(body, message):
    with pytest.raises(ClientError) as e:
        decode_json(body)
    assert e.value.message.startswith(message), e.value.message


def test_jsonlines_mixed_forms_blank_lines():
    body = b'{"features": [1, 2]}\n\n{"data": {"features": {"values": [3, 4]}}}\r\n'
    b = JSONLinesDecoder().decode(body, parse_media_type("application/x-jsonlines"))
    np.testing.assert_array_equal(b.features, [[1, 2], [3, 4]])


def test_jsonlines_errors_name_the_line():
    with pytest.raises(ClientError) as e:
        decode_jsonlines(b'{"features": [1]}\n\n{"features": [2]\n')
    assert e.value.message.startswith("request body: line 3: not valid JSON (Expecting ',' delimiter")
    with pytest.raises(ClientError) as e:
        decode_jsonlines(b'{"features": [1]}\n{"data": 5}\n')
    assert e.value.message.startswith('request body: line 2: "data" must hold a "features" object')


def test_json_iter_batches_slices_the_document(pipe_feed):
    body = json.dumps({"instances": [{"features": [i, i]} for i in range(7)]}).encode()
    with pipe_feed(body, piece=9) as stream:
        batches = list(JSONDecoder().iter_batches(stream, parse_media_type("application/json"),
                                                  batch_size=3, source="x"))
    assert [b.features[:, 0].tolist() for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]


def test_jsonlines_iter_batches_through_a_pipe(pipe_feed):
    lines = [json.dumps({"features": [i, -i]}) if i % 2 else
             json.dumps({"data": {"features": {"values": [i, -i]}}}) for i in range(25)]
    body = ("\n".join(lines) + "\n").encode()
    with pipe_feed(body, piece=11) as stream:
        batches = list(JSONLinesDecoder().iter_batches(
            stream, parse_media_type("application/jsonlines"), batch_size=10, source="x",
            chunk_size=40))
    assert [len(b) for b in batches] == [10, 10, 5]
    np.testing.assert_array_equal(np.concatenate([b.features for b in batches]),
                                  decode_jsonlines(body).features)


def test_jsonlines_stream_error_has_the_global_line(pipe_feed):
    body = b'{"features": [1]}\n' * 9 + b'{"features": [x]}\n'
    with pipe_feed(body, piece=5) as stream, pytest.raises(ClientError) as e:
        list(JSONLinesDecoder().iter_batches(stream, parse_media_type("application/jsonlines"),
                                             batch_size=4, source="train", chunk_size=30))
    assert e.value.message.startswith("train: line 10: not valid JSON")


PREDS = Predictions({"closest_cluster": np.array([0, 2]),
                     "distance_to_cluster": np.array([7.6, 0.3], np.float32),
                     "v": np.array([[0.1, np.nan], [np.inf, 1e-5]], np.float32)})


def test_json_encoder_exact_text():
    out = JSONEncoder().encode(PREDS)
    assert out == (b'{"predictions": [{"closest_cluster": 0.0, "distance_to_cluster": 7.6, "v": [0.1, null]}, '
                   b'{"closest_cluster": 2.0, "distance_to_cluster": 0.3, "v": [null, 0.00001]}]}')
    assert json.loads(out)["predictions"][1]["closest_cluster"] == 2.0


def test_json_encoder_root_key_and_empty():
    pca = Predictions({"projection": np.array([[1, 2]], np.float32)})
    assert JSONEncoder().encode(pca, root_key="projections") == b'{"projections": [{"projection": [1.0, 2.0]}]}'
    assert JSONEncoder().encode(Predictions({"score": np.zeros(0)})) == b'{"predictions": []}'


def test_jsonlines_encoder_one_object_per_line():
    out = JSONLinesEncoder().encode(PREDS)
    lines = out.split(b"\n")
    assert out.endswith(b"\n") and len(lines) == 3 and lines[2] == b""
    assert lines[0] == b'{"closest_cluster": 0.0, "distance_to_cluster": 7.6, "v": [0.1, null]}'


def test_encoded_values_read_back_as_the_same_float32():
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(1000) * 10.0 ** rng.integers(-8, 8, 1000)).astype(np.float32)
    out = json.loads(JSONEncoder().encode(Predictions({"score": x})))
    np.testing.assert_array_equal(np.array([r["score"] for r in out["predictions"]], np.float32), x)


@pytest.mark.parametrize("decode, body, where", [
    (decode_json, b"[" * 100_000, "req: JSON nested too deeply"),
    (decode_json, b'{"instances": [{"features": ' + b"[" * 100_000 + b"]}]}", "req: JSON nested too deeply"),
    (decode_jsonlines, b'{"features": [1]}\n\n' + b"[" * 100_000, "req: line 3: JSON nested too deeply"),
], ids=["json", "json-in-features", "jsonlines"])
def test_deeply_nested_json_is_a_client_error_naming_the_body(decode, body, where):
    with pytest.raises(ClientError) as e:
        decode(body, source="req")
    assert e.value.message.startswith(where)


def test_nested_features_the_decoder_can_read_are_a_client_error_too():
    # deep enough that numpy refuses it, shallow enough that json reads it
    inner = b"[" * 200 + b"1" + b"]" * 200
    with pytest.raises(ClientError, match=r"req: instance 0: \"features\"\[1\] is \[\[\["):
        decode_json(b'{"instances": [{"features": [1, ' + inner + b"]}]}", source="req")


# -- the "simple numeric vector" data element and a lone instance (DG cdf-inference; audit X-1) ----

@pytest.mark.parametrize("body", [
    {"instances": [{"data": {"features": [1.5, 2.0]}}, {"data": {"features": [3, 4]}}]},
    {"instances": [{"data": {"features": [1.5, 2.0]}, "configuration": {}},
                   {"data": {"features": {"values": [3, 4]}}}]},
    {"instances": [{"data": {"features": [1.5, 2.0]}}, {"features": [3, 4]}]},
], ids=["vectors", "vector-and-values", "vector-and-features"])
def test_data_element_as_a_plain_numeric_vector(body):
    b = decode_json(json.dumps(body).encode())
    assert not b.is_sparse and b.features.dtype == np.float32
    np.testing.assert_array_equal(b.features, [[1.5, 2.0], [3, 4]])


def test_plain_vector_mixes_with_sparse_instances_and_in_jsonlines():
    body = json.dumps({"instances": [{"data": {"features": [1, 2]}},
                                     {"data": {"features": {"keys": [3], "shape": [4], "values": [5]}}}]})
    np.testing.assert_array_equal(decode_json(body.encode()).features.toarray(), [[1, 2, 0, 0], [0, 0, 0, 5]])
    lines = b'{"data": {"features": [1, 2]}}\n{"features": [3, 4]}\n{"data": {"features": {"values": [5, 6]}}}\n'
    np.testing.assert_array_equal(decode_jsonlines(lines).features, [[1, 2], [3, 4], [5, 6]])


@pytest.mark.parametrize("record", [
    {"data": {"features": {"values": [1.5, 2.0]}}},
    {"data": {"features": [1.5, 2.0]}},
    {"features": [1.5, 2.0]},
    {"data": {"features": {"keys": [0, 1], "shape": [2], "values": [1.5, 2.0]}}},
], ids=["values", "vector", "features", "sparse"])
def test_a_lone_instance_as_the_whole_json_body_is_one_record(record):
    b = JSONDecoder().decode(json.dumps(record).encode(), parse_media_type("application/json"))
    assert len(b) == 1
    f = b.features.toarray() if b.is_sparse else b.features
    np.testing.assert_array_equal(f, [[1.5, 2.0]])


@pytest.mark.parametrize("body,message", [
    (b'{"instances": [{"data": {"features": [1, "x"]}}]}',
     'request body: instance 0: "data"."features"[1] is "x", not a number'),
    (b'{"instances": [{"data": {"features": [1, [2, 3]]}}]}',
     'request body: instance 0: "data"."features"[1] is [2, 3], not a number'),
    (b'{"instances": [{"data": {"features": "1,2"}}]}',
     'request body: instance 0: "data"."features" must be a list of numbers or an object with "values", got str'),
    (b'{"instances": [{"data": {"features": {"values": [1, null]}}}]}',
     'request body: instance 0: "data"."features"."values"[1] is null, not a number'),
    (b'{"instances": [{"data": {"features": {"values": 3}}}]}',
     'request body: instance 0: "data"."features"."values" must be a list of numbers, got int'),
    (b'{"instances": [{"data": {"features": {"keys": [0, "a"], "shape": [3], "values": [1, 2]}}}]}',
     'request body: instance 0: "data"."features"."keys"[1] is "a", not a number'),
    (b'{"instances": [{"data": {"features": {"keys": [0], "shape": "3", "values": [1]}}}]}',
     'request body: instance 0: "data"."features"."shape" must be a list of numbers, got str'),
    (b'{"instances": [{"data": null}]}',
     'request body: instance 0: "data" must hold a "features" object or list, got null'),
    (b'{"instances": [{"data": {"feature": [1]}}]}',
     'request body: instance 0: "data" must hold a "features" object or list, got an object with keys ["feature"]'),
    # a lone instance: the body itself is the record, so the path starts at the body
    (b'{"data": {"features": [1, 2, "3"]}}', 'request body: "data"."features"[2] is "3", not a number'),
    (b'{"data": {"features": {"values": [[1]]}}}',
     'request body: "data"."features"."values"[0] is [1], not a number'),
    (b'{"data": 5}', 'request body: "data" must hold a "features" object or list, got 5'),
    (b'{"feature": [1]}', 'request body: expected {"instances": [...]}'),
])
def test_malformed_data_elements_name_the_key_path(body, message):
    with pytest.raises(ClientError) as e:
        decode_json(body)
    assert e.value.message.startswith(message), e.value.message
