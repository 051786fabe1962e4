"""bench/realsize_cpu.sh (issue 16) on a reduced config: the script a user runs for the real-size check
works end to end and records every stage; the 2B run itself takes ~20 minutes and is not run here."""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_realsize_cpu_on_a_tiny_config(tiny_model_dir):
    # a private folder: pytest's own temporary folders are pruned by concurrent pytest runs on a shared machine
    with tempfile.TemporaryDirectory(prefix="radrl-realsize-") as tmp:
        run_reduced(Path(tmp), tiny_model_dir)


def run_reduced(tmp_path: Path, tiny_model_dir: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(tiny_model_dir / "config.json", config / "config.json")
    shutil.copy(REPO / "bench" / "configs" / "qwen3vl-2b" / "preprocessor_config.json", config)
    out = tmp_path / "realsize.json"
    proc = subprocess.run(["bash", str(REPO / "bench" / "realsize_cpu.sh"), "--config-dir", str(config), "--work",
                           str(tmp_path / "work"), "--out", str(out), "--image-size", "64", "--sft-pixels", "4096",
                           "--grpo-pixels", "4096", "--completion-tokens", "4"], capture_output=True, text=True,
                          timeout=900, check=False)
    logs = "".join(f"\n== {f.name}\n" + f.read_text()[-1500:] for f in sorted((tmp_path / "work" / "logs").glob("*")))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:] + logs
    result = json.loads(out.read_text())
    assert result["all_passed"]
    assert set(result["stages"]) == {"synth_data", "build", "sft_lora", "grpo_grounding", "grpo_report", "eval"}
    # the built model is the config's architecture: the plan counts exactly its parameters
    assert result["parameters_built"] == result["parameters_radrl_plan"] > 0
    for name in ("sft_lora", "grpo_grounding", "grpo_report", "eval"):
        stage = result["stages"][name]
        assert stage["exit_code"] == 0 and stage["wall_s"] > 0 and stage["peak_rss_gib"] > 0.1, (name, stage)
    # radrl plan's CPU estimate of each training stage, beside its measured peak
    for name in ("sft_lora", "grpo_grounding", "grpo_report"):
        stage = result["stages"][name]
        plan = stage["radrl_plan"]
        assert plan["peak_gib"] == max(plan["phases_gib"].values()) > 0 and "loading" in plan["phases_gib"]
        # the RSS peak adds the mapped checkpoint's page cache to the loading phase; the fit leaves it out
        assert plan["rss_peak_gib"] >= plan["peak_gib"] and plan["mapped_gib"] >= 0  # tiny here: rounds to 0
        assert stage["plan_vs_measured"] == pytest.approx(plan["rss_peak_gib"] / stage["peak_rss_gib"], abs=1e-3)
        # the process's own anonymous RSS (file pages left out), sampled by the script: under its getrusage peak
        assert 0.05 < stage["peak_anon_rss_sampled_gib"] <= stage["peak_rss_gib"] + 0.01, (name, stage)
        assert stage["plan_peak_vs_sampled_anon"] > 0
    assert "RssAnon" in result["anon_rss_sampling"]
    assert "radrl_plan" not in result["stages"]["eval"]
    # every training stage logged its throughput (radrl.train.throughput); GRPO with its time split
    assert result["stages"]["sft_lora"]["perf"]["perf/tokens_per_s_per_device"] > 0
    for name in ("grpo_grounding", "grpo_report"):
        assert {"perf/generation_s", "perf/reward_s", "perf/update_s"} <= set(result["stages"][name]["perf"])
    assert not (tmp_path / "work" / "model").exists()  # the checkpoint is removed unless --keep
