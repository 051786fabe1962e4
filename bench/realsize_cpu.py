"""Real-size check on a CPU: a random-weight checkpoint of Qwen3-VL-2B's architecture, then one step each
of `radrl sft` (LoRA), `radrl grpo` (grounding, report) and `radrl eval` at the paper's pixel budgets,
recording wall time and peak resident memory of each (issue 16).

Nothing is downloaded. The architecture is read from ``bench/configs/qwen3vl-2b/config.json`` and
``preprocessor_config.json``, copies of the files Qwen/Qwen3-VL-2B-Instruct publishes (their source is in
``bench/configs/README.md``), so the model is exactly the released one in shape and parameter count; the
weights are random and the tokenizer is radrl's tiny one (``radrl.models.tiny``) with the real vocabulary
size (rows past the tokenizer are zeroed in the output layer, so generated text decodes; they still cost
their matmul). Each stage is the `radrl` command a user runs, on the shipped 8B recipes with the
overrides a CPU needs (LoRA, fp32, no vLLM, a few rows, short completions), each in its own process whose
peak RSS (``getrusage`` of the child, mapped checkpoint pages included), largest anonymous RSS (``RssAnon +
RssShmem`` sampled every 0.2 s: file pages left out) and wall time are recorded in
``bench/results/realsize_cpu.json`` with the commands, the CPU and the parameter count (built model and
``radrl plan``'s count side by side), and, for each training stage, ``radrl plan --cpu``'s estimate computed
from the same recipe and overrides (``radrl_plan``; ``plan_vs_measured`` = its RSS peak / the getrusage peak,
``plan_peak_vs_sampled_anon`` = its peak, what fit is judged on / the anonymous peak; ``--replan`` recomputes
them for an existing results file).

    bash bench/realsize_cpu.sh                      # about 50 minutes on 2 shared cores, 12.4 GiB peak
    bash bench/realsize_cpu.sh --config-dir DIR --image-size 64 --sft-pixels 4096 ...   # a reduced run (tests)

Pixel budgets (paper.md): SFT images capped at 262,144 pixels; GRPO min 1,024, max 451,584; evaluation at
the GRPO budget. Lengths are not the paper's (1,024-4,096-token completions would take hours on a CPU):
``--completion-tokens`` (default 16) for GRPO and evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes" / "qwen3vl-8b"


def build_checkpoint(config_dir: Path, out: Path, corpus: list[str], seed: int = 0) -> dict:
    """Random bf16 weights in the architecture of ``config_dir/config.json``, the tiny tokenizer (the config's
    special-token ids moved to the tokenizer's), and the processor of ``preprocessor_config.json``."""
    import torch
    from transformers import Qwen2VLImageProcessorPil, Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from radrl.models.load import ImageOnlyQwen3VLProcessor
    from radrl.models.tiny import demo_corpus, train_tokenizer

    raw = json.loads((config_dir / "config.json").read_text())
    pre = json.loads((config_dir / "preprocessor_config.json").read_text())
    tokenizer = train_tokenizer(demo_corpus(corpus), vocab_size=1024)
    ids = tokenizer.convert_tokens_to_ids
    raw.update(image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
               vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))
    raw["text_config"].update(bos_token_id=None, eos_token_id=ids("<|im_end|>"), pad_token_id=ids("<|endoftext|>"))
    # a reduced config's vocabulary may be smaller than this tokenizer (Qwen3-VL's 151,936 never is)
    raw["text_config"]["vocab_size"] = max(raw["text_config"]["vocab_size"], len(tokenizer))
    config = Qwen3VLConfig.from_dict(raw)
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    with torch.no_grad():
        model.lm_head.weight[len(tokenizer):] = 0  # unused rows: greedy text stays inside the tokenizer
    model.generation_config.eos_token_id = [config.text_config.eos_token_id]
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    params = sum(p.numel() for p in model.parameters())
    model.save_pretrained(out)
    del model
    image_processor = Qwen2VLImageProcessorPil(
        patch_size=pre["patch_size"], temporal_patch_size=pre["temporal_patch_size"], merge_size=pre["merge_size"],
        image_mean=pre["image_mean"], image_std=pre["image_std"], size=pre["size"])
    ImageOnlyQwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer,
                              chat_template=tokenizer.chat_template).save_pretrained(out)
    return {"parameters": params, "tied_embeddings": bool(raw.get("tie_word_embeddings"))}


ANON_SAMPLE_S = 0.2


