"""The `serve` program: gunicorn on 0.0.0.0:$SAGEMAKER_BIND_TO_PORT (8080), one worker per CPU
by default, the model loaded once in each worker after the fork (OpenMP-using libraries hang in
workers forked from a master that already loaded them), maths libraries at cores // workers threads
(one with the default one worker per core).

Workers are gunicorn's threaded ones (`gthread`, $SAGEMAKER_MODEL_SERVER_THREADS = 8 threads each):
a connection that sends nothing holds a thread for 5 s at most (then waits in the worker's poller,
closed after the 60 s keep-alive), and one that sends its request head slowly holds it for
`HEAD_READ_SECONDS` at most, so idle or slow clients never block `/ping` as they did with sync
workers (one connection per worker). Predictions still run one at a time per worker (app.py).

Before a worker serves, its model makes one prediction on a record of zeros (`warm_up`); if that
fails the worker exits (gunicorn's boot error), so the server stops instead of answering /ping.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter
from gunicorn.http.unreader import SocketUnreader
from gunicorn.workers import gthread

from ..declaration import Algorithm, load_algorithm, resolve
from ..environment import Paths, ServingEnv
from ..logs import setup_logging
from .app import create_app

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
    """Import the algorithm, load its model from /opt/ml/model, warm it up and build the Flask app."""
    algorithm = load_algorithm(algorithm_name)
    paths = paths or Paths.from_env()
    model = load_model(algorithm, paths.model_dir)
    warm_up(model, paths.model_dir)
    return create_app(algorithm, model, env)


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


class ThreadWorker(gthread.ThreadWorker):
    """gunicorn's gthread worker with a bounded request-head read (see `_HeadBoundedReader`)."""

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
            return build_app(self.algorithm_name)
        except WarmUpError as exc:
            log.error("Worker %d exits: %s", os.getpid(), exc, exc_info=exc.__cause__)
            raise SystemExit(Arbiter.WORKER_BOOT_ERROR) from None  # the master stops: "Worker failed to boot"


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
