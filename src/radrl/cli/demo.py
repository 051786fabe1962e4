"""``radrl demo``: the whole pipeline on synthetic data with the tiny model, on a CPU (``radrl.demo``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radrl import demo
from radrl.cli.args import ArgumentParser
from radrl.demo import RECIPES, SMOKE, TASKS, run_demo


def main(argv: list[str] | None = None) -> Path:
    p = ArgumentParser(prog="radrl demo", description=demo.__doc__,
                       formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="output folder (report.md is written there)")
    p.add_argument("--train", type=int, default=None, help="synthetic training images (default 600)")
    p.add_argument("--test", type=int, default=None,
                   help="synthetic held-out images (default 400: a paired 95%% CI narrow enough to see a 2-point "
                        "soft-F1 gain)")
    p.add_argument("--smoke", action="store_true",
                   help="every stage at smoke size (" + ", ".join(f"{k} {v}" for k, v in SMOKE.items()) + "; 1-2 "
                        "minutes): checks an install, proves nothing; --train, --test and the step options override it")
    p.add_argument("--sft-recipe", default=str(RECIPES / "sft.yaml"))
    p.add_argument("--grpo-recipes", nargs="+", default=[str(RECIPES / f"grpo_{t}.yaml") for t in TASKS],
                   help="one GRPO recipe per task, in the order report, grounding")
    p.add_argument("--grpo-steps", type=int, default=None, help="override the GRPO recipes' max_steps")
    p.add_argument("--sft-steps", type=int, default=None, help="override the SFT recipe's max_steps")
    p.add_argument("--eval-rows", type=int, default=None, help="evaluate only the first N rows per model")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (torch.set_num_threads; default torch's, one per core). The numbers depend "
                        "on it and on the CPU's instruction set: results.json records both, and the same machine at "
                        "the same thread count gives the same numbers")
    a = p.parse_args(argv)
    if a.threads is not None and a.threads < 1:
        p.error(f"--threads must be at least 1, got {a.threads}; leave it out for torch's default")
    command = "radrl demo " + " ".join(argv if argv is not None else sys.argv[1:])
    sizes = {**(SMOKE if a.smoke else {"train": 600, "test": 400}),
             **{k: getattr(a, k) for k in ("train", "test", "sft_steps", "grpo_steps", "eval_rows")
                if getattr(a, k) is not None}}
    return run_demo(a.out, sft_recipe=a.sft_recipe, grpo_recipes=a.grpo_recipes, command=command,
                     threads=a.threads, **sizes)
