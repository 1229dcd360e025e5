"""Run the user's training program as SageMaker's framework containers do (see `__init__`).

The program runs in `/opt/ml/code` as a child process: `python <program>` for a `.py` file,
`sh <program>` for a `.sh` file, the file itself when it is executable. Its stdout passes through;
its stderr is copied to ours line by line and its last lines kept for the failure file. A SIGTERM
to the job (the runner's `stop_event`) is forwarded to it; the job then stops as any job stops.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import IO

from ..config import JobConfig
from ..environment import Paths, ScriptModeEnv
from ..errors import ClientError, SMAlgoError, TrainingStopped
from . import PROGRAM_PARAM
from .contract import Hyperparameters, cmd_args, count_gpus, training_env_vars
from .source import install_requirements, prepare_code

log = logging.getLogger("smalgos")

TAIL_LINES = 40  # of the program's stderr, kept for the failure file (its traceback's end)
POLL_SECONDS = 0.2


class UserScriptError(SMAlgoError):
    """The user's program exited non-zero: the job exits with its code, and the failure file holds
    the reason (AWS's `ExecuteUserScriptError`) and the end of the program's stderr."""

    kind = "AlgorithmError"

    def __init__(self, message: str, exit_code: int, details: str):
        super().__init__(message)
        self.exit_code = exit_code
        self.details = details


def program_command(code: Path, program: str) -> list[str]:
    path = code / program
    if not path.is_file():
        present = ", ".join(sorted(p.name for p in code.iterdir())) if code.is_dir() else "none"
        raise ClientError(f"Hyperparameter {PROGRAM_PARAM}: {program!r} is not in the code directory {code}"
                          f" (files there: {present or 'none'})")
    if path.suffix == ".py":
        return [sys.executable, str(path)]
    if path.suffix == ".sh":
        return ["/bin/sh", str(path)]
    if os.access(path, os.X_OK):
        return [str(path)]
    raise ClientError(f"Hyperparameter {PROGRAM_PARAM}: {program!r} is neither a .py or .sh script nor executable")


def _copy_stderr(stream: IO[bytes], tail: deque) -> None:
    out = sys.stderr.buffer if hasattr(sys.stderr, "buffer") else None
    for line in iter(stream.readline, b""):
        if out is not None:
            out.write(line)
            out.flush()
        else:
            sys.stderr.write(line.decode("utf-8", "replace"))
        tail.append(line.decode("utf-8", "replace").rstrip("\n"))
    stream.close()


def _exit_reason(program: str, code: int, tail: deque) -> tuple[str, int]:
    if code < 0:  # killed by a signal: report it as a shell does
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory?)" if -code == signal.SIGKILL else ""
        return f"{program} was killed by {name}{hint}", 128 - code
    last = next((line.strip() for line in reversed(tail) if line.strip()), "")
    return f"{program} exited with code {code}" + (f": {last}" if last else ""), code


def run_script(config: JobConfig, paths: Paths, stop_event: threading.Event,
               env: ScriptModeEnv | None = None) -> None:
    """Run the job's program to its end; raise UserScriptError when it fails, TrainingStopped when
    SIGTERM stopped it."""
    env = env or ScriptModeEnv.from_env()
    hps = Hyperparameters.split(config.hyperparameters)
    program = str(hps.platform[PROGRAM_PARAM])
    code, module_dir = prepare_code(paths, hps.platform)
    command = program_command(code, program) + cmd_args(hps.user)
    child_env = {**env.inherited, **training_env_vars(paths, hps, code, module_dir, count_gpus())}
    child_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(code), env.inherited.get("PYTHONPATH")]))
    child_env.setdefault("PYTHONUNBUFFERED", "1")  # the program's prints reach the log as they happen
    install_requirements(code, child_env)
    for d in (paths.model_dir, paths.output_data_dir):
        d.mkdir(parents=True, exist_ok=True)
    log.info("Invoking the user's script: %s", shlex.join(command))
    proc = subprocess.Popen(command, cwd=code, env=child_env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    tail: deque = deque(maxlen=TAIL_LINES)
    reader = threading.Thread(target=_copy_stderr, args=(proc.stderr, tail), daemon=True)
    reader.start()
    forwarded = False
    while True:
        try:
            code_or_signal = proc.wait(timeout=POLL_SECONDS)
            break
        except subprocess.TimeoutExpired:
            if stop_event.is_set() and not forwarded:
                log.warning("Forwarding SIGTERM to the user's script (pid %d)", proc.pid)
                proc.send_signal(signal.SIGTERM)
                forwarded = True
    reader.join()
    if forwarded:
        raise TrainingStopped(f"the job received SIGTERM; {program} exited with {code_or_signal}")
    if code_or_signal != 0:
        message, exit_code = _exit_reason(program, code_or_signal, tail)
        raise UserScriptError(f"ExecuteUserScriptError: {message}", exit_code, "\n".join(tail) + "\n")
    log.info("The user's script %s finished", program)
