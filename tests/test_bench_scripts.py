"""Benchmark scripts that cannot run at full size here keep working: their code path on the CPU.

Timings are not asserted (benchmarks record them; tests do not time): only that the script runs and
writes every field its results table needs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["tiny", "config"])
def test_gpu_train_speed_runs_on_cpu(how, tmp_path, tiny_model_dir, cxr_data):
    # --tiny: the built-in test architecture; --config: the architecture read from a checkpoint's config.json,
    # as on the GPU machine with Qwen3-VL-2B's (here the tiny model's folder)
    arch = ["--tiny"] if how == "tiny" else ["--config", str(tiny_model_dir), "--image", "4096", "--seq", "64",
                                             "--batch", "2", "--prompts", "2", "--generations", "2",
                                             "--prompt-tokens", "32", "--new-tokens", "4"]
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_train_speed.py"), *arch, "--device", "cpu",
                           "--steps", "1", "--warmup", "0", "--out", str(out)], check=False, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "RADRL_CXR_DATA": str(cxr_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["sft"]["tokens_per_s"] > 0 and result["sft"]["image_tokens_per_sample"] > 0
    assert {"generation_s", "reward_s", "update_s", "step_s"} <= set(result["grpo"])
    assert result["grpo"]["rollouts"] == 4 and result["command"].startswith("python bench/gpu_train_speed.py")
