import json

import numpy as np
import pytest

from smalgos.declaration import load_algorithm
from smalgos.environment import ServingEnv
from smalgos.localjob import LocalJob
from smalgos.serving.app import create_app
from smalgos.serving.server import load_model
from smalgos.training.runner import run_training


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    job = LocalJob(tmp_path_factory.mktemp("job"))
    job.write_config({"num_classes": 2}, {"train": {"ContentType": "text/csv"}})
    job.add_file("train", "a.csv", b"0,0,0\n1,4,4\n")
    assert run_training("test-centroid", job.paths, install_signal_handler=False) == 0
    return load_model(load_algorithm("test-centroid"), job.paths.model_dir)


def client(model, **env):
    return create_app(load_algorithm("test-centroid"), model, ServingEnv.from_env(env)).test_client()


def test_ping_and_execution_parameters(model):
    c = client(model, SAGEMAKER_MODEL_SERVER_WORKERS="3")
    r = c.get("/ping")
    assert r.status_code == 200 and r.data == b""
    assert c.get("/execution-parameters").get_json() == {
        "MaxConcurrentTransforms": 3, "BatchStrategy": "MULTI_RECORD", "MaxPayloadInMB": 6}


def test_csv_in_json_out_by_default(model):
    r = client(model).post("/invocations", data=b"0,1\n4,3\n", content_type="text/csv")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.get_json() == {"predictions": [{"predicted_label": 0.0, "distance": 1.0},
                                            {"predicted_label": 1.0, "distance": 1.0}]}


def test_accept_list_first_supported_wins(model):
    r = client(model).post("/invocations", data=b"0,1\n", headers={
        "Content-Type": "text/csv", "Accept": "text/html, application/jsonlines, application/json"})
    assert r.mimetype == "application/jsonlines"
    assert r.data == b'{"predicted_label":0.0,"distance":1.0}\n' or \
        [json.loads(l) for l in r.data.decode().splitlines()] == [{"predicted_label": 0.0, "distance": 1.0}]


def test_contenttype_header_spelling_and_default_accept_env(model):
    c = client(model, SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT="application/jsonlines")
    r = c.post("/invocations", data=b'{"instances": [{"features": [4, 4]}]}',
               headers={"ContentType": "application/json", "Accept": "*/*"})
    assert r.status_code == 200 and r.mimetype == "application/jsonlines"
    assert json.loads(r.data) == {"predicted_label": 1.0, "distance": 0.0}


def test_recordio_protobuf_both_ways_with_the_sdk(model):
    import io
    from sagemaker.amazon.common import write_numpy_to_dense_tensor
    from sagemaker.deserializers import RecordDeserializer
    buf = io.BytesIO()
    write_numpy_to_dense_tensor(buf, np.array([[0, 1], [4, 3]], dtype=np.float32))
    r = client(model).post("/invocations", data=buf.getvalue(), headers={
        "Content-Type": "application/x-recordio-protobuf", "Accept": "application/x-recordio-protobuf"})
    assert r.status_code == 200 and r.mimetype == "application/x-recordio-protobuf"
    records = RecordDeserializer().deserialize(io.BytesIO(r.data), r.mimetype)
    assert [list(rec.label["predicted_label"].float32_tensor.values) for rec in records] == [[0.0], [1.0]]
    assert [list(rec.label["distance"].float32_tensor.values) for rec in records] == [[1.0], [1.0]]


@pytest.mark.parametrize("headers, body, status, fragment", [
    ({"Content-Type": "application/x-npy"}, b"\x93NUMPY", 415, "application/x-npy"),
    ({"Content-Type": "text/csv", "Accept": "text/html"}, b"0,1\n", 406, "text/html"),
    ({"Content-Type": "text/csv"}, b"0,1,2\n", 400, "Feature count mismatch: the model was trained on 2 features"
                                                   " but the request has 3"),
    ({"Content-Type": "text/csv"}, b"0,1\n1\n", 400, "line 2"),
    ({"Content-Type": "text/csv"}, b"0,abc\n", 400, "line 1"),
    ({"Content-Type": "text/csv"}, b"", 400, "empty"),
    ({"Content-Type": "application/json"}, b'{"instances": [{"feature": [1, 2]}]}', 400, "features"),
    ({"Content-Type": "application/json"}, b"{not json", 400, "JSON"),
    ({"Content-Type": "text/csv; label_size=zz"}, b"0,1\n", 400, "label_size"),
    ({"Content-Type": "text/csv; colour=blue"}, b"0,1\n", 415, "colour"),
])
def test_bad_requests_get_their_4xx_and_the_server_keeps_serving(model, headers, body, status, fragment):
    c = client(model)
    r = c.post("/invocations", data=body, headers=headers)
    assert r.status_code == status, r.data
    err = r.get_json()
    assert fragment in err["message"], err
    assert c.post("/invocations", data=b"0,1\n", content_type="text/csv").status_code == 200


