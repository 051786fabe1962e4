"""Loading under a registered DeepSpeed ZeRO-3 config (what parsing TrainingArguments with accelerate's ZeRO-3
launch config does): transformers refuses any device_map then, so load() must pass none, and the LoRA merge
after training must drop the registration and load on the CPU.

deepspeed is not installed here, so the registration is a stand-in with the two members transformers reads
(``is_zero3()``, ``config``); the part of from_pretrained that would partition the weights (deepspeed.zero.Init)
is kept off by patching modeling_utils' own reference, while the device_map check in
transformers.integrations.accelerate still sees ZeRO-3."""

import pytest
import torch


class _FakeZero3Config:
    def __init__(self):
        self.config = {"zero_optimization": {"stage": 3}, "train_micro_batch_size_per_gpu": 1}

    def is_zero3(self) -> bool:
        return True


@pytest.fixture
def zero3(monkeypatch):
    import transformers.modeling_utils
    from transformers.integrations import is_deepspeed_zero3_enabled
    from transformers.integrations.deepspeed import set_hf_deepspeed_config, unset_hf_deepspeed_config

    monkeypatch.setattr(transformers.modeling_utils, "is_deepspeed_zero3_enabled", lambda: False)
    registered = _FakeZero3Config()  # held here: transformers keeps only a weak reference
    set_hf_deepspeed_config(registered)
    assert is_deepspeed_zero3_enabled()
    yield registered
    unset_hf_deepspeed_config()


def test_transformers_refuses_device_map_under_zero3(zero3, tiny_model_dir):
    # the failure load() avoids: the stand-in registration triggers transformers' own check
    from transformers import Qwen3VLForConditionalGeneration

    with pytest.raises(ValueError, match="Zero-3 is not compatible with passing a `device_map`"):
        Qwen3VLForConditionalGeneration.from_pretrained(str(tiny_model_dir), device_map="cpu")


def test_load_works_under_zero3(zero3, tiny_model_dir):
    from radrl.models import load

    model, _ = load(str(tiny_model_dir), dtype=torch.float32, device="cpu")
    assert next(model.parameters()).device.type == "cpu"


def test_merge_lora_after_zero3_training(zero3, tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen3VLForConditionalGeneration
    from transformers.integrations import is_deepspeed_zero3_enabled

    from radrl.train.common import merge_lora

    base = Qwen3VLForConditionalGeneration.from_pretrained(str(tiny_model_dir))  # no device_map: allowed
    peft_model = get_peft_model(base, LoraConfig(r=2, target_modules=r".*language_model.*\.q_proj"))
    peft_model.save_pretrained(str(tmp_path / "adapter"))
    out = merge_lora(str(tiny_model_dir), tmp_path / "adapter", tmp_path / "merged")
    assert (out / "config.json").exists()
    assert not is_deepspeed_zero3_enabled()  # the registration is gone once training is over
