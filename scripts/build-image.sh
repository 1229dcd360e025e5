#!/usr/bin/env bash
# Build one algorithm image, smalgos/<ALGO>:<version>-<VARIANT>, and the shared layers under it.
# `make build` runs this after `make wheels`; see the Makefile for the variables.
#
#   scripts/build-image.sh ALGO VARIANT
#
# Images, bottom to top (each FROM the one before):
#   BASE_IMAGE                   python:3.11-slim; when it is neither present nor pullable and
#                                was not chosen explicitly, the debootstrapped smalgos/base:bookworm
#                                (scripts/base-image.sh, built if missing)
#   smalgos/common:local         docker/common.Dockerfile
#   smalgos/stack-<S>:<VARIANT>  docker/stack.Dockerfile, when containers/ALGO/Dockerfile says
#                                `ARG STACK=<S>` (e.g. torch)
#   smalgos/<ALGO>:<ver>-<VAR>   containers/ALGO/Dockerfile
#   (the same tag)               docker/pretrained.Dockerfile, with PRETRAINED=DIR: DIR's state
#                                dicts converted into the image (the vision algorithms' weights)
# Environment: ENGINE (docker|podman), BASE_IMAGE, IMAGE_REPO (smalgos), BUILD_FLAGS (extra
# flags for `$ENGINE build`), PRETRAINED (a folder of .pth / .pt / .safetensors state dicts).
set -euo pipefail
ALGO="${1:?usage: build-image.sh ALGO VARIANT}"
VARIANT="${2:?usage: build-image.sh ALGO VARIANT}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
ENGINE="${ENGINE:-docker}"
DEFAULT_BASE=python:3.11-slim
LOCAL_BASE=smalgos/base:bookworm
BASE_IMAGE="${BASE_IMAGE:-}"
COMMON_IMAGE=smalgos/common:local

say() { echo "build-image: $*" >&2; }
die() { say "$*"; exit 1; }

DOCKERFILE="containers/$ALGO/Dockerfile"
[ -f "$DOCKERFILE" ] || die "no $DOCKERFILE; algorithms with one:" \
  "$(cd containers && ls -d */Dockerfile 2>/dev/null | sed 's|/Dockerfile||' | tr '\n' ' ')"
variants="$("$ROOT/scripts/variants.sh" "$ALGO")" || die "cannot read the declaration of $ALGO"
grep -qx -- "$VARIANT" <<<"$variants" || \
  die "$ALGO has no '$VARIANT' variant; its declaration lists: $(echo $variants)"
STACK="$(sed -n 's/^ARG STACK=\([^ ]*\).*/\1/p' "$DOCKERFILE" | head -1)"
[ "$STACK" = none ] && STACK=""
wheel_dirs=(build/wheels/common "build/wheels/$ALGO-$VARIANT")
[ -n "$STACK" ] && wheel_dirs+=("build/wheels/stack-$STACK-$VARIANT")
for dir in "${wheel_dirs[@]}"; do
  [ -d "$dir" ] || die "$dir is missing: run make wheels ALGO=$ALGO VARIANT=$VARIANT"
done
tag="$("$ROOT/scripts/image-name.sh" "$ALGO" "$VARIANT")"
PRETRAINED="${PRETRAINED:-}"
if [ -n "$PRETRAINED" ]; then
  [ -d "$PRETRAINED" ] || die "PRETRAINED=$PRETRAINED is not a folder"
  weights() { find "$PRETRAINED" -maxdepth 1 -type f \( -name '*.pth' -o -name '*.pt' -o -name '*.safetensors' \); }
  [ -n "$(weights)" ] || die "PRETRAINED=$PRETRAINED holds no .pth, .pt or .safetensors state dict"
fi

# Through podman's Docker API the docker CLI must use its classic builder (BuildKit's session
# API is Docker's own).
if [ "$(basename "$ENGINE")" = docker ] && docker version 2>/dev/null | grep -qi podman; then
  export DOCKER_BUILDKIT=0
fi

# Base image -----------------------------------------------------------------------------------
have_image() { "$ENGINE" image inspect "$1" >/dev/null 2>&1; }
if [ -z "$BASE_IMAGE" ]; then
  if have_image "$DEFAULT_BASE" || "$ENGINE" pull -q "$DEFAULT_BASE" >/dev/null 2>&1; then
    BASE_IMAGE="$DEFAULT_BASE"
  else
    say "cannot pull $DEFAULT_BASE (no registry?): using the local Debian base $LOCAL_BASE"
    have_image "$LOCAL_BASE" || ENGINE="$ENGINE" "$ROOT/scripts/base-image.sh" "$LOCAL_BASE"
    BASE_IMAGE="$LOCAL_BASE"
  fi
elif ! have_image "$BASE_IMAGE"; then
  "$ENGINE" pull "$BASE_IMAGE" >&2 || die "base image $BASE_IMAGE is neither present nor pullable"
fi

# A slim build context with the repository's layout: only what the Dockerfiles copy -----------
ctx="build/context/$ALGO-$VARIANT.$$"   # one per build: builds may run side by side
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/build/wheels"
tar -c --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
  common docker "containers/$ALGO" | tar -x -C "$ctx"
for dir in "${wheel_dirs[@]}"; do cp -al "$dir" "$ctx/$dir"; done   # hard links: no copying

# shellcheck disable=SC2086
build() { "$ENGINE" build --network none ${BUILD_FLAGS:-} "$@"; }
say "common layer $COMMON_IMAGE (base $BASE_IMAGE)"
build -f "$ctx/docker/common.Dockerfile" --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$COMMON_IMAGE" "$ctx"
parent="$COMMON_IMAGE"
if [ -n "$STACK" ]; then
  parent="smalgos/stack-$STACK:$VARIANT"
  say "$STACK stack layer $parent"
  build -f "$ctx/docker/stack.Dockerfile" --build-arg "COMMON_IMAGE=$COMMON_IMAGE" \
    --build-arg "STACK=$STACK" --build-arg "VARIANT=$VARIANT" -t "$parent" "$ctx"
fi
say "image $tag"
build -f "$ctx/$DOCKERFILE" --build-arg "VARIANT=$VARIANT" --build-arg "PARENT_IMAGE=$parent" -t "$tag" "$ctx"
if [ -n "$PRETRAINED" ]; then
  say "pretrained weights from $PRETRAINED into $tag"
  mkdir -p "$ctx/pretrained"
  weights | while read -r f; do cp "$f" "$ctx/pretrained/"; done
  build -f "$ctx/docker/pretrained.Dockerfile" --build-arg "IMAGE=$tag" --build-arg "ALGO=$ALGO" -t "$tag" "$ctx"
fi
say "built $tag ($("$ENGINE" image inspect --format '{{.Size}}' "$tag" | awk '{printf "%.2f GB", $1/1e9}'))"
