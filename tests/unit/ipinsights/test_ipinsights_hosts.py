"""IP Insights trained across two hosts (two processes on loopback, `LocalCluster`): each host reads
its part of `train`, and every step is one Adam step of both hosts' mini-batches (the rows they
touched, gradients summed), so both hosts hold the same network; the master's is the model."""
import re

import numpy as np
import pytest
import torch

from algo_helpers import train_on_hosts
from smalgos.maths.ranking import separation_auc
from smalgos_ipinsights.model import IPInsights
from smalgos_ipinsights.synthetic import csv_lines, dotted, login_events

HPS = {"num_entity_vectors": 1000, "vector_dim": 16, "epochs": 6, "mini_batch_size": 250, "learning_rate": 0.02,
       "batch_metrics_publish_interval": 10}
AUC_LINE = re.compile(r"#quality_metric: host=algo-\d, epoch=(\d+), validation discriminator_auc <score>=(\S+)")
TRAIN_LINE = re.compile(r"#quality_metric: host=algo-\d, epoch=(\d+), train binary_classification_cross_entropy "
                        r"<loss>=(\S+)")


@pytest.fixture(scope="module")
def logins():
    """AWS's login-event process: (users of the events, their addresses, held-out usual events of
    users, probes(users) -> (usual pairs, the same with another probe's address))."""
    who, addresses, table, users = login_events(n_users=200, n_asns=400, max_events=150, seed=3)
    rng = np.random.default_rng(11)

    def probes(of_users):
        probe = rng.choice(of_users, 1500)
        usual = users.events(probe, table, rng)
        names = [f"user_{u}" for u in probe.tolist()]
        return list(zip(names, dotted(usual))), list(zip(names, dotted(usual[rng.permutation(len(probe))])))

    return who, addresses, probes


def pairs(who, addresses):
    return list(zip([f"user_{u}" for u in who.tolist()], dotted(addresses)))


def real_vs_shuffled(model, probe) -> float:
    usual, shuffled = probe
    return separation_auc(model.dot_product(usual), model.dot_product(shuffled))


def two_hosts(tmp_path, parts, distribution, validation=None):
    """Train on two hosts, host i holding the CSV bytes `parts[i]`: the hosts' logs and the master's model."""
    logs, model_dir = train_on_hosts("ipinsights", tmp_path, HPS, parts, distribution,
                                     extra=None if validation is None else {"validation": validation})
    return logs, IPInsights.load(model_dir)


def test_two_hosts_on_the_full_data_tell_real_from_shuffled_pairs_as_one_host(tmp_path, logins):
    """Each host reads every other pair of the same file (FullyReplicated). A step of the two is
    one host's step on both batches (the same 500 pairs as one host's batch at mini_batch_size
    500, with other negatives): the AUC of real pairs against shuffled ones is within 0.01 of one
    host's at 500 and 0.015 of one host's at 250 (3 seeds: 0.928 ± 0.002 and 0.933 ± 0.002)."""
    who, addresses, probes = logins
    data = csv_lines(who, addresses)
    validation = csv_lines(who[:2000], addresses[:2000])
    logs, model = two_hosts(tmp_path, [data, data], "FullyReplicated", validation=validation)
    torch.set_num_threads(1)
    probe = probes(np.unique(who))
    ours = real_vs_shuffled(model, probe)
    alone, alone_at_twice = (real_vs_shuffled(IPInsights(**{**HPS, "mini_batch_size": size}).fit(pairs(who, addresses)),
                                              probe) for size in (250, 500))
    assert ours >= 0.9 and abs(ours - alone_at_twice) <= 0.01 and abs(ours - alone) <= 0.015, (
        ours, alone_at_twice, alone)
    # Both hosts hold the same network (the validation AUC each prints after each epoch is the
    # same), and each prints the job's train metrics (both hosts' pairs).
    for line in (AUC_LINE, TRAIN_LINE):
        master, other = (line.findall(out) for out in logs)
        assert len(master) == HPS["epochs"] and master == other, (master, other)
    assert "model is written by the master only" in logs[1]


def test_hosts_holding_different_users_give_one_model_of_all_of_them(tmp_path, logins):
    """Host 1 holds the events of users 0-99, host 2 those of users 100-199 (ShardedByS3Key; the
    hosts' counts differ, so one steps through empty mini-batches): the model tells real pairs of
    either half's users from shuffled ones, which a model of one half cannot do for the other."""
    who, addresses, probes = logins
    first = who < 100
    parts = [csv_lines(who[first], addresses[first]), csv_lines(who[~first], addresses[~first])]
    _, model = two_hosts(tmp_path, parts, "ShardedByS3Key")
    probe_first, probe_second = probes(np.unique(who[first])), probes(np.unique(who[~first]))
    assert real_vs_shuffled(model, probe_first) >= 0.9 and real_vs_shuffled(model, probe_second) >= 0.9
    torch.set_num_threads(1)
    half = IPInsights(**HPS).fit(pairs(who[first], addresses[first]))
    assert real_vs_shuffled(half, probe_second) <= 0.7  # what host 1 alone would answer
