"""`docker run -p PORT:8080 IMAGE serve`: /ping and /invocations over a published port."""

from __future__ import annotations

import io
import json
import time

import numpy as np
import pytest
import requests

from .helpers import Endpoint, load_split

pytestmark = pytest.mark.container

CSV, JSON, JSONL, PB = "text/csv", "application/json", "application/jsonlines", "application/x-recordio-protobuf"


@pytest.fixture(scope="module")
def test_data():
    return load_split("test")


def body_for(content_type: str, X: np.ndarray) -> bytes:
    if content_type == CSV:
        return "\n".join(",".join(f"{v:g}" for v in row) for row in X).encode()
    if content_type == JSON:
        return json.dumps({"instances": [{"features": row.tolist()} for row in X]}).encode()
    if content_type == JSONL:
        return "\n".join(json.dumps({"features": row.tolist()}) for row in X).encode()
    from sagemaker.amazon.common import write_numpy_to_dense_tensor  # the SDK's own writer

    buf = io.BytesIO()
    write_numpy_to_dense_tensor(buf, X)
    return buf.getvalue()


def labels_from(accept: str, body: bytes) -> np.ndarray:
    if accept == JSON:
        return np.array([p["predicted_label"] for p in json.loads(body)["predictions"]])
    if accept == JSONL:
        return np.array([json.loads(line)["predicted_label"] for line in body.decode().splitlines()])
    from sagemaker.amazon.common import read_records  # the SDK's own reader

    return np.array([r.label["predicted_label"].float32_tensor.values[0] for r in read_records(io.BytesIO(body))])


def test_ping(endpoint):
    r = requests.get(endpoint.url + "/ping", timeout=5)
    assert r.status_code == 200


@pytest.mark.parametrize("content_type", [CSV, JSON, JSONL, PB])
@pytest.mark.parametrize("accept", [JSON, JSONL, PB])
def test_invocations_every_content_type_and_accept(endpoint, test_data, content_type, accept):
    X, y = test_data
    r = requests.post(endpoint.url + "/invocations", data=body_for(content_type, X),
                      headers={"Content-Type": content_type, "Accept": accept}, timeout=60)
    assert r.status_code == 200, r.text[:500]
    assert r.headers["Content-Type"].split(";")[0] == accept
    labels = labels_from(accept, r.content)
    assert labels.shape == y.shape
    assert np.mean(labels == y) > 0.9


def test_missing_accept_defaults_to_json(endpoint, test_data):
    X, _ = test_data
    r = requests.post(endpoint.url + "/invocations", data=body_for(CSV, X[:3]),
                      headers={"Content-Type": CSV}, timeout=30)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith(JSON)
    assert len(r.json()["predictions"]) == 3


@pytest.mark.parametrize("headers, body, status", [
    ({"Content-Type": "application/x-unknown"}, b"1,2,3", 415),
    ({"Content-Type": CSV, "Accept": "image/png"}, None, 406),
    ({"Content-Type": CSV}, b"1,2,three\n", 400),
    ({"Content-Type": CSV}, b"1,2,3\n", 400),  # 3 features, the model has 30
    ({"Content-Type": JSON}, b'{"instances": [', 400),
    ({"Content-Type": PB}, b"\x00\x01garbage", 400),
])
def test_bad_requests_get_4xx_and_the_endpoint_keeps_serving(endpoint, test_data, headers, body, status):
    X, _ = test_data
    if body is None:
        body = body_for(CSV, X[:2])
    r = requests.post(endpoint.url + "/invocations", data=body, headers=headers, timeout=30)
    assert r.status_code == status, r.text[:500]
    assert requests.get(endpoint.url + "/ping", timeout=5).status_code == 200
    ok = requests.post(endpoint.url + "/invocations", data=body_for(CSV, X[:2]),
                       headers={"Content-Type": CSV}, timeout=30)
    assert ok.status_code == 200


def test_ping_within_seconds_of_run(engine, image, trained):
    """Time from `docker run ... serve` to the first 200 on /ping (goal 5 s; asserted loosely
    because CI machines are shared)."""
    ep = Endpoint(engine, image, trained / "model")
    try:
        seconds = ep.wait_ready()
    finally:
        ep.remove()
    print(f"\n/ping 200 after {seconds:.2f} s")
    assert seconds < 60


def test_bind_to_port(engine, image, trained, test_data):
    X, _ = test_data
    ep = Endpoint(engine, image, trained / "model", env={"SAGEMAKER_BIND_TO_PORT": "9091"},
                  container_port=9091)
    try:
        ep.wait_ready()
        r = requests.post(ep.url + "/invocations", data=body_for(CSV, X[:2]),
                          headers={"Content-Type": CSV}, timeout=30)
        assert r.status_code == 200
    finally:
        ep.remove()


def test_sigterm_stops_the_server_promptly(engine, image, trained):
    ep = Endpoint(engine, image, trained / "model")
    try:
        ep.wait_ready()
        t0 = time.monotonic()
        ep.stop(timeout=30)
        stopped_in = time.monotonic() - t0
        code = engine.exit_code(ep.name)
    finally:
        ep.remove()
    assert stopped_in < 15, f"{stopped_in:.1f} s to stop: did SIGTERM reach gunicorn?"
    assert code != 137
