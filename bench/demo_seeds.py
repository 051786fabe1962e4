"""Does the demo's GRPO gain hold over seeds, and does it beat "just more SFT"? (issue 13)

    .venv/bin/python bench/demo_seeds.py --demo runs/demo --out runs/demo-seeds --seeds 0 1 2

From a finished ``radrl demo`` run (its SFT checkpoint ``<demo>/sft`` and data ``<demo>/data/{train,test}.jsonl``)
this script, for each task (report, grounding):

1. trains GRPO once per seed with the demo recipe (``recipes/demo/grpo_<task>.yaml``), ``--seed`` overriding
   the recipe's ``seed`` (TrainingArguments.seed: TRL's GRPOTrainer seeds torch's sampler with it, so rollouts
   differ, and shuffles the prompts with it) -> ``<out>/grpo-<task>-s<seed>``;
2. trains a compute-matched control: SFT continued from the SFT checkpoint on that task's rows only
   (``recipes/demo/sft.yaml`` with ``--tasks <task>``: same batch size, learning rate 2e-3 with the recipe's
   cosine schedule and warm-up, seed 0) for as many steps as fill the mean GRPO training time of that task:
   a short probe run measures the SFT step time first (``<out>/probe-sft-<task>``), then
   ``max_steps = round(mean GRPO train_runtime / probe seconds per step)`` -> ``<out>/control-sft-<task>``;
   both times are recorded;
3. evaluates exactly as the demo does (held-out split, greedy, batch 32, max_new_tokens report 128 /
   grounding 96, the recipes' pixel budget, the same requests): SFT once on both tasks, every GRPO and
   control model on its own task -> ``<out>/eval-*``;
4. compares with ``radrl compare`` (the contract check must pass; no ``--allow-mismatch``): every model
   against SFT (``<out>/compare-<task>``) and every GRPO seed against the control
   (``<out>/compare-<task>-vs-control``); paired bootstrap differences with 95 % CIs and p;
5. writes ``bench/results/demo_seeds.json`` and ``.md`` (``demo_seeds_<tag>.*`` with ``--tag``).

Every command runs with one torch thread (``--threads``): on a 2-core machine shared with other work, 2-thread
processes slow down 5-6x and wall-time matching becomes meaningless. Wall and CPU seconds of every command are
logged to ``<out>/commands.jsonl`` and copied into the results.

Every step is done by the ``radrl`` command (a subprocess per step) and skipped when its output exists, so an
interrupted run resumes where it stopped (an unfinished training run restarts from scratch, so that its
recorded time is one uninterrupted run; ``radrl eval`` resumes by itself). A variant GRPO recipe is measured
the same way with ``--grpo-recipe report=PATH --tag NAME --tasks report``: its runs go to
``grpo-report-<tag>-s<seed>``, while SFT's evaluation and the controls are shared with the plain run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml

from radrl.demo import machine_line, pixel_budget  # pixel_budget: the recipes must agree on it

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "demo"
RESULTS = ROOT / "bench" / "results"
TASKS = ("report", "grounding")
# exactly the demo's evaluation settings (radrl.demo.main)
MAX_NEW_TOKENS = {"report": 128, "grounding": 96}
EVAL_BATCH = 32
TARGET = {"report": "clinical", "grounding": "soft_f1"}
UNTARGETED = {"report": ("rouge_l", "chexpert_rules_sample_f1", "avg_chars"),
              "grounding": ("map50", "mean_iou", "acc50")}
ALPHA = 0.05


# ---------------------------------------------------------------- planning


def grpo_name(task: str, seed: int, tag: str = "") -> str:
    return f"grpo-{task}{'-' + tag if tag else ''}-s{seed}"


def plan(out: Path, tasks: tuple[str, ...], seeds: list[int], tag: str = "") -> dict:
    """Folder names of every model and evaluation, and the names the comparisons give them.

    >>> p = plan(Path("o"), ("report",), [0, 1])
    >>> p["report"]["grpo"], p["report"]["control"]["train"].name
    ({0: 'grpo-report-s0', 1: 'grpo-report-s1'}, 'control-sft-report')
    """
    out = Path(out)
    p = {"sft_eval": out / "eval-sft"}
    for task in tasks:
        p[task] = {
            "grpo": {s: grpo_name(task, s, tag) for s in seeds},
            "control": {"probe": out / f"probe-sft-{task}", "train": out / f"control-sft-{task}",
                        "eval": out / f"eval-control-{task}", "plan": out / f"control-sft-{task}.plan.json"},
            "compare": out / f"compare-{task}{'-' + tag if tag else ''}",
            "compare_control": out / f"compare-{task}{'-' + tag if tag else ''}-vs-control",
        }
    return p


def control_steps(grpo_runtimes_s: list[float], sft_step_s: float) -> int:
    """SFT steps that take as long as one GRPO run (the mean over seeds) at the measured SFT step time.

    >>> control_steps([115.0, 117.0], 0.2)
    580
    """
    if not grpo_runtimes_s or sft_step_s <= 0:
        raise ValueError(f"need GRPO times and a positive SFT step time, got {grpo_runtimes_s}, {sft_step_s}")
    return max(1, round(statistics.fmean(grpo_runtimes_s) / sft_step_s))


def trained(folder: Path) -> bool:
    """A finished training run: radrl writes log_history.json after the final model."""
    return (folder / "log_history.json").is_file() and (folder / "config.json").is_file()


def train_runtime(folder: Path) -> float:
    """The Trainer's own train_runtime (training loop only, no model load) from log_history.json."""
    history = json.loads((folder / "log_history.json").read_text())
    found = [h["train_runtime"] for h in history if "train_runtime" in h]
    if not found:
        raise ValueError(f"{folder}/log_history.json has no train_runtime: the run did not finish")
    return float(found[-1])


