"""The model-level request-decode hook: `model.decode(body, media)` (app.py, `Model`)."""

from __future__ import annotations

import numpy as np
import pytest

from smalgos.declaration import load_algorithm
from smalgos.environment import ServingEnv
from smalgos.errors import ClientError, UnsupportedContentType
from smalgos.formats.predictions import Predictions
from smalgos.serving.app import create_app


class RowsOfStrings:
    """A model whose requests are CSV rows of strings (as IP Insights'): it decodes CSV itself and
    leaves the other types to the registry's decoders."""

    def __init__(self):
        self.decoded: list[tuple[bytes, str, dict]] = []
        self.predicted: list[object] = []

    def decode(self, body, media):
        self.decoded.append((body, media.type, dict(media.params)))
        if media.type != "text/csv":
            return None
        if media.params.get("dialect") is not None:
            raise UnsupportedContentType("text/csv: parameter dialect is not read")
        rows = [line.split(",") for line in body.decode().splitlines() if line.strip()]
        if any(len(r) != 2 for r in rows):
            raise ClientError("request body: every row must be entity,address")
        return rows

    def predict(self, batch, accept):
        self.predicted.append(batch)
        if isinstance(batch, list):  # rows of strings: the length of each row's second field
            score = np.array([len(r[1]) for r in batch], np.float32)
        else:  # a Batch from the registry's decoder
            score = np.asarray(batch.dense_features(), np.float32).sum(axis=1)
        return Predictions({"score": score})


@pytest.fixture
def served():
    model = RowsOfStrings()
    return model, create_app(load_algorithm("test-centroid"), model, ServingEnv.from_env({})).test_client()


def test_decode_hook_reads_the_request_instead_of_the_registry(served):
    model, c = served
    r = c.post("/invocations", data=b"alice,10.0.0.1\nbob,192.168.100.200\n",
               headers={"Content-Type": "text/csv", "Accept": "application/json"})
    assert r.status_code == 200, r.data
    assert r.get_json() == {"predictions": [{"score": 8.0}, {"score": 15.0}]}
    assert model.decoded == [(b"alice,10.0.0.1\nbob,192.168.100.200\n", "text/csv", {})]
    assert model.predicted == [[["alice", "10.0.0.1"], ["bob", "192.168.100.200"]]]


def test_decode_hook_returning_none_falls_back_to_the_registry(served):
    model, c = served
    r = c.post("/invocations", data=b'{"instances": [{"features": [1, 2]}, {"features": [3, 4.5]}]}',
               headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.data
    assert r.get_json() == {"predictions": [{"score": 3.0}, {"score": 7.5}]}
    assert [d[1] for d in model.decoded] == ["application/json"]
    assert len(model.predicted[0]) == 2 and not isinstance(model.predicted[0], list)


@pytest.mark.parametrize("headers, body, status, fragment", [
    ({"Content-Type": "text/csv"}, b"alice\n", 400, "entity,address"),
    ({"Content-Type": "text/csv; dialect=excel"}, b"a,b\n", 415, "dialect"),
])
def test_decode_hook_errors_are_the_usual_4xx(served, headers, body, status, fragment):
    model, c = served
    r = c.post("/invocations", data=body, headers=headers)
    assert r.status_code == status and fragment in r.get_json()["message"]
    assert model.predicted == []


def test_negotiation_comes_before_the_hook_and_empty_bodies_never_reach_it(served):
    model, c = served
    r = c.post("/invocations", data=b"a,b\n", headers={"Content-Type": "text/html"})
    assert r.status_code == 415
    r = c.post("/invocations", data=b"a,b\n", headers={"Content-Type": "text/csv", "Accept": "image/png"})
    assert r.status_code == 406
    r = c.post("/invocations", data=b"", headers={"Content-Type": "text/csv"})
    assert r.status_code == 400 and "empty" in r.get_json()["message"]
    assert model.decoded == []
    r = c.post("/invocations", data=b"\n\n", headers={"Content-Type": "text/csv"})  # no records decoded
    assert r.status_code == 400 and "no records" in r.get_json()["message"]
    assert model.predicted == []
