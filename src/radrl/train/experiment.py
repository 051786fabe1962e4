"""The paper's matched four-way GRPO experiment from one command: {general, domain} x {direct, thinking}.

    radrl experiment --config recipes/demo/four_way.yaml
    radrl experiment --config recipes/qwen3vl-8b/four_way_report.yaml

Every arm runs the same GRPO recipe (same rewards, data, steps, seed); only the starting checkpoint
and ``thinking`` differ, which is what makes the four runs comparable. For each arm, in order:
GRPO -> ``radrl eval`` of the result (and of the starting checkpoint, ``eval_start: true``); then
``radrl compare`` puts all evaluations side by side and ``four_way.md`` gives the 2 x 2 table of
the headline metrics before and after RL. Before the first step, every arm's rewards and every
evaluation's metrics are checked (weights, judges, reward servers; ``check_scorers``), so a missing
scorer stops the experiment before any model loads.

A rerun skips every step whose output is complete (GRPO: ``log_history.json``; eval:
``metrics.json``), so an interrupted experiment continues with the arm it stopped in (GRPO itself
resumes from its last checkpoint with ``resume_from_checkpoint: last`` in ``grpo_args``).

Steps run in this process by default (``launcher`` unset; ``run_verb`` runs a step's ``radrl``
command line, the ``radrl experiment`` command passes its own verbs), or each as a subprocess under a
launcher, e.g. ``launcher: [accelerate, launch, --config_file, recipes/accelerate/deepspeed_zero2.yaml,
-m, radrl.cli]`` for GPUs (evaluations always run as plain ``python -m radrl.cli eval`` then).
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from radrl.metrics import metric_spec

log = logging.getLogger(__name__)

# The headline metric columns of the 2 x 2 table, per task (keys of radrl eval's metrics.json).
HEADLINE = {"report": ("clinical", "rouge_l"), "grounding": ("soft_f1", "map50")}
ARMS = ("general", "general_thinking", "domain", "domain_thinking")


@dataclass(frozen=True)
class Step:
    """One command of the experiment; ``done`` exists once it has finished."""

    name: str
    argv: list[str]
    done: Path
    subprocess_prefix: list[str] | None = None


def load_config(path: str) -> dict:
    """The experiment YAML, checked: the four arms with ``model``, ``thinking`` and optional arm-only
    ``grpo_args`` (after the shared ones), a GRPO recipe, eval data."""
    cfg = yaml.safe_load(Path(path).read_text()) or {}
    known = {"grpo_recipe", "out", "eval_data", "arms", "grpo_args", "eval_args", "launcher", "eval_start", "html"}
    unknown = sorted(set(cfg) - known)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; known: {sorted(known)}")
    for key in ("grpo_recipe", "out", "eval_data", "arms"):
        if key not in cfg:
            raise ValueError(f"{path}: missing {key!r} (see radrl.train.experiment's docstring)")
    if set(cfg["arms"]) != set(ARMS):
        raise ValueError(f"{path}: arms must be exactly {list(ARMS)}, got {sorted(cfg['arms'])}")
    for name, arm in cfg["arms"].items():
        if not isinstance(arm, dict) or "model" not in arm:
            raise ValueError(f"{path}: arm {name} needs a model (checkpoint folder to start GRPO from)")
        if bool(arm.get("thinking", False)) != name.endswith("_thinking"):
            raise ValueError(f"{path}: arm {name} must have thinking: {str(name.endswith('_thinking')).lower()}")
    for key in ("grpo_recipe", "eval_data"):
        if not Path(cfg[key]).exists():
            raise FileNotFoundError(f"{path}: {key} {cfg[key]} does not exist")
    return cfg


def plan(cfg: dict) -> list[Step]:
    """All steps in order: per arm GRPO, eval after (and before) RL."""
    out = Path(cfg["out"])
    tasks = yaml.safe_load(Path(cfg["grpo_recipe"]).read_text()).get("tasks", ["report", "grounding"])
    launcher = cfg.get("launcher")
    steps = []
    for name in ARMS:
        arm = cfg["arms"][name]
        thinking = bool(arm.get("thinking", False))
        grpo_dir = out / name / "grpo"
        steps.append(Step(f"{name}: grpo", ["grpo", "--config", cfg["grpo_recipe"], "--model_name_or_path",
                                             str(arm["model"]), "--thinking", str(thinking).lower(), "--output_dir",
                                             str(grpo_dir), *map(str, cfg.get("grpo_args", [])),
                                             *map(str, arm.get("grpo_args", []))],
                          grpo_dir / "log_history.json", launcher))
        evals = [("rl", grpo_dir)] + ([("start", Path(arm["model"]))] if cfg.get("eval_start", True) else [])
        for when, model in evals:
            folder = out / name / f"eval-{when}"
            argv = ["eval", "--model", str(model), "--data", cfg["eval_data"], "--out", str(folder),
                    "--name", f"{name}-{when}", "--tasks", *tasks, *(["--thinking"] if thinking else []),
                    *map(str, cfg.get("eval_args", []))]
            steps.append(Step(f"{name}: eval {when}", argv, folder / "metrics.json",
                              [sys.executable, "-m", "radrl.cli"] if launcher else None))
    return steps


def check_scorers(steps: list[Step]) -> None:
    """Every GRPO step's rewards and every eval step's report metrics can score (weights on disk, a judge set,
    reward servers serving them), checked before the first model loads: a missing scorer must not surface
    after the first arm has trained for hours, nor hide behind the floor of answers too short to score."""
    from radrl.metrics import check_metrics
    from radrl.rewards import check_rewards
    from radrl.train.grpo import parse_config, reward_funcs

    for step in steps:
        if step.done.exists():
            continue  # finished: nothing of it runs again
        if step.argv[0] == "grpo":
            check_rewards(reward_funcs(parse_config(step.argv[1:]))[0])
        elif step.argv[0] == "eval" and "--metrics" in step.argv:  # as `radrl eval --metrics A B` reads them
            after = step.argv[step.argv.index("--metrics") + 1:]
            check_metrics(next((after[:i] for i, a in enumerate(after) if a.startswith("-")), after))


def run_step(step: Step, run_verb: Callable[[list[str]], object] | None = None) -> bool:
    """Run one step unless its output exists; returns whether it ran. ``run_verb(argv)`` runs the step's
    command line (``["grpo", "--config", ...]``) in this process, as ``radrl`` would (``radrl experiment``
    passes its own verbs); a step with a launcher, or any step without ``run_verb``, runs as a subprocess
    (``python -m radrl.cli``)."""
    if step.done.exists():
        log.info("[four-way] %s: done already (%s)", step.name, step.done)
        return False
    log.info("[four-way] %s: %s", step.name, " ".join(step.argv))
    if step.subprocess_prefix or run_verb is None:
        prefix = step.subprocess_prefix or [sys.executable, "-m", "radrl.cli"]
        subprocess.run([*prefix, *step.argv], check=True)
    else:
        run_verb(step.argv)
    if not step.done.exists():
        raise RuntimeError(f"{step.name} finished without writing {step.done}")
    return True


def four_way_table(cfg: dict) -> str:
    """Markdown: per task, one row per arm with the headline metrics before RL, after RL and the change, each
    named and formatted by its ``MetricSpec`` (the change in percentage points for percentages)."""
    out = Path(cfg["out"])
    lines = []
    for task, keys in HEADLINE.items():
        rows = []
        for name in ARMS:
            metrics = {when: _aggregate(out / name / f"eval-{when}" / "metrics.json", task) for when in ("start", "rl")}
            if metrics["rl"] is None:
                continue
            cells = []
            for k in keys:
                spec = metric_spec(k)
                before, after = (metrics["start"] or {}).get(k), metrics["rl"].get(k)
                change = spec.format_delta(after - before) if before is not None and after is not None else "-"
                cells += [spec.format(before), spec.format(after), change]
            start = "domain" if name.startswith("domain") else "general"
            rows.append(f"| {start} | {'yes' if name.endswith('_thinking') else 'no'} | " + " | ".join(cells) + " |")
        if rows:
            head = " | ".join(f"{n} before | {n} after RL | change" for n in (metric_spec(k).name for k in keys))
            lines += [f"### {task}", "", f"| start | thinking | {head} |", "|---" * (2 + 3 * len(keys)) + "|",
                      *rows, ""]
    return "\n".join(lines)


def _aggregate(path: Path, task: str) -> dict | None:
    if not path.exists():
        return None
    return json.loads(path.read_text())["tasks"].get(task, {}).get("aggregate")


def run_experiment(cfg: dict, run_verb: Callable[[list[str]], object] | None = None,
                   steps: list[Step] | None = None) -> Path:
    """The whole experiment of a ``load_config`` config: check every scorer, run the steps not done yet
    (``run_step``), compare every evaluation (``radrl compare``'s outputs in ``out/compare``), write the 2 x 2
    table to ``out/four_way.md``; returns that path."""
    steps = plan(cfg) if steps is None else steps
    check_scorers(steps)
    for step in steps:
        run_step(step, run_verb)
    from radrl.eval.compare import compare

    out = Path(cfg["out"])
    specs = [f"{s.argv[s.argv.index('--name') + 1]}={s.done.parent}" for s in steps if s.argv[0] == "eval"]
    # thinking is this experiment's variable: the arms are asked the same requests, two with " /think" appended,
    # and thinking arms get the paper's longer default report limit (4,096 new tokens against 1,024)
    compare(specs, out / "compare", baseline=specs[0].split("=")[0], html=cfg.get("html", True),
            vary=("decoding.thinking", "max_new_tokens"))
    table = four_way_table(cfg)
    (out / "four_way.md").write_text(f"# Four-way GRPO experiment ({cfg['grpo_recipe']})\n\n{table}")
    return out / "four_way.md"
