#!/usr/bin/env bash
# The prepared GPU check (issue 16), at most 8 minutes on one H100, from the repository alone: SFT tokens/s
# and MFU in Qwen3-VL-2B's architecture, one GRPO step through `radrl grpo` with its time split, evaluation
# batching (batch 32 vs 1), peak memory of each -> bench/results/gpu_check.json (bench/gpu_check.py says more).
#   bash bench/gpu_check.sh [--wheels DIR] [--budget 450]      # on the GPU machine
#   bash bench/gpu_check.sh --dry-run --out /tmp/gpu_check.json # the code path on a CPU (tests)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python
exec "$PYTHON" bench/gpu_check.py "$@"