def test_payload_cap_gives_413_and_env_raises_it(model):
    body = b"0,1\n" * (300 * 1024)  # 1.2 MB
    r = client(model, SAGEMAKER_MAX_PAYLOAD_IN_MB="1").post("/invocations", data=body, content_type="text/csv")
    assert r.status_code == 413 and "1 MB" in r.get_json()["message"]
    r = client(model, SAGEMAKER_MAX_PAYLOAD_IN_MB="2").post("/invocations", data=body, content_type="text/csv")
    assert r.status_code == 200 and len(r.get_json()["predictions"]) == 300 * 1024


# --- chunked bodies, nesting, unparseable headers, logging and request ids, charset parameters ---

import http.client
import io
import logging
import re
import threading


def _chunked(c, body, **headers):
    # What gunicorn gives the app for "Transfer-Encoding: chunked": no Content-Length, and a
    # stream the server terminates (wsgi.input_terminated).
    return c.post("/invocations", input_stream=io.BytesIO(body),
                  headers={"Content-Type": "text/csv", "Transfer-Encoding": "chunked", **headers},
                  environ_overrides={"wsgi.input_terminated": True})


def test_chunked_body_over_the_cap_is_413_not_cut(model):
    c = client(model, SAGEMAKER_MAX_PAYLOAD_IN_MB="1")
    r = _chunked(c, b"0,1\n" * (300 * 1024))  # 1.2 MB, no Content-Length
    assert r.status_code == 413, r.data[:200]
    assert r.get_json()["error"] == "PayloadTooLarge" and "1 MB" in r.get_json()["message"]
    r = _chunked(c, b"0,1\n" * (256 * 1024))  # exactly 1 MiB: at the cap, not over it
    assert r.status_code == 200 and len(r.get_json()["predictions"]) == 256 * 1024
    r = c.post("/invocations", data=b"0,1\n" * (256 * 1024) + b"0", content_type="text/csv")
    assert r.status_code == 413  # one byte over, with a Content-Length


