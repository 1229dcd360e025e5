"""SageMaker's multi-model endpoint (MME) contract: one server, many models of one algorithm.

With ``SAGEMAKER_MULTI_MODEL=true`` (and a declaration with ``Serving(multi_model=True)``) the
server loads no /opt/ml/model; SageMaker drives it through

- ``POST /models`` ``{"model_name": ..., "url": "/opt/ml/models/<name>/model"}``: load the
  extracted model directory at `url` with the algorithm's own `model_loader`, warm it up; 200
  with ``{"modelName", "modelUrl"}``; 409 already loaded; 507 it does not fit in memory; 404 no
  directory at `url`; 400 a bad body, a `url` outside the model store, a bad model directory
  (naming the file);
- ``GET /models`` ``{"models": [{"modelName", "modelUrl"}, ...]}`` sorted by name, paginated by
  ``?limit=`` (1-1000, default 100) and ``?next_page_token=``, with ``nextPageToken`` in the
  answer while more remain;
- ``GET /models/<name>`` ``{"modelName", "modelUrl"}``, ``DELETE /models/<name>`` (404 when not
  loaded);
- ``POST /models/<name>/invoke``: the same bodies, types and errors as ``/invocations``
  (app.py's `Invoker`); 404 when not loaded.

gunicorn runs several workers, and any of them may get any call. Which models are loaded lives on
local disk (`Registry`: one small JSON file per model, published with an atomic link, so two
loads of one name race to one 409); each worker keeps its own least-recently-used cache of model
objects (`ModelCache`) and loads a registered model lazily the first time it is invoked there.
DELETE removes the file: every worker answers 404 from then on and drops its copy.

Memory: before and after each load the worker reads the memory available (/proc/meminfo's
MemAvailable, or the cgroup's limit less its usage when lower) and evicts its least recently used
models while less than ``SMALGOS_MME_MIN_AVAILABLE_MB`` remains; an evicted model stays
registered and is loaded again when next invoked. A model that still does not fit is 507, which
tells SageMaker to unload models.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from flask import Flask, request

from ..declaration import Algorithm
from ..environment import ServingEnv
from ..errors import ClientError
from .app import Invoker, Model, base_app

log = logging.getLogger("smalgos")

LIST_LIMIT_DEFAULT, LIST_LIMIT_MAX = 100, 1000  # as Multi Model Server's list API
MAX_NAME_LENGTH = 1024


class ModelNotLoaded(ClientError):
    status = 404


class ModelDirectoryNotFound(ClientError):
    status = 404


class ModelAlreadyLoaded(ClientError):
    status = 409


class InsufficientMemory(ClientError):
    """The model does not fit in the memory left (HTTP 507): SageMaker then unloads models."""

    status = 507


# -- memory ---------------------------------------------------------------------------------------

def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None  # cgroup v2 says "max" for no limit


def available_memory_bytes() -> int:
    """The memory this container may still use: the lower of /proc/meminfo's MemAvailable and the
    cgroup's limit less its usage (v2 memory.max / memory.current, else v1)."""
    candidates = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                candidates.append(int(line.split()[1]) * 1024)
                break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, usage = _read_int(limit_file), _read_int(usage_file)
        if limit is not None and usage is not None and limit < 1 << 60:  # v1's "no limit" is huge
            candidates.append(max(0, limit - usage))
            break
    return min(candidates) if candidates else 1 << 62


