"""bench/demo_seeds.py (issue 13's multi-seed, compute-matched measurement) keeps working without training.

The script's planning, control sizing, resume logic and aggregation run here against a fake ``radrl``
executable that writes the files the real commands write (log_history.json, metrics.json, per_sample.jsonl,
leaderboard.json) in a fraction of a second; the real run takes ~40 minutes and is recorded in
bench/results/demo_seeds.json."""

import json
import os
import stat
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
import demo_seeds  # noqa: E402

# A stand-in for the radrl CLI: training verbs write a finished run (GRPO's train_runtime and first reward
# depend on --seed), eval writes per-sample scores that depend on the model folder's name, compare writes
# paired tests of every run against the first one.
FAKE_RADRL = r'''
import hashlib, json, sys
from pathlib import Path

verb, *args = sys.argv[1:]
def opt(name, default=None):
    return args[args.index(name) + 1] if name in args else default
def opts(name):
    i = args.index(name) + 1
    vals = []
    while i < len(args) and not args[i].startswith("--"):
        vals.append(args[i]); i += 1
    return vals
KEYS = {"report": ["clinical", "rouge_l", "chexpert_rules_sample_f1", "avg_chars"],
        "grounding": ["soft_f1", "map50", "mean_iou", "acc50", "avg_chars"]}
if verb in ("sft", "grpo"):
    out = Path(opt("--output_dir")); out.mkdir(parents=True)
    (out / "config.json").write_text("{}")
    seed, steps = int(opt("--seed", 0)), int(opt("--max_steps", 80))
    hist = ([{"reward": 0.4 + 0.01 * seed + 0.001 * i, "completions/mean_length": 30 - i, "kl": 0.01, "step": i}
             for i in range(1, 9)] if verb == "grpo" else [])
    hist.append({"train_runtime": 100.0 + seed if verb == "grpo" else 0.25 * steps, "step": steps})
    (out / "log_history.json").write_text(json.dumps(hist))
elif verb == "eval":
    out = Path(opt("--out")); out.mkdir(parents=True)
    model = Path(opt("--model")).name
    # GRPO seeds score +0.05 on the targeted metric over SFT, the control +0.02; reports of GRPO are shorter
    bonus = 0.05 if model.startswith("grpo") else 0.02 if model.startswith("control") else 0.0
    rows, tasks = [], {}
    for task in opts("--tasks"):
        for i in range(20):
            r = {"id": f"{i}", "task": task}
            for k in KEYS[task]:
                r[k] = (100.0 - 40 * bonus if k == "avg_chars" else 0.5 + (bonus if k in ("clinical", "soft_f1") else 0)
                        + 0.01 * (i % 3))
            rows.append(r)
        tasks[task] = {"aggregate": {k: sum(r[k] for r in rows if r["task"] == task) / 20
                                     for k in KEYS[task] if k != "chexpert_rules_sample_f1"}}
    (out / "per_sample.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (out / "metrics.json").write_text(json.dumps({"tasks": tasks}))
elif verb == "compare":
    out = Path(opt("--out")); out.mkdir(parents=True, exist_ok=True)
    specs = [a.split("=", 1) for a in args if "=" in a]
    def mean(folder, task, key):
        vals = [json.loads(l) for l in (Path(folder) / "per_sample.jsonl").read_text().splitlines()]
        vals = [v[key] for v in vals if v["task"] == task]
        return sum(vals) / len(vals) if vals else None
    (base_name, base), tests = specs[0], {}
    for name, folder in specs[1:]:
        for task in KEYS:
            for key in KEYS[task]:
                a, b = mean(folder, task, key), mean(base, task, key)
                if a is None or b is None:
                    continue
                d = a - b
                tests.setdefault(name, {}).setdefault(task, {})[key] = {
                    "delta": d, "low": d - 0.01, "high": d + 0.01, "p_value": 0.0 if abs(d) > 0.01 else 0.8,
                    "n": 20, "excluded": 0, "higher_is_better": None if key == "avg_chars" else True}
    (out / "leaderboard.json").write_text(json.dumps({"mismatches": [], "lengths": {},
                                                      "paired": {"baseline": base_name, "tests": tests}}))
else:
    sys.exit(f"fake radrl: unknown verb {verb}")
'''


@pytest.fixture
def fake_radrl(tmp_path):
    path = tmp_path / "radrl"
    path.write_text(f"#!{sys.executable}\n" + FAKE_RADRL)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def demo_dir(tmp_path):
    demo = tmp_path / "demo"
    (demo / "sft").mkdir(parents=True)
    (demo / "sft" / "config.json").write_text("{}")
    (demo / "data").mkdir()
    for split in ("train", "test"):
        (demo / "data" / f"{split}.jsonl").write_text('{"id": "a"}\n{"id": "b"}\n')
    return demo


