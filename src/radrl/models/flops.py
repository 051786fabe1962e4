"""The model-FLOPs count behind every MFU radrl reports (``radrl sft`` / ``radrl grpo`` logs and
``bench/gpu_train_speed.py``), so that a number in a run and a number in a benchmark mean the same thing.

Training FLOPs of a step are counted per parameter and per input it sees: 2 for the forward matmul, 2 more
when the backward pass reaches the parameter (it computes the gradient of the activations through it), and
2 more when the parameter itself trains (the gradient of the weight). A fully trained model is therefore the
usual 6 x parameters x inputs; a frozen vision tower under a trained language model costs 2 per patch (no
backward reaches it); LoRA's frozen base weights cost 4 per token, its adapters 6. The inputs are per part
of Qwen3-VL: language-model matmuls x tokens, ViT blocks and patch embedding x patches, mergers (projector)
x merged visual tokens. Lookups (the token embedding table, the ViT's position table) do no matmul and are
left out; the lm_head projection is counted even when tied to the embedding (it is a matmul per token).
Attention's quadratic term is not counted (as in PaLM's MFU); at radrl's sequence lengths it is a few
percent of the total.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Dense bf16 tensor-core peaks (TFLOP/s) as the vendors publish them (SXM parts), matched by substring of
# torch.cuda.get_device_name(). A device not listed gets no MFU unless a peak is given (``peak_tflops``).
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "GH200": 989.0, "B200": 2250.0, "A100": 312.0,
               "A800": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0}

# Qwen3-VL's parts in the order data flows through them (radrl.train.common.PARTS names the same prefixes).
_PART_PREFIXES = (("vision_tower", "model.visual."), ("projector", "model.visual.merger."),
                  ("projector", "model.visual.deepstack_merger_list."), ("language_model", "model.language_model."),
                  ("language_model", "lm_head."))
_LOOKUPS = ("model.language_model.embed_tokens.", "model.visual.pos_embed.")


def device_peak_tflops(device_name: str | None) -> float | None:
    """The published dense bf16 peak of a CUDA device by its name, or None when it is not in ``PEAK_TFLOPS``.

    >>> device_peak_tflops("NVIDIA H100 80GB HBM3"), device_peak_tflops("cpu")
    (989.0, None)
    """
    if not device_name:
        return None
    # longest key first: "GH200" before "H200", "L40S" before "L4"
    return next((PEAK_TFLOPS[k] for k in sorted(PEAK_TFLOPS, key=len, reverse=True) if k in device_name), None)


def _part(name: str) -> str | None:
    name = name.removeprefix("base_model.model.")  # a peft-wrapped model
    if name.startswith(_LOOKUPS):
        return None
    best = max(((p, len(prefix)) for p, prefix in _PART_PREFIXES if name.startswith(prefix)), key=lambda x: x[1],
               default=None)
    if best is None:
        raise ValueError(f"parameter {name} is in no Qwen3-VL part; the FLOPs model expects the transformers 5 "
                         "Qwen3-VL layout (model.visual, model.language_model, lm_head)")
    return best[0]


@dataclass(frozen=True)
class FlopsModel:
    """FLOPs per input of each part of a Qwen3-VL, from the parameters and what trains (module docstring).

    ``per_token``, ``per_patch`` and ``per_merged`` are training FLOPs per language-model token, ViT patch
    and merged visual token; ``forward_*`` the same for a forward pass alone (2 per parameter)."""

    per_token: float
    per_patch: float
    per_merged: float
    forward_per_token: float
    forward_per_patch: float
    forward_per_merged: float
    merge_units: int  # patches per merged token (spatial_merge_size ** 2)

    @classmethod
    def of(cls, model: torch.nn.Module) -> FlopsModel:
        params: dict[str, list[tuple[int, bool]]] = {"vision_tower": [], "projector": [], "language_model": []}
        names = set()
        for name, p in model.named_parameters():
            names.add(name.removeprefix("base_model.model."))
            part = _part(name)
            if part:
                # ZeRO-3 leaves a partitioned parameter empty here and keeps its size in ds_numel
                params[part].append((getattr(p, "ds_numel", None) or p.numel(), p.requires_grad))
        inner = getattr(model, "get_base_model", lambda: model)()
        head = getattr(inner, "lm_head", None)
        if head is not None and "lm_head.weight" not in names:  # tied to the embedding: still one matmul a token
            params["language_model"].append((head.weight.numel(), head.weight.requires_grad))
        reached = False
        train, forward = {}, {}
        for part in ("vision_tower", "projector", "language_model"):
            reached = reached or any(g for _, g in params[part])  # backward runs from here on down the graph
            train[part] = sum(n * (2 + 2 * reached + 2 * g) for n, g in params[part])
            forward[part] = sum(2 * n for n, _ in params[part])
        config = getattr(inner, "config", None)
        merge = getattr(getattr(config, "vision_config", None), "spatial_merge_size", 2)
        return cls(train["language_model"], train["vision_tower"], train["projector"], forward["language_model"],
                   forward["vision_tower"], forward["projector"], merge * merge)

    def train_flops(self, tokens: int, patches: int) -> float:
        """Training FLOPs (forward + backward) of ``tokens`` language-model tokens and ``patches`` ViT patches
        (their merged tokens follow: patches / spatial_merge_size**2)."""
        return self.per_token * tokens + self.per_patch * patches + self.per_merged * patches / self.merge_units

    def forward_flops(self, tokens: int, patches: int) -> float:
        """FLOPs of one forward pass (no gradient): generation, reference and old-policy log-probabilities."""
        return (self.forward_per_token * tokens + self.forward_per_patch * patches
                + self.forward_per_merged * patches / self.merge_units)


def train_flops(model: torch.nn.Module, batch: int, seq: int, patches: int, merged: int) -> float:
    """Training FLOPs of one step of ``batch`` rows of ``seq`` tokens, each with ``patches`` ViT patches and
    ``merged`` merged visual tokens (``FlopsModel``; the benchmark's call, every part given explicitly)."""
    f = FlopsModel.of(model)
    return batch * (f.per_token * seq + f.per_patch * patches + f.per_merged * merged)
