#!/usr/bin/env bash
# Write containers/ALGO/Dockerfile from docker/algorithm.Dockerfile.in.
#
#   scripts/new-dockerfile.sh ALGO [STACK] [VERSION]
#
# STACK: the shared framework layer (a folder of docker/stacks/, e.g. torch) or none (default:
# the one named by an existing Dockerfile, else none). VERSION: the image tag's version part
# (default: the existing Dockerfile's, else 1). The algorithm's package is containers/ALGO/
# smalgos_<ALGO with - as _>. DOCKERFILE_OUT=PATH writes there instead (`-`: standard output).
set -euo pipefail
ALGO="${1:?usage: new-dockerfile.sh ALGO [STACK] [VERSION]}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
current="$ROOT/containers/$ALGO/Dockerfile"
out="${DOCKERFILE_OUT:-$current}"
existing() { [ -f "$current" ] && sed -n "s/^ARG $1=\\([^ ]*\\).*/\\1/p" "$current" | head -1; }
STACK="${2:-$(existing STACK || true)}"; STACK="${STACK:-none}"
VERSION="${3:-$(existing IMAGE_VERSION || true)}"; VERSION="${VERSION:-1}"
PACKAGE="smalgos_${ALGO//-/_}"
[ -d "$ROOT/containers/$ALGO/$PACKAGE" ] || { echo "no containers/$ALGO/$PACKAGE" >&2; exit 1; }
if [ "$STACK" = none ]; then
  parent=smalgos/common:local; layer=""; stack_arg=""
else
  [ -d "$ROOT/docker/stacks/$STACK" ] || { echo "no docker/stacks/$STACK" >&2; exit 1; }
  parent="smalgos/stack-$STACK:cpu"; layer=" → $STACK stack (shared)"; stack_arg=" $STACK"
fi
# The multi-model endpoint label, where the declaration opts in (Serving(multi_model=True)).
multi_model="$(PYTHONPATH="$ROOT/common:$ROOT/containers/$ALGO${PYTHONPATH:+:$PYTHONPATH}" python3 -c \
  "from smalgos.declaration import load_algorithm; print(load_algorithm('$ALGO').serving.multi_model)")"
if [ "$multi_model" = True ]; then
  mme_label='# SageMaker may host it on a multi-model endpoint (the declaration'"'"'s Serving(multi_model=True)).\
LABEL com.amazonaws.sagemaker.capabilities.multi-models=true'
else
  mme_label="# Not for multi-model endpoints (the declaration's Serving(multi_model=False))."
fi
sed -e "s|@ALGO@|$ALGO|g" -e "s|@PACKAGE@|$PACKAGE|g" -e "s|@STACK@|$STACK|g" \
    -e "s|@PARENT@|$parent|g" -e "s|@VERSION@|$VERSION|g" -e "s|@STACK_LAYER@|$layer|g" \
    -e "s|@STACK_ARG@|$stack_arg|g" -e "s|@MULTI_MODEL_LABEL@|$mme_label|" \
    "$ROOT/docker/algorithm.Dockerfile.in" > "$( [ "$out" = - ] && echo /dev/stdout || echo "$out")"
[ "$out" = - ] || echo "wrote $out (stack: $STACK, version: $VERSION)" >&2
