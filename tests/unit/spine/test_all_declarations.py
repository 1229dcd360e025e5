"""Every algorithm's declaration is well-formed and agrees with the spine's registries."""
import re

import pytest

from smalgos.declaration import CPU, GPU, MAXIMIZE, MINIMIZE, load_algorithm, resolve
from smalgos.formats import DECODERS, ENCODERS

from .images import ALGORITHMS, import_here


def test_the_repository_has_algorithms():
    assert "linear-learner" in ALGORITHMS


@pytest.mark.parametrize("name", ALGORITHMS + ["test-centroid"])
def test_declaration_is_consistent(name):
    algo = load_algorithm(name)
    assert algo.name == name
    assert set(algo.variants) <= {CPU, GPU} and algo.variants
    # A framework image (script_only: RL) takes whatever channels the user's script reads.
    assert (algo.script_only or any(c.required for c in algo.channels))
    assert len({c.name for c in algo.channels}) == len(algo.channels)
    for channel in algo.channels:
        unknown = [t for t in channel.content_types if t not in DECODERS]
        assert not unknown, f"channel {channel.name} declares unregistered content types {unknown}"
    assert set(algo.serving.content_types) <= set(DECODERS)
    assert set(algo.serving.accepts) <= set(ENCODERS)
    assert algo.serving.default_accept in algo.serving.accepts
    names = [m.name for m in algo.metrics]
    assert len(set(names)) == len(names), "metric declared twice"
    for metric in algo.metrics:
        assert metric.direction in (MINIMIZE, MAXIMIZE)
        assert re.compile(metric.regex).groups == 1, metric.name
        # A framework image's metrics carry the SDK's names (RL: episode_reward_mean).
        assert re.fullmatch(r"(train|validation|test):[\w.:-]+" if not algo.script_only else r"\w+", metric.name), \
            metric.name
    for p in algo.hyperparameters.params:  # every default parses as its own type
        if p.default is not None and not p.required:
            p.parse(p.default if not isinstance(p.default, (list, bool)) else str(p.default).lower()
                    if isinstance(p.default, bool) else ",".join(p.default))
    for entry in algo.entry_points():  # the image's build resolves them where this cannot
        found = import_here(name, lambda: resolve(entry))
        assert found is None or callable(found), entry
