"""The `serve` program: gunicorn on 0.0.0.0:$SAGEMAKER_BIND_TO_PORT (8080), one worker per CPU
by default, the model loaded once in each worker after the fork (OpenMP-using libraries hang in
workers forked from a master that already loaded them), maths libraries at cores // workers threads
(one with the default one worker per core).

Workers are gunicorn's threaded ones (`gthread`, $SAGEMAKER_MODEL_SERVER_THREADS = 8 threads each):
a connection that sends nothing holds a thread for 5 s at most (then waits in the worker's poller,
closed after the 60 s keep-alive), and one that sends its request head slowly holds it for
`HEAD_READ_SECONDS` at most, so idle or slow clients never block `/ping` as they did with sync
workers (one connection per worker). Predictions still run one at a time per worker (app.py).

`SAGEMAKER_MODEL_SERVER_TIMEOUT` bounds each request's time in the app (its body reads excluded):
one past it gets its worker aborted by gunicorn's arbiter and replaced, its client a 504 with a
JSON body; the other workers answer meanwhile (`ThreadWorker`). A request gunicorn refuses before
the app (bad request line, header too large ...) is answered in the app's JSON error shape too.

Before a worker serves, its model makes one prediction on a record of zeros (`warm_up`); if that
fails the worker exits (gunicorn's boot error), so the server stops instead of answering /ping.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import html
import logging
import os
import re
import socket
import threading
import time
from pathlib import Path

from gunicorn import util
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers import gthread

from ..declaration import Algorithm, load_algorithm, resolve
from ..environment import Paths, ServingEnv
from ..logs import setup_logging
from .app import create_app, error_body

log = logging.getLogger("smalgos")


def load_model(algorithm: Algorithm, model_dir: Path):
    return resolve(algorithm.model_loader)(model_dir)


class WarmUpError(RuntimeError):
    """The loaded model failed its warm-up prediction."""


def warm_up(model, model_dir: Path) -> None:
    """`model.warm_up()` where the model has one; its failure is a WarmUpError naming `model_dir`."""
    run = getattr(model, "warm_up", None)
    if run is None:
        return
    started = time.perf_counter()
    try:
        run()
    except Exception as exc:
        raise WarmUpError(f"The model in {model_dir} failed its warm-up prediction (one record of zeros):"
                          f" {type(exc).__name__}: {exc}") from exc
    log.info("Model in %s warmed up in %.1f ms", model_dir, 1e3 * (time.perf_counter() - started))


def build_app(algorithm_name: str, paths: Paths | None = None, env: ServingEnv | None = None):
    """Import the algorithm, load its model from /opt/ml/model, warm it up and build the Flask app;
    with SAGEMAKER_MULTI_MODEL=true, the multi-model app instead, which loads each model from
    /opt/ml/models/<name>/model when SageMaker asks (multi_model.py)."""
    algorithm = load_algorithm(algorithm_name)
    paths = paths or Paths.from_env()
    env = env or ServingEnv.from_env()

    def load_ready(model_dir: Path):
        model = load_model(algorithm, model_dir)
        warm_up(model, model_dir)
        return model

    if env.multi_model:
        from .multi_model import create_multi_model_app

        return create_multi_model_app(algorithm, env, store_root=paths.base / "models", load=load_ready)
    return create_app(algorithm, load_ready(paths.model_dir), env)


HEAD_READ_SECONDS = 10.0  # a request line and headers must arrive within this time of their first byte


class _HeadBoundedReader:
    """The socket as gunicorn's request parser reads it. While a request head is read, each recv
    waits only until `HEAD_READ_SECONDS` after the head's first read; past that the connection
    reads as closed (the parser drops it). Body reads pass straight through."""

    def __init__(self, sock, client):
        self.sock = sock
        self.client = client
        self.reading_head = False
        self.deadline: float | None = None

    def start_head(self) -> None:
        self.reading_head, self.deadline = True, None

    def end_head(self) -> None:
        self.reading_head, self.deadline = False, None

    def recv(self, size: int) -> bytes:
        if not self.reading_head:
            return self.sock.recv(size)
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + HEAD_READ_SECONDS
        remaining = self.deadline - now
        if remaining > 0:
            prior = self.sock.gettimeout()
            self.sock.settimeout(remaining)
            try:
                return self.sock.recv(size)
            except TimeoutError:
                pass
            finally:
                self.sock.settimeout(prior)
        log.info("Closing the connection from %s: no complete request head within %g s", self.client,
                 HEAD_READ_SECONDS)
        self.reading_head = False
        return b""

    def gettimeout(self):
        return self.sock.gettimeout()

    def settimeout(self, value) -> None:
        self.sock.settimeout(value)


class _Conn(gthread.TConn):
    reader: _HeadBoundedReader | None = None

    def init(self):  # called in a worker thread before each request is read
        first = not self.initialized
        super().init()
        if first and not self.is_http2 and isinstance(getattr(self.parser, "unreader", None), SocketUnreader):
            self.reader = _HeadBoundedReader(self.sock, self.client)
            self.parser.unreader.sock = self.reader
        if self.reader is not None:
            self.reader.start_head()


class _RequestClock:
    """The server-side time of one request in flight: from the app's call to its return, less the
    time its body reads wait for the client. `started` is now minus that time (None while a read
    waits); `sock` is the client's socket."""

    def __init__(self, sock):
        self.started: float | None = time.monotonic()
        self.sock = sock

    @contextlib.contextmanager
    def paused(self):
        at, started, self.started = time.monotonic(), self.started, None
        try:
            yield
        finally:
            self.started = started + (time.monotonic() - at)


