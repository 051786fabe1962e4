"""SFT throughput and model FLOPs utilisation, and one GRPO step split into generation, reward and
update, with random weights in a published Qwen3-VL architecture: the GPU measurement of issue 5.

The architecture comes from a ``config.json`` (a few kB; no weights are read), so the numbers are for
exactly the model a user trains, not a transcription of it:

    # on the GPU machine, with a copy of Qwen/Qwen3-VL-2B-Instruct's config.json (or the whole folder)
    python bench/gpu_train_speed.py --config /models/Qwen3-VL-2B-Instruct --batch 8 --seq 1024
    python bench/gpu_train_speed.py --config /models/Qwen3-VL-8B-Instruct --batch 2 --seq 1024
    # the code path on a CPU, with the tiny test architecture (what tests/test_bench_scripts.py runs)
    python bench/gpu_train_speed.py --tiny --device cpu --steps 1 --warmup 0

What each part measures (bf16 weights on a GPU, fp32 on a CPU; synchronised wall clock):

* SFT: forward + backward + AdamW step on a batch of ``--batch`` sequences of ``--seq`` tokens, each
  holding one ``--image``-pixel image (its merged visual tokens count towards ``--seq``); loss on the text.
  Tokens/s = batch x seq / step time. MFU = model FLOPs per step / step time / peak FLOP/s, with the
  model FLOPs of the usual dense estimate (6 x parameters x inputs each is applied to; ``train_flops``):
  the language model's matmul parameters (its layers and the lm_head projection, not the embedding table,
  which is a lookup) x the sequence tokens, plus the ViT's blocks and patch embedding x the image patches,
  plus the mergers x the merged visual tokens (the ViT's position table, a lookup, is left out). Attention's
  quadratic term (scores and weighted sum, in the LM and in the ViT) is not counted, nor are norms and
  activations. Peak: ``--peak-tflops``, else the device's dense bf16 figure from
  ``radrl.models.flops.PEAK_TFLOPS``. The FLOPs model is ``radrl.models.flops``, the one `radrl sft` and
  `radrl grpo` log their MFU with.
* GRPO step (``--prompts`` x ``--generations`` rollouts of ``--new-tokens`` sampled tokens each):
  generation (``model.generate``, sampling, every rollout forced to full length so runs compare),
  reward (radrl's grounding soft-F1 and report rewards on completions built from the real NIH boxes and
  RadEval reports: the CPU cost a step pays for its rewards; the random model's own text would be
  garbage), and update (reference forward without gradients for the KL term, policy forward + backward +
  AdamW step on prompt + completion with GRPO's token-level surrogate).
* Peak GPU memory of each part (``torch.cuda.max_memory_allocated``).

Results go to ``bench/results/gpu_train_speed_<name>.json`` with the command that produced them (``<name>``:
``--name``, else the folder holding the config, e.g. ``Qwen3-VL-2B-Instruct``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"

def peak_tflops(device: str, given: float | None) -> float | None:
    """``--peak-tflops``, else the device's published dense bf16 peak (``radrl.models.flops.PEAK_TFLOPS``)."""
    if given:
        return given
    if not device.startswith("cuda"):
        return None
    from radrl.models.flops import device_peak_tflops

    return device_peak_tflops(torch.cuda.get_device_name())


def architecture(args):
    """The Qwen3VLConfig to build: read from --config, or the tiny test architecture."""
    from transformers import Qwen3VLConfig

    if args.tiny:
        from radrl.models.tiny import build_tiny_model, demo_corpus

        folder = build_tiny_model(Path(tempfile.mkdtemp()) / "tiny", demo_corpus(), vocab_size=512)
        return Qwen3VLConfig.from_pretrained(folder)
    if not args.config:
        sys.exit("pass --config with a Qwen3-VL config.json (or its folder), or --tiny")
    path = Path(args.config)
    if not (path / "config.json" if path.is_dir() else path).is_file():
        sys.exit(f"{path}: no config.json; copy the model release's config.json (a few kB) there")
    return Qwen3VLConfig.from_pretrained(path.parent if path.is_file() else path)


