#!/usr/bin/env bash
# Build a minimal Debian bookworm base image with Python 3.11 (python3 + venv) by debootstrap and
# import it into the container engine, for machines that cannot pull python:3.11-slim from a
# registry. Needs root and debootstrap (scripts/setup-engine.sh installs it); about a minute.
#
#   scripts/base-image.sh [IMAGE]          # default smalgos/base:bookworm; ENGINE=docker|podman
set -euo pipefail
IMAGE="${1:-smalgos/base:bookworm}"
ENGINE="${ENGINE:-docker}"
SUITE="${DEBIAN_SUITE:-bookworm}"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

say() { echo "base-image: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "debootstrap needs root"; exit 1; }
command -v debootstrap >/dev/null || { say "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }

ROOTFS="$(mktemp -d /var/tmp/smalgos-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
say "debootstrap $SUITE into $ROOTFS (mirror $MIRROR)"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$ROOTFS" "$MIRROR" >/dev/null
# Trim what a runtime image never reads.
chroot "$ROOTFS" apt-get clean
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/log/* \
       "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
       "$ROOTFS"/var/cache/debconf/*-old "$ROOTFS"/tmp/*
find "$ROOTFS"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} + 2>/dev/null || true
# Same device/proc layout as any image: leave /dev, /proc and /sys empty.
rm -rf "${ROOTFS:?}"/dev/* "${ROOTFS:?}"/proc/* "${ROOTFS:?}"/sys/* 2>/dev/null || true

say "importing as $IMAGE with $ENGINE"
# podman's Docker API leaves a copy of an imported tarball in /var/tmp (api_load.tar*): note
# what is there, to remove ours afterwards.
before="$(ls /var/tmp/api_load.tar* 2>/dev/null || true)"
tar --numeric-owner -C "$ROOTFS" -c . | "$ENGINE" import \
  -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  -c 'ENV LANG=C.UTF-8' \
  -c 'CMD ["python3"]' \
  -m "debootstrap --variant=minbase $SUITE + python3, python3-venv, ca-certificates" \
  - "$IMAGE" >/dev/null
"$ENGINE" image inspect "$IMAGE" >/dev/null
for f in /var/tmp/api_load.tar*; do
  if [ -e "$f" ] && ! grep -qxF "$f" <<<"$before"; then rm -f "$f"; fi
done
say "done: $IMAGE"
