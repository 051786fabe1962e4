"""Throughput in every run (issue 16): perf/ values in the logs of `radrl sft` and `radrl grpo`, their
arithmetic, the shared FLOPs model, and the KL reference built in the training dtype."""

import json

import pytest
import torch

from radrl.models.flops import FlopsModel, device_peak_tflops
from radrl.train.throughput import Throughput, batch_counts

COMMON = ["--bf16", "false", "--report_to", "none", "--activation_checkpointing", "false", "--max_pixels", "4096",
          "--seed", "0", "--peak_tflops", "0.5"]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_window_arithmetic_with_a_hand_clock():
    flops = FlopsModel(per_token=10.0, per_patch=4.0, per_merged=8.0, forward_per_token=2.0, forward_per_patch=1.0,
                       forward_per_merged=2.0, merge_units=4)
    clock = Clock()
    meter = Throughput(flops, peak_tflops=1e-9, split=True, clock=clock)  # 1,000 FLOP/s
    generate = meter.timed(lambda: clock.__setattr__("now", clock.now + 3.0), "generation_s")
    reward = meter.timed(lambda: clock.__setattr__("now", clock.now + 1.0), "reward_s")
    for _ in range(2):  # two optimizer steps of 5 s: 3 s generation, 1 s reward, 1 s update
        meter.on_step_begin(None, None, None)
        generate()
        reward()
        meter.count({"prompt_mask": torch.ones(2, 3), "completion_mask": torch.tensor([[1, 1, 0], [1, 0, 0]]),
                     "image_grid_thw": torch.tensor([[1, 2, 4], [1, 2, 4]])})  # 9 tokens, 16 patches, 4 merged
        clock.now += 1.0
        meter.on_step_end(None, None, None)
    perf = meter.pop_metrics()
    assert perf["perf/tokens_per_s_per_device"] == pytest.approx(18 / 10)
    assert perf["perf/step_s"] == pytest.approx(5.0)
    # 2 x (10 x 9 + 4 x 16 + 8 x 4) FLOPs over 10 s at 1,000 FLOP/s
    assert perf["perf/mfu"] == pytest.approx(2 * (90 + 64 + 32) / 10 / 1000)
    assert (perf["perf/generation_s"], perf["perf/reward_s"], perf["perf/update_s"]) == pytest.approx((3, 1, 1))
    assert meter.pop_metrics() == {}  # a new window: nothing ended in it


def test_no_peak_no_mfu():
    meter = Throughput(None, peak_tflops=None, split=False, clock=Clock())
    meter.on_step_begin(None, None, None)
    meter.clock.now = 2.0
    meter.count({"attention_mask": torch.ones(1, 4)})
    meter.on_step_end(None, None, None)
    assert meter.pop_metrics() == {"perf/tokens_per_s_per_device": 2.0, "perf/step_s": 2.0}


@pytest.mark.parametrize("name, peak", [
    ("NVIDIA H100 80GB HBM3", 989.0),
    ("NVIDIA GH200 480GB", 989.0),   # not confused with a plain H200 (same figure, matched by the longer name)
    ("NVIDIA L4", 121.0),
    ("NVIDIA L40S", 362.0),          # "L40S" before "L4"
    ("Tesla T4", None),              # not listed: MFU needs peak_tflops
])
def test_device_peaks(name, peak):
    assert device_peak_tflops(name) == peak


def test_batch_counts_skip_padding():
    assert batch_counts({"input_ids": torch.zeros(2, 5, dtype=torch.long),
                         "attention_mask": torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])}) == (8, 0)


def test_flops_model_follows_what_trains(tiny_model_dir):
    # fully trained: 6 per parameter and input; frozen vision under a trained LM: 2 (no backward reaches it);
    # LoRA: the frozen LM base costs 4 per token (activation gradients), its adapters 6
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3VLForConditionalGeneration

    model = Qwen3VLForConditionalGeneration.from_pretrained(str(tiny_model_dir))
    full = FlopsModel.of(model)
    lm, visual = model.model.language_model, model.model.visual
    lm_matmul = sum(p.numel() for p in lm.parameters()) - lm.embed_tokens.weight.numel() + model.lm_head.weight.numel()
    mergers = sum(p.numel() for p in visual.merger.parameters()) + sum(
        p.numel() for p in visual.deepstack_merger_list.parameters())
    vit = sum(p.numel() for p in visual.parameters()) - visual.pos_embed.weight.numel() - mergers
    assert (full.per_token, full.per_patch, full.per_merged) == (6 * lm_matmul, 6 * vit, 6 * mergers)
    for p in visual.parameters():
        p.requires_grad_(False)
    frozen_vision = FlopsModel.of(model)
    assert (frozen_vision.per_token, frozen_vision.per_patch, frozen_vision.per_merged) == (
        6 * lm_matmul, 2 * vit, 2 * mergers)
    for p in model.parameters():
        p.requires_grad_(False)
    lora = get_peft_model(model, LoraConfig(r=2, target_modules=r".*language_model.*\.q_proj"))
    adapters = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert FlopsModel.of(lora).per_token == 4 * lm_matmul + 6 * adapters
    assert FlopsModel.of(lora).per_patch == 2 * vit


