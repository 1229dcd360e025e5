"""The real `serve` program where gunicorn itself answers: requests it refuses before the app (its
error pages are JSON), and a prediction that runs past SAGEMAKER_MODEL_SERVER_TIMEOUT."""
import json
import socket
import threading
import time
import urllib.request

import pytest

from .test_server_process import invoke, output, start_serve, stop, train_centroid, wait_for_ping


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    job = train_centroid(tmp_path_factory.mktemp("limits"))
    proc, port = start_serve(job)
    try:
        wait_for_ping(proc, port)
        yield proc, port
    finally:
        stop(proc)


def exchange(port: int, request: bytes, timeout: float = 10) -> tuple[bytes, bytes]:
    """Send raw bytes, read until the server closes: (head, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


def header(head: bytes, name: str) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.decode("latin-1").partition(":")
        if key.strip().lower() == name.lower():
            return value.strip()
    return None


@pytest.mark.parametrize("request_bytes, status, error, words", [
    (b"GARBAGE\r\n\r\n", 400, "InvalidRequestLine", "Invalid Request Line"),
    (b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431, "LimitRequestHeaders",
     "Error parsing headers"),
    (b"GET /ping HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(120)) + b"\r\n", 431,
     "LimitRequestHeaders", "Error parsing headers"),
    (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "LimitRequestLine",
     "Request Line is too large"),
    (b"GET /ping HTTP/1.1\r\nHost: x\r\nBad Name: 1\r\n\r\n", 400, "InvalidHeaderName", "Bad Name"),
    (b"GET /ping HTTP/9.1\r\nHost: x\r\n\r\n", 400, "InvalidHTTPVersion", "Invalid HTTP Version"),
], ids=["request-line", "header-size", "header-count", "uri-length", "header-name", "http-version"])
def test_requests_gunicorn_refuses_are_answered_in_json(server, request_bytes, status, error, words):
    proc, port = server
    before = output(proc).count("Invalid request from ip=")
    head, body = exchange(port, request_bytes)
    assert head.startswith(b"HTTP/1.1 %d " % status), head
    assert header(head, "Content-Type") == "application/json", head
    assert int(header(head, "Content-Length")) == len(body)
    answer = json.loads(body)
    assert answer["error"] == error and words in answer["message"], answer
    assert b"<html>" not in body
    time.sleep(0.2)
    assert output(proc).count("Invalid request from ip=") == before + 1  # one log line, no traceback
    assert invoke(port)  # and the server keeps serving


def ping_takes(port: int) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as r:
        assert r.status == 200
    return time.monotonic() - started


def post_sleep(port: int, seconds: float, timeout: float = 30) -> tuple[bytes, bytes]:
    body = b"%g,0\n" % seconds
    return exchange(port, b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                          b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body), timeout)


def test_a_prediction_past_the_timeout_restarts_its_worker_and_others_keep_serving(tmp_path):
    job = train_centroid(tmp_path)
    proc, port = start_serve(job, algorithm="test-sleepy", SAGEMAKER_MODEL_SERVER_TIMEOUT="2")
    try:
        wait_for_ping(proc, port)
        assert post_sleep(port, 1.0)[0].startswith(b"HTTP/1.1 200")  # under the timeout: answered

        # A body sent slowly (3 s, past the timeout) is the client's time, not the prediction's.
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\n"
                      b"Connection: close\r\nContent-Length: 4\r\n\r\n")
            for byte in b"0,0\n":
                time.sleep(0.75)
                s.sendall(bytes([byte]))
            assert s.recv(65536).startswith(b"HTTP/1.1 200")

        stuck: dict = {}

        def call() -> None:
            started = time.monotonic()
            try:
                stuck["head"], stuck["body"] = post_sleep(port, 60.0)
            except OSError as exc:  # the connection closed under it
                stuck["error"] = exc
            stuck["seconds"] = time.monotonic() - started

        caller = threading.Thread(target=call)
        caller.start()
        while caller.is_alive():  # /ping keeps answering, within 1 s, while the worker is stuck and replaced
            assert ping_takes(port) < 1.0
            time.sleep(0.1)
        caller.join()
        assert stuck["seconds"] < 10, stuck  # the timeout is 2 s; the arbiter looks once a second
        assert stuck.get("head", b"").startswith(b"HTTP/1.1 504"), stuck  # its client is told
        assert json.loads(stuck["body"])["error"] == "PredictionTimeout"
        deadline = time.monotonic() + 20
        while "WORKER TIMEOUT" not in output(proc) or output(proc).count("Booting worker") < 3:
            assert time.monotonic() < deadline, output(proc)
            time.sleep(0.2)
        for _ in range(4):  # both workers, the new one among them, answer
            assert post_sleep(port, 0.0)[0].startswith(b"HTTP/1.1 200")
    finally:
        out = stop(proc)
    assert "ran past SAGEMAKER_MODEL_SERVER_TIMEOUT (2 s)" in out, out
    assert proc.returncode == 0, out
