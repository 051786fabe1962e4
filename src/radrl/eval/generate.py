"""Batched generation for conversation rows (left padding, greedy by default, per-task token limits)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import torch
from PIL import Image
from tqdm.auto import tqdm

# Token limits per task (paper: reports 1,024 new tokens, 4,096 when thinking; grounding 4,096).
DEFAULT_MAX_NEW_TOKENS = {"report": 1024, "grounding": 4096}


def _open(image, row_id) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    try:
        with Image.open(image) as img:
            return img.convert("RGB")
    except (OSError, ValueError) as e:
        raise ValueError(f"row {row_id}: cannot read image {image} ({e}); fix the path in the samples file "
                         "or remove the row") from None


def _messages_with_images(row: dict) -> list[dict]:
    """Fill the prompt's image placeholders with the row's images (PIL or paths)."""
    images = [_open(img, row.get("id")) for img in (row.get("images") or [])]
    messages, k = [], 0
    for msg in row["prompt"]:
        content = msg["content"]
        if isinstance(content, str):
            messages.append(msg)
            continue
        parts = []
        for part in content:
            if part.get("type") == "image":
                if k >= len(images):
                    raise ValueError(f"row {row.get('id')}: the prompt has more image slots than images")
                parts.append({"type": "image", "image": images[k]})
                k += 1
            else:
                parts.append(part)
        messages.append({"role": msg["role"], "content": parts})
    return messages


@torch.no_grad()
def generate(model, processor, rows: list[dict], batch_size: int = 8,
             max_new_tokens: dict[str, int] | int | None = None, do_sample: bool = False,
             temperature: float = 1.0, progress: bool = True) -> list[str]:
    """One completion per row, in row order. Rows are batched within a task so token limits can differ."""
    limits = {**DEFAULT_MAX_NEW_TOKENS, **(max_new_tokens if isinstance(max_new_tokens, dict) else {})}
    if isinstance(max_new_tokens, int):
        limits = {k: max_new_tokens for k in limits}
    tokenizer = processor.tokenizer
    model.eval()
    out: list[str | None] = [None] * len(rows)
    by_task: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_task.setdefault(row.get("task", "report"), []).append(i)
    batches = [(task, idx[j:j + batch_size]) for task, idx in by_task.items() for j in range(0, len(idx), batch_size)]
    bar = tqdm(total=len(rows), desc="generate", disable=not progress, leave=False)
    for task, idx in batches:
        msgs = [_messages_with_images(rows[i]) for i in idx]
        inputs = processor.apply_chat_template(
            msgs, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt",
            processor_kwargs={"padding": True, "padding_side": "left"})
        inputs = inputs.to(model.device)
        gen = model.generate(**inputs, max_new_tokens=limits.get(task, 1024), do_sample=do_sample,
                             temperature=temperature if do_sample else None, top_p=None, top_k=None,
                             pad_token_id=tokenizer.pad_token_id)
        new = gen[:, inputs["input_ids"].shape[1]:]  # (batch, new_tokens)
        for i, text in zip(idx, tokenizer.batch_decode(new, skip_special_tokens=True)):
            out[i] = text.strip()
        bar.update(len(idx))
    bar.close()
    return out  # type: ignore[return-value]


def write_predictions(rows: Iterable[dict], completions: list[str], path: str | Path) -> Path:
    """Predictions JSONL: id, task, request, reference and completion per row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row, completion in zip(rows, completions):
            request = next(p["text"] for p in row["prompt"][-1]["content"] if p.get("type") == "text")
            f.write(json.dumps({"id": row["id"], "task": row["task"], "request": request,
                                "solution": row["solution"], "completion": completion,
                                "thinking": row.get("thinking", False)}) + "\n")
    return path
