"""Helpers of the container tests: the engine CLI, endpoints, data, names."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "examples" / "breast-cancer"
ALGO = "linear-learner"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def skip_or_fail(reason: str):
    """Skip a test whose prerequisite is missing; under CI, where everything must be there, fail."""
    import pytest

    if in_ci():
        pytest.fail(f"CI is set, so this is a failure: {reason}")
    pytest.skip(reason)


def answers(cmd: str) -> bool:
    if not shutil.which(cmd):
        return False
    try:
        return subprocess.run([cmd, "info"], capture_output=True, timeout=30).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unique(prefix: str) -> str:
    return f"smalgos-test-{prefix}-{uuid.uuid4().hex[:8]}"


def hyperparameters(**overrides) -> dict:
    hp = {"predictor_type": "binary_classifier", "feature_dim": 30, "mini_batch_size": 100, "epochs": 10}
    hp.update(overrides)
    return hp


def load_split(name: str):
    import numpy as np

    rows = np.loadtxt(DATA / f"{name}.csv", delimiter=",", dtype=np.float32)
    return rows[:, 1:], rows[:, 0]


def wait_http(url: str, timeout: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@dataclass
class Run:
    returncode: int
    logs: str


class Engine:
    """The engine CLI with the few operations the tests need. Never trusts `run --rm` exit codes."""

    def __init__(self, command: str):
        self.command = command

    def __call__(self, *args: str, check: bool = True, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
        return subprocess.run([self.command, *args], capture_output=True, text=True, check=check,
                              timeout=timeout, **kw)

    def logs(self, name: str) -> str:
        out = self("logs", name, check=False)
        return out.stdout + out.stderr

    def exit_code(self, name: str) -> int:
        return int(self("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip())

    def run(self, image: str, *args: str, volumes: dict | None = None, env: dict | None = None,
            timeout: float = 900) -> Run:
        """Run a container to completion (no --rm); the exit code comes from its inspected state."""
        name = unique("run")
        cmd = ["run", "--name", name]
        for host, target in (volumes or {}).items():
            cmd += ["-v", f"{host}:{target}"]
        for k, v in (env or {}).items():
            cmd += ["-e", f"{k}={v}"]
        try:
            proc = self(*cmd, image, *args, check=False, timeout=timeout)
            state = self("inspect", "--format", "{{.State.ExitCode}}", name, check=False)
            code = int(state.stdout.strip()) if state.returncode == 0 else proc.returncode
            return Run(code, proc.stdout + proc.stderr)
        finally:
            self("rm", "-f", name, check=False)


class Endpoint:
    """`ENGINE run -d -p PORT:8080 IMAGE serve` on a model folder."""

    def __init__(self, engine: Engine, image: str, model_dir: Path, *, env: dict | None = None,
                 container_port: int = 8080):
        self.engine = engine
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.name = unique("serve")
        cmd = ["run", "-d", "--name", self.name, "-p", f"127.0.0.1:{self.port}:{container_port}",
               "-v", f"{model_dir}:/opt/ml/model:ro"]
        for k, v in (env or {}).items():
            cmd += ["-e", f"{k}={v}"]
        self.started = time.monotonic()
        engine(*cmd, image, "serve")
        self.ready_after: float | None = None

    def wait_ready(self, timeout: float = 180) -> float:
        """Seconds from `run` to the first 200 on /ping."""
        import requests

        while time.monotonic() - self.started < timeout:
            try:
                if requests.get(self.url + "/ping", timeout=2).status_code == 200:
                    self.ready_after = time.monotonic() - self.started
                    return self.ready_after
            except requests.RequestException:
                pass
            state = self.engine("inspect", "--format", "{{.State.Running}}", self.name, check=False)
            if state.stdout.strip() == "false":
                raise AssertionError(f"serve container exited:\n{self.logs()[-4000:]}")
            time.sleep(0.05)
        raise AssertionError(f"/ping not 200 within {timeout} s:\n{self.logs()[-4000:]}")

    def logs(self) -> str:
        return self.engine.logs(self.name)

    def stop(self, timeout: int = 10) -> None:
        self.engine("stop", "-t", str(timeout), self.name, check=False)

    def remove(self) -> None:
        self.engine("rm", "-f", self.name, check=False)


def read_json(path: Path):
    return json.loads(path.read_text())


# ---- SageMaker SDK local mode ----------------------------------------------------------------

ROLE = "arn:aws:iam::123456789012:role/SageMakerRole"


def _compose_processes(root) -> list[int]:
    """The pids of docker-compose processes whose compose file lies under `root`."""
    pids = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        text = b" ".join(args).decode(errors="replace")
        if "compose" in text and str(root) in text:
            pids.append(int(cmdline.parent.name))
    return [p for p in pids if p != os.getpid()]


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie is the SDK thread's child, reaped when it returns)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def remove_local_mode_containers(engine: Engine, root) -> None:
    """Local mode leaves its compose containers behind; remove those whose compose project lives
    under `root` (a test's container_root) and nothing else. A `docker-compose up` of the SDK's
    that is still running (the SDK raised before stopping it) is stopped first: left alone, it
    could start its container after the removal (seen under CI load) and hold pytest at exit."""
    pids = _compose_processes(root)
    for pid in pids:
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _running(p)]
        time.sleep(0.2)
    out = engine("ps", "-a", "--format", '{{.ID}} {{.Label "com.docker.compose.project.working_dir"}}',
                 check=False).stdout
    for line in out.splitlines():
        cid, _, workdir = line.partition(" ")
        if workdir.strip().startswith(str(root)):
            engine("rm", "-f", cid, check=False)


def model_artifact(estimator) -> Path:
    """The local path of a fitted estimator's model.tar.gz, after checking that training really
    succeeded: local mode exits 0 even when the container fails, so `fit` not raising proves
    nothing. The archive must hold files and output.tar.gz no `failure`."""
    import tarfile

    model_tar = estimator.model_data
    if isinstance(model_tar, dict):
        model_tar = model_tar["S3DataSource"]["S3Uri"]
    path = Path(model_tar.removeprefix("file://"))
    assert path.name == "model.tar.gz" and path.exists(), model_tar
    output = path.parent / "output.tar.gz"
    if output.exists():
        with tarfile.open(output) as tar:
            failure = next((m for m in tar.getmembers() if m.name.endswith("failure")), None)
            assert failure is None, tar.extractfile(failure).read()[:2000].decode(errors="replace")
    with tarfile.open(path) as tar:
        assert tar.getnames(), "model.tar.gz is empty: training failed (local mode does not raise)"
    return path
