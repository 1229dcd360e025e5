#!/usr/bin/env bash
# Print the container engine command to use: docker if a Docker API answers, else podman if its
# CLI works, else nothing and exit 1 (run scripts/setup-engine.sh).
if command -v docker >/dev/null 2>&1 && timeout 20 docker info >/dev/null 2>&1; then echo docker; exit 0; fi
if command -v podman >/dev/null 2>&1 && timeout 20 podman info >/dev/null 2>&1; then echo podman; exit 0; fi
echo "no container engine answers (docker info / podman info); run scripts/setup-engine.sh" >&2
exit 1
