#!/usr/bin/env bash
# Print the image variants (cpu, gpu, ...) an algorithm's declaration lists, one a line.
# Needs only the standard library: `python -m smalgos.cli describe ALGO --field variants`.
set -euo pipefail
ALGO="${1:?usage: variants.sh ALGO}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
PYTHONPATH="$ROOT/common:$ROOT/containers/$ALGO" exec "$PYTHON" -m smalgos.cli describe "$ALGO" --field variants
