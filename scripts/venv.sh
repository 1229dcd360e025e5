#!/usr/bin/env bash
# Make (or refresh) a virtual environment of pinned packages apart from the main environment, for
# what cannot share it (SDK v3 beside v2; gluonts, whose pandas<3 pin the main environment breaks).
#
#   scripts/venv.sh NAME [--system-site-packages] [--no-deps] PIN...   # prints the venv's python
#
# The venv lives in build/NAME-venv (VENV_DIR overrides). --system-site-packages: the venv sees the
# main environment's packages (and its editable smalgos) and adds the pins; --no-deps: the pins are
# installed without their declared dependencies (those come from the main environment).
# Idempotent: when the venv has the pinned versions it only checks them (about a second). One
# maker at a time (parallel test sessions). Progress goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_NO_INPUT=1 PIP_DISABLE_PIP_VERSION_CHECK=1
NAME="$1"; shift
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
VENV="${VENV_DIR:-$PWD/build/$NAME-venv}"
venv_args=(); pip_args=()
while [ "$#" -gt 0 ] && [ "${1#--}" != "$1" ]; do
  case "$1" in
    --system-site-packages) venv_args+=("$1") ;;
    --no-deps) pip_args+=("$1") ;;
    *) echo "venv.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
PINS=("$@")
say() { echo "$NAME-venv: $*" >&2; }

mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9

if [ ! -x "$VENV/bin/python" ]; then
  say "creating $VENV"
  "$PYTHON" -m venv "${venv_args[@]}" "$VENV"
fi
if ! "$VENV/bin/python" - "${PINS[@]}" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
sys.exit(0 if all(version(n) == v for n, _, v in (p.partition("==") for p in sys.argv[1:])) else 1)
PY
then
  say "installing ${PINS[*]}"
  "$VENV/bin/python" -m pip install -q "${pip_args[@]}" "${PINS[@]}" 2> >(grep -v 'is ignored: it is neither a file' >&2) >&2
fi
echo "$VENV/bin/python"
