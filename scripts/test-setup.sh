#!/usr/bin/env bash
# Install what the test suite needs, idempotently, and print the environment to run it in.
#
#   eval "$(scripts/test-setup.sh [PYTHON])"     # then: "$PYTHON" -m pytest tests
#
# 1. System packages (Debian/Ubuntu, as root; only what is missing): docker-registry (a real
#    registry for the push test; its own service is kept from starting: the tests start one on a
#    free port), make, git; then a Docker-compatible engine (scripts/setup-engine.sh: podman behind
#    the Docker API). Elsewhere these steps are skipped and the container tests skip (or fail under
#    CI=true) when no engine answers.
# 2. Python packages: `pip install -e '.[all,test]'` (every algorithm's extras: the unit tests import
#    them all) unless they already import. A Python whose pip refuses installs (PEP 668, Debian's
#    own python3) gets a virtual environment in build/test-venv.
# Progress goes to stderr; stdout is only `export ...` lines.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive PIP_NO_INPUT=1
PYTHON="${1:-${PYTHON:-$(command -v python3 || command -v python)}}"
say() { echo "test-setup: $*" >&2; }

# 1. System packages and a container engine --------------------------------------------------
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  need=()
  for pkg in docker-registry make git; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
  if [ "${#need[@]}" -gt 0 ]; then
    say "installing ${need[*]}"
    apt-get update -qq
    own_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && own_policy=1
    fi
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    if [ "$own_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  fi
fi
engine_env="$(scripts/setup-engine.sh | tail -1)" || { say "no container engine: container tests will skip (fail under CI)"; engine_env=""; }

# 2. Python packages ---------------------------------------------------------------------------
if ! "$PYTHON" -m pip --version >/dev/null 2>&1 || \
   [ -f "$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_path("stdlib"))')/EXTERNALLY-MANAGED" ]; then
  if ! "$PYTHON" -m venv --help >/dev/null 2>&1 && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv python3-pip >/dev/null
  fi
  [ -x build/test-venv/bin/python ] || "$PYTHON" -m venv build/test-venv
  PYTHON="$PWD/build/test-venv/bin/python"
  say "using a virtual environment: $PYTHON"
fi
# Everything imports, and `smalgos` (and each algorithm) from this checkout, not another one.
if ! "$PYTHON" - >/dev/null 2>&1 <<'PY'
import os, sys
import smalgos, smalgos_kmeans, smalgos_linear_learner, smalgos_xgboost  # noqa: F401
import torch, safetensors, faiss, xgboost, pyarrow, sklearn, sagemaker, moto, pytest, requests  # noqa: F401
here = os.path.realpath(os.getcwd())
sys.exit(0 if all(os.path.realpath(m.__file__).startswith(here + os.sep)
                  for m in (smalgos, smalgos_kmeans, smalgos_linear_learner, smalgos_xgboost)) else 1)
PY
then
  say "installing the project and its test dependencies (pip install -e '.[all,test]')"
  "$PYTHON" -m pip install -q -e '.[all,test]' 2> >(grep -v 'is ignored: it is neither a file' >&2) >&2
fi

echo "export PYTHON='$PYTHON'"
echo "export PATH='$(dirname "$PYTHON"):$PATH'"
[ -n "$engine_env" ] && echo "$engine_env"
exit 0
