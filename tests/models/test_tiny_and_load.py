"""The tiny model is a real Qwen3-VL checkpoint: the same loading code serves it and Qwen3-VL-8B."""

import json

import pytest
import torch
from PIL import Image
from transformers import AutoProcessor, Qwen3VLForConditionalGeneration

from radrl.models import ImageOnlyQwen3VLProcessor, load, load_processor
from radrl.models.tiny import SPECIAL_TOKENS, count_parameters


def test_checkpoint_layout(tiny_model_dir):
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja"} <= names
    assert json.loads((tiny_model_dir / "config.json").read_text())["model_type"] == "qwen3_vl"


def test_load_gives_real_class_small_size_and_fp32_on_cpu(tiny_model_dir):
    model, processor = load(str(tiny_model_dir), device="cpu")
    assert isinstance(model, Qwen3VLForConditionalGeneration)
    assert isinstance(processor, ImageOnlyQwen3VLProcessor)
    assert not hasattr(processor, "video_processor")  # no torchvision needed
    assert 100_000 < count_parameters(model) < 1_000_000  # "a few hundred thousand parameters"
    assert next(model.parameters()).dtype == torch.float32


def test_saved_processor_is_a_stock_qwen3vl_processor(tiny_model_dir):
    """Checkpoints name the stock Qwen3VLProcessor and carry the video config a release ships, so vLLM and
    AutoProcessor (with torchvision) load them without radrl; radrl's loader still reads them without it."""
    for name in ("processor_config.json", "tokenizer_config.json", "video_preprocessor_config.json"):
        assert json.loads((tiny_model_dir / name).read_text())["processor_class"] == "Qwen3VLProcessor"
    video = json.loads((tiny_model_dir / "video_preprocessor_config.json").read_text())
    assert video["video_processor_type"] == "Qwen3VLVideoProcessor" and video["patch_size"] == 16
    assert isinstance(load_processor(str(tiny_model_dir)), ImageOnlyQwen3VLProcessor)
    try:
        import torchvision  # noqa: F401
    except ImportError:  # this CPU build: the stock class asks for torchvision, by name
        with pytest.raises(ImportError, match="Torchvision"):
            AutoProcessor.from_pretrained(str(tiny_model_dir))
    else:
        assert type(AutoProcessor.from_pretrained(str(tiny_model_dir))).__name__ == "Qwen3VLProcessor"


def test_tokenizer_has_qwen_chat_tokens_and_think_survives_decoding(tiny_model_dir):
    _, processor = load(str(tiny_model_dir), device="cpu")
    tok = processor.tokenizer
    for t in [*SPECIAL_TOKENS, "<think>", "</think>"]:
        assert tok.convert_tokens_to_ids(t) != tok.unk_token_id and tok.convert_tokens_to_ids(t) is not None, t
    ids = tok("<think>look</think>Cardiomegaly at [0.38, 0.47, 0.76, 0.62]<|im_end|>")["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "<think>look</think>Cardiomegaly at [0.38, 0.47, 0.76, 0.62]"
    # arbitrary text (non-ASCII included) is encodable: byte-level fallback
    assert tok.decode(tok("Épanchement µ ✓")["input_ids"]) == "Épanchement µ ✓"


def test_weights_round_trip_exactly(tiny_model_dir):
    """Every saved tensor is loaded back (a random model would hide a silently re-initialised layer)."""
    from safetensors.torch import load_file

    model, _ = load(str(tiny_model_dir), device="cpu")
    saved = load_file(str(tiny_model_dir / "model.safetensors"))
    state = model.state_dict()
    assert len(saved) == len(state)
    for name, tensor in saved.items():
        torch.testing.assert_close(state[name], tensor, msg=name)


def test_pixel_budget_override_changes_image_tokens(tiny_model_dir):
    image = Image.new("RGB", (256, 256), (90, 90, 90))
    grids = {}
    for budget in (64 * 64, 128 * 128):  # the fixture saved 64 x 64
        _, processor = load(str(tiny_model_dir), device="cpu", max_pixels=budget)
        grids[budget] = processor.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0].tolist()
    assert grids[64 * 64] == [1, 4, 4] and grids[128 * 128] == [1, 8, 8]  # 16-pixel patches


def test_chat_template_and_generation(tiny_model_dir):
    model, processor = load(str(tiny_model_dir), device="cpu", max_pixels=64 * 64)
    image = Image.new("RGB", (200, 160), (90, 90, 90))
    content = [{"type": "image", "image": image}, {"type": "text", "text": "Describe."}]
    messages = [[{"role": "user", "content": content}]]
    inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                           return_tensors="pt")
    text = processor.tokenizer.decode(inputs["input_ids"][0])
    assert text.startswith("<|im_start|>user\n<|vision_start|><|image_pad|>")
    assert text.endswith("<|im_start|>assistant\n")
    n_image_tokens = int((inputs["input_ids"] == model.config.image_token_id).sum())
    assert n_image_tokens == int(inputs["image_grid_thw"].prod()) // 4  # 2x2 merge
    out = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert out.shape[1] <= inputs["input_ids"].shape[1] + 5


def test_missing_checkpoint_says_what_to_do(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="tiny-model"):
        load(str(tmp_path / "nope"))
    # "runs/sftx" looks like a hub id but its first part is a local folder: a mistyped path
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    (tmp_path / "runs").mkdir()
    with pytest.raises(FileNotFoundError, match="runs/sftx does not exist"):
        load("runs/sftx")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"preprocessor_config.json"):
        load(str(tmp_path / "half"))
