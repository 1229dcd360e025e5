"""`make demo`'s script end to end (the README's main job), on the session's image."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from .helpers import ROOT

pytestmark = pytest.mark.container


def test_demo_trains_serves_and_answers_every_format(engine, image, tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--image", image,
                          "--engine", engine.command, "--workdir", str(tmp_path)],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    accuracies = [float(a) for a in re.findall(r"accuracy on the 114 held-out rows: ([0-9.]+)", out.stdout)]
    assert len(accuracies) == 3 and min(accuracies) > 0.9, out.stdout[-3000:]
    for content_type in ("text/csv", "application/json", "application/x-recordio-protobuf"):
        assert f"Content-Type: {content_type}" in out.stdout
    assert "stopped" in out.stdout