@pytest.mark.slow
def test_sft_and_grpo_log_perf_every_logging_step(tiny_model_dir, synth_data, tmp_path):
    from radrl.cli.grpo import main as grpo
    from radrl.cli.sft import main as sft

    sft(["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
         "--output_dir", str(tmp_path / "sft"), "--per_device_train_batch_size", "4", "--max_steps", "2",
         "--logging_steps", "1", *COMMON])
    grpo(["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
          "--output_dir", str(tmp_path / "grpo"), "--max_steps", "2", "--num_generations", "4",
          "--per_device_train_batch_size", "8", "--max_completion_length", "8", "--logging_steps", "2",
          "--rewards", "grounding_soft_f1", "report_clinical", *COMMON])
    for run, split in (("sft", False), ("grpo", True)):
        steps = [h for h in json.loads((tmp_path / run / "log_history.json").read_text()) if "loss" in h]
        assert steps, run
        for h in steps:
            assert h["perf/tokens_per_s_per_device"] > 0 and 0 < h["perf/mfu"] < 1, (run, h)
            assert ("perf/generation_s" in h) == split
            if split:
                parts = h["perf/generation_s"] + h["perf/reward_s"] + h["perf/update_s"]
                assert parts == pytest.approx(h["perf/step_s"]) and min(
                    h["perf/generation_s"], h["perf/reward_s"], h["perf/update_s"]) > 0


def test_reference_model_in_training_dtype(tiny_model_dir, synth_data, tmp_path):
    from trl import TrlParser

    from radrl.train.grpo import RadrlGRPOConfig, reference_init_kwargs

    def cfg(*extra):
        (c,) = TrlParser((RadrlGRPOConfig,)).parse_args_and_config(
            ["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
             "--output_dir", str(tmp_path), "--rewards", "grounding_soft_f1", "report_clinical", "--use_cpu", "true",
             *extra])
        return c

    # full fine-tuning in bf16 with a KL term: the reference is built in bf16, not the policy's fp32
    assert cfg("--bf16", "true", "--beta", "0.01").model_init_kwargs == {"dtype": "bfloat16"}
    # a dtype the recipe sets is kept; other kwargs pass through
    assert cfg("--bf16", "true", "--beta", "0.01", "--model_init_kwargs",
               '{"dtype": "float32", "attn_implementation": "sdpa"}').model_init_kwargs == {
        "dtype": "float32", "attn_implementation": "sdpa"}
    # no reference model: beta 0, or LoRA (adapter switched off); fp32 training: nothing to change
    assert cfg("--bf16", "true", "--beta", "0").model_init_kwargs is None
    assert cfg("--bf16", "true", "--beta", "0.01", "--use_lora", "true").model_init_kwargs is None
    assert reference_init_kwargs(cfg("--bf16", "false", "--beta", "0.01")) is None


@pytest.mark.slow
def test_trl_builds_the_reference_in_bf16(tiny_model_dir, synth_data, tmp_path):
    # what TRL 1.16 actually does with it: the reference model's weights are bf16 while the policy stays fp32
    from trl import GRPOTrainer, TrlParser

    from radrl.train.common import load_for_training
    from radrl.train.grpo import RadrlGRPOConfig, grpo_dataset, reward_funcs

    (c,) = TrlParser((RadrlGRPOConfig,)).parse_args_and_config(
        ["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
         "--output_dir", str(tmp_path), "--rewards", "grounding_soft_f1", "report_clinical", "--use_cpu", "true",
         "--bf16", "true", "--beta", "0.01", "--num_generations", "2", "--per_device_train_batch_size", "2",
         "--report_to", "none", "--max_train_rows", "4"])
    model, processor = load_for_training(c)
    trainer = GRPOTrainer(model=model, reward_funcs=reward_funcs(c)[0], args=c, train_dataset=grpo_dataset(c),
                          processing_class=processor)
    assert trainer.ref_model.dtype == torch.bfloat16 and model.dtype == torch.float32

