"""``radrl demo``: the whole pipeline on built-in synthetic data with a tiny model, on a CPU.

    synthetic data -> tiny Qwen3-VL -> SFT -> GRPO per task (from the SFT checkpoint) -> evaluate -> report.md

Every stage is the real one (the same entry points a user runs on MIMIC-CXR with
Qwen3-VL-8B); only the sizes are small. As in the paper, GRPO runs separately for report
generation and for grounding, each from the SFT checkpoint, and each GRPO model is evaluated
on its own task. The recipes are ``recipes/demo/sft.yaml``, ``grpo_report.yaml`` and
``grpo_grounding.yaml``, read from the installed package (``radrl recipes copy demo`` puts them where
you edit them; ``--sft-recipe`` / ``--grpo-recipes`` run the edited ones); the demo only points them
at its own output folder, relative to where it runs. ``--smoke`` runs every stage at a few images and
steps (1-2 minutes on 2 cores): a check that an install works, not a result.

The comparison is fair by construction and checked: every model is evaluated at the recipes'
pixel budget on the same held-out rows with the same requests (``radrl compare`` refuses
otherwise), and each gain is a paired difference with a bootstrap 95 % interval and p-value.
``results.json`` records the numbers with the command, machine and commit that produced
them; ``bench/demo_results.py`` checks a copy in and renders the README's table from it.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from pathlib import Path

import torch
import yaml

from radrl.metrics import metric_spec
from radrl.package import packaged_recipe, version

RECIPES = packaged_recipe("demo")
TASKS = ("report", "grounding")
# `radrl demo --smoke`: every stage and output of the demo at the smallest sizes that still log a GRPO reward
# (the demo recipes log every 2 steps); what CI runs from a wheel installed outside the clone.
SMOKE = {"train": 16, "test": 4, "sft_steps": 2, "grpo_steps": 2, "eval_rows": 8}

log = logging.getLogger(__name__)


class Stages:
    """Logs numbered stage headers with elapsed time, and remembers each stage's duration."""

    def __init__(self, total: int):
        self.total, self.i, self.t0, self.times = total, 0, time.time(), {}
        self._name, self._start = None, None

    def start(self, name: str, description: str) -> None:
        self.done()
        self.i += 1
        self._name, self._start = name, time.time()
        log.info("\n[%d/%d] %s  (t = %.0f s)", self.i, self.total, description, time.time() - self.t0)

    def done(self) -> None:
        if self._name:
            self.times[self._name] = time.time() - self._start
            log.info("      done in %.0f s", self.times[self._name])
            self._name = None