def reward_summary(folder: Path) -> dict:
    """Training reward (TRL's ``reward``, sampled rollouts) over the first and last quarter of the logged steps,
    the first logged reward (seeds must differ there), and the mean completion length."""
    history = [h for h in json.loads((folder / "log_history.json").read_text()) if "reward" in h]
    if not history:
        return {}
    q = max(1, len(history) // 4)

    def mean(rows, k):
        values = [h[k] for h in rows if k in h]
        return statistics.fmean(values) if values else None

    return {"first_logged_reward": history[0]["reward"], "reward_first_quarter": mean(history[:q], "reward"),
            "reward_last_quarter": mean(history[-q:], "reward"),
            "length_first_quarter": mean(history[:q], "completions/mean_length"),
            "length_last_quarter": mean(history[-q:], "completions/mean_length"),
            "kl_last": history[-1].get("kl"),
            # each reward of a weighted sum (TRL's rewards/<name>/mean), unweighted: first -> last quarter
            "components": {k.split("/")[1]: [mean(history[:q], k), mean(history[-q:], k)]
                           for k in sorted({k for h in history for k in h})
                           if k.startswith("rewards/") and k.endswith("/mean")}}


# ---------------------------------------------------------------- aggregation


def _metric_row(test: dict | None, key: str) -> dict | None:
    if test is None:
        return None
    hib = test.get("higher_is_better")
    significant = test["p_value"] < ALPHA and (test["low"] > 0 or test["high"] < 0)
    verdict = "n.s."
    if significant:
        verdict = "change" if hib is None else "gain" if (test["delta"] > 0) == bool(hib) else "loss"
    return {"delta": test["delta"], "low": test["low"], "high": test["high"], "p_value": test["p_value"],
            "n": test["n"], "excluded": test.get("excluded", 0), "higher_is_better": hib, "verdict": verdict}


def summarize(task: str, vs_sft: dict, vs_control: dict, seeds: list[int], grpo: dict[int, str],
              control: str = "control") -> dict:
    """Per-seed and control paired results for one task from two ``radrl compare`` payloads (leaderboard.json):
    ``vs_sft`` with SFT as baseline and every GRPO seed and the control as runs, ``vs_control`` with the control
    as baseline. Returns ``{"models": {name: {metric: row}}, "vs_control": {name: {metric: row}}, "verdict": ...}``
    where a row is delta / low / high / p / n and a verdict (gain, loss, n.s.; "change" for avg_chars)."""
    keys = (TARGET[task], *UNTARGETED[task])
    tests = vs_sft["paired"]["tests"]
    ctests = vs_control["paired"]["tests"]
    if vs_sft["mismatches"] or vs_control["mismatches"]:
        raise ValueError(f"{task}: the comparison reported contract mismatches; refusing to summarise")
    models, versus = {}, {}
    for name in [grpo[s] for s in seeds] + [control]:
        by_key = tests.get(name, {}).get(task, {})
        models[name] = {k: _metric_row(by_key.get(k), k) for k in keys}
    for s in seeds:
        by_key = ctests.get(grpo[s], {}).get(task, {})
        versus[grpo[s]] = {k: _metric_row(by_key.get(k), k) for k in keys}
    target = TARGET[task]

    def _ok(row, want="gain"):
        return row is not None and row["verdict"] == want

    per_seed = {grpo[s]: {"beats_sft": _ok(models[grpo[s]][target]),
                          "beats_control": _ok(versus[grpo[s]][target]),
                          "untargeted_losses": [k for k in UNTARGETED[task] if _ok(models[grpo[s]][k], "loss")]}
                for s in seeds}
    deltas = [models[grpo[s]][target]["delta"] for s in seeds if models[grpo[s]][target]]
    verdict = {
        "target": target, "seeds": len(seeds),
        "seeds_beating_sft": sum(v["beats_sft"] for v in per_seed.values()),
        "seeds_beating_control": sum(v["beats_control"] for v in per_seed.values()),
        "seeds_with_untargeted_loss": sum(bool(v["untargeted_losses"]) for v in per_seed.values()),
        "control_beats_sft": _ok(models[control][target]),
        "control_untargeted_losses": [k for k in UNTARGETED[task] if _ok(models[control][k], "loss")],
        "target_delta_mean": statistics.fmean(deltas) if deltas else None,
        "target_delta_min": min(deltas) if deltas else None, "target_delta_max": max(deltas) if deltas else None,
        "per_seed": per_seed,
    }
    verdict["issue13_goal_met"] = (verdict["seeds_beating_sft"] == len(seeds)
                                   and verdict["seeds_beating_control"] == len(seeds)
                                   and verdict["seeds_with_untargeted_loss"] == 0)
    return {"models": models, "vs_control": versus, "verdict": verdict}


def _fmt(key: str, v: float) -> str:
    return f"{v:+.1f}" if key == "avg_chars" else f"{100 * v:+.1f}"


def _cell(key: str, row: dict | None) -> str:
    if row is None:
        return "-"
    p = f"<{1 / 2000:.4f}" if row["p_value"] == 0 else f"{row['p_value']:.3f}"
    mark = {"gain": " **+**", "loss": " **-**"}.get(row["verdict"], "")
    return f"{_fmt(key, row['delta'])} [{_fmt(key, row['low'])}, {_fmt(key, row['high'])}] p={p}{mark}"


def markdown(results: dict) -> str:
    """The tables of ``bench/results/demo_seeds*.md``."""
    tag = f" ({results['tag']})" if results.get("tag") else ""
    lines = [f"# GRPO over seeds vs SFT and a compute-matched SFT control{tag}",
             "", f"`{results['command']}`", "",
             (f"Machine: {machine_line(results['machine'], results.get('torch'))}; commit "
              f"{results['commit']}{' + uncommitted changes' if results.get('worktree_dirty') else ''}; "
              f"{results['date']}. "
              f"Held-out split: {results['settings']['test_rows']} images "
              f"({results['settings']['test']}); greedy, batch {EVAL_BATCH}, max_new_tokens "
              f"{MAX_NEW_TOKENS}, pixels {results['settings']['pixels']}; the same requests for every model "
              "(checked by `radrl compare`)."), "",
             ("Cells: paired difference in percentage points (avg_chars: characters) with its 95 % bootstrap "
              "interval and two-sided p over 2,000 resamples; **+** a significant gain, **-** a significant loss "
              "(p < 0.05, interval excluding 0)."), ""]
    for task, res in results["tasks"].items():
        keys = (TARGET[task], *UNTARGETED[task])
        v = res["verdict"]
        lines += [f"## {task} (targeted: `{TARGET[task]}`)", ""]
        lines += ["Absolute scores (percent; avg_chars in characters):", "",
                  "| model | " + " | ".join(keys) + " | train time s |", "|---" * (len(keys) + 2) + "|"]
        for name, agg in res["absolute"].items():
            cells = ["-" if agg.get(k) is None else f"{agg[k]:.0f}" if k == "avg_chars" else f"{100 * agg[k]:.1f}"
                     for k in keys]
            t = res["train_time_s"].get(name)
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {'-' if t is None else f'{t:.0f}'} |")
        lines += ["", "Minus SFT, paired on identical rows:", "",
                  "| model | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, rows in res["models"].items():
            lines.append(f"| {name} | " + " | ".join(_cell(k, rows[k]) for k in keys) + " |")
        lines += ["", "GRPO minus the compute-matched control, paired:", "",
                  "| model | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
        for name, rows in res["vs_control"].items():
            lines.append(f"| {name} | " + " | ".join(_cell(k, rows[k]) for k in keys) + " |")
        c = res["control"]
        lines += ["", (f"Control: SFT continued {c['max_steps']} steps on {task} rows (lr {c['learning_rate']}, "
                       f"{c['lr_scheduler_type']}); probe {c['probe_step_s']:.3f} s/step over {c['probe_steps']} "
                       f"steps; mean GRPO train time {c['grpo_mean_runtime_s']:.0f} s; control train time "
                       f"{c['train_runtime_s']:.0f} s."), "",
                  (f"Verdict: {v['seeds_beating_sft']}/{v['seeds']} seeds beat SFT on `{v['target']}` "
                   f"(mean {_fmt(v['target'], v['target_delta_mean'])}, "
                   f"range {_fmt(v['target'], v['target_delta_min'])}"
                   f" to {_fmt(v['target'], v['target_delta_max'])}); {v['seeds_beating_control']}/{v['seeds']} beat "
                   f"the control; {v['seeds_with_untargeted_loss']}/{v['seeds']} lose significantly on an untargeted "
                   f"metric; the control {'beats' if v['control_beats_sft'] else 'does not beat'} SFT. "
                   f"Issue 13's bar (every seed beats SFT and the control, no untargeted loss): "
                   f"{'met' if v['issue13_goal_met'] else 'not met'}."), ""]
        train = res.get("training", {})
        if train:
            lines += [("Training reward (sampled rollouts), first -> last quarter of logged steps; completion "
                       "tokens; final KL:"), "", "| run | first logged reward | reward | length (tokens) | KL |",
                      "|---|---|---|---|---|"]
            for name, t in train.items():
                def f(x, d=3):
                    return "-" if x is None else f"{x:.{d}f}"
                lines.append(f"| {name} | {f(t.get('first_logged_reward'))} | {f(t.get('reward_first_quarter'))} -> "
                             f"{f(t.get('reward_last_quarter'))} | {f(t.get('length_first_quarter'), 1)} -> "
                             f"{f(t.get('length_last_quarter'), 1)} | {f(t.get('kl_last'), 4)} |")
            lines.append("")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- running


def thread_env(threads: int | None) -> dict[str, str]:
    """Environment that caps torch's CPU threads (OpenMP / MKL) of a subprocess; {} leaves torch's default.

    >>> thread_env(1)["OMP_NUM_THREADS"], thread_env(None)
    ('1', {})
    """
    return {} if not threads else {k: str(threads) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


class Runner:
    """Runs ``radrl`` commands as subprocesses, logging each with its wall time to ``<out>/commands.jsonl``."""

    def __init__(self, out: Path, radrl: str, threads: int | None = None):
        self.out, self.radrl, self.threads = out, radrl, threads
        self.log = out / "commands.jsonl"

    def __call__(self, args: list[str], name: str) -> float:
        cmd = [self.radrl, *args]
        print(f"\n== {name}: {shlex.join(cmd)}  (load {os.getloadavg()[0]:.2f})", flush=True)
        load, t0, r0 = os.getloadavg()[0], time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, check=True, cwd=ROOT, env={**os.environ, **thread_env(self.threads)})
        wall, r1 = time.time() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
        # CPU seconds of the command (user + system, all its threads): a second measure of compute, less
        # sensitive than wall time to other work on the machine (load_before/after: 1-minute load average)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        with self.log.open("a") as f:
            f.write(json.dumps({"name": name, "command": shlex.join(cmd), "wall_s": wall, "cpu_s": cpu,
                                "load_before": load, "load_after": os.getloadavg()[0],
                                "date": time.strftime("%F %T")}) + "\n")
        print(f"== {name}: {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
        return wall


def _rmtree_unfinished(folder: Path) -> None:
    """An unfinished training folder (no log_history.json) is started again from scratch."""
    import shutil

    if folder.exists() and not trained(folder):
        print(f"{folder}: unfinished earlier run, starting it again", flush=True)
        shutil.rmtree(folder)


def evaluate(run: Runner, model: Path, test: str, out: Path, tasks: tuple[str, ...], pixels, name: str) -> None:
    if (out / "metrics.json").is_file():
        print(f"   {out} exists, skipped", flush=True)
        return
    run(["eval", "--model", str(model), "--data", test, "--out", str(out), "--name", name, "--tasks", *tasks,
         "--batch-size", str(EVAL_BATCH), "--max-new-tokens-report", str(MAX_NEW_TOKENS["report"]),
         "--max-new-tokens-grounding", str(MAX_NEW_TOKENS["grounding"]), "--min-pixels", str(pixels[0]),
         "--max-pixels", str(pixels[1])], f"eval {name}")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--demo", default="runs/demo", help="a finished `radrl demo` folder (its sft/ and data/)")
    p.add_argument("--sft", default=None, help="SFT checkpoint (default <demo>/sft)")
    p.add_argument("--train", default=None, help="training samples (default <demo>/data/train.jsonl)")
    p.add_argument("--test", default=None, help="held-out samples (default <demo>/data/test.jsonl)")
    p.add_argument("--out", default="runs/demo-seeds")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--sft-recipe", default=str(RECIPES / "sft.yaml"), help="recipe of the control (continued SFT)")
    p.add_argument("--grpo-recipe", action="append", default=[], metavar="TASK=PATH",
                   help="GRPO recipe for a task (default recipes/demo/grpo_<task>.yaml)")
    p.add_argument("--tag", default="", help="name of a variant GRPO recipe: its runs and results files carry it")
    p.add_argument("--probe-steps", type=int, default=60, help="SFT steps of the step-time probe")
    p.add_argument("--control-lr", type=float, default=None,
                   help="learning rate of the control (default: the SFT recipe's)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads of every command (0: torch's default). 1 by default: on a machine shared "
                        "with other work, two processes of 2 OpenMP threads on 2 cores run 5-6x slower than alone, "
                        "which ruins wall-time matching; one thread each degrades gracefully. Results depend on the "
                        "thread count, so every model of one measurement uses the same one (recorded)")
    p.add_argument("--radrl", default=str(ROOT / ".venv" / "bin" / "radrl"))
    p.add_argument("--results", default=None, help="results JSON (default bench/results/demo_seeds[_TAG].json)")
    a = p.parse_args(argv)
    os.environ.update(thread_env(a.threads))  # before torch is imported here (machine_info records the count)

    demo, out = Path(a.demo), Path(a.out)
    sft_dir = Path(a.sft or demo / "sft")
    train_data, test = a.train or str(demo / "data" / "train.jsonl"), a.test or str(demo / "data" / "test.jsonl")
    recipes = {t: str(RECIPES / f"grpo_{t}.yaml") for t in TASKS}
    for spec in a.grpo_recipe:
        task, sep, path = spec.partition("=")
        if not sep or task not in TASKS:
            p.error(f"--grpo-recipe takes TASK=PATH with TASK in {TASKS}, got {spec!r}")
        recipes[task] = path
    for path in [sft_dir / "config.json", Path(train_data), Path(test), Path(a.sft_recipe),
                 *(Path(recipes[t]) for t in a.tasks)]:
        if not path.exists():
            sys.exit(f"error: {path} not found; run `radrl demo --out {demo}` first or pass its path")
    tasks = tuple(a.tasks)
    pixels = pixel_budget([a.sft_recipe, *(recipes[t] for t in tasks)])
    sft_cfg = yaml.safe_load(Path(a.sft_recipe).read_text())
    control_lr = a.control_lr if a.control_lr is not None else sft_cfg["learning_rate"]
    out.mkdir(parents=True, exist_ok=True)
    run = Runner(out, a.radrl, a.threads)
    layout = plan(out, tasks, a.seeds, a.tag)
    t_start = time.time()

    # 1. SFT on both tasks, once (the baseline of every comparison)
    evaluate(run, sft_dir, test, layout["sft_eval"], TASKS, pixels, "SFT")

    results_tasks = {}
    for task in tasks:
        lay = layout[task]
        # 2. GRPO per seed
        for seed, name in lay["grpo"].items():
            folder = out / name
            if trained(folder):
                print(f"   {folder} exists, skipped", flush=True)
            else:
                _rmtree_unfinished(folder)
                run(["grpo", "--config", recipes[task], "--model_name_or_path", str(sft_dir), "--train_data",
                     train_data, "--output_dir", str(folder), "--seed", str(seed)], f"train {name}")
            evaluate(run, folder, test, out / f"eval-{name}", (task,), pixels, name)
        runtimes = {name: train_runtime(out / name) for name in lay["grpo"].values()}

        # 3. the compute-matched control: probe the SFT step time, then SFT for the GRPO time
        c = lay["control"]
        sft_common = ["sft", "--config", a.sft_recipe, "--model_name_or_path", str(sft_dir), "--train_data",
                      train_data, "--tasks", task, "--learning_rate", str(control_lr)]
        if c["plan"].is_file():
            control = json.loads(c["plan"].read_text())
            print(f"   control plan {c['plan']}: {control['max_steps']} steps", flush=True)
        else:
            if not trained(c["probe"]):
                _rmtree_unfinished(c["probe"])
                run([*sft_common, "--output_dir", str(c["probe"]), "--max_steps", str(a.probe_steps),
                     "--save_strategy", "no", "--report_to", "none"], f"probe SFT step time ({task})")
            step_s = train_runtime(c["probe"]) / a.probe_steps
            grpo_mean = statistics.fmean(runtimes.values())
            control = {"max_steps": control_steps(list(runtimes.values()), step_s), "probe_steps": a.probe_steps,
                       "probe_step_s": step_s, "grpo_runtimes_s": runtimes, "grpo_mean_runtime_s": grpo_mean,
                       "learning_rate": control_lr, "lr_scheduler_type": sft_cfg.get("lr_scheduler_type"),
                       "warmup_steps": sft_cfg.get("warmup_steps"),
                       "batch_size": sft_cfg.get("per_device_train_batch_size"), "seed": sft_cfg.get("seed"),
                       "tasks": [task]}
            c["plan"].write_text(json.dumps(control, indent=2))
        if trained(c["train"]):
            print(f"   {c['train']} exists, skipped", flush=True)
        else:
            _rmtree_unfinished(c["train"])
            run([*sft_common, "--output_dir", str(c["train"]), "--max_steps", str(control["max_steps"]),
                 "--save_strategy", "no"], f"train control SFT ({task}, {control['max_steps']} steps)")
        control["train_runtime_s"] = train_runtime(c["train"])
        evaluate(run, c["train"], test, c["eval"], (task,), pixels, "control")

        # 4. comparisons (the contract check must pass: no --allow-mismatch)
        grpo_specs = [f"{name}={out / f'eval-{name}'}" for name in lay["grpo"].values()]
        run(["compare", f"SFT={layout['sft_eval']}", *grpo_specs, f"control={c['eval']}", "--out",
             str(lay["compare"]), "--no-html"], f"compare {task} vs SFT")
        run(["compare", f"control={c['eval']}", *grpo_specs, "--out", str(lay["compare_control"]), "--no-html"],
            f"compare {task} vs control")
        vs_sft = json.loads((lay["compare"] / "leaderboard.json").read_text())
        vs_ctrl = json.loads((lay["compare_control"] / "leaderboard.json").read_text())
        res = summarize(task, vs_sft, vs_ctrl, a.seeds, lay["grpo"])
        res["absolute"] = {"SFT": _aggregate(layout["sft_eval"], task)}
        res["absolute"].update({name: _aggregate(out / f"eval-{name}", task) for name in lay["grpo"].values()})
        res["absolute"]["control"] = _aggregate(c["eval"], task)
        res["train_time_s"] = {**runtimes, "control": control["train_runtime_s"]}
        # the whole training command (model load and save included), wall and CPU seconds, when recorded
        res["train_command_s"] = {key: _command_times(run.log, f"train {name}")
                                  for key, name in [*((n, n) for n in lay["grpo"].values()),
                                                    ("control", f"control SFT ({task},")]}
        res["probe_command_s"] = _command_times(run.log, f"probe SFT step time ({task})")
        res["control"] = control
        res["training"] = {name: reward_summary(out / name) for name in lay["grpo"].values()}
        firsts = [t.get("first_logged_reward") for t in res["training"].values()]
        res["rollouts_differ_across_seeds"] = len(set(firsts)) == len(firsts)
        res["lengths"] = vs_sft.get("lengths", {})
        res["grpo_recipe"] = recipes[task]
        results_tasks[task] = res

    from radrl.machine import machine_info

    command = "python bench/demo_seeds.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    results = {"command": command.strip(), "date": time.strftime("%Y-%m-%d", time.gmtime()), "commit": _commit(),
               "worktree_dirty": _dirty(), "machine": machine_info(), "tag": a.tag,
               "settings": {"sft": str(sft_dir), "train": train_data, "test": test, "test_rows": _count(test),
                            "seeds": a.seeds, "tasks": list(tasks), "grpo_recipes": {t: recipes[t] for t in tasks},
                            "sft_recipe": a.sft_recipe, "pixels": list(pixels), "max_new_tokens": MAX_NEW_TOKENS,
                            "eval_batch": EVAL_BATCH, "decoding": "greedy", "alpha": ALPHA, "threads": a.threads},
               "wall_s_this_invocation": time.time() - t_start,
               "commands": [json.loads(line) for line in run.log.read_text().splitlines() if line.strip()],
               "tasks": results_tasks}
    stem = f"demo_seeds{'_' + a.tag if a.tag else ''}"
    path = Path(a.results) if a.results else RESULTS / f"{stem}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    path.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
    print(f"written {path} and {path.with_suffix('.md')}")
    return results


def _command_times(log: Path, prefix: str) -> dict | None:
    """Wall and CPU seconds of the newest logged command whose name starts with ``prefix``."""
    if not log.is_file():
        return None
    found = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    found = [c for c in found if c["name"].startswith(prefix)]
    return {"wall_s": found[-1]["wall_s"], "cpu_s": found[-1].get("cpu_s"),
            "load_before": found[-1].get("load_before")} if found else None


def _aggregate(eval_dir: Path, task: str) -> dict:
    """The run's aggregate metrics for ``task``, plus the per-sample mean of any shown key the aggregate lacks
    (``chexpert_rules_sample_f1`` is per-sample only: the mean the paired test compares)."""
    agg = dict(json.loads((eval_dir / "metrics.json").read_text())["tasks"][task]["aggregate"])
    rows = [json.loads(line) for line in (eval_dir / "per_sample.jsonl").read_text().splitlines() if line.strip()]
    rows = [r for r in rows if r.get("task") == task]
    for key in (TARGET[task], *UNTARGETED[task]):
        values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
        if key not in agg and values:
            agg[key] = statistics.fmean(values)
    return agg


def _count(path: str) -> int:
    with open(path) as f:
        return sum(1 for line in f if line.strip())


def _dirty() -> bool | None:
    """Whether tracked files differ from the commit (the numbers then come from a working tree, not the commit)."""
    try:
        return bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, text=True,
                                   capture_output=True, timeout=10, check=True).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return None


def _commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True, capture_output=True,
                              timeout=10, check=True).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    main()
