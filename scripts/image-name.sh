#!/usr/bin/env bash
# Print the local image name of ALGO's VARIANT: <IMAGE_REPO>/<ALGO>:<IMAGE_VERSION>-<VARIANT>,
# IMAGE_VERSION read from the `ARG IMAGE_VERSION=` line of containers/<ALGO>/Dockerfile.
set -euo pipefail
ALGO="${1:?usage: image-name.sh ALGO VARIANT}"; VARIANT="${2:?usage: image-name.sh ALGO VARIANT}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DOCKERFILE="$ROOT/containers/$ALGO/Dockerfile"
[ -f "$DOCKERFILE" ] || { echo "image-name: no $DOCKERFILE" >&2; exit 1; }
version="$(sed -n 's/^ARG IMAGE_VERSION=\([^ ]*\).*/\1/p' "$DOCKERFILE" | head -1)"
echo "${IMAGE_REPO:-smalgos}/$ALGO:${version:-1}-$VARIANT"
