"""Colocated vLLM rollouts for image prompts: what radrl hands TRL's vLLM generation (a recording stand-in,
everywhere), and, where the vllm package is installed, GRPO steps whose vLLM log-probabilities must agree
with the trainer's (they do not without ``fix_colocated_vllm_images``: huggingface/trl#6294)."""

import importlib.util
import json

import pytest
from PIL import Image

from radrl.models.load import load_processor
from radrl.train.grpo import collapse_runs, fix_colocated_vllm_images

HAS_VLLM = importlib.util.find_spec("vllm") is not None


class RecordingGeneration:
    """Stands in for TRL's ``VLLMGeneration``: keeps what ``generate`` got; answers with ``prompts`` as vLLM
    would expand them (``expand`` image tokens per placeholder)."""

    def __init__(self, image_token: int, expand: int):
        self.image_token, self.expand, self.calls, self.generation_kwargs = image_token, expand, [], {}

    def generate(self, prompts, images, num_generations, profiler=None):
        self.calls.append((prompts, images))
        expanded = [[t for x in ids for t in ([x] * self.expand if x == self.image_token else [x])] for ids in prompts]
        return expanded, [[1]] * len(prompts), None, None


def _prompt(processor, image):
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Report."}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return processor(text=[text], images=[image])["input_ids"][0]


def test_vllm_gets_one_placeholder_per_image_at_the_trainers_pixel_budget(tiny_model_dir):
    processor = load_processor(str(tiny_model_dir), max_pixels=64 * 64)
    image = Image.new("RGB", (300, 200), 90)
    ids = list(_prompt(processor, image))
    token = processor.image_token_id
    assert ids.count(token) == 2  # 300x200 in 4,096 pixels: 64x32, patch 16 and merge 2 -> 2 tokens
    gen = RecordingGeneration(token, expand=2)
    fix_colocated_vllm_images(gen, processor)
    out = gen.generate([ids, ids], [[image], [image]], 2)
    (sent, sent_images), = gen.calls
    assert sent == [collapse_runs(ids, token)] * 2 and sent[0].count(token) == 1
    assert [ims[0].size for ims in sent_images] == [(64, 32)] * 2  # what the trainer's processor makes of 300x200
    assert out[0] == [ids, ids]
    assert gen.generation_kwargs == {"logit_bias": {token: -100.0}}  # no image token in a completion


def test_a_recipes_logit_bias_is_kept_and_not_modified(tiny_model_dir):
    processor = load_processor(str(tiny_model_dir))
    gen = RecordingGeneration(processor.image_token_id, expand=4)
    recipe = {"logit_bias": {5: 2.0}, "seed": 1}
    gen.generation_kwargs = recipe
    fix_colocated_vllm_images(gen, processor)
    assert gen.generation_kwargs == {"logit_bias": {5: 2.0, processor.image_token_id: -100.0}, "seed": 1}
    assert recipe == {"logit_bias": {5: 2.0}, "seed": 1}


def test_prompts_already_holding_one_placeholder_pass_unchecked(tiny_model_dir):
    """A TRL with its own fix (one placeholder per image) must not be stopped by the equality check."""
    processor = load_processor(str(tiny_model_dir), max_pixels=64 * 64)
    image = Image.new("RGB", (64, 64), 90)
    token = processor.image_token_id
    short = collapse_runs(list(_prompt(processor, image)), token)
    gen = RecordingGeneration(token, expand=4)
    fix_colocated_vllm_images(gen, processor)
    out = gen.generate([short], [[image]], 1)
    assert gen.calls[0][0] == [short] and out[0][0].count(token) == 4


def test_text_only_prompts_pass_unchanged(tiny_model_dir):
    processor = load_processor(str(tiny_model_dir))
    gen = RecordingGeneration(processor.image_token_id, expand=4)
    fix_colocated_vllm_images(gen, processor)
    gen.generate([[1, 2, 3]], None, 1)
    assert gen.calls == [([[1, 2, 3]], None)]


def test_a_different_image_expansion_in_vllm_stops_the_step_with_the_fix(tiny_model_dir):
    processor = load_processor(str(tiny_model_dir), max_pixels=64 * 64)
    image = Image.new("RGB", (64, 64), 90)
    ids = list(_prompt(processor, image))
    gen = RecordingGeneration(processor.image_token_id, expand=16)  # vLLM's processor at a larger budget
    fix_colocated_vllm_images(gen, processor)
    with pytest.raises(RuntimeError, match=r"16 image tokens.*trainer has .*4.*preprocessor_config.json"):
        gen.generate([ids], [[image]], 1)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_VLLM, reason="needs the vllm package (GPU machines; on CPU its CPU build)")
def test_colocated_vllm_rollouts_have_the_trainers_log_probabilities(vllm_tiny_model_dir, synth_data, tmp_path,
                                                                   monkeypatch):
    """Three GRPO steps with colocated vLLM at a high learning rate and a pixel budget below the checkpoint's:
    vLLM's sampling log-probabilities stay within bf16 rounding of the trainer's (so the prompt is intact, the
    image reaches vLLM at the trainer's size, and the weights reach vLLM every step), and no step stops on a
    sampled image token."""
    from radrl.cli.grpo import main

    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on a CPU build; a GPU ignores it
    main(["--model_name_or_path", str(vllm_tiny_model_dir), "--train_data", str(synth_data["train"]),
          "--tasks", "report", "--rewards", "report_clinical", "--output_dir", str(tmp_path / "grpo"),
          "--max_steps", "3",
          "--num_generations", "4", "--per_device_train_batch_size", "8", "--max_completion_length", "24",
          "--learning_rate", "1e-3", "--bf16", "false", "--report_to", "none", "--max_pixels", "4096",
          "--logging_steps", "1", "--save_strategy", "no", "--use_vllm", "true", "--vllm_mode", "colocate",
          "--vllm_gpu_memory_utilization", "0.2", "--vllm_max_model_length", "1024",
          "--vllm_enable_sleep_mode", "false"])
    history = [h for h in json.loads((tmp_path / "grpo" / "log_history.json").read_text()) if "loss" in h]
    assert [h["step"] for h in history] == [1, 2, 3]
    diffs = [h["sampling/sampling_logp_difference/mean"] for h in history]
    # bf16 vLLM against the fp32 trainer: 0.004-0.028 per token here; the doubled image run of TRL 1.16
    # (collapse, resize and check switched off, the logit bias kept) gave 2.6-3.1
    assert max(diffs) < 0.1, diffs
