"""bench/gpu_check.sh (issue 16): its CPU dry run takes every stage of the GPU check through the same code
with a tiny architecture, and records what the GPU run records."""

import json
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_records_every_stage():
    with tempfile.TemporaryDirectory(prefix="radrl-gpu-check-") as tmp:  # not pytest's: pruned by concurrent runs
        out = Path(tmp) / "gpu_check.json"
        proc = subprocess.run(["bash", str(REPO / "bench" / "gpu_check.sh"), "--dry-run", "--out", str(out), "--work",
                               str(Path(tmp) / "work")], capture_output=True, text=True, timeout=900, check=False)
        logs = "".join(f"\n== {f.name}\n" + f.read_text()[-1500:] for f in sorted((Path(tmp) / "work").glob("*.log")))
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + logs
        result = json.loads(out.read_text())
    assert result["dry_run"] and result["device"].startswith("cpu")
    stages = result["stages"]
    assert all(stages[s].get("exit_code") == 0 for s in ("sft_speed", "grpo", "eval_batching")), stages
    assert stages["sft_speed"]["tokens_per_s"] > 0 and stages["sft_speed"]["parameters"] > 0
    # `radrl grpo` logged the time split for both steps, and the plan's estimate of the same run is beside it
    assert len(stages["grpo"]["steps"]) == 2
    for step in stages["grpo"]["steps"]:
        assert step["perf/generation_s"] + step["perf/reward_s"] + step["perf/update_s"] == pytest.approx(
            step["perf/step_s"])
    assert stages["grpo"]["plan"]["peak_gib"] > 0 and "reserve" in stages["grpo"]["plan"]["components_gib"]
    # batch 4 against batch 1 on the same rows, same greedy outputs
    assert stages["eval_batching"]["same_outputs"] and stages["eval_batching"]["speedup"] > 0
    assert set(stages["eval_batching"]["results"]) == {"hf batch 1", "hf batch 4"}
