"""Fixtures for radrl.app: the tiny model taught to answer with a box, so a test can see one drawn."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest

# What the taught model says to any request: a finding with a box, a box a test can find in the drawn image.
ANSWER = "Cardiomegaly at [0.30, 0.40, 0.70, 0.80]."
ANSWER_BOX = (0.30, 0.40, 0.70, 0.80)
# The pixel budget the model is taught and tested at (4 image tokens): small, so teaching takes seconds.
PIXELS = 64 * 64


@pytest.fixture(scope="session")
def taught(tmp_path_factory, tiny_model_dir) -> SimpleNamespace:
    """The session's tiny random Qwen3-VL after 200 Adam steps (seconds) on requests of every kind (the real
    templates of radrl.data.instructions, random images; alone, as a chat's second turn, and with " /think"), all
    answered with ``ANSWER``: greedy decoding then says ``ANSWER`` to whatever it is asked, on any image (checked
    on the DICOMs and NIH films of ../shared, up to a chat's third turn), so the answer's box is known. Only the
    weights change; tokenizer, processor and chat template are the tiny model's. Gives ``path``, ``answer``,
    ``box`` (0-1) and ``pixels`` (the budget to run it at)."""
    import torch
    from PIL import Image

    from radrl.data.instructions import (
        DETECTION_PROMPTS,
        GROUNDING_PROMPTS,
        PHRASE_PROMPTS,
        REPORT_PROMPTS,
        THINK_SUFFIX,
    )
    from radrl.models.load import load

    out = tmp_path_factory.mktemp("answering") / "model"
    shutil.copytree(tiny_model_dir, out)
    model, processor = load(str(out), dtype=torch.float32, device="cpu", min_pixels=PIXELS, max_pixels=PIXELS)
    requests = [*REPORT_PROMPTS, *(t.format(finding="cardiomegaly") for t in GROUNDING_PROMPTS),
                *(t.format(phrase="opacity at the left base") for t in PHRASE_PROMPTS), *DETECTION_PROMPTS,
                "Is there a pleural effusion?", "What else?"]
    # (earlier turns, request): every request alone, some as a chat's second turn, some asked to think
    cases = [((), r) for r in requests] + [((requests[i - 1],), requests[i]) for i in range(0, len(requests), 5)]
    cases += [((), r + THINK_SUFFIX) for r in requests[::6]]
    gen = torch.Generator().manual_seed(0)
    answer = {"role": "assistant", "content": [{"type": "text", "text": ANSWER}]}
    batches = []
    for i, (earlier, request) in enumerate(cases):
        pixels = (torch.rand(64, 64, generator=gen) * 255).to(torch.uint8).numpy()
        image = Image.fromarray(pixels).convert("RGB") if i % 3 else Image.new("RGB", (48 + i, 64), (i * 9 % 255,) * 3)
        turns = [*earlier, request]
        messages = []
        for k, text in enumerate(turns):
            messages.append({"role": "user", "content": [*([{"type": "image", "image": image}] if k == 0 else []),
                                                         {"type": "text", "text": text}]})
            if k < len(turns) - 1:
                messages.append(answer)
        prompt = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True,
                                               return_tensors="pt")
        full = processor.apply_chat_template([*messages, answer], tokenize=True, return_dict=True,
                                             return_tensors="pt")
        labels = full["input_ids"].clone()
        labels[:, :prompt["input_ids"].shape[1]] = -100   # learn the last answer and its end-of-turn token only
        batches.append({**full, "labels": labels})
    torch.manual_seed(0)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)   # a model this small steps ~10x faster on one thread than on two busy ones
    try:
        for step in range(200):
            loss = model(**batches[step % len(batches)]).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    model.save_pretrained(out)
    return SimpleNamespace(path=out, answer=ANSWER, box=ANSWER_BOX, pixels=PIXELS)


@pytest.fixture(scope="session")
def forged_png():
    """``forged_png(path, width, height)``: a PNG of a few bytes whose header claims ``width`` x ``height`` (the shape
    of a decompression bomb), for the checks that refuse huge images before decoding them."""
    import struct
    import zlib

    from PIL import Image

    def forge(path, width: int, height: int):
        Image.new("L", (1, 1)).save(path)
        data = bytearray(path.read_bytes())
        ihdr = data[12:29]   # b"IHDR" and its 13 bytes of fields, then the CRC
        ihdr[4:12] = struct.pack(">II", width, height)
        data[12:29] = ihdr
        data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)))
        path.write_bytes(bytes(data))
        return path

    return forge