def _sample_anon_rss(pid: int, stop, peak: list) -> None:
    """Largest RssAnon + RssShmem (/proc/PID/status, KiB) of ``pid`` every ANON_SAMPLE_S until ``stop`` is set:
    the resident memory that is not file pages (the memory-mapped checkpoint is), so what ``radrl plan --cpu``
    judges fit on, loading and step alike."""
    while not stop.is_set():
        try:
            with open(f"/proc/{pid}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            peak[0] = max(peak[0], int(fields["RssAnon"].split()[0]) + int(fields.get("RssShmem", "0").split()[0]))
        except (OSError, KeyError, ValueError, IndexError):  # not Linux, or the process has exited
            pass
        stop.wait(ANON_SAMPLE_S)


def run(name: str, argv: list[str], log_dir: Path) -> dict:
    """``argv`` in a child process: wall seconds, peak RSS (GiB, ``getrusage``: mapped file pages included),
    the largest sampled anonymous RSS (file pages left out; None where /proc cannot be read) and exit status;
    its output to log_dir/name.log."""
    import threading

    log_dir.mkdir(parents=True, exist_ok=True)
    with open(log_dir / f"{name}.log", "w") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO,
                                env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        stop, anon = threading.Event(), [0]
        sampler = threading.Thread(target=_sample_anon_rss, args=(proc.pid, stop, anon), daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        stop.set()
        sampler.join()
        wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    print(f"{name}: {wall:.0f} s, peak RSS {usage.ru_maxrss / 2**20:.1f} GiB, exit {code}", flush=True)
    return {"command": " ".join(str(a) for a in argv), "wall_s": round(wall, 1),
            "peak_rss_gib": round(usage.ru_maxrss / 2**20, 2),
            "peak_anon_rss_sampled_gib": round(anon[0] / 2**20, 2) if anon[0] else None, "exit_code": code}


def planned(command: str, architecture: Path) -> dict | None:
    """``radrl plan --cpu``'s estimate of a training stage's memory, from the stage's recorded command (its
    recipe and overrides, read by ``radrl plan``'s own parser) and the architecture it ran (None for a command
    without a recipe): ``peak_gib`` is what the plan judges fit on (without the mapped checkpoint's page
    cache), ``rss_peak_gib`` the resident set with it, the figure a measured peak RSS compares with."""
    import shlex

    from radrl.cli.plan import _overrides
    from radrl.train.plan import Engine, GiB, estimate, read_architecture, read_recipe

    argv = shlex.split(command)
    if "--config" not in argv:
        return None
    at = argv.index("--config")
    recipe = read_recipe(argv[at + 1], _overrides(argv[at + 2:]))
    est = estimate(read_architecture(architecture), recipe, Engine("ddp"), 1, device="cpu",
                   gpu_memory_gib=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GiB)
    return {"peak_gib": round(est.peak / GiB, 2), "rss_peak_gib": round(est.rss_peak / GiB, 2),
            "mapped_gib": round(est.mapped / GiB, 2),
            "phases_gib": {k: round(v / GiB, 2) for k, v in est.phases.items()},
            "components_gib": {k: round(v / GiB, 2) for k, (v, _) in est.components.items()}}


def add_plans(result: dict, architecture: Path) -> None:
    """Each training stage of ``result`` gets ``radrl_plan``: the plan's CPU estimate beside its measured peak."""
    for stage in result["stages"].values():
        if "command" in stage and (plan := planned(stage["command"], architecture)) is not None:
            stage["radrl_plan"] = plan
            stage["plan_vs_measured"] = round(plan["rss_peak_gib"] / stage["peak_rss_gib"], 3)
            if stage.get("peak_anon_rss_sampled_gib"):  # recorded by runs after 2026-12-06 13:30 UTC
                stage["plan_peak_vs_sampled_anon"] = round(plan["peak_gib"] / stage["peak_anon_rss_sampled_gib"], 3)
    if any(s.get("peak_anon_rss_sampled_gib") for s in result["stages"].values()):
        result["anon_rss_sampling"] = (f"peak_anon_rss_sampled_gib: largest RssAnon + RssShmem of the stage's process "
                                   f"(/proc/PID/status every {ANON_SAMPLE_S} s): its RSS without file pages (the "
                                       "mapped checkpoint), compared with radrl_plan.peak_gib "
                                       "(plan_peak_vs_sampled_anon)")
    result["plan_command"] = ("radrl plan --config RECIPE --cpu OVERRIDES (radrl.train.plan.estimate(..., "
                              "device='cpu')): the stage's recipe and command-line overrides; plan_vs_measured "
                              "is radrl_plan.rss_peak_gib (mapped checkpoint pages included) / peak_rss_gib")


def perf(output_dir: Path) -> dict:
    """The perf/ values the run logged (radrl.train.throughput), from its log_history.json."""
    path = output_dir / "log_history.json"
    if not path.is_file():
        return {}
    rows = [h for h in json.loads(path.read_text()) if "perf/step_s" in h]
    return {k: v for k, v in rows[-1].items() if k.startswith("perf/")} if rows else {}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config-dir", type=Path, default=REPO / "bench" / "configs" / "qwen3vl-2b",
                   help="folder with config.json and preprocessor_config.json (default: Qwen3-VL-2B's)")
    p.add_argument("--work", type=Path, default=REPO / "runs" / "realsize-cpu", help="checkpoints, data, logs")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "realsize_cpu.json")
    p.add_argument("--image-size", type=int, default=672, help="synthetic image side (672^2 = 451,584 pixels)")
    p.add_argument("--sft-pixels", type=int, default=262144)
    p.add_argument("--grpo-pixels", type=int, default=451584)
    p.add_argument("--completion-tokens", type=int, default=16)
    p.add_argument("--rows", type=int, default=2, help="training rows / evaluation rows per task")
    p.add_argument("--keep", action="store_true", help="keep the work folder (checkpoint included)")
    p.add_argument("--replan", action="store_true",
                   help="run nothing: add radrl plan's CPU estimate to each training stage of the --out file")
    a = p.parse_args(argv)
    if a.replan:
        result = json.loads(a.out.read_text())
        add_plans(result, a.config_dir)
        a.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(f"plan estimates added to {a.out}")
        return result

    import torch

    if a.work.exists():
        shutil.rmtree(a.work)
    a.work.mkdir(parents=True)
    cli = [sys.executable, "-m", "radrl.cli"]
    stages: dict = {}
    stages["synth_data"] = run("synth_data", [*cli, "synth-data", a.work / "data", "--train", "8", "--test", "4",
                                              "--size", str(a.image_size)], a.work / "logs")
    data = a.work / "data"
    start = time.perf_counter()
    model = a.work / "model"
    built = build_checkpoint(a.config_dir, model, [str(data / "train.jsonl")])
    stages["build"] = {"wall_s": round(time.perf_counter() - start, 1), **built}
    from radrl.train.plan import read_architecture

    planned = read_architecture(model).total  # the plan's count of what was built
    cpu = ["--bf16", "false", "--report_to", "none", "--save_strategy", "no", "--logging_steps", "1",
           "--max_steps", "1", "--model_name_or_path", str(model), "--train_data", str(data / "train.jsonl"),
           "--use_lora", "true", "--lora_merge", "false", "--max_train_rows", str(a.rows), "--dataloader_num_workers",
           "0", "--gradient_accumulation_steps", "1"]
    stages["sft_lora"] = run("sft_lora", [*cli, "sft", "--config", RECIPES / "sft_lora.yaml", *cpu,
                                          "--output_dir", a.work / "sft", "--per_device_train_batch_size", "1",
                                          "--max_pixels", str(a.sft_pixels)], a.work / "logs")
    stages["sft_lora"]["perf"] = perf(a.work / "sft")
    grpo = [*cpu, "--use_vllm", "false", "--num_generations", "2", "--per_device_train_batch_size", "2",
            "--generation_batch_size", "2", "--max_completion_length", str(a.completion_tokens),
            "--min_pixels", "1024", "--max_pixels", str(a.grpo_pixels)]
    for task, extra in (("grounding", []), ("report", ["--rewards", "report_clinical"])):
        name = f"grpo_{task}"
        stages[name] = run(name, [*cli, "grpo", "--config", RECIPES / f"{name}.yaml", *grpo, *extra,
                                  "--output_dir", a.work / name], a.work / "logs")
        stages[name]["perf"] = perf(a.work / name)
    stages["eval"] = run("eval", [*cli, "eval", "--model", model, "--data", data / "test.jsonl", "--out",
                                  a.work / "eval", "--max-rows", str(2 * a.rows), "--batch-size", str(2 * a.rows),
                                  "--max-new-tokens-report", str(a.completion_tokens), "--max-new-tokens-grounding",
                                  str(a.completion_tokens), "--max-pixels", str(a.grpo_pixels), "--device", "cpu"],
                         a.work / "logs")
    malloc_env = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_"))
    malloc_env = malloc_env or "no MALLOC_ variables"
    result = {
        "command": "bash bench/realsize_cpu.sh " + " ".join(sys.argv[1:] if argv is None else argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "architecture": str(a.config_dir.resolve().relative_to(REPO) if a.config_dir.resolve().is_relative_to(REPO)
                            else a.config_dir),
        "parameters_built": built["parameters"], "parameters_radrl_plan": planned,
        "budgets": {"sft_max_pixels": a.sft_pixels, "grpo_min_pixels": 1024, "grpo_max_pixels": a.grpo_pixels,
                    "eval_max_pixels": a.grpo_pixels, "completion_tokens": a.completion_tokens,
                    "image_size": a.image_size},
        "machine": {"cpu": platform.processor() or platform.machine(), "cores_visible": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "load_average": os.getloadavg(),
                    "torch": torch.__version__},
        "stages": stages,
        "all_passed": all(s.get("exit_code", 0) == 0 for s in stages.values()),
        "malloc": "radrl sft / grpo on the CPU set glibc's mmap threshold to 1 MiB (radrl.train.common."
                  "return_freed_memory); environment: " + malloc_env,
    }
    add_plans(result, model)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
    print(f"written to {a.out}")
    if not a.keep:
        shutil.rmtree(model, ignore_errors=True)
    if not result["all_passed"]:
        failed = [k for k, s in stages.items() if s.get("exit_code", 0)]
        sys.exit(f"stages failed: {failed}; see their logs in {a.work / 'logs'}")
    return result


if __name__ == "__main__":
    main()
