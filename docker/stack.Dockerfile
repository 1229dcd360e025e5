# A framework layer shared by several algorithm images: smalgos/stack-<STACK>:<VARIANT>, e.g.
# torch (CPU-only or CUDA build) for linear-learner, kmeans, knn and pca. Layers: base → common →
# stack → algorithm; an algorithm names its stack in its Dockerfile (`ARG STACK=torch`) and
# `make build` builds the stack image first. Packages come from build/wheels/stack-<STACK>-<VARIANT>
# (docker/stacks/<STACK>/requirements-<VARIANT>.txt), offline.

ARG COMMON_IMAGE=smalgos/common:local

FROM ${COMMON_IMAGE} AS builder
ARG STACK=torch
ARG VARIANT=cpu
COPY build/wheels/stack-${STACK}-${VARIANT}/ /wheels/stack/
COPY common/requirements.txt /requirements/common.txt
COPY docker/stacks/${STACK}/ /requirements/stack/
# `--prefix` installs only what the common venv lacks; the result moves to /opt/stack, which
# the common layer's zz_smalgos.pth already puts on sys.path.
RUN pip install --no-index --find-links /wheels/stack --prefix /opt/prefix \
        -c /requirements/common.txt -r /requirements/stack/requirements-${VARIANT}.txt \
 && /usr/local/bin/smalgos-move-prefix /opt/prefix /opt/stack

FROM ${COMMON_IMAGE}
ARG STACK=torch
ARG VARIANT=cpu
COPY --from=builder /opt/stack /opt/stack
LABEL org.opencontainers.image.title="smalgos ${STACK} stack (${VARIANT})"