def test_chunked_body_over_the_cap_is_413_through_a_real_server(model):
    from werkzeug.serving import make_server
    app = create_app(load_algorithm("test-centroid"), model,
                     ServingEnv.from_env({"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"}))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        def post(n_lines):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            try:
                conn.request("POST", "/invocations", body=(b"0,1\n" * 1024 for _ in range(n_lines // 1024)),
                             headers={"Content-Type": "text/csv"}, encode_chunked=True)
                r = conn.getresponse()
                return r.status, r.read()
            finally:
                conn.close()
        status, body = post(300 * 1024)
        assert status == 413 and b"PayloadTooLarge" in body
        status, body = post(2 * 1024)
        assert status == 200 and len(json.loads(body)["predictions"]) == 2 * 1024
    finally:
        server.shutdown()


@pytest.mark.parametrize("content_type, body, fragment", [
    ("application/json", b"[" * 100_000, "request body"),
    ("application/json", b'{"instances": ' + b"[" * 100_000, "request body"),
    ("application/jsonlines", b'{"features": [0, 1]}\n' + b"[" * 100_000 + b"\n", "request body: line 2"),
], ids=["json-bare", "json-instances", "jsonlines"])
def test_deeply_nested_json_is_400_with_one_log_line(model, caplog, content_type, body, fragment):
    caplog.set_level(logging.INFO, logger="smalgos")
    r = client(model).post("/invocations", data=body, content_type=content_type)
    assert r.status_code == 400, r.data[:300]
    assert fragment in r.get_json()["message"] and "nested too deeply" in r.get_json()["message"]
    records = [rec for rec in caplog.records if rec.name == "smalgos"]
    assert len(records) == 1 and records[0].exc_info is None
    assert records[0].getMessage().startswith("POST /invocations 400: request body")


@pytest.mark.parametrize("headers, status, error", [
    ({"Content-Type": ";;;"}, 415, "UnsupportedContentType"),
    ({"Content-Type": "text/csv; =x"}, 415, "UnsupportedContentType"),
    ({"Content-Type": "text/"}, 415, "UnsupportedContentType"),
    ({"ContentType": ";;;"}, 415, "UnsupportedContentType"),
    ({"Content-Type": "text/csv", "Accept": ";;;"}, 406, "UnsupportedAccept"),
    ({"Content-Type": "text/csv", "Accept": "application/json; =x"}, 406, "UnsupportedAccept"),
])
def test_unparseable_content_type_is_415_and_accept_406(model, headers, status, error):
    r = client(model).post("/invocations", data=b"0,1\n", headers=headers)
    assert r.status_code == status and r.get_json()["error"] == error, r.data
    assert "cannot parse" in r.get_json()["message"]


def test_4xx_is_one_log_line_and_every_response_has_a_request_id(model, caplog):
    caplog.set_level(logging.INFO, logger="smalgos")
    c = client(model)
    ids = set()
    for r in (c.get("/ping"), c.post("/invocations", data=b"0,1\n", content_type="text/csv"),
              c.post("/invocations", data=b"0,1\n", content_type="application/x-npy"),
              c.get("/nowhere")):
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-Id"]), r.headers
        ids.add(r.headers["X-Request-Id"])
    assert len(ids) == 4
    lines = [rec for rec in caplog.records if rec.name == "smalgos" and rec.levelno >= logging.INFO]
    assert [rec.getMessage().split(":")[0] for rec in lines] == ["POST /invocations 415", "GET /nowhere 404"]
    assert "application/x-npy" in lines[0].getMessage()
    assert all(rec.exc_info is None for rec in lines)


class _Boom:
    def predict(self, batch, accept):
        raise ZeroDivisionError("secret detail of the model")


def test_500_is_generic_with_the_request_id_and_the_traceback_in_the_log(caplog):
    caplog.set_level(logging.INFO, logger="smalgos")
    c = create_app(load_algorithm("test-centroid"), _Boom(), ServingEnv.from_env({})).test_client()
    r = c.post("/invocations", data=b"0,1\n", content_type="text/csv")
    assert r.status_code == 500
    rid = r.headers["X-Request-Id"]
    assert r.get_json() == {"error": "AlgorithmError", "message": f"Internal error; request id {rid}"}
    assert b"secret" not in r.data and b"ZeroDivisionError" not in r.data
    errors = [rec for rec in caplog.records if rec.name == "smalgos" and rec.levelno >= logging.ERROR]
    assert len(errors) == 1 and rid in errors[0].getMessage() and "secret detail" in errors[0].getMessage()
    assert errors[0].exc_info and errors[0].exc_info[0] is ZeroDivisionError
    assert c.post("/invocations", data=b"0,1\n", content_type="text/csv").headers["X-Request-Id"] != rid


@pytest.mark.parametrize("content_type", [
    "text/csv; encoding=utf-8", "text/csv; charset=utf-8", "text/csv; charset=UTF8",
    'text/csv; encoding="UTF-8"; label_size=0', "application/json; charset=utf-8",
])
def test_utf8_charset_or_encoding_parameter_is_accepted(model, content_type):
    body = b'{"instances": [{"features": [0, 1]}]}' if content_type.startswith("application") else b"0,1\n"
    r = client(model).post("/invocations", data=body, content_type=content_type)
    assert r.status_code == 200, r.data
    assert r.get_json() == {"predictions": [{"predicted_label": 0.0, "distance": 1.0}]}


@pytest.mark.parametrize("content_type, fragment", [
    ("text/csv; encoding=latin-1", "unsupported encoding 'latin-1'"),
    ("text/csv; charset=utf-16", "unsupported charset 'utf-16'"),
])
def test_other_charsets_are_415_naming_the_parameter(model, content_type, fragment):
    r = client(model).post("/invocations", data=b"0,1\n", content_type=content_type)
    assert r.status_code == 415 and fragment in r.get_json()["message"], r.data


# --- Accept q-values, Content-Encoding ---

import gzip
import zlib


@pytest.mark.parametrize("accept, mimetype", [
    ("application/json;q=0, application/jsonlines", "application/jsonlines"),
    ("application/json;q=0.5, application/jsonlines;q=0.9", "application/jsonlines"),
    ("application/json;q=0, */*", "application/jsonlines"),
])
def test_accept_q_values_are_honoured(model, accept, mimetype):
    c = client(model)
    r = c.post("/invocations", data=b"0,1\n", headers={"Content-Type": "text/csv", "Accept": accept})
    assert r.status_code == 200 and r.mimetype == mimetype, r.data
    r = c.post("/invocations", data=b"0,1\n", headers={"Content-Type": "text/csv",
                                                       "Accept": "application/json;q=0, application/jsonlines;q=0"})
    assert r.status_code == 406 and r.get_json()["error"] == "UnsupportedAccept"


def _deflate_raw(data: bytes) -> bytes:
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


@pytest.mark.parametrize("encoding, encode", [
    ("gzip", gzip.compress), ("x-gzip", gzip.compress), ("GZIP", gzip.compress),
    ("deflate", zlib.compress), ("deflate", _deflate_raw), ("identity", lambda b: b),
    ("gzip, gzip", lambda b: gzip.compress(gzip.compress(b))),
    ("gzip", lambda b: gzip.compress(b[:4]) + gzip.compress(b[4:])),  # two gzip members
])
def test_content_encoding_gzip_and_deflate_are_decoded(model, encoding, encode):
    body = b"0,1\n4,3\n"
    r = client(model).post("/invocations", data=encode(body),
                           headers={"Content-Type": "text/csv", "Content-Encoding": encoding})
    assert r.status_code == 200, r.data
    assert [p["predicted_label"] for p in r.get_json()["predictions"]] == [0.0, 1.0]


def test_chunked_gzip_body_is_decoded(model):
    r = _chunked(client(model), gzip.compress(b"0,1\n" * 1000), **{"Content-Encoding": "gzip"})
    assert r.status_code == 200 and len(r.get_json()["predictions"]) == 1000


def test_gzip_bomb_is_413_reading_at_most_cap_plus_one_decoded_bytes(model, monkeypatch):
    cap = 1 << 20
    bomb = gzip.compress(b"0" * (64 * cap), compresslevel=9)  # 64 MiB decoded, ~64 KiB sent
    assert len(bomb) < cap
    produced = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self, *a, **kw):
            self._d = real(*a, **kw)

        def decompress(self, data, max_length=0):
            assert max_length > 0  # always bounded
            out = self._d.decompress(data, max_length)
            produced.append(len(out))
            return out

        def __getattr__(self, name):
            return getattr(self._d, name)

    monkeypatch.setattr(zlib, "decompressobj", Counting)
    c = client(model, SAGEMAKER_MAX_PAYLOAD_IN_MB="1")
    r = c.post("/invocations", data=bomb, headers={"Content-Type": "text/csv", "Content-Encoding": "gzip"})
    assert r.status_code == 413 and r.get_json()["error"] == "PayloadTooLarge", r.data
    assert sum(produced) == cap + 1
    produced.clear()
    r = c.post("/invocations", data=gzip.compress(b"0,1\n" * (cap // 4)),  # exactly the cap decoded
               headers={"Content-Type": "text/csv", "Content-Encoding": "gzip"})
    assert r.status_code == 200 and len(r.get_json()["predictions"]) == cap // 4
    assert sum(produced) == cap


@pytest.mark.parametrize("encoding, body, status, fragment", [
    ("br", b"0,1\n", 415, "'br'"),
    ("gzip, zstd", b"0,1\n", 415, "'zstd'"),
    ("compress", b"0,1\n", 415, "'compress'"),
    ("gzip", b"0,1\n", 400, "not valid gzip"),
    ("gzip", gzip.compress(b"".join(b"%d,%d\n" % (i, i * 7) for i in range(1000)))[:-30], 400, "truncated gzip"),
    ("deflate", b"\xff\xfe garbage", 400, "not valid deflate"),
])
def test_bad_content_encodings(model, encoding, body, status, fragment):
    c = client(model)
    r = c.post("/invocations", data=body, headers={"Content-Type": "text/csv", "Content-Encoding": encoding})
    assert r.status_code == status and fragment in r.get_json()["message"], r.data
    assert c.post("/invocations", data=b"0,1\n", content_type="text/csv").status_code == 200
