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
        "Content-Type": "text/csv", "Accept": "text/html, application/jsonlines;q=0.9, application/json"})
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
