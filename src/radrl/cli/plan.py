"""``radrl plan --config RECIPE --gpus N [--gpu-memory 80]``: will the recipe fit, per GPU (``radrl.train.plan``).

    radrl plan --config recipes/qwen3vl-8b/grpo_report.yaml --gpus 32 --architecture bench/configs/qwen3vl-8b
    radrl plan --config recipes/qwen3vl-8b/sft.yaml --gpus 8 --launch recipes/accelerate/deepspeed_zero3.yaml
    radrl plan --config R --gpus 8 --per_device_train_batch_size 2 --gradient_accumulation_steps 8   # overrides
    radrl plan --config R --cpu --ram 24 --bf16 false --use_lora true   # one process on the CPU: resident memory

Prints the estimate by component and either "fits" or "will not fit: try ..." with the changes that make it
fit (command-line flags for `radrl sft` / `radrl grpo`, plus `--engine` / `--gpus` for the launch). Exit
status 1 when it does not fit, so a job script can check before it asks for the cluster.
"""

from __future__ import annotations

import argparse
import sys

from radrl.cli.args import ArgumentParser


def _overrides(rest: list[str], parser: argparse.ArgumentParser | None = None) -> dict:
    """``--field value`` pairs after the known flags, values read as YAML (``--bf16 false`` -> False). A bare
    ``--field`` (followed by another ``--flag`` or nothing) is true, as HfArgumentParser reads a boolean field
    for ``radrl sft`` / ``radrl grpo``. Errors go to ``parser.error``, or raise ValueError without a parser
    (``bench/realsize_cpu.py`` reads a recorded command with it)."""
    import yaml

    def error(message):
        if parser is None:
            raise ValueError(message)
        parser.error(message)

    out = {}
    i = 0
    while i < len(rest):
        key = rest[i]
        if not key.startswith("--") or key == "--":
            error(f"unexpected {key!r}: recipe overrides are --field value pairs")
        if i + 1 < len(rest) and not rest[i + 1].startswith("--"):
            value, i = yaml.safe_load(rest[i + 1]), i + 2
        else:
            value, i = True, i + 1
        out[key[2:].replace("-", "_")] = value
    return out