def run_demo(out: str | Path = "runs/demo", train: int = 600, test: int = 400,
             sft_recipe: str = str(RECIPES / "sft.yaml"),
             grpo_recipes: list[str] | tuple[str, ...] = tuple(str(RECIPES / f"grpo_{t}.yaml") for t in TASKS),
             sft_steps: int | None = None, grpo_steps: int | None = None, eval_rows: int | None = None,
             command: str = "radrl demo", threads: int | None = None) -> Path:
    """The whole pipeline (``radrl demo``); returns report.md. ``command`` is recorded in results.json.
    ``threads``: torch's CPU threads (``torch.set_num_threads``; None keeps torch's default). CPU numbers depend
    on the thread count and instruction set, so results.json records both; the same machine at the same thread
    count gives the same numbers (``tests/test_demo_repro.py``)."""
    from radrl.data.synthetic import write_dataset
    from radrl.eval.report import summary_line
    from radrl.eval.run import evaluate
    from radrl.models.tiny import build_tiny_model, demo_corpus
    from radrl.train import grpo, sft

    out = Path(out)
    for recipe in (sft_recipe, *grpo_recipes):
        if not Path(recipe).exists():
            raise FileNotFoundError(f"recipe {recipe} not found; give an existing file to --sft-recipe/--grpo-recipes "
                                    "(`radrl recipes copy demo` writes the packaged ones to ./recipes/demo)")
    if len(grpo_recipes) != len(TASKS):
        raise ValueError(f"--grpo-recipes takes one recipe per task, in the order {TASKS}")
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}; leave it out for torch's default")
        torch.set_num_threads(threads)
    st = Stages(7)

    st.start("data", f"synthetic chest X-rays: {train} train + {test} test images -> {out / 'data'}")
    data = write_dataset(out / "data", n_train=train, n_test=test, seed=0)

    st.start("model", "tiny Qwen3-VL with a tokenizer trained on the demo corpus")
    tiny = build_tiny_model(out / "tiny-model", demo_corpus([str(data["train"])]), seed=0)

    st.start("SFT", "SFT (TRL SFTTrainer)")
    sft_args = ["--config", sft_recipe, "--model_name_or_path", str(tiny), "--train_data", str(data["train"]),
                "--output_dir", str(out / "sft")]
    if sft_steps is not None:
        sft_args += ["--max_steps", str(sft_steps)]
    sft_dir = sft.train(sft.parse_config(sft_args))

    grpo_dirs = {}
    for task, recipe in zip(TASKS, grpo_recipes):
        st.start(f"GRPO {task}", f"GRPO for {task} from the SFT checkpoint (TRL GRPOTrainer)")
        grpo_args = ["--config", recipe, "--model_name_or_path", sft_dir, "--train_data", str(data["train"]),
                     "--output_dir", str(out / f"grpo-{task}")]
        if grpo_steps is not None:
            grpo_args += ["--max_steps", str(grpo_steps)]
        grpo_dirs[task] = grpo.train(grpo.parse_config(grpo_args))

    st.start("evaluation", "evaluate SFT (both tasks) and each GRPO model (its task) on the held-out split")
    # One pixel budget for every model: the one the recipes trained at (all demo recipes share it).
    pixels = pixel_budget([sft_recipe, *grpo_recipes])
    common = {"max_new_tokens": {"report": 128, "grounding": 96}, "max_rows": eval_rows, "batch_size": 32,
              "min_pixels": pixels[0], "max_pixels": pixels[1]}
    results = {"SFT": evaluate(sft_dir, str(data["test"]), str(out / "eval-sft"), **common), "SFT+GRPO": {}}
    for task, model_dir in grpo_dirs.items():
        results["SFT+GRPO"].update(evaluate(model_dir, str(data["test"]), str(out / f"eval-grpo-{task}"),
                                            tasks=(task,), **common))
    for name, by_task in results.items():
        log.info("  %s:", name)
        for task, agg in by_task.items():
            log.info("%s", summary_line(task, agg))

    st.start("comparison", "comparison and report")
    from radrl.eval.compare import compare  # leaderboard (md/csv/json), paired tests, self-contained HTML

    board = compare([f"SFT={out / 'eval-sft'}"] + [f"SFT+GRPO-{t}={out / f'eval-grpo-{t}'}" for t in grpo_dirs],
                    out / "compare", published=False)
    st.done()
    paired = {t: board["paired"]["tests"].get(f"SFT+GRPO-{t}", {}).get(t, {}) for t in grpo_dirs}
    settings = {"train_images": train, "test_images": test, "sft_steps": sft_steps, "grpo_steps": grpo_steps,
                "eval_rows": eval_rows, "pixels": list(pixels), "max_new_tokens": common["max_new_tokens"],
                "decoding": "greedy", "threads": threads}
    report = write_report(out, results, paired, settings, st.times, time.time() - st.t0, command)
    log.info("\nreport: %s  (total %.0f s)", report, time.time() - st.t0)
    log.info("leaderboard and HTML report: %s, %s", out / "compare" / "leaderboard.md", out / "compare" / "report.html")
    return report


