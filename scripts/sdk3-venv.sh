#!/usr/bin/env bash
# Make (or refresh) a virtual environment with the SageMaker Python SDK v3, apart from the main
# environment (which keeps SDK v2: the two majors cannot share one environment).
#
#   scripts/sdk3-venv.sh [PYTHON]     # prints the venv's python on stdout
#
# The venv lives in build/sdk3-venv (SDK3_VENV overrides). Idempotent: when the venv already has
# the pinned versions it only checks them (about a second). From nothing it takes minutes: the SDK
# pulls in mlflow and its dependencies (measured: 19 min on 2 busy cores). Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
PYTHON="${1:-${PYTHON:-$(command -v python3 || command -v python)}}"
VENV="${SDK3_VENV:-$PWD/build/sdk3-venv}"
PINS=(sagemaker==3.27.0 sagemaker-core==2.27.0 sagemaker-train==1.27.0 sagemaker-serve==1.27.0)
say() { echo "sdk3-venv: $*" >&2; }

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9    # one maker at a time (parallel test sessions)

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
# Installed versions match the pins: nothing to do.
if ! "$VENV/bin/python" - "${PINS[@]}" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
sys.exit(0 if all(version(n) == v for n, _, v in (p.partition("==") for p in sys.argv[1:])) else 1)
PY
then
  say "installing ${PINS[*]}"
  "$VENV/bin/python" -m pip install -q "${PINS[@]}" 2> >(grep -v 'is ignored: it is neither a file' >&2) >&2
fi
echo "$VENV/bin/python"
