# smalgos: images of the SageMaker built-in algorithms.
#
#   make build ALGO=linear-learner VARIANT=cpu    build smalgos/linear-learner:1-cpu
#   make build ALGO=image-classification PRETRAINED=DIR   with DIR's state dicts inside (vision)
#   make -s image-name ALGO=.. VARIANT=..          print that image's local name
#   make build-all [VARIANTS="cpu gpu"]            every algorithm × every variant it declares
#   make wheels [ALGO=..] [VARIANT=..]             download wheelhouses (build/wheels/)
#   make base-image                                debootstrap a local Debian base (no registry)
#   make push ALGO=.. VARIANT=.. [REGION=..] [REGISTRY=host:port] [REPOSITORY=..] [DRY_RUN=1]
#   make demo                                      build, train, serve, predict (linear-learner)
#   make test                                      all tests, container tests included
#   make test-fast                                 the tests that need no container engine
#   make setup-engine                              install/configure podman if no engine answers
#
# ENGINE is docker or podman (default: whichever answers, docker first).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VARIANT ?= cpu
VARIANTS ?= cpu gpu
IMAGE_REPO ?= smalgos
REGION ?=
REGISTRY ?=
REPOSITORY ?=
BASE_IMAGE ?=
BUILD_FLAGS ?=
ifeq ($(origin ENGINE),undefined)
ENGINE := $(shell scripts/detect-engine.sh 2>/dev/null || echo docker)
ENGINE_DETECTED := 1
endif
export ENGINE PYTHON IMAGE_REPO BASE_IMAGE BUILD_FLAGS