def pixel_budget(recipes: list[str]) -> tuple[int, int]:
    """The (min, max) pixel budget the recipes train at; they must agree, or SFT and GRPO saw different images."""
    from radrl.eval.run import EVAL_PIXELS

    budgets = {}
    for recipe in recipes:
        cfg = yaml.safe_load(Path(recipe).read_text()) or {}
        budgets[recipe] = (cfg.get("min_pixels") or EVAL_PIXELS[0], cfg.get("max_pixels") or EVAL_PIXELS[1])
    if len(set(budgets.values())) != 1:
        raise ValueError(f"the demo recipes train at different pixel budgets {budgets}; give them one "
                         "min_pixels/max_pixels so that every model is evaluated as it was trained")
    return next(iter(budgets.values()))


# Paired differences shown per task (GRPO minus SFT): the targeted reward first, then untargeted metrics, length.
PAIRED_SHOWN = {"grounding": ("soft_f1", "map50", "mean_iou", "acc50"),
                "report": ("clinical", "rouge_l", "chexpert_rules_sample_f1", "avg_chars")}


def paired_table(paired: dict) -> str:
    """GRPO - SFT per task and metric: delta [95 % CI], p, rows (in each metric's unit, from its spec)."""
    lines = ["| task | metric | GRPO - SFT | 95% CI | p | rows |", "|---|---|---|---|---|---|"]
    for task, by_key in paired.items():
        for key in PAIRED_SHOWN.get(task, ()):
            r = by_key.get(key)
            if r is None:
                continue
            spec = metric_spec(key)  # its name, and deltas in its unit (points; characters for answer length)
            f = spec.format_delta
            p = f"< {1 / 2000:.4f}" if r["p_value"] == 0 else f"{r['p_value']:.4f}"
            lines.append(f"| {task} | {spec.name} | {f(r['delta'])} | [{f(r['low'])}, {f(r['high'])}] | {p} | "
                         f"{r['n']} |")
    return "\n".join(lines)


def _commit() -> str | None:
    """The radrl clone's commit; None for an installed wheel, even one inside the user's own git project (whose
    commit says nothing about radrl's code: ``radrl_version`` does)."""
    try:
        top, commit = subprocess.run(["git", "rev-parse", "--show-toplevel", "--short", "HEAD"],
                                     cwd=Path(__file__).parent, text=True, capture_output=True, timeout=10,
                                     check=True).stdout.split()
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return commit if Path(top).resolve() / "src" / "radrl" / Path(__file__).name == Path(__file__).resolve() else None


def write_report(out: Path, results: dict, paired: dict, settings: dict, times: dict, total_s: float,
                 command: str) -> Path:
    """report.md: SFT vs SFT+GRPO per task, the paired differences, the reward curve, box images, timings;
    results.json: the same numbers with the command, machine, commit and settings that produced them."""
    from radrl.eval.report import markdown_table, plot_curves
    from radrl.machine import machine_info

    history = []  # both runs on one plot: keys are per reward, and each run logs only its own
    for task in TASKS:
        history += json.loads((out / f"grpo-{task}" / "log_history.json").read_text())
    reward_keys = sorted({k for h in history for k in h if k.startswith("rewards/") and k.endswith("/mean")})
    curve = plot_curves(history, reward_keys, out / "reward_curve.png", title="GRPO rewards (train, sampled)")
    lines = ["# radrl demo report", "",
             ("Synthetic chest X-rays, a tiny random Qwen3-VL, SFT, then GRPO per task from the SFT checkpoint "
              "(report and grounding RL are separate runs, as in the paper); held-out split, greedy decoding. "
              "Scores in percent (avg_chars in characters)."), "",
             ("Leaderboard with paired bootstrap tests: [compare/leaderboard.md](compare/leaderboard.md); "
              "everything with images in one page: [compare/report.html](compare/report.html)."), ""]
    for task in ("grounding", "report"):
        lines += [f"## {task}", "", markdown_table(dict(results), task), ""]
    lines += ["## GRPO minus SFT, paired on identical rows", "", paired_table(paired), "",
              ("Same images, requests, pixel budget and decoding on both sides (checked by `radrl compare`); "
               "95% percentile bootstrap interval and two-sided p over 2,000 paired resamples."), ""]
    if curve:
        lines += ["## GRPO reward curve", "", f"![reward curve]({curve.name})", ""]
    lines += ["## Boxes (green: reference, red: prediction)", "", "| SFT | SFT+GRPO |", "|---|---|"]
    sft_boxes = sorted((out / "eval-sft" / "boxes").glob("*.png"))
    for path in sft_boxes:
        grpo_path = out / "eval-grpo-grounding" / "boxes" / path.name
        lines.append(f"| ![]({path.relative_to(out)}) | ![]({grpo_path.relative_to(out)}) |")
    lines += ["", "## Time", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in times.items()]
    machine = machine_info()
    lines += [f"| total | {total_s:.0f} |", "", f"Machine: {machine_line(machine)}."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({
        "command": command, "date": time.strftime("%Y-%m-%d", time.gmtime()),
        "radrl_version": version(), "commit": _commit(), "machine": machine,
        "settings": settings,
        "results": results, "paired": paired, "times_s": times, "total_s": total_s}, indent=2))
    return path


