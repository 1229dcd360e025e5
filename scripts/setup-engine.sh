#!/usr/bin/env bash
# Make a Docker-compatible container engine answer on this machine, idempotently.
#
# If `docker info` already answers (a Docker daemon, or DOCKER_HOST pointing at one), nothing is
# changed. Otherwise, on Debian/Ubuntu as root, it sets up rootful podman behind the Docker API
# socket (see docs in the README, "Images"):
#   1. apt-get install podman runc netavark aardvark-dns iptables docker-compose debootstrap (only what is
#      missing);
#   2. /etc/containers/containers.conf: runc as OCI runtime (crun fails on hybrid cgroups),
#      default ulimits within the host's hard limits (podman's defaults are refused), and netavark
#      as the network backend: its aardvark-dns lets compose services resolve each other by name
#      (algo-1, algo-2), which podman's CNI backend without the dnsname plugin does not;
#   3. `podman system service --time=0 unix:///run/podman/podman.sock` in the background
#      (log: /var/log/podman-service.log), and /var/run/docker.sock linked to it when that path
#      is free, so docker CLI, docker-compose, docker-py and the SageMaker SDK find it without
#      DOCKER_HOST.
# The last line it prints is `export DOCKER_HOST=...`: `eval "$(scripts/setup-engine.sh | tail -1)"`.
#
# Options: --packages-only (step 1 only), --no-apt (skip step 1).
set -euo pipefail

SOCK=/run/podman/podman.sock
DOCKER_SOCK=/var/run/docker.sock
CONF=/etc/containers/containers.conf
LOG=/var/log/podman-service.log
APT=1
SERVICE=1
for arg in "$@"; do
  case "$arg" in
    --packages-only) SERVICE=0 ;;
    --no-apt) APT=0 ;;
    *) echo "setup-engine: unknown option $arg" >&2; exit 2 ;;
  esac
done

say() { echo "setup-engine: $*" >&2; }

# Does a Docker API answer at $1 (a DOCKER_HOST value; empty = the default socket)?
# Asks the socket itself (GET /_ping) so that a `docker` wrapper around the podman CLI
# (podman-docker) does not count: docker-compose and docker-py need the API.
engine_answers() {
  local host="${1:-unix://$DOCKER_SOCK}"
  case "$host" in
    unix://*)
      python3 - "${host#unix://}" <<'PY' >/dev/null 2>&1
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
sys.exit(0 if s.recv(64).split()[1:2] == [b"200"] else 1)
PY
      ;;
    *) command -v docker >/dev/null 2>&1 && DOCKER_HOST="$host" timeout 20 docker info >/dev/null 2>&1 ;;
  esac
}

if [ "$SERVICE" = 1 ] && engine_answers "${DOCKER_HOST:-}"; then
  say "an engine already answers (DOCKER_HOST=${DOCKER_HOST:-default}); nothing to do"
  echo "export DOCKER_HOST=${DOCKER_HOST:-unix://$DOCKER_SOCK}"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  say "no container engine answers and this is not root: install Docker or podman yourself" \
      "(see README, Images), or rerun as root on Debian/Ubuntu"
  exit 1
fi

# 1. packages -------------------------------------------------------------------------------
if [ "$APT" = 1 ]; then
  need=()
  # netavark (1.4) programs bridge networks through the iptables command: without it every
  # container start fails with "netavark: No such file or directory".
  for pkg in podman runc netavark aardvark-dns iptables docker-compose debootstrap; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  # Tools shell out to a `docker` command (the SageMaker SDK runs `docker compose version`
  # and `docker info`); podman-docker provides one that runs podman.
  command -v docker >/dev/null 2>&1 || need+=(podman-docker)
  if [ "${#need[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || { say "no apt-get: install ${need[*]} yourself"; exit 1; }
    say "installing ${need[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi
[ "$SERVICE" = 1 ] || exit 0

command -v podman >/dev/null 2>&1 || { say "podman is not installed"; exit 1; }

# 2. containers.conf ------------------------------------------------------------------------
hard_nofile=$(ulimit -Hn)
[ "$hard_nofile" = unlimited ] && hard_nofile=1048576
nofile=$(( hard_nofile < 65536 ? hard_nofile : 65536 ))
want_conf="# Written by smalgos scripts/setup-engine.sh
[containers]
default_ulimits = [\"nofile=${nofile}:${nofile}\", \"nproc=4096:4096\"]

[engine]
runtime = \"runc\"

[network]
network_backend = \"netavark\"
"
if [ ! -f "$CONF" ]; then
  mkdir -p "$(dirname "$CONF")"
  printf '%s' "$want_conf" > "$CONF"
  say "wrote $CONF"
elif ! grep -q 'runtime *= *"runc"' "$CONF" || ! grep -q default_ulimits "$CONF" || \
     ! grep -q 'network_backend *= *"netavark"' "$CONF"; then
  if grep -q 'smalgos scripts/setup-engine.sh' "$CONF"; then
    printf '%s' "$want_conf" > "$CONF"
    say "rewrote $CONF"
  else
    say "WARNING: $CONF exists and lacks runtime=\"runc\"/default_ulimits/network_backend=\"netavark\";" \
        "left as is (add them if containers fail with cgroup or setrlimit errors, or compose services" \
        "cannot resolve each other)"
  fi
fi

# A machine whose podman ran with the CNI backend before keeps CNI's bridges; cni-podman0 holds the
# 10.88.0.0/16 route that netavark's podman0 needs, and published ports then lead nowhere.
if command -v ip >/dev/null 2>&1 && \
   [ "$(podman info --format '{{.Host.NetworkBackend}}' 2>/dev/null)" = netavark ]; then
  for link in $(ip -o link show | awk -F': ' '{print $2}' | sed 's/@.*//' | grep -E '^cni-podman[0-9]+$' || true); do
    ip link delete "$link" && say "removed the stale CNI bridge $link (podman uses netavark now)"
  done
fi

# 3. Docker API socket ------------------------------------------------------------------------
if ! engine_answers "unix://$SOCK"; then
  mkdir -p "$(dirname "$SOCK")"
  say "starting podman system service on $SOCK (log: $LOG)"
  nohup setsid podman system service --time=0 "unix://$SOCK" >>"$LOG" 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    engine_answers "unix://$SOCK" && break
    sleep 0.5
  done
  engine_answers "unix://$SOCK" || { say "podman service did not answer; see $LOG"; exit 1; }
fi
if [ ! -e "$DOCKER_SOCK" ] && [ ! -L "$DOCKER_SOCK" ]; then
  ln -s "$SOCK" "$DOCKER_SOCK"
  say "linked $DOCKER_SOCK -> $SOCK"
fi
say "engine ready: podman $(podman --version | awk '{print $3}') behind the Docker API"
if [ "$(readlink -f "$DOCKER_SOCK" 2>/dev/null)" = "$SOCK" ]; then
  echo "export DOCKER_HOST=unix://$DOCKER_SOCK"
else
  echo "export DOCKER_HOST=unix://$SOCK"
fi
