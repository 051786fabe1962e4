"""``radrl demo``: the whole pipeline on built-in synthetic data with a tiny model, on a CPU.

    synthetic data -> tiny Qwen3-VL -> SFT -> GRPO per task (from the SFT checkpoint) -> evaluate -> report.md

Every stage is the real one (the same entry points a user runs on MIMIC-CXR with
Qwen3-VL-8B); only the sizes are small. As in the paper, GRPO runs separately for report
generation and for grounding, each from the SFT checkpoint, and each GRPO model is evaluated
on its own task. The recipes are ``recipes/demo/sft.yaml``, ``grpo_report.yaml`` and
``grpo_grounding.yaml``; the demo only points them at its own output folder.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "demo"
TASKS = ("report", "grounding")


class Stages:
    """Prints numbered stage headers with elapsed time, and remembers each stage's duration."""

    def __init__(self, total: int):
        self.total, self.i, self.t0, self.times = total, 0, time.time(), {}
        self._name, self._start = None, None

    def start(self, name: str) -> None:
        self.done()
        self.i += 1
        self._name, self._start = name, time.time()
        print(f"\n[{self.i}/{self.total}] {name}  (t = {time.time() - self.t0:.0f} s)", flush=True)

    def done(self) -> None:
        if self._name:
            self.times[self._name] = time.time() - self._start
            print(f"      done in {self.times[self._name]:.0f} s", flush=True)
            self._name = None


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(prog="radrl demo", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="output folder (report.md is written there)")
    p.add_argument("--train", type=int, default=600, help="synthetic training images")
    p.add_argument("--test", type=int, default=100, help="synthetic held-out images")
    p.add_argument("--sft-recipe", default=str(RECIPES / "sft.yaml"))
    p.add_argument("--grpo-recipes", nargs="+", default=[str(RECIPES / f"grpo_{t}.yaml") for t in TASKS],
                   help="one GRPO recipe per task, in the order report, grounding")
    p.add_argument("--grpo-steps", type=int, default=None, help="override the GRPO recipes' max_steps")
    p.add_argument("--sft-steps", type=int, default=None, help="override the SFT recipe's max_steps")
    p.add_argument("--eval-rows", type=int, default=None, help="evaluate only the first N rows per model")
    a = p.parse_args(argv)

    from radrl.data.synthetic import write_dataset
    from radrl.eval.run import evaluate, print_summary
    from radrl.models.tiny import build_tiny_model, demo_corpus
    from radrl.train import grpo, sft

    out = Path(a.out)
    for recipe in (a.sft_recipe, *a.grpo_recipes):
        if not Path(recipe).exists():
            raise FileNotFoundError(f"recipe {recipe} not found; run from the repository root or pass --sft-recipe/"
                                    "--grpo-recipes")
    if len(a.grpo_recipes) != len(TASKS):
        raise ValueError(f"--grpo-recipes takes one recipe per task, in the order {TASKS}")
    st = Stages(7)

    st.start(f"synthetic chest X-rays: {a.train} train + {a.test} test images -> {out / 'data'}")
    data = write_dataset(out / "data", n_train=a.train, n_test=a.test, seed=0)

    st.start("tiny Qwen3-VL with a tokenizer trained on the demo corpus")
    tiny = build_tiny_model(out / "tiny-model", demo_corpus([str(data["train"])]), seed=0)

    st.start("SFT (TRL SFTTrainer)")
    sft_args = ["--config", a.sft_recipe, "--model_name_or_path", str(tiny), "--train_data", str(data["train"]),
                "--output_dir", str(out / "sft")]
    if a.sft_steps is not None:
        sft_args += ["--max_steps", str(a.sft_steps)]
    sft_dir = sft.main(sft_args)

    grpo_dirs = {}
    for task, recipe in zip(TASKS, a.grpo_recipes):
        st.start(f"GRPO for {task} from the SFT checkpoint (TRL GRPOTrainer)")
        grpo_args = ["--config", recipe, "--model_name_or_path", sft_dir, "--train_data", str(data["train"]),
                     "--output_dir", str(out / f"grpo-{task}")]
        if a.grpo_steps is not None:
            grpo_args += ["--max_steps", str(a.grpo_steps)]
        grpo_dirs[task] = grpo.main(grpo_args)

    st.start("evaluate SFT (both tasks) and each GRPO model (its task) on the held-out split")
    limits = {"report": 128, "grounding": 96}
    results = {"SFT": evaluate(sft_dir, str(data["test"]), str(out / "eval-sft"), max_new_tokens=limits,
                               max_rows=a.eval_rows, batch_size=32), "SFT+GRPO": {}}
    for task, model_dir in grpo_dirs.items():
        results["SFT+GRPO"].update(evaluate(model_dir, str(data["test"]), str(out / f"eval-grpo-{task}"),
                                            tasks=(task,), max_new_tokens=limits, max_rows=a.eval_rows,
                                            batch_size=32))
    for name, by_task in results.items():
        print(f"  {name}:")
        print_summary(by_task)

    st.start("report")
    from radrl.eval.compare import compare  # leaderboard (md/csv/json), paired tests, self-contained HTML

    compare([f"SFT={out / 'eval-sft'}"] + [f"SFT+GRPO-{t}={out / f'eval-grpo-{t}'}" for t in grpo_dirs],
            out / "compare", published=False)
    st.done()
    report = write_report(out, results, st.times, time.time() - st.t0)
    print(f"\nreport: {report}  (total {time.time() - st.t0:.0f} s)")
    print(f"leaderboard and HTML report: {out / 'compare' / 'leaderboard.md'}, {out / 'compare' / 'report.html'}")
    return report


def write_report(out: Path, results: dict, times: dict, total_s: float) -> Path:
    """report.md: SFT vs SFT+GRPO per task, the reward curve, box images, timings."""
    from radrl.eval.report import markdown_table, plot_curves

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
        lines += [f"## {task}", "", markdown_table({n: r for n, r in results.items()}, task), ""]
    if curve:
        lines += ["## GRPO reward curve", "", f"![reward curve]({curve.name})", ""]
    lines += ["## Boxes (green: reference, red: prediction)", "", "| SFT | SFT+GRPO |", "|---|---|"]
    sft_boxes = sorted((out / "eval-sft" / "boxes").glob("*.png"))
    for path in sft_boxes:
        grpo_path = out / "eval-grpo-grounding" / "boxes" / path.name
        lines.append(f"| ![]({path.relative_to(out)}) | ![]({grpo_path.relative_to(out)}) |")
    lines += ["", "## Time", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in times.items()]
    lines += [f"| total | {total_s:.0f} |", "",
              (f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
               f"torch {torch.__version__}.")]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({"results": results, "times_s": times, "total_s": total_s},
                                                 indent=2))
    return path
