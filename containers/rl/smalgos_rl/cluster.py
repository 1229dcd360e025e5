"""Several hosts, one Ray cluster, as SageMaker RL's Ray launcher forms it: the first host (sorted
names, as every smalgos cluster) starts Ray's head, every other host joins it by name with Ray's
own `ray start --address`, and the user's script runs on the head only, where its `ray.init()`
connects to the whole cluster (RAY_ADDRESS). Ray schedules the script's env runners and learners
on every node; nothing here carries data between hosts.

The head waits until every host's node is alive (ClusterEnv.connect_seconds, 300 s; then a
PlatformError names the hosts missing) and logs the cluster's nodes and CPUs. A worker host keeps
its node up until the head's port closes (the script ended, or the job stopped), then leaves
cleanly: its exit is a success, and the job's result is the head's. On one host nothing is started:
the script's `ray.init()` starts Ray in its own process tree, as on a laptop.

Ray's token authentication is off between the job's hosts (RAY_AUTH_MODE=disabled): the hosts share
no secret to derive a token from, and SageMaker's training network is the job's own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from typing import Mapping

from smalgos.config import JobConfig
from smalgos.distributed import resolve
from smalgos.environment import ClusterEnv, Paths, ScriptModeEnv
from smalgos.errors import PlatformError
from smalgos.scriptmode.contract import count_gpus
from smalgos.scriptmode.training import run_script as run_user_script

log = logging.getLogger("smalgos")

RAY_PORT = 6379  # the head's GCS port (Ray's default)
POLL_SECONDS = 1.0
HEAD_GONE_POLLS = 3  # the head's port refused this many times in a row: the job is over
# Ray's settings on every host: no usage reports (there is no network to send them to).
RAY_DEFAULTS = {"RAY_USAGE_STATS_ENABLED": "0"}
# Across hosts, also: no token authentication (see the module's docstring).
RAY_CLUSTER = {**RAY_DEFAULTS, "RAY_AUTH_MODE": "disabled"}


def _ray(env: Mapping[str, str], *args: str) -> None:
    """Run the `ray` command line (the image's); a failure is the platform's."""
    exe = shutil.which("ray", path=env.get("PATH"))
    if exe is None:
        raise PlatformError("The `ray` command is not in this image: install ray[rllib] to train across hosts")
    done = subprocess.run([exe, *args], env=dict(env), stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        raise PlatformError(f"`ray {args[0]}` failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-2000:]}")
    log.info("ray %s: %s", args[0], (done.stdout.strip().splitlines() or [""])[-1])


def _port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=2):
            return True
    except OSError:
        return False


def _wait_for_nodes(env: Mapping[str, str], address: str, hosts: tuple[str, ...], seconds: float) -> None:
    """Block until every host's Ray node is alive (`smalgos_rl.nodes`, a driver of its own, so that
    this process never joins the cluster); log the nodes and their CPUs and GPUs."""
    done = subprocess.run([sys.executable, "-m", "smalgos_rl.nodes", address, str(len(hosts)), str(seconds)],
                          env=dict(env), stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        joined = {}
        try:
            joined = json.loads(done.stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            pass
        have = set(joined.get("nodes", {}))
        missing = [h for h in hosts if _address(h) not in have]
        raise PlatformError(f"Ray cluster: {len(have)} of {len(hosts)} hosts joined within {seconds:.0f} s;"
                            f" missing: {', '.join(missing) or 'unknown'} ({done.stderr.strip()[-500:]})")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    nodes = ", ".join(f"{ip} {cpus:g} CPUs" for ip, cpus in sorted(summary["nodes"].items()))
    log.info("Ray cluster: %d nodes (%s), %g CPUs, %g GPUs in all", len(summary["nodes"]), nodes,
             summary["cpus"], summary["gpus"])


def _address(host: str) -> str | None:
    try:
        return socket.gethostbyname(host)
    except OSError:
        return None


def _resources_args() -> list[str]:
    return [f"--num-cpus={os.cpu_count() or 1}", f"--num-gpus={count_gpus()}"]


def run_script(config: JobConfig, paths: Paths, stop_event: threading.Event) -> None:
    """The job's script on one Ray cluster of all its hosts (see the module's docstring)."""
    resources = config.resources
    script_env = ScriptModeEnv.from_env()
    if resources.num_hosts == 1:
        env = dataclasses.replace(script_env, inherited={**RAY_DEFAULTS, **script_env.inherited})
        run_user_script(config, paths, stop_event, env)
        return
    cluster = ClusterEnv.from_env()
    own = resolve(resources.current_host, cluster.connect_seconds)
    head = resolve(resources.master_host, cluster.connect_seconds)
    address = f"{head}:{RAY_PORT}"
    ray_env = {**script_env.inherited, **RAY_CLUSTER}
    if resources.is_master:
        log.info("Starting the Ray head on %s (%s)", resources.current_host, address)
        _ray(ray_env, "start", "--head", f"--port={RAY_PORT}", f"--node-ip-address={own}",
             "--include-dashboard=false", "--disable-usage-stats", *_resources_args())
        try:
            _wait_for_nodes(ray_env, address, resources.hosts, cluster.connect_seconds)
            env = dataclasses.replace(script_env, inherited={**ray_env, "RAY_ADDRESS": address})
            run_user_script(config, paths, stop_event, env)
        finally:
            _ray(ray_env, "stop", "--force")
        return
    deadline = time.monotonic() + cluster.connect_seconds
    while not _port_open(head, RAY_PORT):
        if time.monotonic() > deadline or stop_event.is_set():
            raise PlatformError(f"Ray head {resources.master_host} ({address}) did not open its port within"
                                f" {cluster.connect_seconds} s")
        time.sleep(POLL_SECONDS)
    log.info("Joining the Ray cluster at %s (%s) from %s", resources.master_host, address, resources.current_host)
    _ray(ray_env, "start", f"--address={address}", f"--node-ip-address={own}", "--disable-usage-stats",
         *_resources_args())
    try:
        refused = 0
        while refused < HEAD_GONE_POLLS and not stop_event.is_set():
            refused = 0 if _port_open(head, RAY_PORT) else refused + 1
            time.sleep(POLL_SECONDS)
        log.info("The Ray head %s has closed: this host's work is done", resources.master_host)
    finally:
        _ray(ray_env, "stop", "--force")
