"""The prepared GPU check (issue 16): everything a lent GPU should measure, in one command of at most
8 minutes on one H100, from the repository alone (no internet, no weights; under 64 MiB carried).

    bash bench/gpu_check.sh                 # on the GPU machine, from the repository root
    bash bench/gpu_check.sh --dry-run       # the same stages on a CPU with a tiny architecture (tests)

Stages, each a child process with its own time limit inside one overall budget (``--budget``, 450 s), so
that a hang in one leaves the others their time and the results file is always written:

1. ``sft_speed``: ``bench/gpu_train_speed.py --sft-only`` with random weights in Qwen3-VL-2B's
   architecture (``bench/configs/qwen3vl-2b``): SFT tokens/s, MFU (``radrl.models.flops``), peak memory.
2. ``grpo``: one GRPO step through ``radrl grpo`` itself (the 8B grounding recipe with the 2B random
   checkpoint, full fine-tuning in bf16 with the KL reference, transformers rollouts: vLLM is not on
   the machine), two steps so that the second is warm: its logged ``perf/`` values (tokens/s, MFU, the
   generation / reward / update split, peak memory).
3. ``eval_batching``: ``bench/eval_batching.py`` in the 2B architecture, batch 32 against batch 1 (issue
   6's target: at least 5x), outputs checked identical, and the peak memory.

The checkpoint is built on the machine (``bench/realsize_cpu.build_checkpoint``); radrl runs from ``src``
(``PYTHONPATH``), not installed. Stages whose Python packages are missing (trl, peft, accelerate,
datasets: the GPU machine is promised torch and transformers only) are skipped with the missing names;
``--wheels DIR`` installs them first from a folder of wheels carried along (``pip download --no-deps``
of the versions in ``constraints/``; pyarrow alone is about 40 MiB of the 64). Results:
``bench/results/gpu_check.json`` (``--out``), with the device, the commands and every stage's exit code.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
NEEDS = {"sft_speed": ["torch", "transformers"], "grpo": ["torch", "transformers", "trl", "peft", "accelerate",
                                                          "datasets", "yaml", "PIL"],
         "eval_batching": ["torch", "transformers", "PIL", "tokenizers"]}


def missing(modules: list[str]) -> list[str]:
    return [m for m in modules if importlib.util.find_spec(m) is None]


def install_wheels(folder: Path) -> dict:
    """pip-install, without the network, whatever the stages miss that ``folder`` has wheels for."""
    need = sorted({m for mods in NEEDS.values() for m in missing(mods)})
    if not need:
        return {"installed": []}
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--find-links", str(folder),
                           *[{"yaml": "pyyaml", "PIL": "pillow"}.get(m, m) for m in need]], capture_output=True,
                          text=True, check=False)
    return {"installed": need, "exit_code": proc.returncode, "tail": proc.stdout[-1000:] + proc.stderr[-1000:]}


def stage(name: str, argv: list, limit: float, work: Path) -> dict:
    """Run ``argv`` (cwd: the repository, radrl from src) for at most ``limit`` seconds; its output goes to
    ``work/NAME.log``; wall seconds and exit code (124 when the limit stopped it)."""
    if limit < 20:
        return {"skipped": "no time left in the budget"}
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
           "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    with open(work / f"{name}.log", "w") as log:
        try:
            code = subprocess.run([str(a) for a in argv], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=limit, check=False).returncode
        except subprocess.TimeoutExpired:
            code = 124
    wall = time.perf_counter() - start
    print(f"{name}: exit {code} after {wall:.0f} s (log {work / f'{name}.log'})", flush=True)
    return {"command": " ".join(str(a) for a in argv), "wall_s": round(wall, 1), "exit_code": code}


def tiny_architecture(work: Path) -> Path:
    """A folder with the tiny test model's config.json and Qwen3-VL's preprocessor_config.json (--dry-run)."""
    import shutil

    from radrl.models.tiny import build_tiny_model, demo_corpus

    model = build_tiny_model(work / "tiny-model", demo_corpus(), vocab_size=512)
    arch = work / "tiny-architecture"
    arch.mkdir(exist_ok=True)
    shutil.copy(model / "config.json", arch / "config.json")
    shutil.copy(REPO / "bench" / "configs" / "qwen3vl-2b" / "preprocessor_config.json", arch)
    return arch


def planned_grpo(model: Path, flags: list[str]) -> dict:
    """What `radrl plan` estimates for the GRPO stage (one process, no DeepSpeed, transformers rollouts), to set
    beside the peak the run logs (``perf/max_memory_allocated_gib``; the plan's reserve for the CUDA context and
    fragmentation is not in that number, so it is left out here)."""
    import yaml

    from radrl.train.plan import Engine, GiB, estimate, read_architecture, read_recipe

    overrides = {k[2:]: yaml.safe_load(v) for k, v in zip(flags[::2], flags[1::2], strict=True)}
    overrides.update(use_vllm=False, gradient_accumulation_steps=1)
    est = estimate(read_architecture(model), read_recipe(REPO / "recipes" / "qwen3vl-8b" / "grpo_grounding.yaml",
                                                         overrides), Engine("ddp"), 1, reserve_gib=0)
    return {"peak_gib": round(est.peak / GiB, 2),
            "components_gib": {k: round(v / GiB, 2) for k, (v, _) in est.components.items()}}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny architecture, tiny sizes: checks the path")
    p.add_argument("--architecture", type=Path, default=REPO / "bench" / "configs" / "qwen3vl-2b")
    p.add_argument("--budget", type=float, default=450.0, help="seconds for all stages together")
    p.add_argument("--wheels", type=Path, default=None, help="folder of wheels for missing packages (no index)")
    p.add_argument("--work", type=Path, default=None, help="scratch folder (default: a new temporary one)")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "gpu_check.json")
    a = p.parse_args(argv)
    t0 = time.perf_counter()
    work = a.work or Path(tempfile.mkdtemp(prefix="radrl-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(REPO / "src"))
    import torch

    cuda = torch.cuda.is_available() and not a.dry_run
    device = "cuda" if cuda else "cpu"
    result: dict = {
        "command": "bash bench/gpu_check.sh " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "device": torch.cuda.get_device_name() if cuda else f"cpu ({platform.machine()}, {os.cpu_count()} cores)",
        "torch": torch.__version__, "dry_run": a.dry_run, "stages": {}}
    if a.wheels:
        result["wheels"] = install_wheels(a.wheels)
    result["missing_packages"] = {name: missing(mods) for name, mods in NEEDS.items()}
    arch = tiny_architecture(work) if a.dry_run else a.architecture
    result["architecture"] = str(arch)
    left = lambda: a.budget - (time.perf_counter() - t0)  # noqa: E731

    def run(name: str, argv: list, cap: float) -> dict:
        lacking = result["missing_packages"][name]
        out = {"skipped": f"missing Python packages: {lacking}"} if lacking else stage(name, argv, min(cap, left()),
                                                                                      work)
        result["stages"][name] = out
        return out

    py = sys.executable
    # 1. SFT throughput and MFU (full fine-tuning, bf16 on the GPU)
    sizes = ["--batch", "2", "--seq", "64", "--image", "4096", "--steps", "1", "--warmup", "0"] if a.dry_run else \
        ["--batch", "8", "--seq", "1024", "--image", "262144", "--steps", "5", "--warmup", "2"]
    speed_json = work / "gpu_train_speed.json"
    s = run("sft_speed", [py, REPO / "bench" / "gpu_train_speed.py", "--config", arch, "--device", device,
                          "--sft-only", *sizes, "--out", speed_json], 150)
    if s.get("exit_code") == 0:
        sft = json.loads(speed_json.read_text())["sft"]
        s.update(parameters=json.loads(speed_json.read_text())["parameters"], **sft)

    # 2. one GRPO step through `radrl grpo` (two steps: the second is warm)
    if not result["missing_packages"]["grpo"]:
        from realsize_cpu import build_checkpoint

        cli = [py, "-m", "radrl.cli"]
        stage("synth_data", [*cli, "synth-data", work / "data", "--train", "16", "--test", "4", "--size",
                             "64" if a.dry_run else "672"], min(60, left()), work)
        start = time.perf_counter()
        build_checkpoint(arch, work / "model", [str(work / "data" / "train.jsonl")])
        result["build_s"] = round(time.perf_counter() - start, 1)
        tiny = ["--bf16", "false", "--num_generations", "2", "--per_device_train_batch_size", "2",
                "--generation_batch_size", "2", "--max_completion_length", "4", "--max_pixels", "4096"]
        real = ["--num_generations", "8", "--per_device_train_batch_size", "8", "--generation_batch_size", "8",
                "--max_completion_length", "256"]
        g = run("grpo", [*cli, "grpo", "--config", REPO / "recipes" / "qwen3vl-8b" / "grpo_grounding.yaml",
                         "--model_name_or_path", work / "model", "--train_data", work / "data" / "train.jsonl",
                         "--output_dir", work / "grpo", "--use_vllm", "false", "--gradient_accumulation_steps", "1",
                         "--max_steps", "2", "--logging_steps", "1", "--report_to", "none", "--save_strategy", "no",
                         "--max_train_rows", "16", *(tiny if a.dry_run else real)], 240)
        g["plan"] = planned_grpo(work / "model", tiny if a.dry_run else real)
        history = work / "grpo" / "log_history.json"
        if history.is_file():
            steps = [h for h in json.loads(history.read_text()) if "perf/step_s" in h]
            g["steps"] = [{k: v for k, v in h.items() if k.startswith("perf/") or k in ("step", "reward")}
                          for h in steps]
    else:
        result["stages"]["grpo"] = {"skipped": f"missing Python packages: {result['missing_packages']['grpo']}"}

    # 3. evaluation batching: batch 32 against batch 1, with peak memory
    batching_json = work / "eval_batching.json"
    probe = ("import json, sys, torch; sys.path.insert(0, 'bench'); import eval_batching; "
             "eval_batching.main(sys.argv[1:]); print('PEAK_GIB', json.dumps(torch.cuda.max_memory_allocated() / 2**30 "
             "if torch.cuda.is_available() else None))")
    sizes = ["--rows", "4", "--max-new-tokens", "4", "--batch-sizes", "1", "4", "--repeats", "1"] if a.dry_run else \
        ["--rows", "32", "--max-new-tokens", "32", "--batch-sizes", "1", "32", "--repeats", "2"]
    e = run("eval_batching", [py, "-c", probe, "--device", device, "--architecture", arch, *sizes, "--concurrency",
                              "--out", batching_json], 150)
    if e.get("exit_code") == 0:
        rows = json.loads(batching_json.read_text())["results"]
        first, last = rows[f"hf batch {sizes[5]}"], rows[f"hf batch {sizes[6]}"]
        e.update(results=rows, speedup=round(first["wall_s"] / last["wall_s"], 2),
                 same_outputs=all(r["same_outputs_as_first"] for r in rows.values()))
        log = (work / "eval_batching.log").read_text()
        peak = [line.split(" ", 1)[1] for line in log.splitlines() if line.startswith("PEAK_GIB ")]
        e["peak_mem_gib"] = json.loads(peak[-1]) if peak else None

    result["total_s"] = round(time.perf_counter() - t0, 1)
    result["work"] = str(work)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"written to {a.out} ({result['total_s']:.0f} s)")
    return result


if __name__ == "__main__":
    main()