def results_name(args) -> str:
    """``--name``, else "tiny", else the name of the folder that holds the config (``--config`` may be the
    folder or its config.json).

    >>> results_name(argparse.Namespace(name=None, tiny=False, config="/models/Qwen3-VL-2B-Instruct/config.json"))
    'Qwen3-VL-2B-Instruct'
    """
    if args.name:
        return args.name
    if args.tiny:
        return "tiny"
    path = Path(args.config).resolve()
    return (path.parent if path.suffix == ".json" else path).name


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, steps: int, warmup: int) -> tuple[float, float | None]:
    """(median seconds per call, peak GPU GiB or None on a CPU) over ``steps`` calls after ``warmup`` untimed ones."""
    for _ in range(warmup):
        fn()
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    return sorted(times)[len(times) // 2], peak


def train_flops(model, batch: int, seq: int, patches: int, merged: int) -> float:
    """Dense training FLOPs of one step: ``radrl.models.flops`` (the model `radrl sft` and `radrl grpo` log
    their MFU with), 6 x parameters x inputs per part for this fully trained model."""
    from radrl.models.flops import train_flops as flops

    return flops(model, batch, seq, patches, merged)


def image_inputs(config, pixels: int, batch: int, device: str, dtype) -> tuple[torch.Tensor, torch.Tensor, int]:
    """pixel_values and image_grid_thw for ``batch`` square images of about ``pixels`` pixels, as the
    Qwen3-VL image processor lays them out (patch 16, temporal 2, merge 2); returns the merged token count
    (patches per image = that x spatial_merge_size**2)."""
    v = config.vision_config
    unit = v.patch_size * v.spatial_merge_size
    side = max(unit, round(pixels ** 0.5 / unit) * unit)
    h = w = side // v.patch_size
    per_image = h * w
    dim = v.in_channels * v.temporal_patch_size * v.patch_size ** 2
    pixel_values = torch.randn(batch * per_image, dim, device=device, dtype=dtype)
    grid = torch.tensor([[1, h, w]] * batch, device=device)
    return pixel_values, grid, per_image // v.spatial_merge_size ** 2


def text_ids(config, batch: int, seq: int, image_tokens: int, device: str, generator) -> torch.Tensor:
    """[vision_start, image x n, vision_end, random text ...] per row; text ids avoid the special range."""
    if seq <= image_tokens + 2:
        sys.exit(f"--seq {seq} leaves no text after {image_tokens} image tokens; raise --seq or lower --image")
    vocab = config.text_config.vocab_size
    special = {config.image_token_id, config.video_token_id, config.vision_start_token_id, config.vision_end_token_id}
    high = min(vocab, *special) if min(special) > 1000 else vocab
    text = torch.randint(10, high, (batch, seq - image_tokens - 2), generator=generator)
    text[torch.isin(text, torch.tensor(sorted(special)))] = 10
    head = torch.tensor([config.vision_start_token_id] + [config.image_token_id] * image_tokens
                        + [config.vision_end_token_id]).expand(batch, -1)
    return torch.cat([head, text], dim=1).to(device)


def mm_types(config, ids: torch.Tensor) -> torch.Tensor:
    """The processor's mm_token_type_ids (1 on image tokens): Qwen3-VL's M-RoPE positions need them."""
    return (ids == config.image_token_id).long()


def sft(model, config, args, device, dtype) -> dict:
    pixel_values, grid, n_img = image_inputs(config, args.image, args.batch, device, dtype)
    ids = text_ids(config, args.batch, args.seq, n_img, device, torch.Generator().manual_seed(0))
    labels = ids.clone()
    labels[:, : n_img + 2] = -100
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=device.startswith("cuda"))

    def step():
        loss = model(input_ids=ids, pixel_values=pixel_values, image_grid_thw=grid, labels=labels,
                     mm_token_type_ids=mm_types(config, ids)).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    seconds, peak = timed(step, device, args.steps, args.warmup)
    tokens_per_s = args.batch * args.seq / seconds
    flops = train_flops(model, args.batch, args.seq, n_img * config.vision_config.spatial_merge_size ** 2, n_img)
    peak_flops = peak_tflops(device, args.peak_tflops)
    return {"step_s": seconds, "tokens_per_s": tokens_per_s, "image_tokens_per_sample": n_img,
            "model_tflops_per_step": flops / 1e12,
            "mfu": flops / seconds / (peak_flops * 1e12) if peak_flops else None,
            "peak_tflops": peak_flops, "peak_mem_gib": peak}


def reward_batches(n: int) -> tuple[dict, dict]:
    """TRL-shaped reward inputs from the real fixtures: NIH boxes (grounding) and RadEval reports."""
    sys.path.insert(0, str(Path(__file__).parent))
    import rewards_speed as rs

    data = rs.data_dir(None)
    g = rs.grounding_rows(data)
    refs, preds = rs.report_rows(data)
    grounding = {"completions": [g[i % len(g)][0] for i in range(n)], "solution": [g[i % len(g)][1] for i in range(n)],
                 "task": ["grounding"] * n, "thinking": [False] * n}
    report = {"completions": [preds[i % len(preds)] for i in range(n)],
              "solution": [refs[i % len(refs)] for i in range(n)],
              "task": ["report"] * n, "thinking": [False] * n}
    return grounding, report


