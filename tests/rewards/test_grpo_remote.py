"""One GRPO step on the tiny model with the report reward scored on a reward server (TRL end to end)."""

import json

import httpx
import pytest

pytestmark = pytest.mark.slow

COMMON = ["--bf16", "false", "--report_to", "none", "--activation_checkpointing", "false", "--max_pixels", "4096",
          "--logging_steps", "1", "--seed", "0"]


def test_grpo_step_with_remote_reward(tiny_model_dir, synth_data, tmp_path, start_server):
    from radrl.cli import grpo

    server = start_server("--metrics", "chexpert")
    # the recipe field: report-metric rewards are scored on the server, the grounding reward stays in-process
    grpo.main(["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
               "--output_dir", str(tmp_path / "grpo"), "--max_steps", "1", "--num_generations", "4",
               "--per_device_train_batch_size", "8", "--max_completion_length", "24", "--learning_rate", "1e-4",
               "--rewards", "grounding_soft_f1", "report_clinical", "--reward_servers", server.url,
               "--reward_server_timeout", "30", *COMMON])
    history = json.loads((tmp_path / "grpo" / "log_history.json").read_text())
    assert {"rewards/grounding_soft_f1/mean", "rewards/report_clinical/mean"} <= {k for h in history for k in h}
    # the step's report answers that were long enough went to the server (seed 0: at least one scorer call)
    assert httpx.get(f"{server.url}/ready").json()["scorers"]["chexpert"]["calls"] >= 1
