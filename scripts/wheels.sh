#!/usr/bin/env bash
# Download a wheelhouse for one requirements file, for the images' platform (Linux x86-64,
# CPython 3.11), whatever the host. Images install from these folders offline.
#
#   scripts/wheels.sh DEST REQUIREMENTS [CONSTRAINTS] [--minus DIR]... [--no-deps]
#
# --minus DIR: leave out of DEST the wheels that DIR already holds (the wheelhouse of a lower
# layer: common, or a stack such as torch). Those are linked in for the download, so nothing is
# fetched twice, and removed afterwards: the image layer that installs DEST finds them installed.
#
# Uses the host's pip configuration (indexes, find-links, CA bundle). A first pass with no
# retries finds out fast when some index named in the file cannot be reached but every wheel is
# available elsewhere (e.g. a local wheel cache); if it is incomplete, a second pass retries as
# usual. Files already in DEST are not downloaded again.
set -euo pipefail
DEST="$1"; REQ="$2"; shift 2
CONS=""
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then CONS="$1"; shift; fi
MINUS=(); NO_DEPS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --minus) MINUS+=("$(realpath "$2")"); shift 2 ;;
    --no-deps) NO_DEPS=(--no-deps); shift ;;
    *) echo "wheels: unexpected argument $1" >&2; exit 2 ;;
  esac
done
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"

flags=(--only-binary=:all: --python-version 3.11 --implementation cp
       --abi cp311 --abi abi3 --abi none)
# pip does not expand a manylinux tag to the older ones it implies: list them all.
for minor in $(seq 28 -1 5); do flags+=(--platform "manylinux_2_${minor}_x86_64"); done
flags+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)

mkdir -p "$DEST"
DEST="$(realpath "$DEST")"
args=(-d "$DEST" -r "$(basename "$REQ")" ${NO_DEPS[@]+"${NO_DEPS[@]}"})
if [ -n "$CONS" ]; then args+=(-c "$(realpath "$CONS")"); fi

linked=()
for dir in ${MINUS[@]+"${MINUS[@]}"}; do
  for whl in "$dir"/*.whl; do
    [ -e "$whl" ] || continue
    name="$(basename "$whl")"
    if [ ! -e "$DEST/$name" ]; then ln "$whl" "$DEST/$name" 2>/dev/null || cp "$whl" "$DEST/$name"; fi
    linked+=("$name")
  done
done

cd "$(dirname "$REQ")"   # requirement files refer to each other relatively
quiet() {  # pip's output minus the noise of index locations it skips
  grep -v -e 'is ignored: it is neither a file nor a directory' -e '^WARNING: Retrying' || true
}
echo "wheels: $REQ -> $DEST" >&2
"$PYTHON" -m pip download -q --retries 0 "${flags[@]}" "${args[@]}" 2>&1 | quiet || true
# Complete? Ask again offline (fast when everything is in DEST).
if ! "$PYTHON" -m pip download -q --no-index --find-links "$DEST" "${flags[@]}" "${args[@]}" \
      >/dev/null 2>&1; then
  echo "wheels: first pass incomplete; retrying with the network's normal retries" >&2
  "$PYTHON" -m pip download -q "${flags[@]}" "${args[@]}" 2>&1 | quiet
  "$PYTHON" -m pip download -q --no-index --find-links "$DEST" "${flags[@]}" "${args[@]}" >/dev/null
fi
for name in ${linked[@]+"${linked[@]}"}; do rm -f "$DEST/$name"; done
echo "wheels: $(find "$DEST" -name '*.whl' | wc -l) wheels of its own, $(du -sh "$DEST" | cut -f1)" >&2
