"""A tiny, randomly initialised Qwen3-VL for tests and the CPU demo.

It is the real architecture class (``Qwen3VLForConditionalGeneration``) at a size
that trains in minutes on two CPU cores, with a byte-level BPE tokenizer trained
offline on the demo corpus plus Qwen's chat special tokens and chat template, saved
in the standard Hugging Face layout. ``radrl.models.load`` therefore loads it with
exactly the code that loads Qwen3-VL-8B, and every training and evaluation path
runs unchanged on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2VLImageProcessorPil,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)

from radrl.models.load import ImageOnlyQwen3VLProcessor

# Qwen's special tokens, in Qwen's order; ids follow the learned vocabulary.
SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
]
# Added but not special: they must survive decoding with skip_special_tokens=True.
THINK_TOKENS = ["<think>", "</think>"]

# Qwen2/3's pre-tokenization pattern: digits split one by one, words with a leading space.
QWEN_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# Sizes: a few hundred thousand parameters; vision patch 16 and merge 2 as in Qwen3-VL.
TINY_SIZES = {"hidden": 96, "layers": 2, "heads": 4, "kv_heads": 2, "intermediate": 192,
                  "vision_hidden": 64, "vision_layers": 2, "vision_heads": 4, "vision_intermediate": 128}
# Larger presets for RL experiments on a CPU: the demo's GRPO gain is bounded by what the policy can
# see, so `radrl tiny-model --size small|base` trades minutes of SFT for perception (issue 13).
SIZE_PRESETS = {
    "tiny": TINY_SIZES,
    "small": {"hidden": 192, "layers": 4, "heads": 6, "kv_heads": 2, "intermediate": 512,
              "vision_hidden": 128, "vision_layers": 3, "vision_heads": 4, "vision_intermediate": 256},
    "base": {"hidden": 384, "layers": 6, "heads": 6, "kv_heads": 2, "intermediate": 1024,
             "vision_hidden": 192, "vision_layers": 4, "vision_heads": 6, "vision_intermediate": 512},
}
# head_dim (default hidden/heads) and vocab (embedding rows beyond the tokenizer's) may be set too.
SIZE_KEYS = (*TINY_SIZES, "head_dim", "vocab")


def check_sizes(sizes: dict) -> dict:
    """``sizes`` over the tiny defaults, refused with the fix when a key is unknown or the shapes cannot
    form a model (attention heads must divide the width, grouped KV heads the heads)."""
    from radrl.lookup import did_you_mean

    for key, value in sizes.items():
        if key not in SIZE_KEYS:
            raise ValueError(f"unknown model size {key!r}{did_you_mean(key, SIZE_KEYS)}; known: {', '.join(SIZE_KEYS)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"model size {key}={value!r} must be a positive integer")
    s = {**TINY_SIZES, **sizes}
    for width, heads in (("hidden", "heads"), ("vision_hidden", "vision_heads")):
        if s[width] % s[heads] and not (width == "hidden" and "head_dim" in s):
            raise ValueError(f"{width}={s[width]} is not divisible by {heads}={s[heads]}; change one of them")
    if s["heads"] % s["kv_heads"]:
        raise ValueError(f"heads={s['heads']} is not a multiple of kv_heads={s['kv_heads']}; change one of them")
    head_dim = s.get("head_dim") or s["hidden"] // s["heads"]
    if head_dim % 2 or head_dim < 8:
        raise ValueError(f"head_dim={head_dim} must be even and at least 8 (rotary frequencies split 3 ways)")
    return s


def train_tokenizer(corpus: Iterable[str], vocab_size: int = 1024) -> PreTrainedTokenizerFast:
    """Byte-level BPE on ``corpus`` with Qwen's special tokens; any text stays encodable (byte fallback)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   model_max_length=32768)
    fast.add_special_tokens({"additional_special_tokens": SPECIAL_TOKENS[1:]})
    fast.add_tokens(THINK_TOKENS)
    fast.chat_template = _chat_template()
    return fast