# Algorithms with an image: containers/<name>/Dockerfile.
ALGORITHMS := $(patsubst containers/%/Dockerfile,%,$(wildcard containers/*/Dockerfile))
WHEELS := build/wheels

.PHONY: help build build-all wheels base-image image-name push demo test test-fast setup-engine \
        check-algo check-variant clean clean-wheels prune

help:
	@sed -n '3,15p' Makefile | sed 's/^# \{0,1\}//'
	@echo "Algorithms with a Dockerfile: $(ALGORITHMS)"
	@echo "ENGINE=$(ENGINE)"

check-algo:
	@if [ -z "$(ALGO)" ]; then echo "Set ALGO=<algorithm> (one of: $(ALGORITHMS))" >&2; exit 2; fi
	@if [ ! -f containers/$(ALGO)/Dockerfile ]; then \
	  echo "Unknown ALGO '$(ALGO)': no containers/$(ALGO)/Dockerfile (have: $(ALGORITHMS))" >&2; exit 2; fi

# Refuse a variant the algorithm's declaration does not list.
check-variant: check-algo
	@variants="$$(scripts/variants.sh $(ALGO))" || { echo "Cannot read the declaration of $(ALGO)" >&2; exit 2; }; \
	if ! grep -qx -- '$(VARIANT)' <<<"$$variants"; then \
	  echo "$(ALGO) has no '$(VARIANT)' variant: its declaration lists $$(echo $$variants | sed 's/ /, /g')" >&2; exit 2; fi

image-name: check-algo
	@scripts/image-name.sh $(ALGO) $(VARIANT)

# ---- wheelhouses ------------------------------------------------------------------------------
# One per layer, each holding only what the layers below lack:
#   build/wheels/common                 common/requirements.txt
#   build/wheels/stack-<s>-<variant>    docker/stacks/<s>/requirements-<variant>.txt
#   build/wheels/<algo>-<variant>       containers/<algo>/requirements-<variant>.txt (or
#                                       requirements.txt), minus the common and stack wheels,
#                                       + requirements-nodeps.txt's pins alone (where it exists)
# constrained by common's pins. Stamp files: re-downloaded only when a requirements file changes.
STACKS := $(notdir $(wildcard docker/stacks/*))
stack_of = $(shell sed -n 's/^ARG STACK=\([^ ]*\).*/\1/p' containers/$(1)/Dockerfile | grep -v '^none$$')

$(WHEELS)/common/.stamp: common/requirements.txt scripts/wheels.sh
	scripts/wheels.sh $(WHEELS)/common common/requirements.txt
	@touch $@

define STACK_WHEEL_RULE
$(WHEELS)/stack-$(1)-$(2)/.stamp: docker/stacks/$(1)/requirements-$(2).txt $(WHEELS)/common/.stamp
	scripts/wheels.sh $(WHEELS)/stack-$(1)-$(2) docker/stacks/$(1)/requirements-$(2).txt common/requirements.txt \
	  --minus $(WHEELS)/common
	@touch $$@
endef
$(foreach s,$(STACKS),$(foreach v,cpu gpu,$(eval $(call STACK_WHEEL_RULE,$(s),$(v)))))

# $(1) algorithm, $(2) variant, $(3) its stack (empty: none)
define WHEEL_RULE
$(WHEELS)/$(1)-$(2)/.stamp: $(wildcard containers/$(1)/requirements*.txt) $(WHEELS)/common/.stamp \
    $(if $(3),$(WHEELS)/stack-$(3)-$(2)/.stamp)
	scripts/wheels.sh $(WHEELS)/$(1)-$(2) \
	  $(firstword $(wildcard containers/$(1)/requirements-$(2).txt) containers/$(1)/requirements.txt) \
	  common/requirements.txt --minus $(WHEELS)/common $(if $(3),--minus $(WHEELS)/stack-$(3)-$(2))
	$(if $(wildcard containers/$(1)/requirements-nodeps.txt),scripts/wheels.sh $(WHEELS)/$(1)-$(2) \
	  containers/$(1)/requirements-nodeps.txt --no-deps)
	@touch $$@
endef
$(foreach a,$(ALGORITHMS),$(foreach v,cpu gpu,$(eval $(call WHEEL_RULE,$(a),$(v),$(call stack_of,$(a))))))

# `make wheels`: every layer's wheelhouse for ALGO (default: every algorithm) and VARIANT (cpu).
wheels: $(WHEELS)/common/.stamp
	@for a in $(or $(ALGO),$(ALGORITHMS)); do \
	  $(MAKE) --no-print-directory $(WHEELS)/$$a-$(VARIANT)/.stamp || exit 1; done

base-image:
	scripts/base-image.sh smalgos/base:bookworm

# ---- images -----------------------------------------------------------------------------------
build: check-variant $(WHEELS)/common/.stamp
	@$(MAKE) --no-print-directory $(WHEELS)/$(ALGO)-$(VARIANT)/.stamp
	$(if $(PRETRAINED),PRETRAINED="$(abspath $(PRETRAINED))") scripts/build-image.sh $(ALGO) $(VARIANT)

build-all:
	@set -e; for a in $(ALGORITHMS); do \
	  declared="$$(scripts/variants.sh $$a)"; \
	  for v in $(VARIANTS); do \
	    if grep -qx -- "$$v" <<<"$$declared"; then $(MAKE) --no-print-directory build ALGO=$$a VARIANT=$$v; \
	    else echo "skip $$a $$v (not declared)"; fi; \
	  done; done

push: check-variant
	$(PYTHON) scripts/push.py --image "$$(scripts/image-name.sh $(ALGO) $(VARIANT))" \
	  --engine "$(ENGINE)" $(if $(REGION),--region $(REGION)) $(if $(REGISTRY),--registry $(REGISTRY)) \
	  $(if $(REPOSITORY),--repository $(REPOSITORY)) $(if $(INSECURE),--insecure) $(if $(DRY_RUN),--dry-run)

# ---- use --------------------------------------------------------------------------------------
setup-engine:
	scripts/setup-engine.sh

# On a machine where no engine answers, setup-engine.sh installs podman first (Debian/Ubuntu, root).
demo:
	@scripts/setup-engine.sh >/dev/null
	@$(PYTHON) -c 'import numpy, scipy, google.protobuf' 2>/dev/null || $(PYTHON) -m pip install -q -e .
	@engine=$(if $(ENGINE_DETECTED),"$$(scripts/detect-engine.sh)",$(ENGINE)); \
	$(MAKE) --no-print-directory build ALGO=linear-learner VARIANT=cpu ENGINE=$$engine && \
	ENGINE=$$engine $(PYTHON) scripts/demo.py --image "$$(scripts/image-name.sh linear-learner cpu)"

# Installs what the tests need first (scripts/test-setup.sh: system packages and a container
# engine as root on Debian/Ubuntu, the Python packages, a venv where pip refuses installs);
# elsewhere the container tests skip, or fail under CI=true.
test:
	@eval "$$(scripts/test-setup.sh $(PYTHON))" && set -x && "$$PYTHON" -m pytest -q tests

# The tests that need no container engine.
test-fast:
	@eval "$$(scripts/test-setup.sh $(PYTHON))" && set -x && "$$PYTHON" -m pytest -q -m "not container" tests

clean:
	rm -rf build/context build/demo

# Dangling images: superseded builds and the builder stages kept as build cache.
prune:
	$(ENGINE) image prune -f

clean-wheels:
	rm -rf $(WHEELS)
