#!/usr/bin/env bash
# The GPU check of every installed domain (short CUDA runs: one process, torchrun with NCCL, --amp; the step
# ratios on the GPU). Writes results/gpu_check.json; see scripts/gpu_check.py for what each piece runs.
# Uses .venv when there is one, else the python on PATH (kdhub and its plugins installed there).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && PY=.venv/bin/python
exec "$PY" scripts/gpu_check.py "$@"