def _chat_template() -> str:
    """Qwen3-VL's chat template as shipped with TRL (identical to the released model's)."""
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / "qwen3_vl.jinja").read_text()


def tiny_config(vocab_size: int, tokenizer: PreTrainedTokenizerFast, sizes: dict | None = None) -> Qwen3VLConfig:
    s = check_sizes(dict(sizes or {}))
    head_dim = s.get("head_dim") or s["hidden"] // s["heads"]
    # Multimodal RoPE splits head_dim/2 rotary frequencies over (time, height, width).
    half = head_dim // 2
    mrope = [half - 2 * (half // 3), half // 3, half // 3]
    ids = tokenizer.convert_tokens_to_ids
    return Qwen3VLConfig(
        text_config={
            # sizes["vocab"] widens the embedding and output layer beyond the tokenizer (unused rows), so a
            # benchmark pays a real model's vocabulary cost (Qwen3-VL: 151,936) with the small tokenizer
            "vocab_size": max(vocab_size, s.get("vocab", 0)), "hidden_size": s["hidden"],
            "intermediate_size": s["intermediate"],
            "num_hidden_layers": s["layers"], "num_attention_heads": s["heads"], "num_key_value_heads": s["kv_heads"],
            "head_dim": head_dim, "max_position_embeddings": 4096, "tie_word_embeddings": False,
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": mrope,
                             "mrope_interleaved": True},
            "pad_token_id": ids("<|endoftext|>"), "eos_token_id": ids("<|im_end|>"), "bos_token_id": None,
        },
        vision_config={
            "depth": s["vision_layers"], "hidden_size": s["vision_hidden"],
            "intermediate_size": s["vision_intermediate"],
            "num_heads": s["vision_heads"], "out_hidden_size": s["hidden"], "patch_size": 16, "spatial_merge_size": 2,
            "temporal_patch_size": 2, "num_position_embeddings": 256, "deepstack_visual_indexes": [0],
        },
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=False,
    )


def build_tiny_model(out_dir: str | Path, corpus: Iterable[str], vocab_size: int = 1024, seed: int = 0,
                     max_pixels: int = 128 * 128, sizes: dict | None = None) -> Path:
    """Write a tiny random Qwen3-VL checkpoint (weights, config, tokenizer, processor) to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(corpus, vocab_size=vocab_size)
    config = tiny_config(len(tokenizer), tokenizer, sizes)
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = [config.text_config.eos_token_id]
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.save_pretrained(out)
    # Qwen3-VL's released preprocessor settings (patch 16, mean/std 0.5), with a small pixel budget.
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=16, temporal_patch_size=2, merge_size=2, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5],
        size={"shortest_edge": 32 * 32, "longest_edge": int(max_pixels)})
    processor = ImageOnlyQwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                                          chat_template=tokenizer.chat_template)
    processor.save_pretrained(out)
    return out


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def demo_corpus(sample_files: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Texts the tiny tokenizer learns from: requests and answers built from samples JSONL files,
    every request template, and the chat roles. Without files, a fresh synthetic corpus is drawn."""
    from radrl.data.instructions import GROUNDING_PROMPTS, REPORT_PROMPTS, THINK_SUFFIX, build_conversations
    from radrl.data.schema import read_jsonl

    if sample_files:
        samples = [s for f in sample_files for s in read_jsonl(f)]
    else:
        from radrl.data.synthetic import generate

        samples = [s for _, s in generate(300, seed=12345, size=64)]
    texts = ["user", "assistant", "system", THINK_SUFFIX, "<think>\n\n</think>\n\n", *REPORT_PROMPTS]
    texts += [t.format(finding=f) for t in GROUNDING_PROMPTS
              for f in ("cardiomegaly", "pleural effusion", "lung lesion", "pneumothorax", "consolidation")]
    for row in build_conversations(samples):
        texts.append(row["prompt"][0]["content"][1]["text"])
        texts.append(row["solution"])
    return texts
