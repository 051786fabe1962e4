#!/usr/bin/env bash
# Real-size check on a CPU (issue 16): random weights in Qwen3-VL-2B's published architecture
# (bench/configs/qwen3vl-2b), one step each of `radrl sft` (LoRA), `radrl grpo` (grounding, report) and
# `radrl eval` at the paper's pixel budgets; wall time, peak RSS (getrusage, with page cache) and the peak of
# anonymous memory (sampled every 0.2 s, what radrl plan --cpu judges fit on) of each to bench/results/realsize_cpu.json.
# About 50 minutes on 2 shared cores and 12.4 GiB of memory at the peak (loading the fp32 weights); not run in
# CI (tests/test_bench_realsize.py runs it on a tiny config). `radrl sft` / `radrl grpo` on the CPU hand freed
# activations back to the system themselves (glibc mmap threshold 1 MiB, radrl.train.common.return_freed_memory);
# other MALLOC_* variables in the environment are recorded in the results. Arguments pass through to
# bench/realsize_cpu.py (--help lists them).
#   bash bench/realsize_cpu.sh [--keep] [--work runs/realsize-cpu] [--out bench/results/realsize_cpu.json]
#   bash bench/realsize_cpu.sh --replan       # only add `radrl plan --cpu`'s estimates to an existing results file
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
[ -x "$PYTHON" ] || PYTHON=python
exec "$PYTHON" bench/realsize_cpu.py "$@"
