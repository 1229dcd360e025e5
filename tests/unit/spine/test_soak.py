"""Soak: the real `serve` program (2 gthread workers, test-centroid) for ~10 s under mixed traffic:
good CSV and JSON requests, bad ones (415, 400, 413), idle and slow connections. Every answer must
be the right one, /ping always under 1 s, and the processes' memory must stay flat.

Prints requests/s and p50/p99 latencies (pytest -s)."""
import http.client
import json
import os
import random
import socket
import threading
import time
import urllib.request

from .test_server_process import start_serve, stop, train_centroid, wait_for_ping

SOAK_SECONDS = 10.0
MAX_PAYLOAD_MB = 1


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def server_rss_kib(master: int) -> int:
    """VmRSS of the gunicorn master and its workers, summed."""
    pids = [master]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    if int(f.read().rsplit(")", 1)[1].split()[1]) == master:
                        pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                pass
    return sum(rss_kib(p) for p in pids), len(pids)


def label(x: int, y: int) -> float:  # the nearer of the centroids (0, 0) and (4, 4)
    return 1.0 if x + y > 4 else 0.0


def good_request(rng: random.Random):
    n = rng.randint(1, 50)
    points = [(x, y) for x, y in ((rng.randint(-9, 9), rng.randint(-9, 9)) for _ in range(3 * n)) if x + y != 4][:n]
    if rng.random() < 0.5:
        body = "".join(f"{x},{y}\n" for x, y in points).encode()
        ctype = "text/csv"
    else:
        body = json.dumps({"instances": [{"features": [x, y]} for x, y in points]}).encode()
        ctype = "application/json"
    return body, ctype, [label(x, y) for x, y in points]


BAD_REQUESTS = [  # body, Content-Type, expected status
    (b"1,2\n", "image/png", 415),
    (b"1,a,\n2,\n", "text/csv", 400),
    (b"1,2,3,4,5\n", "text/csv", 400),  # wider than the model's 2 features
    (b'{"instances": [{"feature": [1, 2]}]}', "application/json", 400),
]


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.latencies, self.ping_latencies, self.failures = [], [], []
        self.good = self.bad = 0

    def fail(self, what: str) -> None:
        with self.lock:
            if len(self.failures) < 20:
                self.failures.append(what)


def mixed_client(port: int, seed: int, end: float, stats: Stats) -> None:
    """Good and bad requests on one kept-alive connection (a new one only if the server closes it)."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    while time.monotonic() < end:
        if rng.random() < 0.8:
            body, ctype, expected = good_request(rng)
            status = 200
        else:
            body, ctype, status = rng.choice(BAD_REQUESTS)
        started = time.monotonic()
        try:
            conn.request("POST", "/invocations", body=body,
                         headers={"Content-Type": ctype, "Accept": "application/json"})
            r = conn.getresponse()
            payload = r.read()
        except (OSError, http.client.HTTPException) as exc:
            stats.fail(f"lost: {type(exc).__name__}: {exc}")
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            continue
        elapsed = time.monotonic() - started
        if r.status != status:
            stats.fail(f"status {r.status} for {status}: {payload[:200]!r}")
        elif status == 200:
            got = [p["predicted_label"] for p in json.loads(payload)["predictions"]]
            if got != expected:
                stats.fail(f"wrong predictions: {got[:5]} for {expected[:5]}")
            with stats.lock:
                stats.good += 1
                stats.latencies.append(elapsed)
        else:
            if not r.headers["Content-Type"].startswith("application/json") or "error" not in json.loads(payload):
                stats.fail(f"{r.status} without a JSON error body: {payload[:200]!r}")
            with stats.lock:
                stats.bad += 1
        if r.will_close:
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.close()


def oversize_client(port: int, end: float, stats: Stats) -> None:
    """A Content-Length over the cap: refused unread with a 413 and a JSON body."""
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nConnection: close\r\n"
                          b"Content-Length: %d\r\n\r\n1,2\n" % (MAX_PAYLOAD_MB * 1024 * 1024 + 1))
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
        except OSError as exc:
            stats.fail(f"lost 413: {exc}")
            continue
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 413") or b'"error"' not in body:
            stats.fail(f"over-size body answered {data[:200]!r}")
        else:
            with stats.lock:
                stats.bad += 1
        time.sleep(0.2)


def pinger(port: int, end: float, stats: Stats) -> None:
    while time.monotonic() < end:
        started = time.monotonic()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1) as r:
                ok = r.status == 200
        except OSError as exc:
            stats.fail(f"/ping: {exc}")
            continue
        elapsed = time.monotonic() - started
        if not ok or elapsed >= 1.0:
            stats.fail(f"/ping {r.status} in {elapsed:.2f} s")
        with stats.lock:
            stats.ping_latencies.append(elapsed)
        time.sleep(0.1)


def idle_and_slow(port: int, end: float) -> None:
    """4 connections that send nothing and 2 that send a header byte per 0.5 s, renewed every 3 s."""
    while time.monotonic() < end:
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(6)]
        try:
            renew = min(end, time.monotonic() + 3)
            while time.monotonic() < renew:
                for s in socks[4:]:
                    try:
                        s.sendall(b"X")
                    except OSError:
                        pass
                time.sleep(0.5)
        finally:
            for s in socks:
                s.close()


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] * 1e3


def test_soak_mixed_traffic_no_lost_or_wrong_answers_and_flat_memory(tmp_path):
    job = train_centroid(tmp_path)
    proc, port = start_serve(job, SAGEMAKER_MAX_PAYLOAD_IN_MB=str(MAX_PAYLOAD_MB))
    try:
        wait_for_ping(proc, port)
        # warm-up traffic: every worker has answered and its allocator has settled
        warm = Stats()
        warm_end = time.monotonic() + 1.5
        ts = [threading.Thread(target=mixed_client, args=(port, 100 + i, warm_end, warm)) for i in range(4)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(timeout=10)
        assert not warm.failures, warm.failures
        rss_start, nproc = server_rss_kib(proc.pid)
        assert nproc == 3  # master + 2 workers

        stats = Stats()
        started = time.monotonic()
        end = started + SOAK_SECONDS
        threads = [threading.Thread(target=mixed_client, args=(port, i, end, stats)) for i in range(6)]
        threads += [threading.Thread(target=oversize_client, args=(port, end, stats)),
                    threading.Thread(target=pinger, args=(port, end, stats)),
                    threading.Thread(target=idle_and_slow, args=(port, end))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=SOAK_SECONDS + 15)
        took = time.monotonic() - started
        assert not any(t.is_alive() for t in threads)
        rss_end, _ = server_rss_kib(proc.pid)
    finally:
        out = stop(proc)
    total = stats.good + stats.bad
    print(f"\nsoak: {total} requests in {took:.1f} s = {total / took:.0f} req/s ({stats.good} good, {stats.bad} bad);"
          f" good p50 {pct(stats.latencies, 0.5):.1f} ms, p99 {pct(stats.latencies, 0.99):.1f} ms;"
          f" /ping p50 {pct(stats.ping_latencies, 0.5):.1f} ms, max {max(stats.ping_latencies) * 1e3:.1f} ms;"
          f" RSS {rss_start / 1024:.0f} MiB -> {rss_end / 1024:.0f} MiB")
    assert not stats.failures, stats.failures
    assert stats.good > 100 and stats.bad > 20 and len(stats.ping_latencies) > 20
    assert rss_end <= 1.2 * rss_start, (rss_start, rss_end)
    assert proc.returncode == 0, out
