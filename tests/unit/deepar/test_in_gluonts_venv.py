"""The DeepAR checks that need gluonts, run in its own venv (scripts/deepar-venv.sh: gluonts
0.17.0 over this environment, installed without its pandas<3 pin), as one pytest session there.
Every check must run and pass: none may skip."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CHECKS = Path(__file__).parent / "in_venv"


def test_the_gluonts_checks_pass_in_the_deepar_venv():
    made = subprocess.run([str(ROOT / "scripts" / "deepar-venv.sh")], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHON": sys.executable})
    assert made.returncode == 0, made.stderr[-3000:]
    python = made.stdout.strip().splitlines()[-1]
    files = sorted(str(p) for p in CHECKS.glob("check_*.py"))
    assert len(files) == 4
    run = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "ignore", *files],
                         cwd=ROOT, capture_output=True, text=True, timeout=1200)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else run.stderr[-2000:]
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert re.search(r"\b\d+ passed\b", summary) and "skipped" not in summary, summary

