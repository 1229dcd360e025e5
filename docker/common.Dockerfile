# The common layer shared by every algorithm image: a base with Python 3.11, a venv at /opt/venv
# holding the shared spine's dependencies (common/requirements.txt), the `train`/`serve`
# executables and the SageMaker container settings. Algorithm images start FROM this image
# (containers/<algo>/Dockerfile), so N images store these layers once.
#
# Build context: the repository root (or the slim copy of it that `make` stages under
# build/context/). Python packages come from the wheelhouse made by `make wheels`
# (build/wheels/common); nothing is downloaded during the build.
#
#   make common-image                     # what `make build` runs first
#   docker build -f docker/common.Dockerfile -t smalgos/common:local .

# python:3.11-slim, or `make base-image`'s debootstrapped Debian bookworm (python3 + venv).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS base
ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1

# ---- builder: the venv, from the wheelhouse only ----------------------------------------------
FROM base AS builder
COPY build/wheels/common/ /wheels/common/
COPY common/requirements.txt /requirements/common.txt
# The venv's bundled setuptools is removed: nothing here needs it at run time, and an algorithm
# that does (torch wants a newer one) brings its own in its layer.
# zz_smalgos.pth puts the upper layers' Python code on sys.path, after the venv's: /opt/smalgos/lib
# (sources of smalgos and of the algorithm), /opt/algo/site-packages (the algorithm's own
# dependencies) and /opt/stack/site-packages (a framework shared by several algorithms, e.g.
# torch: docker/stack.Dockerfile). Both are installed with `pip install --prefix`, which skips
# what the layers below already have.
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-index --find-links /wheels/common -r /requirements/common.txt \
 && /opt/venv/bin/pip uninstall -y -q setuptools \
 && purelib="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
 && printf '%s\n' '/opt/smalgos/lib' \
      'import site; site.addsitedir("/opt/algo/site-packages"); site.addsitedir("/opt/stack/site-packages")' \
      > "$purelib/zz_smalgos.pth"

# ---- common runtime ---------------------------------------------------------------------------
FROM base AS common
COPY --from=builder /opt/venv /opt/venv
COPY docker/bin/train docker/bin/serve docker/bin/smalgos-move-prefix /usr/local/bin/
ENV PATH=/opt/venv/bin:/opt/algo/bin:/opt/stack/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# SageMaker runs `docker run IMAGE train` / `docker run IMAGE serve`: exec form, so the word
# arrives as an argument and SIGTERM reaches Python (the trainer and gunicorn handle it).
ENTRYPOINT ["python", "-m", "smalgos.cli"]
EXPOSE 8080
LABEL com.amazonaws.sagemaker.capabilities.accept-bind-to-port=true \
      org.opencontainers.image.licenses="Apache-2.0"