def test_control_steps_fill_the_mean_grpo_time():
    assert demo_seeds.control_steps([100.0, 120.0], 0.2) == 550
    assert demo_seeds.control_steps([1.0], 10.0) == 1  # never zero steps
    with pytest.raises(ValueError):
        demo_seeds.control_steps([], 0.2)


def test_pixel_budget_is_the_demo_recipes():
    recipes = [REPO / "recipes" / "demo" / f for f in ("sft.yaml", "grpo_report.yaml", "grpo_grounding.yaml")]
    assert demo_seeds.pixel_budget(recipes)[1] == 16384


def test_runs_plans_aggregates_and_resumes(tmp_path, fake_radrl, demo_dir):
    out, results = tmp_path / "seeds", tmp_path / "results" / "demo_seeds.json"
    argv = ["--demo", str(demo_dir), "--out", str(out), "--seeds", "0", "1", "2", "--radrl", str(fake_radrl),
            "--results", str(results), "--probe-steps", "10"]
    res = demo_seeds.main(argv)
    for task, target in demo_seeds.TARGET.items():
        t = res["tasks"][task]
        assert set(t["models"]) == {f"grpo-{task}-s{s}" for s in (0, 1, 2)} | {"control"}
        v = t["verdict"]
        assert v["seeds_beating_sft"] == 3 and v["seeds_beating_control"] == 3 and v["control_beats_sft"]
        assert t["models"]["grpo-" + task + "-s0"][target]["delta"] == pytest.approx(0.05)
        assert t["vs_control"]["grpo-" + task + "-s0"][target]["delta"] == pytest.approx(0.03)
        # fake GRPO takes 100 + seed s, the probe 0.25 s per step: the control gets 101 / 0.25 steps
        assert t["control"]["max_steps"] == 404 and t["control"]["train_runtime_s"] == pytest.approx(101.0)
        assert t["rollouts_differ_across_seeds"]
        assert t["absolute"]["SFT"][target] == pytest.approx(0.51, abs=2e-3)
    # shorter reports are a "change", not a loss, and never count against the verdict
    assert res["tasks"]["report"]["models"]["grpo-report-s1"]["avg_chars"]["verdict"] == "change"
    assert res["tasks"]["report"]["verdict"]["issue13_goal_met"]
    assert "chexpert_rules_sample_f1" in res["tasks"]["report"]["absolute"]["SFT"]  # per-sample mean filled in
    md = results.with_suffix(".md").read_text()
    assert "| grpo-grounding-s2 |" in md and "3/3 seeds beat SFT" in md
    assert json.loads(results.read_text())["command"].startswith("python bench/demo_seeds.py")

    # a rerun trains and evaluates nothing again: only the two comparisons per task run
    log = out / "commands.jsonl"
    before = len(log.read_text().splitlines())
    demo_seeds.main(argv)
    after = [json.loads(line)["name"] for line in log.read_text().splitlines()[before:]]
    assert after and all(name.startswith("compare") for name in after)


def test_a_significant_untargeted_loss_fails_the_bar():
    def board(deltas):
        return {"mismatches": [], "paired": {"tests": {name: {"grounding": {
            k: {"delta": d, "low": d - 0.01, "high": d + 0.01, "p_value": 0.0 if abs(d) > 0.01 else 0.7, "n": 9,
                "higher_is_better": True} for k, d in by_key.items()}} for name, by_key in deltas.items()}}}

    grpo = {0: "g0"}
    vs_sft = board({"g0": {"soft_f1": 0.03, "map50": -0.05, "mean_iou": 0.0, "acc50": 0.0},
                    "control": {"soft_f1": 0.0, "map50": 0.0, "mean_iou": 0.0, "acc50": 0.0}})
    vs_ctrl = board({"g0": {"soft_f1": 0.03, "map50": -0.05, "mean_iou": 0.0, "acc50": 0.0}})
    res = demo_seeds.summarize("grounding", vs_sft, vs_ctrl, [0], grpo)
    assert res["verdict"]["per_seed"]["g0"] == {"beats_sft": True, "beats_control": True,
                                                "untargeted_losses": ["map50"]}
    assert not res["verdict"]["issue13_goal_met"] and not res["verdict"]["control_beats_sft"]
    vs_sft["mismatches"] = [{"field": "data"}]
    with pytest.raises(ValueError, match="mismatch"):
        demo_seeds.summarize("grounding", vs_sft, vs_ctrl, [0], grpo)


def test_the_script_documents_its_command():
    doc = demo_seeds.__doc__
    assert "bench/demo_seeds.py" in doc and "--seeds" in doc
    assert os.access(REPO / "bench" / "demo_seeds.py", os.R_OK)