def _machine_ram_gib() -> float | None:
    """This machine's RAM in GiB (Linux: /proc/meminfo), None where it cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            kib = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:"))
        return round(kib / 2**20, 1)
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def main(argv: list[str] | None = None) -> bool:
    p = ArgumentParser(prog="radrl plan", description=__doc__.split("\n\n")[0],
                       epilog="Any other --field value pair overrides the recipe, as for radrl sft / grpo.")
    p.add_argument("--config", required=True, help="the SFT or GRPO recipe (YAML)")
    p.add_argument("--gpus", type=int, default=None, help="training processes (GPUs) in all")
    p.add_argument("--gpu-memory", type=float, default=80.0, help="GiB per GPU (default 80)")
    p.add_argument("--cpu", action="store_true",
                   help="one training process on the CPU instead of GPUs (engine ddp; no vLLM): its resident memory "
                        "(RSS) without a CUDA reserve, with a loading phase (the fp32 weights); fit is judged without "
                        "the mapped checkpoint's page cache, which the RSS peak line adds")
    p.add_argument("--ram", type=float, default=None,
                   help="with --cpu: GiB of RAM, > 0 (default: this machine's, from /proc/meminfo)")
    p.add_argument("--gpus-per-node", type=int, default=8, help="for the host RAM estimate (default 8)")
    p.add_argument("--architecture", default=None,
                   help="Qwen3-VL config.json or its folder (default: the recipe's model_name_or_path)")
    p.add_argument("--launch", default=None, help="accelerate launch config (recipes/accelerate/*.yaml) to read "
                                                  "the engine from")
    p.add_argument("--engine", choices=["ddp", "zero2", "zero3", "fsdp"], default=None,
                   help="instead of --launch (default: what docs/training.md launches this kind of recipe with: "
                        "GRPO zero2, full SFT zero3, LoRA ddp)")
    p.add_argument("--offload-optimizer", action="store_true", help="with --engine zero2/zero3")
    p.add_argument("--offload-params", action="store_true", help="with --engine zero3/fsdp")
    p.add_argument("--prompt-text-tokens", type=int, default=64,
                   help="text tokens of a prompt besides the image (chat template + request; default 64)")
    p.add_argument("--reserve", type=float, default=3.0, help="GiB kept for CUDA context, NCCL, fragmentation")
    p.add_argument("--json", action="store_true", help="print the estimate as JSON")
    args, rest = p.parse_known_args(argv)
    if args.launch and args.engine:
        p.error("give --launch or --engine, not both")
    if args.cpu:
        if args.launch or args.engine not in (None, "ddp") or args.offload_optimizer or args.offload_params:
            p.error("--cpu plans one process without DeepSpeed or FSDP; drop --launch / --engine / --offload-*")
        if args.gpus not in (None, 1):
            p.error("--cpu plans one process; drop --gpus")
        args.gpus = 1
        if args.ram is not None and args.ram <= 0:
            p.error(f"--ram {args.ram:g}: give the GiB of RAM the process may use (a positive number), or leave "
                    "--ram out for this machine's")
        ram = args.ram if args.ram is not None else _machine_ram_gib()
        if ram is None:
            p.error("cannot read this machine's RAM from /proc/meminfo: give --ram GiB")
        args.gpu_memory = ram
    elif args.gpus is None:
        p.error("give --gpus N (training processes in all), or --cpu for one process on the CPU")
    elif args.ram is not None:
        p.error("--ram goes with --cpu; for GPUs give --gpu-memory")

    from radrl.train.plan import (
        DEFAULT_ENGINE,
        Engine,
        GiB,
        engine_from_launch_config,
        estimate,
        read_architecture,
        read_recipe,
        suggestions,
        to_json,
    )

    recipe = read_recipe(args.config, _overrides(rest, p))
    if args.cpu and recipe.kind == "grpo" and recipe["use_vllm"]:
        p.error(f"{args.config} sets use_vllm: true; add --use_vllm false: vLLM rollouts need a GPU")
    if args.launch:
        engine = engine_from_launch_config(args.launch)
    else:
        # on the CPU radrl trains in one process without DeepSpeed or FSDP, whatever the kind of recipe
        kind = args.engine or ("ddp" if args.cpu else DEFAULT_ENGINE["lora" if recipe["use_lora"] else recipe.kind])
        engine = Engine(kind, offload_optimizer=args.offload_optimizer or (kind == "fsdp" and args.offload_params),
                        offload_params=args.offload_params)
    arch = read_architecture(args.architecture or recipe["model_name_or_path"])
    kwargs = {"gpu_memory_gib": args.gpu_memory, "gpus_per_node": args.gpus_per_node,
              "prompt_text_tokens": args.prompt_text_tokens, "reserve_gib": args.reserve,
              "device": "cpu" if args.cpu else "gpu"}
    est = estimate(arch, recipe, engine, args.gpus, **kwargs)
    if args.json:
        print(to_json(est))
    else:
        b = est.batch
        where = (f"1 process on the CPU, {args.gpu_memory:g} GiB of RAM" if args.cpu
                 else f"{engine}, {args.gpus} x {args.gpu_memory:g} GiB")
        print(f"{args.config}: {recipe.kind.upper()}, {arch.total / 1e9:.2f} B parameters, {where}")
        print(f"micro-batch {b['micro_batch']} x accumulation {b['accumulation']} x "
              f"{'1 process' if args.cpu else f'{args.gpus} GPUs'} = "
              f"{b['effective_batch']} sequences per optimizer step; sequence {b['sequence']:,} tokens "
              f"({b['image_tokens']} image tokens)")
        width = max(len(k) for k in est.components)
        for name, (value, how) in est.components.items():
            print(f"  {name:<{width}}  {value / GiB:7.1f} GiB  {how}")
        print(f"  {'peak':<{width}}  {est.peak / GiB:7.1f} GiB  of {est.capacity / GiB:g}"
              + (" (resident memory the process cannot give back: what the fit is judged on)" if args.cpu else ""))
        if args.cpu:
            print(f"  {'RSS peak':<{width}}  {est.rss_peak / GiB:7.1f} GiB  with the memory-mapped checkpoint's "
                  f"pages while loading ({est.mapped / GiB:.1f} GiB of page cache, reclaimable; what getrusage / "
                  "top report)")
        for note in est.notes:
            print(f"  note: {note}")
    cannot_start = any("cannot start" in n for n in est.notes)
    unit = "GiB of RAM" if args.cpu else "GiB per GPU"
    if est.fits and not cannot_start:
        rss = f" (RSS peak {est.rss_peak / GiB:.1f} GiB with reclaimable page cache)" if args.cpu else ""
        print(f"fits: {est.peak / GiB:.1f} of {est.capacity / GiB:g} {unit}{rss}", file=sys.stderr)
        return True
    tries = suggestions(arch, recipe, engine, args.gpus, **kwargs)
    if tries:
        lines = "\n".join(f"  {' '.join(flags)}   ({e.peak / GiB:.1f} GiB)" for flags, e in tries)
        print(f"will not fit ({est.peak / GiB:.1f} of {est.capacity / GiB:g} {unit}): try\n{lines}",
              file=sys.stderr)
    elif args.cpu:
        what = ["more RAM (--ram GiB, on a machine that has it)"]
        if not recipe["use_lora"]:
            what.append("--use_lora true")
        if recipe.kind == "grpo":
            what.append(f"a shorter --max_completion_length (now {recipe['max_completion_length']})")
        else:
            what.append("a shorter --max_length")
        what.append("a smaller model")
        print(f"will not fit ({est.peak / GiB:.1f} of {est.capacity / GiB:g} {unit}), and no single change "
              f"tried here makes it fit: try {', '.join(what[:-1])} or {what[-1]}", file=sys.stderr)
    else:
        print(f"will not fit ({est.peak / GiB:.1f} of {est.capacity / GiB:g} {unit}), and no single change "
              "tried here makes it fit: try more GPUs, larger GPUs or a smaller model", file=sys.stderr)
    sys.exit(1)
