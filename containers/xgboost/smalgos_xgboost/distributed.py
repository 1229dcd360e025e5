"""Training across hosts: XGBoost's own collective (Rabit), as AWS's image does.

Every host of `resourceconfig.json` joins; its rank is its place in the sorted host list, so the
master (the first host) is rank 0. The master also runs the tracker, on its own address and
`XGBoostEnv.tracker_port` (`$SMALGOS_XGBOOST_TRACKER_PORT`, read when training starts); the others
find it by the master's host name. Each host boosts on the records it was given (ShardedByS3Key:
its part; FullyReplicated: all of them, which then count once per host); XGBoost sums the
histograms and metrics across hosts, so every host builds the same trees and prints the same
metric lines, and only the master writes the model. A host that was given no records still joins,
with none, as otherwise the others would wait for it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Callable, Iterator, TypeVar

from smalgos.distributed import resolve
from smalgos.environment import XGBoostEnv
from smalgos.errors import ClientError, PlatformError

log = logging.getLogger("smalgos")
T = TypeVar("T")


@contextlib.contextmanager
def collective(resources, env: XGBoostEnv | None = None) -> Iterator[None]:
    """Everything inside runs as one worker of an XGBoost cluster of all hosts (nothing on one host).

    `env`: the tracker port and time-outs; None reads `XGBoostEnv` now."""
    if resources.num_hosts == 1:
        yield
        return
    env = env or XGBoostEnv.from_env()
    port = env.tracker_port
    import xgboost as xgb
    from xgboost.tracker import RabitTracker

    master = resolve(resources.master_host, env.connect_seconds)
    tracker = None
    if resources.is_master:
        # timeout 0: the tracker waits for every host however long its data takes to read
        tracker = RabitTracker(n_workers=resources.num_hosts, host_ip=master, port=port, sortby="task",
                               timeout=0)
        tracker.start()
    log.info("Host %s is worker %d of %d; tracker on %s:%d (%s)", resources.current_host, resources.rank,
             resources.num_hosts, master, port, resources.master_host)
    args = {"dmlc_communicator": "rabit", "dmlc_tracker_uri": master, "dmlc_tracker_port": port,
            "dmlc_task_id": str(resources.rank), "dmlc_retry": max(1, env.connect_seconds // 10),
            "dmlc_timeout": env.wait_seconds}
    try:
        try:
            xgb.collective.init(**args)
        except xgb.core.XGBoostError as exc:
            raise PlatformError(f"Host {resources.current_host} could not join the other hosts through the tracker "
                                f"on {resources.master_host} ({master}:{port}); another host may have "
                                f"failed (see its log): {str(exc).split('Stack trace:')[0].strip()}") from None
        try:
            yield
        except BaseException:
            with contextlib.suppress(Exception):  # the others may be gone already: keep our own error
                xgb.collective.finalize()
                if tracker is not None:
                    tracker.wait_for(10)
            raise
        try:
            xgb.collective.finalize()
            if tracker is not None:
                tracker.wait_for(env.wait_seconds)
        except xgb.core.XGBoostError as exc:  # the model is built; a hurried goodbye is no failure
            log.warning("Leaving the cluster: %s", str(exc).split("Stack trace:")[0].strip())
    finally:
        if tracker is not None:
            with contextlib.suppress(Exception):
                tracker.free()


def check_shards(channel: str, rows: int, dense_width: int | None, required: bool) -> None:
    """Agree across hosts that a channel's shards fit together: the same number of columns for dense
    data (sparse rows may stop early), and at least one record somewhere when the channel is required.
    Every host calls this at the same point, inside `collective`."""
    import numpy as np
    import xgboost as xgb

    if not xgb.collective.is_distributed():
        return
    mine = np.array([1 if rows else 0, dense_width if dense_width is not None and rows else -1,
                     -dense_width if dense_width is not None and rows else -(1 << 40)], np.float64)
    has_rows, widest, narrowest = xgb.collective.allreduce(mine, xgb.collective.Op.MAX)
    if required and not has_rows:
        raise ClientError(f"Channel {channel!r}: no host was given any records")
    if widest >= 0 and -narrowest != widest:
        raise ClientError(f"Channel {channel!r}: the hosts' files have from {int(-narrowest)} to {int(widest)} "
                          "feature columns: every host's data needs the same columns")


def all_or_none(step: str, fn: Callable[[], T]) -> T:
    """`fn()` on every host, inside `collective`: if it fails on any host it fails on all, each host
    with its own error or with one that points at the host that failed, so none waits for ever."""
    import numpy as np
    import xgboost as xgb

    if not xgb.collective.is_distributed():
        return fn()
    failed: BaseException | None = None
    try:
        result = fn()
    except Exception as exc:  # noqa: BLE001 - re-raised below, after telling the other hosts
        failed = exc
    everyone_ok = xgb.collective.allreduce(np.array([0.0 if failed else 1.0]), xgb.collective.Op.MIN)[0]
    if failed is not None:
        raise failed
    if not everyone_ok:
        raise ClientError(f"Another host failed while {step}: its failure reason says why")
    return result
