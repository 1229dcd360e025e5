#!/usr/bin/env bash
# Every CUDA path and GPU benchmark in one table (bench/bench_gpu.py), on a machine with a CUDA
# GPU and the project installed with CUDA torch (e.g. inside a GPU image, or `pip install -e
# '.[all]'` with PyPI's torch). Arguments go to bench_gpu.py (--quick, --only, --repeats).
set -euo pipefail
cd "$(dirname "$0")/.."
python - <<'PY'
import torch
if not torch.cuda.is_available():
    print("gpu.sh: no CUDA device: the table has its CPU column only")
PY
exec python bench/bench_gpu.py "$@"
