"""Training across hosts (smalgos.distributed): the collectives between two real processes on
loopback, the bounded rendezvous, a host killed mid-training, and how a channel is sliced."""
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from algo_helpers import csv_bytes
from smalgos.channels import ChannelInput
from smalgos.config import ChannelConfig, ResourceConfig
from smalgos.declaration import load_algorithm
from smalgos.distributed import SOLO, joined
from smalgos.environment import ClusterEnv
from smalgos.errors import PlatformError
from smalgos.localjob import LocalCluster, LocalJob

# One host of a two-host job: every collective, its results as JSON on stdout.
COLLECTIVES = textwrap.dedent("""
    import json, sys
    import numpy as np
    from smalgos.config import ResourceConfig
    from smalgos.distributed import joined
    host = sys.argv[1]
    resources = ResourceConfig(current_host=host, hosts=("algo-1", "algo-2"))
    with joined(resources) as cluster:
        r = cluster.rank
        out = {"rank": r, "size": cluster.size, "host": cluster.host, "master": cluster.is_master}
        total, counts = cluster.sum(np.array([1.5, 2.0]) * (r + 1), np.array([r + 1], dtype=np.int64))
        out["sum"], out["sum_int"] = total.tolist(), [int(counts[0]), str(counts.dtype)]
        out["gather"] = [p.tolist() for p in cluster.gather(np.full((r + 1, 2), r, dtype=np.float32))]
        out["broadcast"] = cluster.broadcast(np.array([10.0 + r, 20.0 + r])).tolist()
        out["max"], out["count"], out["any"] = cluster.max(float(r)), cluster.count(r == 1), cluster.any(r == 0)
        out["lockstep"] = [x for x in cluster.lockstep(range(3 if r == 0 else 5), empty=lambda: None)]
        steps = iter(range(100))
        out["stopped"] = [x for x in cluster.lockstep(range(10), empty=lambda: None,
                                                      stop=lambda: r == 1 and next(steps) >= 2)]
    print(json.dumps(out))
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_collectives_across_two_processes():
    env = {**os.environ, "SMALGOS_DIST_MASTER_ADDR": "127.0.0.1", "SMALGOS_DIST_PORT": str(_free_port()),
           "SMALGOS_DIST_CONNECT_SECONDS": "60"}
    procs = [subprocess.Popen([sys.executable, "-c", COLLECTIVES, host], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for host in ("algo-2", "algo-1")]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    second, first = (json.loads(out) for out, _ in outs)
    assert (first["rank"], first["host"], first["master"]) == (0, "algo-1", True)
    assert (second["rank"], second["host"], second["master"], second["size"]) == (1, "algo-2", False, 2)
    for host in (first, second):
        assert host["sum"] == [4.5, 6.0] and host["sum_int"] == [3, "int64"]
        assert host["gather"] == [[[0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]]  # 1 row and 2 rows, in rank order
        assert host["broadcast"] == [10.0, 20.0]  # the master's
        assert (host["max"], host["count"], host["any"]) == (1.0, 1, True)
        assert host["stopped"] in ([0, 1], [0, 1, 2])  # algo-2's stop ends both loops at the same step
    assert first["lockstep"] == [0, 1, 2, None, None]  # the shorter host steps on with empty items
    assert second["lockstep"] == [0, 1, 2, 3, 4]
    assert first["stopped"] == second["stopped"]


def test_one_host_is_solo_and_its_collectives_return_their_input():
    with joined(ResourceConfig()) as cluster:
        assert cluster is SOLO and not cluster.several and cluster.is_master and cluster.host == "algo-1"
        a = np.arange(6.0).reshape(3, 2)
        assert np.array_equal(cluster.sum(a)[0], a)
        assert [g.tolist() for g in cluster.gather(a)] == [a.tolist()]
        assert np.array_equal(cluster.broadcast(a), a) and cluster.max(2.5) == 2.5
        assert (cluster.count(True), cluster.any(False)) == (1, False)
        assert list(cluster.lockstep([1, 2, 3], empty=lambda: 0)) == [1, 2, 3]
        calls = iter(range(10))
        assert list(cluster.lockstep([1, 2, 3], empty=lambda: 0, stop=lambda: next(calls) >= 1)) == [1]


@pytest.mark.parametrize("host, says", [
    ("algo-1", r"Host\(s\) algo-2 did not join the training job within the wait"),
    ("algo-2", r"Host algo-2 could not reach the job's rendezvous on algo-1"),
])
def test_a_host_that_never_comes_is_a_platform_error_naming_it(host, says):
    env = ClusterEnv(port=_free_port(), master_addr="127.0.0.1", connect_seconds=2, wait_seconds=30)
    started = time.monotonic()
    with pytest.raises(PlatformError, match=says):
        with joined(ResourceConfig(current_host=host, hosts=("algo-1", "algo-2")), env=env):
            pass
    assert time.monotonic() - started < 30  # bounded by connect_seconds, not the 300 s default


def test_killing_a_host_mid_training_fails_the_other_within_a_minute(tmp_path):
    rng = np.random.default_rng(0)
    data = csv_bytes(rng.normal(size=(2000, 4)))
    cluster = LocalCluster(tmp_path, 2)
    for host, job in zip(cluster.names, cluster.jobs):
        job.write_config({"k": 4, "feature_dim": 4, "mini_batch_size": 50, "epochs": 5000},
                         {"train": {"ContentType": "text/csv"}}, resources=cluster.resources(host))
        job.add_file("train", "all.csv", data)
    procs = cluster.start("kmeans")
    try:
        deadline = time.monotonic() + 180
        while "#progress_metric" not in cluster.log_file("algo-2").read_text():
            assert all(p.poll() is None for p in procs), [cluster.log_file(h).read_text() for h in cluster.names]
            assert time.monotonic() < deadline, "algo-2 made no progress"
            time.sleep(0.5)
        procs[1].kill()
        killed = time.monotonic()
        code = procs[0].wait(timeout=60)
        assert time.monotonic() - killed < 60
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert code != 0
    first = cluster.jobs[0].failure.splitlines()[0]
    assert first.startswith("PlatformError: Host algo-1 lost the other host(s) (algo-2) "), first
    assert not (cluster.jobs[0].paths.model_dir / "model_algo-1.json").exists()


@pytest.mark.parametrize("distribution", ["FullyReplicated", "ShardedByS3Key"])
def test_a_sliced_channel_is_this_hosts_share(tmp_path, distribution):
    job = LocalJob(tmp_path)
    job.add_file("train", "a.csv", csv_bytes(np.arange(7.0).reshape(7, 1)))
    job.add_file("train", "b.csv", csv_bytes(np.arange(7.0, 11.0).reshape(4, 1)))
    declared = next(c for c in load_algorithm("kmeans").channels if c.name == "train")
    config = ChannelConfig.parse("train", {"ContentType": "text/csv", "S3DistributionType": distribution,
                                           "TrainingInputMode": "File"})
    channel = ChannelInput(declared, config, job.paths, default_label_size=0)

    def records(part):
        return sorted(float(v) for b in part.batches(3) for v in b.dense_features()[:, 0])

    halves = [records(channel.sliced(rank, 2)) for rank in range(2)]
    everything = [float(v) for v in range(11)]
    assert records(channel.sliced(0, 1)) == everything
    if distribution == "FullyReplicated":  # each host its share by record index: together all, once
        assert sorted(halves[0] + halves[1]) == everything and halves[0] and halves[1]
        assert len(halves[0]) == 6 and len(halves[1]) == 5
    else:  # each host was given its own files: it reads all of them
        assert halves == [everything, everything]
