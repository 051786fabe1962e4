"""One-step SFT and GRPO on the tiny model, and resuming a run from its checkpoint."""

import json
import re

import pytest

pytestmark = pytest.mark.slow

COMMON = ["--bf16", "false", "--report_to", "none", "--activation_checkpointing", "false", "--max_pixels", "4096",
          "--logging_steps", "1", "--seed", "0"]


def _sft(tiny_model_dir, synth_data, out, *extra):
    from radrl.cli.sft import main

    return main(["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
                 "--output_dir", str(out), "--per_device_train_batch_size", "4", "--learning_rate", "1e-3",
                 *COMMON, *extra])


def test_sft_one_step_saves_a_loadable_checkpoint(tiny_model_dir, synth_data, tmp_path):
    from radrl.models import load

    out = _sft(tiny_model_dir, synth_data, tmp_path / "sft", "--max_steps", "1")
    history = json.loads((tmp_path / "sft" / "log_history.json").read_text())
    assert any("loss" in h for h in history)
    _model, processor = load(out, device="cpu")  # the saved folder is a complete checkpoint
    assert processor.tokenizer is not None


def test_sft_resumes_from_last_checkpoint(tiny_model_dir, synth_data, tmp_path):
    out = tmp_path / "sft"
    _sft(tiny_model_dir, synth_data, out, "--max_steps", "2", "--save_steps", "2")
    assert (out / "checkpoint-2").is_dir()
    # an intermediate checkpoint says which radrl made it, from what (it is often the one evaluated or shared)
    info = json.loads((out / "checkpoint-2" / "radrl.json").read_text())
    assert (info["global_step"], info["trainer"], info["base_model"]) == (2, "SFTTrainer", str(tiny_model_dir))
    _sft(tiny_model_dir, synth_data, out, "--max_steps", "3", "--save_steps", "2", "--resume_from_checkpoint", "last")
    history = json.loads((out / "log_history.json").read_text())
    steps = [h["step"] for h in history if "loss" in h]
    assert steps == [1, 2, 3]  # steps 1-2 restored from the checkpoint's state, step 3 trained now


def test_sft_loss_is_on_the_answer_only(tiny_model_dir, synth_data, tmp_path):
    """Prompt, image and padding tokens are masked (-100); the answer and its end-of-turn token are trained."""
    from trl import TrlParser

    from radrl.train.sft import RadrlSFTConfig, build_trainer

    (cfg,) = TrlParser((RadrlSFTConfig,)).parse_args_and_config(
        ["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
         "--output_dir", str(tmp_path), "--per_device_train_batch_size", "4", "--tasks", "grounding", *COMMON])
    trainer, processor = build_trainer(cfg)
    batch = next(iter(trainer.get_train_dataloader()))
    tok = processor.tokenizer
    image_id = tok.convert_tokens_to_ids("<|image_pad|>")
    assert (batch["labels"][batch["input_ids"] == image_id] == -100).all()
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        trained = tok.decode(ids[labels != -100])
        # exactly the grounding answer and the end of the turn: no request, no chat scaffolding
        assert re.fullmatch(r"(Cardiomegaly|Pleural Effusion|Lung Lesion|Pneumothorax|Consolidation) at "
                            r"\[[0-9., \[\]and]+\]<\|im_end\|>\n?", trained), trained


def test_grpo_one_step_logs_task_routed_rewards(tiny_model_dir, synth_data, tmp_path):
    from radrl.cli.grpo import main

    main(["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
          "--output_dir", str(tmp_path / "grpo"), "--max_steps", "1", "--num_generations", "4",
          "--per_device_train_batch_size", "8", "--max_completion_length", "16", "--learning_rate", "1e-4",
          "--rewards", "grounding_soft_f1", "report_clinical", *COMMON])
    history = json.loads((tmp_path / "grpo" / "log_history.json").read_text())
    logged = {k for h in history for k in h}
    assert {"rewards/grounding_soft_f1/mean", "rewards/report_clinical/mean", "reward"} <= logged
    assert (tmp_path / "grpo" / "model.safetensors").exists()


def test_grpo_resumes_from_last_checkpoint(tiny_model_dir, synth_data, tmp_path):
    from radrl.cli.grpo import main

    args = ["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
            "--output_dir", str(tmp_path / "grpo"), "--num_generations", "4", "--per_device_train_batch_size", "8",
            "--max_completion_length", "8", "--save_steps", "2", *COMMON]
    main([*args, "--max_steps", "2"])
    assert json.loads((tmp_path / "grpo" / "checkpoint-2" / "radrl.json").read_text())["global_step"] == 2
    main([*args, "--max_steps", "3", "--resume_from_checkpoint", "last"])
    history = json.loads((tmp_path / "grpo" / "log_history.json").read_text())
    assert [h["step"] for h in history if "reward" in h] == [1, 2, 3]
