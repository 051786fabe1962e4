"""``radrl experiment --config FOUR_WAY.yaml``: the four-way GRPO experiment (``radrl.train.experiment``)."""

from __future__ import annotations

from pathlib import Path

from radrl.cli.args import ArgumentParser
from radrl.train import experiment


def run_verb(argv: list[str]) -> object:
    """One step of the experiment in this process, as ``radrl grpo ...`` / ``radrl eval ...`` runs it."""
    from radrl.cli import eval as eval_verb
    from radrl.cli import grpo

    verbs = {"grpo": grpo.main, "eval": eval_verb.main}
    if argv[0] not in verbs:
        raise ValueError(f"the experiment has no {argv[0]!r} step; steps are {sorted(verbs)}")
    return verbs[argv[0]](argv[1:])


def main(argv: list[str] | None = None) -> Path:
    p = ArgumentParser(prog="radrl experiment", description=experiment.__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True, help="four-way experiment YAML (e.g. recipes/demo/four_way.yaml)")
    p.add_argument("--dry-run", action="store_true", help="print the steps and exit")
    a = p.parse_args(argv)
    cfg = experiment.load_config(a.config)
    steps = experiment.plan(cfg)
    if a.dry_run:
        for step in steps:
            print(f"{step.name}: {' '.join([*(step.subprocess_prefix or ['radrl']), *step.argv])}")
        return Path(cfg["out"])
    path = experiment.run_experiment(cfg, run_verb, steps)
    out = Path(cfg["out"])
    print(experiment.four_way_table(cfg))
    print(f"written: {out / 'four_way.md'}, {out / 'compare' / 'leaderboard.md'}")
    return path