def grpo(model, config, args, device, dtype) -> dict:
    from radrl.rewards import REWARDS

    n = args.prompts * args.generations
    pixel_values, grid, n_img = image_inputs(config, args.image, args.prompts, device, dtype)
    prompt = text_ids(config, args.prompts, args.prompt_tokens, n_img, device, torch.Generator().manual_seed(1))
    rollout_ids = prompt.repeat_interleave(args.generations, 0)
    rollout_pixels = pixel_values.view(args.prompts, -1, pixel_values.shape[-1]).repeat_interleave(
        args.generations, 0).flatten(0, 1)
    rollout_grid = grid.repeat_interleave(args.generations, 0)
    out: dict = {}

    def generate():
        out["sequences"] = model.generate(input_ids=rollout_ids, pixel_values=rollout_pixels,
                                          image_grid_thw=rollout_grid, mm_token_type_ids=mm_types(config, rollout_ids),
                                          do_sample=True, temperature=1.0,
                                          max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens,
                                          pad_token_id=0)

    with torch.no_grad():
        gen_s, gen_mem = timed(generate, device, args.steps, args.warmup)

    grounding, report = reward_batches(n)
    rewards = [REWARDS["grounding_soft_f1"], REWARDS["report_clinical"]]

    def score():
        for reward, batch in zip(rewards, (grounding, report), strict=True):
            reward(**batch)

    reward_s, _ = timed(score, "cpu", args.steps, max(args.warmup, 1))

    sequences = out["sequences"]
    completion = torch.zeros_like(sequences, dtype=torch.bool)
    completion[:, prompt.shape[1]:] = True
    advantages = torch.randn(n, 1, device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, fused=device.startswith("cuda"))

    def token_logps(ids):
        logits = model(input_ids=ids, pixel_values=rollout_pixels, image_grid_thw=rollout_grid,
                       mm_token_type_ids=mm_types(config, ids)).logits[:, :-1]
        return torch.log_softmax(logits.float(), -1).gather(-1, ids[:, 1:, None]).squeeze(-1)

    def update():
        with torch.no_grad():  # the reference model's log-probs for the KL term (same weights here)
            ref = token_logps(sequences)
        logp = token_logps(sequences)
        mask = completion[:, 1:]
        ratio = torch.exp(logp - logp.detach())
        kl = torch.exp(ref - logp) - (ref - logp) - 1  # k3, as TRL's beta term
        loss = (-(ratio * advantages) + 0.01 * kl)[mask].mean()  # token-mean (dapo)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    update_s, update_mem = timed(update, device, args.steps, args.warmup)
    return {"rollouts": n, "prompt_tokens": args.prompt_tokens, "new_tokens": args.new_tokens,
            "generation_s": gen_s, "reward_s": reward_s, "update_s": update_s,
            "step_s": gen_s + reward_s + update_s,
            "generated_tokens_per_s": n * args.new_tokens / gen_s,
            "peak_mem_gib": {"generation": gen_mem, "update": update_mem}}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="Qwen3-VL config.json or the folder holding it (architecture only)")
    p.add_argument("--tiny", action="store_true", help="the tiny test architecture (checks the code path)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=1024, help="tokens per SFT sequence, image tokens included")
    p.add_argument("--image", type=int, default=448 * 448, help="pixels per image (Qwen3-VL: 1 token / 32x32)")
    p.add_argument("--prompts", type=int, default=4, help="GRPO prompts per step")
    p.add_argument("--generations", type=int, default=8, help="GRPO rollouts per prompt (the paper: 8)")
    p.add_argument("--prompt-tokens", type=int, default=256)
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--peak-tflops", type=float, default=None)
    p.add_argument("--name", default=None, help="results file suffix (default: from the config)")
    p.add_argument("--sft-only", action="store_true",
                   help="SFT only: the GRPO part reads the real reward fixtures (../shared/data/cxr), which a machine "
                        "without them lacks (bench/gpu_check.py times GRPO through `radrl grpo` instead)")
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    if args.tiny:
        args.image, args.seq = min(args.image, 64 * 64), min(args.seq, 64)
        args.prompt_tokens = min(args.prompt_tokens, 32)
        args.new_tokens, args.batch = min(args.new_tokens, 8), min(args.batch, 2)
        args.prompts, args.generations = min(args.prompts, 2), min(args.generations, 2)

    from transformers import Qwen3VLForConditionalGeneration

    from radrl.models.tiny import count_parameters

    config = architecture(args)
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    with torch.device(args.device):
        model = Qwen3VLForConditionalGeneration(config).to(dtype)
    model.config.use_cache = True
    params = count_parameters(model)
    print(f"random Qwen3-VL, {params / 1e9:.3f} B parameters, {args.device} {dtype}", file=sys.stderr)
    result = {"command": "python bench/gpu_train_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
              "torch": torch.__version__, "parameters": params, "dtype": str(dtype),
              "settings": {k: v for k, v in vars(args).items() if k not in ("out",)},
              "sft": sft(model, config, args, args.device, dtype)}
    if not args.sft_only:
        result["grpo"] = grpo(model, config, args, args.device, dtype)
    out = args.out or RESULTS / f"gpu_train_speed_{results_name(args)}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    s, g = result["sft"], result.get("grpo")
    mfu = f"{s['mfu']:.1%}" if s["mfu"] is not None else "n/a (no peak for this device)"
    memory = f"{s['peak_mem_gib']:.1f} GiB" if s["peak_mem_gib"] is not None else "n/a (CPU)"
    print(f"SFT: {s['tokens_per_s']:,.0f} tokens/s, step {s['step_s']:.3f} s, MFU {mfu}, peak memory {memory}")
    if g:
        print(f"GRPO step ({g['rollouts']} rollouts x {g['new_tokens']} tokens): generation {g['generation_s']:.3f} s, "
              f"reward {g['reward_s']:.3f} s, update {g['update_s']:.3f} s")
    print(f"written to {out}")
    return result


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
