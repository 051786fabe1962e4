"""A run killed with SIGKILL resumes from its last checkpoint and ends exactly where an uninterrupted run ends.

Why this check is sound: each step's loss depends on which rows form that step's batch, and the final
weights depend on every batch in order. If resuming repeated or skipped data (or lost the optimizer,
scheduler or RNG state), the per-step losses after the checkpoint and the final weights would differ
from the uninterrupted run's. The run crosses an epoch boundary after the checkpoint, so the reshuffle
of the second epoch is covered too."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

pytestmark = pytest.mark.slow

# Driver: what radrl's own `sft` / `grpo` entry points run, with one callback that SIGKILLs the process at the end of
# step KILL_AT (before that step's checkpoint could be written): no cleanup, like an OOM kill or a lost node.
DRIVER = textwrap.dedent("""
    import os, signal, sys
    from transformers import TrainerCallback
    import radrl.train.sft as sft
    import radrl.train.grpo as grpo

    KILL_AT, STAGE = int(sys.argv[1]), sys.argv[2]
    module, name = (sft, "SFTTrainer") if STAGE == "sft" else (grpo, "RadrlGRPOTrainer")

    class Kill(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == KILL_AT:
                os.kill(os.getpid(), signal.SIGKILL)

    class Trainer(getattr(module, name)):
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.add_callback(Kill())

    setattr(module, name, Trainer)
    module.train(module.parse_config(sys.argv[3:]))  # what `radrl sft` / `radrl grpo` run
""")


EXTRA: list[str] = []  # a sensitivity check: ["--ignore_data_skip", "true"] must make this test fail


def _run(tmp_path, kill_at: int, args: list[str], stage: str = "sft") -> subprocess.CompletedProcess:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    return subprocess.run([sys.executable, str(driver), str(kill_at), stage, *args], check=False, capture_output=True,
                          text=True, timeout=300, cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_killed_sft_resumes_without_repeating_or_skipping_data(tiny_model_dir, synth_data, tmp_path):
    from safetensors.torch import load_file

    from radrl.data.instructions import build_conversations
    from radrl.data.schema import read_jsonl

    rows = len(build_conversations(read_jsonl(synth_data["train"])))
    batch = 16
    steps = rows // batch + 2  # into the second epoch
    save, kill = 2, rows // batch + 1  # last checkpoint before the kill: the one before the epoch boundary
    last_ckpt = (kill - 1) // save * save  # the kill comes before step `kill` is saved
    assert last_ckpt < rows // batch < kill

    def args(out):
        return ["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
                "--output_dir", str(out), "--max_steps", str(steps), "--save_steps", str(save),
                "--per_device_train_batch_size", str(batch), "--learning_rate", "1e-3", "--bf16", "false",
                "--report_to", "none", "--activation_checkpointing", "false", "--max_pixels", "4096",
                "--logging_steps", "1", "--seed", "0", "--lr_scheduler_type", "linear"]

    from radrl.cli.sft import main

    main(args(tmp_path / "ref"))  # uninterrupted, in this process

    killed = _run(tmp_path, kill, args(tmp_path / "run"))
    assert killed.returncode == -9, f"expected SIGKILL, got {killed.returncode}: {killed.stderr[-2000:]}"
    assert (tmp_path / "run" / f"checkpoint-{last_ckpt}").is_dir()
    assert not (tmp_path / "run" / "model.safetensors").exists()  # it really died before the end

    resumed = _run(tmp_path, 0, [*args(tmp_path / "run"), "--resume_from_checkpoint", "last", *EXTRA])
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    def losses(out):
        history = json.loads((out / "log_history.json").read_text())
        return {h["step"]: h["loss"] for h in history if "loss" in h}

    ref, run = losses(tmp_path / "ref"), losses(tmp_path / "run")
    assert sorted(run) == list(range(1, steps + 1))  # the global step continued from the checkpoint
    for step in range(last_ckpt + 1, steps + 1):  # the steps trained after resuming saw the same batches
        assert run[step] == pytest.approx(ref[step], rel=1e-4), (step, run[step], ref[step])
    a, b = load_file(tmp_path / "ref" / "model.safetensors"), load_file(tmp_path / "run" / "model.safetensors")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-3, atol=1e-5)  # thread-order rounding only


def test_killed_grpo_resumes_where_it_stopped(tiny_model_dir, synth_data, tmp_path):
    """GRPO: killed after step 3 (checkpoint 2 on disk), resumed with `last`: steps 3-4 see the same prompts,
    sample the same completions (RNG state restored) and so log the same rewards and losses as an uninterrupted
    run, and the final weights agree. Both runs are subprocesses with one thread, so sampling is comparable."""
    from safetensors.torch import load_file

    def args(out):
        return ["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
                "--output_dir", str(out), "--max_steps", "4", "--save_steps", "2", "--num_generations", "4",
                "--per_device_train_batch_size", "8", "--max_completion_length", "16", "--learning_rate", "1e-3",
                "--rewards", "grounding_soft_f1", "report_clinical", "--bf16", "false", "--report_to", "none",
                "--activation_checkpointing", "false", "--max_pixels", "4096", "--logging_steps", "1",
                "--seed", "0"]

    ref = _run(tmp_path, 0, args(tmp_path / "ref"), "grpo")
    assert ref.returncode == 0, ref.stderr[-3000:]
    killed = _run(tmp_path, 3, args(tmp_path / "run"), "grpo")
    assert killed.returncode == -9, f"expected SIGKILL, got {killed.returncode}: {killed.stderr[-2000:]}"
    assert (tmp_path / "run" / "checkpoint-2").is_dir() and not (tmp_path / "run" / "checkpoint-4").exists()
    resumed = _run(tmp_path, 0, [*args(tmp_path / "run"), "--resume_from_checkpoint", "last"], "grpo")
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    def logged(out):
        """Per step, everything GRPO logs but timings: rewards, loss, KL, entropy, completion lengths, and
        num_tokens (running count of prompt + completion tokens: a repeated or skipped prompt changes it even
        when the tiny model's rewards are all 0)."""
        history = json.loads((out / "log_history.json").read_text())
        timing = ("time", "per_second", "perf/")  # perf/: throughput and time split (radrl.train.throughput)
        return {h["step"]: {k: v for k, v in h.items() if not any(t in k for t in timing)}
                for h in history if "reward" in h}

    a, b = logged(tmp_path / "ref"), logged(tmp_path / "run")
    assert sorted(b) == [1, 2, 3, 4]  # the global step continued from the checkpoint
    for step in (3, 4):
        assert b[step].keys() == a[step].keys() and "num_tokens" in a[step]
        for key in a[step]:
            expected = a[step][key]
            if isinstance(expected, (int, float)):
                expected = pytest.approx(expected, rel=1e-4, abs=1e-6)
            assert b[step][key] == expected, (step, key, b[step], a[step])
    wa, wb = load_file(tmp_path / "ref" / "model.safetensors"), load_file(tmp_path / "run" / "model.safetensors")
    for name in wa:
        torch.testing.assert_close(wb[name], wa[name], rtol=1e-3, atol=1e-5)
