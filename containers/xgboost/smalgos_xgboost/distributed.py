"""Training across hosts: XGBoost's own collective (Rabit), as AWS's image does.

Every host of `resourceconfig.json` joins; its rank is its place in the sorted host list, so the
master (the first host) is rank 0. The master also runs the tracker, on its own address and
`TRACKER_PORT`; the others find it by the master's host name. Each host boosts on the records it
was given (ShardedByS3Key: its part; FullyReplicated: all of them, which then count once per
host); XGBoost sums the histograms and metrics across hosts, so every host builds the same trees
and prints the same metric lines, and only the master writes the model. A host that was given no
records still joins, with none, as otherwise the others would wait for it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
from typing import Iterator

from smalgos.errors import PlatformError

log = logging.getLogger("smalgos")

TRACKER_PORT = int(os.environ.get("SMALGOS_XGBOOST_TRACKER_PORT", "9099"))
CONNECT_SECONDS = int(os.environ.get("SMALGOS_XGBOOST_CONNECT_SECONDS", "300"))


def resolve(host: str, wait: float = CONNECT_SECONDS) -> str:
    """The host's address; in a cluster a peer's name may take a moment to appear in DNS."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return socket.gethostbyname(host)
        except OSError as exc:
            if time.monotonic() > deadline:
                raise PlatformError(f"Cannot resolve host {host!r} to reach the other hosts: {exc}") from None
            time.sleep(1)


@contextlib.contextmanager
def collective(resources) -> Iterator[None]:
    """Everything inside runs as one worker of an XGBoost cluster of all hosts (nothing on one host)."""
    if resources.num_hosts == 1:
        yield
        return
    import xgboost as xgb
    from xgboost.tracker import RabitTracker

    master = resolve(resources.master_host)
    tracker = None
    if resources.is_master:
        tracker = RabitTracker(n_workers=resources.num_hosts, host_ip=master, port=TRACKER_PORT, sortby="task",
                               timeout=CONNECT_SECONDS)
        tracker.start()
    log.info("Host %s is worker %d of %d; tracker on %s:%d (%s)", resources.current_host, resources.rank,
             resources.num_hosts, master, TRACKER_PORT, resources.master_host)
    args = {"dmlc_communicator": "rabit", "dmlc_tracker_uri": master, "dmlc_tracker_port": TRACKER_PORT,
            "dmlc_task_id": str(resources.rank), "dmlc_retry": max(1, CONNECT_SECONDS // 10),
            "dmlc_timeout": CONNECT_SECONDS}
    try:
        xgb.collective.init(**args)
    except xgb.core.XGBoostError as exc:
        raise PlatformError(f"Host {resources.current_host} could not join the other hosts through the tracker on "
                            f"{resources.master_host} ({master}:{TRACKER_PORT}): "
                            f"{str(exc).split('Stack trace:')[0].strip()}") from None
    try:
        yield
    finally:
        xgb.collective.finalize()
    if tracker is not None:
        tracker.wait_for(CONNECT_SECONDS)
