#!/usr/bin/env bash
# The SageMaker Python SDK v3 in its own virtual environment (scripts/venv.sh): the main
# environment keeps SDK v2, and the two majors cannot share one.
#
#   scripts/sdk3-venv.sh [PYTHON]     # prints the venv's python on stdout
#
# build/sdk3-venv (SDK3_VENV overrides). From nothing it takes minutes: the SDK pulls in mlflow and
# its dependencies (measured: 19 min on 2 busy cores); afterwards about a second.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${1:-${PYTHON:-}}" VENV_DIR="${SDK3_VENV:-}" exec scripts/venv.sh sdk3 \
  sagemaker==3.27.0 sagemaker-core==2.27.0 sagemaker-train==1.27.0 sagemaker-serve==1.27.0