class _ClientReads:
    """`wsgi.input` with its reads (the client's time) left out of the request's clock."""

    _READS = ("read", "readline", "readlines", "readinto")

    def __init__(self, stream, clock: _RequestClock):
        self._stream, self._clock = stream, clock

    def __getattr__(self, name):
        attr = getattr(self._stream, name)
        if name not in self._READS:
            return attr

        def timed(*args, **kwargs):
            with self._clock.paused():
                return attr(*args, **kwargs)
        return timed

    def __iter__(self):
        return iter(self.readline, b"")


class _Page:
    """Stands for the client's socket while gunicorn writes one of its HTML error pages: keeps it."""

    def __init__(self):
        self.data = b""

    def gettimeout(self) -> float:
        return 0.0  # gunicorn's `write_nonblock` then writes straight to `sendall`

    def sendall(self, data: bytes) -> None:
        self.data += data


_STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3}) ([^\r\n]*)")
_PAGE_MESSAGE = re.compile(rb"</h1>\s*(.*?)\s*</body>", re.S)


def json_error_bytes(status: int, reason: str, error: str, message: str) -> bytes:
    """A whole HTTP/1.1 response, `{"error", "message"}` as the app's error bodies, connection closed."""
    body = error_body(error, message)
    return (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1") + body


def _json_page(page: bytes, exc: BaseException) -> bytes:
    """gunicorn's HTML error page as the same status with a JSON body: `error` is gunicorn's
    exception class (AlgorithmError for a 5xx, as the app's), `message` its text."""
    status_line = _STATUS_LINE.match(page)
    status, reason = (int(status_line[1]), status_line[2].decode("latin-1")) if status_line else (
        500, "Internal Server Error")
    found = _PAGE_MESSAGE.search(page)
    message = html.unescape(found[1].decode("latin-1")) if found else ""
    if status >= 500:
        return json_error_bytes(status, reason, "AlgorithmError", message or "Internal error")
    return json_error_bytes(status, reason, type(exc).__name__, message or reason)


class ThreadWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker with

    - a bounded request-head read (see `_HeadBoundedReader`);
    - JSON instead of gunicorn's HTML error pages, for the requests gunicorn refuses before the app
      sees them (a bad request line 400, a header too large 431, a URI too long 414 ...): the
      same status, ``{"error": <gunicorn's exception>, "message": ...}``, gunicorn's one log line;
    - `SAGEMAKER_MODEL_SERVER_TIMEOUT` (gunicorn's `timeout`) for each request, as sync workers
      had it: the heartbeat the arbiter watches never claims a time later than the start of the
      oldest request in the app (its body reads excluded: a slow client is not the server's
      time). Once one has run past the timeout the arbiter aborts the worker (WORKER TIMEOUT);
      the worker answers that request's client 504 with a JSON body, exits, and the arbiter
      starts a new one. The other workers keep serving meanwhile.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clocks: dict[int, _RequestClock] = {}  # by thread: the requests in the app now

    def load_wsgi(self):
        super().load_wsgi()
        app, clocks = self.wsgi, self._clocks

        def timed_app(environ, start_response):
            clock = clocks[threading.get_ident()] = _RequestClock(environ.get("gunicorn.socket"))
            environ["wsgi.input"] = _ClientReads(environ["wsgi.input"], clock)
            try:
                return app(environ, start_response)  # a Flask response is whole here: its writes are not timed
            finally:
                clocks.pop(threading.get_ident(), None)

        self.wsgi = timed_app

    def _overdue(self) -> list[_RequestClock]:
        limit = time.monotonic() - self.cfg.timeout  # self.timeout is half of it (the arbiter's choice)
        return [c for c in list(self._clocks.values()) if c.started is not None and c.started < limit]

    def notify(self):
        starts = [c.started for c in list(self._clocks.values()) if c.started is not None]
        oldest = min(starts, default=None)
        if oldest is None or not self.cfg.timeout:
            return super().notify()
        os.utime(self.tmp.fileno(), (oldest, oldest))  # gunicorn's WorkerTmp.notify, at the oldest start

    def handle_abort(self, sig, frame):  # the arbiter's SIGABRT: past the timeout
        self.alive = False
        overdue = self._overdue()
        log.error("Worker %d exits: %d request(s) ran past SAGEMAKER_MODEL_SERVER_TIMEOUT (%d s); a new worker "
                  "replaces it", os.getpid(), len(overdue), self.cfg.timeout)
        answer = json_error_bytes(504, "Gateway Timeout", "PredictionTimeout",
                                  f"The prediction ran past SAGEMAKER_MODEL_SERVER_TIMEOUT ({self.cfg.timeout} s); "
                                  "the worker that ran it was restarted")
        for clock in overdue:
            with contextlib.suppress(OSError, AttributeError):
                clock.sock.settimeout(1.0)
                clock.sock.sendall(answer)
                clock.sock.shutdown(socket.SHUT_RDWR)
        self.cfg.worker_abort(self)
        os._exit(1)  # not sys.exit: it would wait for the stuck thread, until the arbiter's SIGKILL

    def handle_error(self, req, client, addr, exc):
        page = _Page()
        super().handle_error(req, page, addr, exc)  # gunicorn's status, message and log line
        try:
            util.write_nonblock(client, _json_page(page.data, exc))
        except Exception:  # noqa: BLE001 - the client is gone: nothing to answer
            log.debug("Failed to send the error response")

    def accept(self, listener):  # gthread's, with `_Conn` for `TConn`
        try:
            client_sock, client_addr = listener.accept()
            self.nr_conns += 1
            client_sock.setblocking(True)
            self.enqueue_req(_Conn(self.cfg, client_sock, client_addr, listener.getsockname()))
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise

    def handle_request(self, req, conn):  # the head is read: the body is read without the deadline
        if getattr(conn, "reader", None) is not None:
            conn.reader.end_head()
        return super().handle_request(req, conn)


class _Gunicorn(BaseApplication):
    def __init__(self, algorithm_name: str, options: dict):
        self.algorithm_name = algorithm_name
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        setup_logging()
        try:
            app = build_app(self.algorithm_name)
        except WarmUpError as exc:
            log.error("Worker %d exits: %s", os.getpid(), exc, exc_info=exc.__cause__)
            raise SystemExit(Arbiter.WORKER_BOOT_ERROR) from None  # the master stops: "Worker failed to boot"
        # Everything loaded so far (the libraries, the model) lives as long as the worker: kept out of
        # the cyclic collector's generations, so that the collections a request's garbage sets off
        # no longer walk it (one-row XGBoost requests spent ~10% of their time in them).
        gc.collect()
        gc.freeze()
        return app


def serve(algorithm_name: str) -> int:
    setup_logging()
    env = ServingEnv.from_env()
    # The workers' maths libraries (and Arrow's CSV reader) use this many threads; one already set stays.
    os.environ.update(env.worker_thread_vars)
    log.info("Serving %s on port %d with %d worker(s) of %d thread(s), timeout %d s", algorithm_name, env.port,
             env.workers, env.server_threads, env.timeout)
    _Gunicorn(algorithm_name, {
        "bind": f"0.0.0.0:{env.port}",
        "workers": env.workers,
        "threads": env.server_threads,
        "timeout": env.timeout,
        "keepalive": 60,  # as SageMaker's model servers: its front end reuses connections
        "worker_class": ThreadWorker,
        "preload_app": False,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
    }).run()
    return 0
