"""Any local vision-language checkpoint: load it, and generate for one batch of chat conversations.

Why in ``models``: evaluation's ``hf`` backend (``radrl.eval.generate``) and the loopback
OpenAI-compatible server (``radrl.models.endpoint.LocalServer``) run a local checkpoint the same way,
so both use these two functions, and ``models`` imports nothing from ``eval``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def load_any(path: str, device: str | None = None, loader: str = "auto", dtype=None,
             min_pixels: int | None = None, max_pixels: int | None = None):
    """(model, processor) for a local checkpoint: Qwen3-VL through ``radrl.models.load``, anything else
    (or ``loader="generic"``) through ``AutoModelForImageTextToText`` and its own processor and chat template."""
    from radrl.models.load import default_device, default_dtype, load, require_local

    if loader not in ("auto", "qwen3vl", "generic"):
        raise ValueError(f"loader={loader!r}; choose auto, qwen3vl or generic")
    require_local(path)   # a hub id is not fetched behind the user's back, whichever loader
    config = Path(path) / "config.json"
    model_type = json.loads(config.read_text()).get("model_type") if config.exists() else None
    if loader == "qwen3vl" or (loader == "auto" and model_type in ("qwen3_vl", None)):
        return load(path, dtype=dtype, device=device, min_pixels=min_pixels, max_pixels=max_pixels)
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = device or default_device()
    kwargs = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
    try:
        processor = AutoProcessor.from_pretrained(path, **kwargs)
    except ImportError:  # the stock Qwen3-VL processor's video half needs torchvision; images do not
        if model_type != "qwen3_vl":
            raise
        from radrl.models.load import load_processor

        processor = load_processor(path, min_pixels=min_pixels, max_pixels=max_pixels)
    if getattr(processor, "chat_template", None) is None:
        raise ValueError(f"{path}: the processor has no chat template; radrl builds prompts with the model's own "
                         "template, so copy chat_template.jinja from the model's release into the folder")
    try:
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype or default_dtype(device),
                                                            device_map=device)
    except ValueError as e:
        raise ValueError(f"{path} (model_type {model_type!r}) is not an image-text-to-text model transformers "
                         f"knows ({e}); serve it with its own stack and evaluate it with --endpoint") from None
    return model, processor


@torch.no_grad()
def generate_messages(model, processor, conversations: list[list[dict]], max_new_tokens: int = 1024,
                      do_sample: bool = False, temperature: float = 1.0, top_p: float | None = None,
                      per_row_max_new_tokens: list[int] | None = None, stats: dict | None = None,
                      streamer=None) -> list[str]:
    """One left-padded batch of chat conversations (PIL images in their parts) -> decoded completions.

    ``per_row_max_new_tokens`` cuts each row's completion at its own limit (the batch runs to
    the largest). ``stats``, when given, receives ``prompt_tokens`` and ``new_tokens`` per row.
    ``streamer`` (a transformers streamer, one conversation) sees tokens as they come, so an app can
    show a report while it is written; the returned text is decoded here all the same."""
    tokenizer = getattr(processor, "tokenizer", processor)
    model.eval()
    inputs = processor.apply_chat_template(
        conversations, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
        processor_kwargs={"padding": True, "padding_side": "left"})
    inputs = inputs.to(model.device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    gen = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=do_sample,
                         temperature=temperature if do_sample else None, top_p=top_p if do_sample else None,
                         top_k=None, pad_token_id=pad, streamer=streamer)
    new = gen[:, inputs["input_ids"].shape[1]:]  # (batch, new_tokens)
    eos = model.generation_config.eos_token_id
    stop = ({eos} if isinstance(eos, int) else set(eos or [])) | {pad}
    lengths = []
    for r, row in enumerate(new.tolist()):
        limit = per_row_max_new_tokens[r] if per_row_max_new_tokens else len(row)
        n = next((j for j, t in enumerate(row[:limit]) if t in stop), min(limit, len(row)))
        lengths.append(n)
    texts = [tokenizer.decode(new[r, :n], skip_special_tokens=True).strip() for r, n in enumerate(lengths)]
    if stats is not None:
        stats["prompt_tokens"] = inputs["attention_mask"].sum(dim=1).tolist()
        stats["new_tokens"] = lengths
    return texts