def _release_memory() -> None:
    """Collect the evicted model and hand freed heap back to the system where glibc can."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


# -- the registry every worker shares -------------------------------------------------------------

@dataclass(frozen=True)
class Entry:
    name: str
    url: str
    token: str  # new at every load: a name unloaded and loaded again is a new model

    def describe(self) -> dict:
        return {"modelName": self.name, "modelUrl": self.url}


def default_registry_dir() -> Path:
    """A folder of this server's own: named after the gunicorn master (every worker's parent) and
    its start time, so that a restarted server never sees an earlier one's models."""
    master = os.getppid()
    try:
        started = Path(f"/proc/{master}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = "0"
    return Path(tempfile.gettempdir()) / f"smalgos-mme-{master}-{started}"


class Registry:
    """Which models are loaded, as files in `root` (one per model, named by a hash of its name)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        # name → (file identity, entry): a published file never changes, so one stat per request
        # says whether the entry read before still holds (every load links a new file).
        self._seen: dict[str, tuple[tuple[int, int], Entry]] = {}

    def _file(self, name: str) -> Path:
        return self.root / (hashlib.sha256(name.encode()).hexdigest() + ".json")

    @staticmethod
    def _read(path: Path) -> Entry | None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        return Entry(data["modelName"], data["modelUrl"], data["token"])

    def get(self, name: str) -> Entry | None:
        path = self._file(name)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            self._seen.pop(name, None)
            return None
        identity = (st.st_ino, st.st_mtime_ns)
        seen = self._seen.get(name)
        if seen is not None and seen[0] == identity:
            return seen[1]
        entry = self._read(path)
        if entry is not None:
            self._seen[name] = (identity, entry)
        return entry

    def add(self, name: str, url: str) -> Entry:
        """Publish `name` (atomically: written aside, then linked); `ModelAlreadyLoaded` if it is."""
        entry = Entry(name, url, uuid.uuid4().hex)
        aside = self.root / f".{entry.token}.tmp"
        aside.write_text(json.dumps({**entry.describe(), "token": entry.token}))
        try:
            os.link(aside, self._file(name))
        except FileExistsError:
            raise ModelAlreadyLoaded(f"Model {name!r} is already loaded") from None
        finally:
            aside.unlink(missing_ok=True)
        return entry

    def remove(self, name: str) -> Entry | None:
        entry = self.get(name)
        try:
            self._file(name).unlink()
        except FileNotFoundError:
            return None
        return entry

    def entries(self) -> list[Entry]:
        found = (self._read(p) for p in self.root.glob("*.json"))
        return sorted((e for e in found if e is not None), key=lambda e: e.name)

    def version(self) -> int:
        """Changes whenever a model is added or removed (the folder's mtime)."""
        return os.stat(self.root).st_mtime_ns


# -- each worker's models -------------------------------------------------------------------------

class ModelCache:
    """One worker's loaded models, least recently used first, kept in step with the `Registry`."""

    def __init__(self, registry: Registry, store_root: Path, load: Callable[[Path], Model],
                 min_available_mb: int, available: Callable[[], int] = available_memory_bytes):
        self.registry = registry
        self.store_root = Path(store_root)
        self.load = load
        self.min_available_mb = min_available_mb
        self.available = available
        self._models: OrderedDict[str, tuple[str, Model]] = OrderedDict()  # name → (token, model)
        self._lock = threading.Lock()  # guards _models
        self._loading = threading.Lock()  # one load at a time per worker
        self._seen_version: int | None = None

    # -- the API's operations -------------------------------------------------------------------

    def add(self, name: str, url: str) -> Entry:
        """POST /models: check, load and warm up, then publish the model to every worker."""
        if self.registry.get(name) is not None:
            raise ModelAlreadyLoaded(f"Model {name!r} is already loaded")
        model_dir = self.model_dir(url)
        with self._loading:
            if self.registry.get(name) is not None:  # loaded by another thread meanwhile
                raise ModelAlreadyLoaded(f"Model {name!r} is already loaded")
            model = self._load_fitting(name, model_dir)
            entry = self.registry.add(name, url)  # a concurrent load of the same name: 409 here
            self._put(name, entry.token, model)
        return entry

    def get(self, name: str) -> Model:
        """The model registered as `name`, loaded in this worker if it is not yet (404 if none)."""
        entry = self.registry.get(name)
        if entry is None:
            self._drop(name)
            raise ModelNotLoaded(f"Model {name!r} is not loaded: load it with POST /models")
        self._sweep()
        cached = self._touch(name, entry.token)
        if cached is not None:
            return cached
        with self._loading:
            cached = self._touch(name, entry.token)  # loaded by another thread meanwhile
            if cached is None:
                cached = self._load_fitting(name, self.model_dir(entry.url))
                self._put(name, entry.token, cached)
        return cached

    def remove(self, name: str) -> Entry:
        entry = self.registry.remove(name)
        self._drop(name)
        if entry is None:
            raise ModelNotLoaded(f"Model {name!r} is not loaded")
        return entry

    def cached_names(self) -> list[str]:
        """This worker's models, least recently used first."""
        with self._lock:
            return list(self._models)

    # -- loading ---------------------------------------------------------------------------------

    def model_dir(self, url: str) -> Path:
        """`url` as a model directory: absolute, inside the model store once resolved (a symlink
        never leads out of it), existing (404 otherwise)."""
        if not url.startswith("/"):
            raise ClientError(f"url {url!r} must be an absolute path to a model directory under {self.store_root}")
        try:
            resolved, store = Path(url).resolve(), self.store_root.resolve()
        except (OSError, RuntimeError) as exc:
            raise ClientError(f"url {url!r} cannot be resolved: {exc}") from None
        if store not in resolved.parents:
            raise ClientError(f"url {url!r} resolves to {resolved}, outside the model store {store}")
        if not resolved.exists():
            raise ModelDirectoryNotFound(f"url {url!r}: no such model directory")
        if not resolved.is_dir():
            raise ClientError(f"url {url!r} is not a directory (the extracted model.tar.gz is expected)")
        return resolved

    def _load_fitting(self, name: str, model_dir: Path) -> Model:
        """Load and warm up the model in `model_dir`, evicting least recently used models while
        memory is short, before and after; `InsufficientMemory` if it still does not fit."""
        short = self._make_room(name)
        if short is not None:
            raise self._no_room(name, model_dir, short, "to load it")
        started = time.perf_counter()
        try:
            model = self.load(model_dir)
        except ClientError:
            raise
        except MemoryError:
            raise InsufficientMemory(f"Out of memory loading model {name!r} from {model_dir}") from None
        except Exception as exc:  # a bad model directory is the caller's, never a 500
            raise ClientError(f"The model in {model_dir} could not be loaded: {type(exc).__name__}: {exc}") from None
        short = self._make_room(name)
        if short is not None:
            del model
            _release_memory()
            raise self._no_room(name, model_dir, short, "after loading it")
        log.info("Loaded model %r from %s in %.0f ms%s", name, model_dir, 1e3 * (time.perf_counter() - started),
                 _target_model_note())
        return model

    def _make_room(self, name: str) -> int | None:
        """Evict this worker's least recently used models (never `name`) while less than the
        floor is available; None once there is room, else the bytes still available."""
        floor = self.min_available_mb << 20
        while (available := self.available()) < floor:
            with self._lock:
                victim = next((n for n in self._models if n != name), None)
                if victim is None:
                    return available
                del self._models[victim]
            log.info("Evicted model %r from this worker: %d MB available, %d MB wanted free", victim,
                     available >> 20, self.min_available_mb)
            _release_memory()
        return None

    def _no_room(self, name: str, model_dir: Path, available: int, when: str) -> InsufficientMemory:
        return InsufficientMemory(f"Not enough memory for model {name!r} ({model_dir}): {available >> 20} MB available"
                                  f" {when}, SMALGOS_MME_MIN_AVAILABLE_MB={self.min_available_mb} wanted free;"
                                  " unload models and retry")

    # -- the cache ---------------------------------------------------------------------------------

    def _touch(self, name: str, token: str) -> Model | None:
        with self._lock:
            cached = self._models.get(name)
            if cached is None or cached[0] != token:
                return None
            self._models.move_to_end(name)
            return cached[1]

    def _put(self, name: str, token: str, model: Model) -> None:
        with self._lock:
            self._models[name] = (token, model)
            self._models.move_to_end(name)

    def _drop(self, name: str) -> None:
        with self._lock:
            dropped = self._models.pop(name, None)
        if dropped is not None:
            del dropped
            _release_memory()

    def _sweep(self) -> None:
        """Drop the models other workers unloaded (or loaded anew) since this worker last looked."""
        version = self.registry.version()
        if version == self._seen_version:
            return
        self._seen_version = version
        live = {e.name: e.token for e in self.registry.entries()}
        with self._lock:
            stale = [n for n, (token, _) in self._models.items() if live.get(n) != token]
        for name in stale:
            self._drop(name)


def _target_model_note() -> str:
    target = request.headers.get("X-Amzn-SageMaker-Target-Model") if request else None
    return f" (target model {target})" if target else ""


# -- the app --------------------------------------------------------------------------------------

def _load_request() -> tuple[str, str]:
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise ClientError('POST /models takes a JSON object: {"model_name": ..., "url": ...}')
    name, url = body.get("model_name"), body.get("url")
    if not isinstance(name, str) or not name or len(name) > MAX_NAME_LENGTH or "/" in name:
        raise ClientError(f"model_name must be a non-empty string of at most {MAX_NAME_LENGTH} characters"
                          f" without '/', got {name!r}")
    if not isinstance(url, str) or not url:
        raise ClientError(f"url must be the path of the model directory, got {url!r}")
    return name, url


def _page_arguments() -> tuple[int, int]:
    raw_limit = request.args.get("limit", str(LIST_LIMIT_DEFAULT))
    raw_token = request.args.get("next_page_token", "0")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= LIST_LIMIT_MAX:
        raise ClientError(f"limit must be an integer from 1 to {LIST_LIMIT_MAX}, got {raw_limit!r}")
    if not raw_token.isdigit():
        raise ClientError(f"next_page_token {raw_token!r} is not one this server gave")
    return int(raw_limit), int(raw_token)


def create_multi_model_app(algorithm: Algorithm, env: ServingEnv, *, store_root: Path, load: Callable[[Path], Model],
                           registry_dir: Path | None = None,
                           available: Callable[[], int] = available_memory_bytes) -> Flask:
    """The app of a multi-model endpoint: `/ping`, `/execution-parameters` and the /models API.

    `load(model_dir)` returns a warmed-up model (server.py: the algorithm's `model_loader`);
    `store_root` is where SageMaker puts the models (/opt/ml/models): a `url` outside it is
    refused. `available` reads the memory left (tests replace it)."""
    if not algorithm.serving.multi_model:
        raise ClientError(f"Algorithm {algorithm.name} does not serve multi-model endpoints "
                          "(SAGEMAKER_MULTI_MODEL=true); unset it to serve /opt/ml/model")
    registry = Registry(registry_dir or Path(env.mme_registry_dir or default_registry_dir()))
    models = ModelCache(registry, store_root, load, env.mme_min_available_mb, available)
    app = base_app(algorithm, env)
    app.extensions["smalgos.models"] = models
    invoker = Invoker(algorithm, env)

    @app.post("/models")
    def load_model():
        return models.add(*_load_request()).describe()

    @app.get("/models")
    def list_models():
        limit, start = _page_arguments()
        entries = registry.entries()
        page = {"models": [e.describe() for e in entries[start:start + limit]]}
        if start + limit < len(entries):
            page["nextPageToken"] = str(start + limit)
        return page

    @app.get("/models/<name>")
    def describe_model(name: str):
        entry = registry.get(name)
        if entry is None:
            raise ModelNotLoaded(f"Model {name!r} is not loaded")
        return entry.describe()

    @app.delete("/models/<name>")
    def unload_model(name: str):
        entry = models.remove(name)
        log.info("Unloaded model %r%s", name, _target_model_note())
        return entry.describe()

    @app.post("/models/<name>/invoke")
    def invoke(name: str):
        return invoker.respond(models.get(name))

    @app.post("/invocations")
    def invocations():
        raise ModelNotLoaded("This is a multi-model endpoint: invoke a model with POST /models/<model_name>/invoke")

    return app
