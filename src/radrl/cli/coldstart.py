"""``radrl coldstart``: teacher thinking traces -> validated cold-start SFT data (``radrl.train.coldstart``).

    radrl coldstart --config recipes/qwen3vl-8b/coldstart.yaml
    radrl coldstart --data runs/demo/data/train.jsonl --out runs/coldstart --teacher runs/demo/sft
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from radrl.cli.args import ArgumentParser
from radrl.train import coldstart
from radrl.train.coldstart import FILTER_REWARDS, run_coldstart


def parser() -> ArgumentParser:
    p = ArgumentParser(prog="radrl coldstart", description=coldstart.__doc__.split("\n\n")[0],
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--config",
                   help="YAML whose keys are these options' names with underscores (max_rows); flags override it")
    p.add_argument("--data", help="samples JSONL (radrl.data.schema rows) to write traces for")
    p.add_argument("--out", help="output folder: traces.jsonl, coldstart.jsonl, summary.json")
    p.add_argument("--tasks", nargs="+", default=["report", "grounding"], choices=["report", "grounding"])
    p.add_argument("--teacher", help="local checkpoint folder served on loopback as the teacher")
    p.add_argument("--endpoint", help="OpenAI-compatible base URL ending in /v1 (e.g. a vLLM server)")
    p.add_argument("--teacher-model", help="model name the endpoint serves (default: the first it lists)")
    p.add_argument("--device", default="cpu", help="device of a local teacher")
    p.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    p.add_argument("--max-retries", type=int, default=4)
    p.add_argument("--max-tokens", type=int, default=2048)
    p.add_argument("--temperature", type=float, default=0.7, help="the paper sampled its teacher at 0.7")
    p.add_argument("--seed", type=int, default=0, help="request phrasings, mixing and sampling seed")
    p.add_argument("--max-rows", type=int, default=None, help="only the first N conversation rows")
    p.add_argument("--min-think-chars", type=int, default=20)
    p.add_argument("--min-reward", type=float, default=None,
                   help="keep a trace only if its final answer scores at least this with the task's reward "
                        f"({FILTER_REWARDS}); unset: no reward filter (as in the paper)")
    p.add_argument("--filter-rewards", nargs="+", default=None, names=True,
                   help="rewards for --min-reward, one per task, from radrl.rewards.REWARDS (e.g. report_radcliq "
                        "grounding_soft_f1); min_reward is in the reward's own units")
    p.add_argument("--direct-ratio", type=float, default=1.0, help="direct-answer rows per accepted trace")
    p.add_argument("--box-format", default="paper", choices=["paper", "qwen"])
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Options from ``--config`` YAML, then the command line; unknown YAML keys are named."""
    import yaml

    p = parser()
    first, _ = p.parse_known_args(argv)
    if first.config:
        values = yaml.safe_load(Path(first.config).read_text()) or {}
        known = {a.dest for a in p._actions}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{first.config}: unknown key(s) {unknown}; see `radrl coldstart --help`")
        p.set_defaults(**values)
    args = p.parse_args(argv)
    for name in ("data", "out"):
        if not getattr(args, name):
            p.error(f"--{name} is required (or set {name} in --config)")
    if bool(args.teacher) == bool(args.endpoint):
        p.error("give exactly one teacher: --teacher PATH (local checkpoint) or --endpoint URL")
    if args.filter_rewards:
        from radrl.rewards import REWARDS

        unknown = [r for r in args.filter_rewards if r not in REWARDS]
        if unknown:
            p.error(f"unknown reward(s) {unknown} in --filter-rewards; choose from {sorted(REWARDS)}")
        tasks = [REWARDS[r].task for r in args.filter_rewards]
        if len(set(tasks)) != len(tasks) or "" in tasks:
            p.error(f"--filter-rewards needs one task reward per task, got {dict(zip(args.filter_rewards, tasks))}")
        args.filter_rewards = {**FILTER_REWARDS, **dict(zip(tasks, args.filter_rewards))}
    if not Path(args.data).is_file():
        p.error(f"--data {args.data} does not exist; write samples with `radrl synth-data` or `radrl prepare`")
    if args.min_reward is not None:  # the filter's scorers (weights on disk), checked before the teacher runs
        from radrl.rewards import REWARDS, check_rewards

        check_rewards([REWARDS[r] for r in (args.filter_rewards or FILTER_REWARDS).values()])
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    summary = run_coldstart(**{k: v for k, v in vars(args).items() if k != "config"})
    print(json.dumps(summary))
    if summary["failed"]:
        print(f"{summary['failed']} requests failed after retries; rerun the same command to ask for them again",
              file=sys.stderr)
    print(f"cold-start SFT rows: {Path(args.out) / 'coldstart.jsonl'} (train with `radrl sft --train_data` on it)")
    return summary
