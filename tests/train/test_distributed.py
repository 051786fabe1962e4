"""The distributed code path on a CPU: two processes (torchrun, gloo) train SFT and GRPO together."""

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow

COMMON = ["--bf16", "false", "--report_to", "none", "--activation_checkpointing", "false", "--max_pixels", "4096",
          "--logging_steps", "1", "--use_cpu", "true", "--seed", "0"]


def _torchrun(verb, args, tmp_path):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "radrl.cli", verb, *args, *COMMON]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_two_process_sft_shares_the_batch(tiny_model_dir, synth_data, tmp_path):
    from radrl.data.instructions import build_conversations
    from radrl.data.schema import read_jsonl

    out = tmp_path / "sft"
    _torchrun("sft", ["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
                      "--output_dir", str(out), "--max_steps", "2", "--per_device_train_batch_size", "2"], tmp_path)
    rows = len(build_conversations(read_jsonl(synth_data["train"])))
    history = json.loads((out / "log_history.json").read_text())
    first = next(h for h in history if h.get("step") == 1 and "loss" in h)
    # one optimizer step consumed 2 rows on each of the 2 processes: the data was sharded, not duplicated
    assert first["epoch"] == pytest.approx(2 * 2 / rows)
    assert (out / "model.safetensors").exists()


def test_two_process_grpo_runs(tiny_model_dir, synth_data, tmp_path):
    out = tmp_path / "grpo"
    _torchrun("grpo", ["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
                       "--output_dir", str(out), "--max_steps", "1", "--num_generations", "4",
                       "--per_device_train_batch_size", "4", "--max_completion_length", "8"], tmp_path)
    history = json.loads((out / "log_history.json").read_text())
    assert any("reward" in h for h in history)
