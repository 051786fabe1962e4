"""``radrl demo``: the whole pipeline on built-in synthetic data with a tiny model, on a CPU.

    synthetic data -> tiny Qwen3-VL -> SFT -> GRPO (from the SFT checkpoint) -> evaluate both -> report.md

Every stage is the real one (the same entry points a user runs on MIMIC-CXR with
Qwen3-VL-8B); only the sizes are small. The recipes are ``recipes/demo/sft.yaml`` and
``recipes/demo/grpo.yaml``; the demo only points them at its own output folder.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "demo"


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
    p.add_argument("--grpo-recipe", default=str(RECIPES / "grpo.yaml"))
    p.add_argument("--grpo-steps", type=int, default=None, help="override the GRPO recipe's max_steps")
    p.add_argument("--sft-steps", type=int, default=None, help="override the SFT recipe's max_steps")
    p.add_argument("--eval-rows", type=int, default=None, help="evaluate only the first N rows per model")
    a = p.parse_args(argv)

    from radrl.data.synthetic import write_dataset
    from radrl.eval.run import evaluate, print_summary
    from radrl.models.tiny import build_tiny_model, demo_corpus
    from radrl.train import grpo, sft

    out = Path(a.out)
    for recipe in (a.sft_recipe, a.grpo_recipe):
        if not Path(recipe).exists():
            raise FileNotFoundError(f"recipe {recipe} not found; run from the repository root or pass --sft-recipe/"
                                    "--grpo-recipe")
    st = Stages(6)

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

    st.start("GRPO from the SFT checkpoint (TRL GRPOTrainer)")
    grpo_args = ["--config", a.grpo_recipe, "--model_name_or_path", sft_dir, "--train_data", str(data["train"]),
                 "--output_dir", str(out / "grpo")]
    if a.grpo_steps is not None:
        grpo_args += ["--max_steps", str(a.grpo_steps)]
    grpo_dir = grpo.main(grpo_args)

    st.start("evaluate SFT and SFT+GRPO on the held-out split")
    results = {}
    for name, model_dir in (("SFT", sft_dir), ("SFT+GRPO", grpo_dir)):
        results[name] = evaluate(model_dir, str(data["test"]), str(out / f"eval-{name.lower().replace('+', '-')}"),
                                 max_new_tokens={"report": 128, "grounding": 96}, max_rows=a.eval_rows,
                                 batch_size=32)
        print(f"  {name}:")
        print_summary(results[name])

    st.start("report")
    st.done()
    report = write_report(out, results, st.times, time.time() - st.t0)
    print(f"\nreport: {report}  (total {time.time() - st.t0:.0f} s)")
    return report


def write_report(out: Path, results: dict, times: dict, total_s: float) -> Path:
    """report.md: SFT vs SFT+GRPO per task, the reward curve, box images, timings."""
    from radrl.eval.report import markdown_table, plot_curves

    history = json.loads((out / "grpo" / "log_history.json").read_text())
    reward_keys = sorted({k for h in history for k in h if k.startswith("rewards/") and k.endswith("/mean")})
    curve = plot_curves(history, ["reward", *reward_keys], out / "reward_curve.png", title="GRPO rewards (train)")
    lines = ["# radrl demo report", "",
             "Synthetic chest X-rays, a tiny random Qwen3-VL, SFT then GRPO, evaluated on the held-out split "
             "(greedy decoding). Scores in percent (avg_chars in characters).", ""]
    for task in ("grounding", "report"):
        lines += [f"## {task}", "", markdown_table({n: r for n, r in results.items()}, task), ""]
    if curve:
        lines += ["## GRPO reward curve", "", f"![reward curve]({curve.name})", ""]
    lines += ["## Boxes (green: reference, red: prediction)", "", "| SFT | SFT+GRPO |", "|---|---|"]
    sft_boxes = sorted((out / "eval-sft" / "boxes").glob("*.png"))
    for path in sft_boxes:
        grpo_path = out / "eval-sft-grpo" / "boxes" / path.name
        lines.append(f"| ![]({path.relative_to(out)}) | ![]({grpo_path.relative_to(out)}) |")
    lines += ["", "## Time", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in times.items()]
    lines += [f"| total | {total_s:.0f} |", "",
              f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, "
              f"torch {torch.__version__}."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    (out / "results.json").write_text(json.dumps({"results": results, "times_s": times, "total_s": total_s},
                                                 indent=2))
    return path
