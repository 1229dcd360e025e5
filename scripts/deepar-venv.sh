#!/usr/bin/env bash
# gluonts for DeepAR, in its own virtual environment on top of the main one (scripts/venv.sh):
# gluonts 0.17.0 declares pandas<3, and installing it into the main environment would move every
# algorithm's tests to pandas 2 while the images run pandas 3.1.1, on which gluonts' torch DeepAR
# trains and forecasts (tests/unit/deepar). So the venv sees the main environment's packages and
# adds gluonts and the lightning packages it imports, without their declared dependencies.
#
#   scripts/deepar-venv.sh     # prints the venv's python on stdout (build/deepar-venv)
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/venv.sh deepar --system-site-packages --no-deps \
  gluonts==0.17.0 lightning==2.6.6 pytorch-lightning==2.6.6 lightning-utilities==0.15.3 torchmetrics==1.9.0 \
  toolz==0.12.1
