#!/usr/bin/env bash
# gluonts for DeepAR, in its own virtual environment on top of the main one (scripts/venv.sh):
# gluonts 0.17.0 declares pandas<3, and installing it into the main environment would move every
# algorithm's tests to pandas 2 while the images run pandas 3.1.1, on which gluonts' torch DeepAR
# trains and forecasts (tests/unit/deepar). So the venv sees the main environment's packages and
# adds the image's pins without their declared dependencies: containers/forecasting-deepar/
# requirements-nodeps.txt, and the packages of its requirements.txt that the main environment may
# hold in other versions.
#
#   scripts/deepar-venv.sh     # prints the venv's python on stdout (build/deepar-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
req=containers/forecasting-deepar
pins() { sed -e 's/#.*//' -e 's/[[:space:]]//g' "$@" | grep .; }
mapfile -t PINS < <(pins "$req/requirements-nodeps.txt"; pins "$req/requirements.txt" | grep -E '^(lightning-utilities|torchmetrics|toolz)==')
exec scripts/venv.sh deepar --system-site-packages --no-deps "${PINS[@]}"