# README tables: the keys shown per task (names and formats from radrl.metrics.metric_spec).
README_COLUMNS = {
    "grounding": ("soft_f1", "map50", "mean_iou", "acc50"),
    "report": ("clinical", "rouge_l", "bleu", "chexpert_rules_micro_f1_14", "chexpert_rules_macro_f1_5", "avg_chars"),
}


def machine_line(m: dict, torch_version: str | None = None) -> str:
    """What the numbers depend on, from a results file's ``machine`` (``radrl.machine.machine_info``): CPU model,
    instruction set, torch threads, torch version, OS and architecture; "not recorded" for what an older file
    lacks (``torch_version``: such a file's top-level ``torch``).

    >>> machine_line({"cpu": "AMD EPYC", "isa": "AVX2", "threads": 1, "torch": "2.13.0", "os": "Linux",
    ...               "arch": "x86_64"})
    'AMD EPYC (AVX2, 1 torch thread), torch 2.13.0, Linux x86_64'
    >>> machine_line({"cpu": "AMD EPYC"})
    'AMD EPYC (instruction set not recorded, threads not recorded), torch not recorded, OS not recorded'
    """
    def get(key: str, what: str) -> str:
        value = m.get(key)
        return f"{what} not recorded" if value in (None, "") else str(value)

    system = " ".join(str(m[k]) for k in ("os", "arch") if m.get(k)) or m.get("platform") or "OS not recorded"
    n = m.get("threads")
    threads = f"{n} torch thread{'s' if n != 1 else ''}" if n else "threads not recorded"
    return (f"{get('cpu', 'CPU')} ({get('isa', 'instruction set')}, {threads}), "
            f"torch {m.get('torch') or torch_version or 'not recorded'}, {system}")


def readme_block(results: dict) -> str:
    """The README's demo section body, rendered from a ``results.json`` the demo wrote (checked in as
    ``bench/results/demo.json``): a test renders it again and fails when the README differs."""
    m, s = results["machine"], results["settings"]
    t = results["times_s"]
    lines = [f"`{results['command']}` on {machine_line(m, results.get('torch'))}, {results['date']}, "
             f"commit {results['commit']}: **{results['total_s'] / 60:.1f} min** for the pipeline ("
             + ", ".join(f"{k} {v:.0f} s" for k, v in t.items()) + "). "
             f"Held-out split: {s['test_images']} images; every model at {s['pixels'][1]:,} pixels, greedy, the same "
             "requests; scores in percent.", ""]
    for task, keys in README_COLUMNS.items():  # names and formats from the metric specs, as every table
        specs = [metric_spec(k) for k in keys]
        lines += ["| task | model | " + " | ".join(sp.name for sp in specs) + " |", "|---" * (len(keys) + 2) + "|"]
        for model, by_task in results["results"].items():
            agg = by_task.get(task, {})
            cells = [sp.format(agg.get(sp.key)) for sp in specs]
            lines.append(f"| {task} | {model} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["GRPO minus SFT, paired on identical rows:", "", paired_table(results["paired"])]
    return "\n".join(lines)
