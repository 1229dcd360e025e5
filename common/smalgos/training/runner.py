"""The `train` program: load the job's configuration, validate it against the algorithm's
declaration, run the trainer, and report the outcome the way SageMaker reads it.

Success: the model is in `/opt/ml/model`, `/opt/ml/output/success` exists, exit 0.
Failure: `/opt/ml/output/failure` starts with a one-line reason, `ClientError: ...` when the user's
hyperparameters, channels or data are at fault and `AlgorithmError: ...` otherwise (SageMaker shows
the first 1024 characters as FailureReason); the traceback follows for our own errors; exit 1.
SIGTERM: the trainer is asked to stop at its next batch (saving what it can), then exit 143.

Script (framework) mode: when the hyperparameters carry `sagemaker_program` and the algorithm's
declaration has `script_mode`, the user's program runs instead (smalgos.scriptmode); the job exits
with the program's exit code, and its failure file holds the end of the program's stderr.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
import traceback

from ..config import JobConfig
from ..declaration import Algorithm, load_algorithm, resolve
from ..environment import Paths
from ..errors import ClientError, SMAlgoError, TrainingStopped
from ..logs import setup_logging
from ..scriptmode import PROGRAM_PARAM, SUBMIT_DIR_PARAM
from .job import TrainingJob

log = logging.getLogger("smalgos")

EXIT_OK, EXIT_FAILED, EXIT_STOPPED = 0, 1, 143


def failure_text(exc: BaseException) -> str:
    """The failure file's content: a one-line reason first, details after."""
    if isinstance(exc, SMAlgoError):
        reason = f"{exc.kind}: {exc.message}"
    else:
        reason = f"AlgorithmError: {type(exc).__name__}: {exc}"
    reason = " ".join(reason.splitlines())  # the reason must stay on the first line
    if isinstance(exc, ClientError):
        return reason + "\n"
    details = getattr(exc, "details", None)  # a user script's own stderr (scriptmode.UserScriptError)
    return reason + "\n\n" + (details if details is not None else "".join(traceback.format_exception(exc)))


def write_failure(paths: Paths, text: str) -> None:
    paths.output_dir.mkdir(parents=True, exist_ok=True)
    paths.failure_file.write_text(text, encoding="utf-8")


def _log_configuration(algorithm: Algorithm, config: JobConfig, final: dict, paths: Paths) -> None:
    defaults = {p.name: p.default for p in algorithm.hyperparameters.params
                if not p.required and p.default is not None}
    log.info("Reading default configuration for %s: %s", algorithm.name, json.dumps(defaults, default=str))
    log.info("Merging with provided configuration from %s: %s", paths.hyperparameters_file,
             json.dumps(config.hyperparameters))
    log.info("Final configuration: %s", json.dumps(final, default=str))
    for name, ch in config.channels.items():
        log.info("Channel %s: mode=%s, content type=%s, distribution=%s", name, ch.input_mode,
                 ch.content_type or "(default)", ch.distribution)
    log.info("Host %s of %s (rank %d)", config.resources.current_host, list(config.resources.hosts),
             config.resources.rank)


def _stopped(paths: Paths) -> int:
    log.warning("Training stopped by SIGTERM")
    write_failure(paths, "Stopped: the job received SIGTERM before training finished; the model"
                         " written so far (if any) is in the model directory\n")
    return EXIT_STOPPED


def _run_script(algorithm: Algorithm, config: JobConfig, paths: Paths, stop_event: threading.Event) -> None:
    if not algorithm.script_mode:
        raise ClientError(f"Hyperparameter {PROGRAM_PARAM}: the {algorithm.name} image has no script (framework)"
                          f" mode; leave out {PROGRAM_PARAM} and {SUBMIT_DIR_PARAM} to train in algorithm mode")
    resolve(algorithm.script_runner)(config, paths, stop_event)


def run_training(algorithm: str | Algorithm, paths: Paths | None = None,
                 install_signal_handler: bool = True) -> int:
    """Run one training job; return the process exit code."""
    setup_logging()
    paths = paths or Paths.from_env()
    stop_event = threading.Event()
    if install_signal_handler and threading.current_thread() is threading.main_thread():
        def on_sigterm(signum, frame):
            log.warning("Received SIGTERM: stopping at the next batch boundary")
            stop_event.set()
        signal.signal(signal.SIGTERM, on_sigterm)

    start = time.time()
    try:
        algo = load_algorithm(algorithm) if isinstance(algorithm, str) else algorithm
        config = JobConfig.load(paths)
        if PROGRAM_PARAM in config.hyperparameters:
            _run_script(algo, config, paths, stop_event)
        elif algo.script_only:
            raise ClientError(f"Hyperparameter {PROGRAM_PARAM} is missing: the {algo.name} image runs your training"
                              f" script (the SDK's entry_point; {SUBMIT_DIR_PARAM} names the code) and has no"
                              " algorithm mode")
        else:
            job = TrainingJob.from_config(algo, config, paths, stop_event)
            _log_configuration(algo, config, job.hyperparameters, paths)
            paths.model_dir.mkdir(parents=True, exist_ok=True)
            trainer = resolve(algo.trainer)
            trainer(job)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach the failure file
        if isinstance(exc, KeyboardInterrupt):
            raise
        if stop_event.is_set() and isinstance(exc, TrainingStopped):
            return _stopped(paths)
        text = failure_text(exc)
        log.error("Training failed: %s", text.splitlines()[0])
        if not isinstance(exc, ClientError) and getattr(exc, "details", None) is None:
            log.error("%s", "".join(traceback.format_exception(exc)))
        write_failure(paths, text)
        return getattr(exc, "exit_code", EXIT_FAILED)
    if stop_event.is_set():
        return _stopped(paths)
    paths.output_dir.mkdir(parents=True, exist_ok=True)
    paths.success_file.touch()
    log.info("Training finished in %.1f s", time.time() - start)
    return EXIT_OK
