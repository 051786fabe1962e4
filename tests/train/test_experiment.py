"""The four-way experiment: the plan of commands, the config checks, and the whole thing on the tiny model."""

import json
from pathlib import Path

import pytest
import yaml

from radrl.train.experiment import ARMS, load_config, plan

REPO = Path(__file__).resolve().parents[2]


def _config(tmp_path, synth_data, model, **extra) -> Path:
    cfg = {"grpo_recipe": str(REPO / "recipes" / "demo" / "grpo_report.yaml"), "out": str(tmp_path / "fw"),
           "eval_data": str(synth_data["test"]),
           "arms": {a: {"model": str(model), "thinking": a.endswith("_thinking")} for a in ARMS}, **extra}
    path = tmp_path / "four_way.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_plan_varies_only_start_and_thinking(tmp_path, synth_data):
    cfg = load_config(str(_config(tmp_path, synth_data, tmp_path, grpo_args=["--max_steps", "3"])))
    cfg["arms"]["domain_thinking"]["grpo_args"] = ["--max_completion_length", "64"]
    steps = plan(cfg)
    grpo = {s.name.split(":")[0]: s.argv for s in steps if s.argv[0] == "grpo"}
    assert list(grpo) == list(ARMS)
    for arm, argv in grpo.items():
        # the same recipe and shared overrides for all; thinking follows the arm; arm-only args come last
        assert argv[argv.index("--config") + 1].endswith("grpo_report.yaml")
        assert argv[argv.index("--thinking") + 1] == str(arm.endswith("_thinking")).lower()
        assert argv[argv.index("--max_steps") + 1] == "3"
        assert ("--max_completion_length" in argv) == (arm == "domain_thinking")
    evals = [s for s in steps if s.argv[0] == "eval"]
    assert len(evals) == 8  # after RL and the start, per arm
    for s in evals:  # thinking arms are evaluated with ' /think' requests and scored after </think>
        assert ("--thinking" in s.argv) == ("_thinking" in s.name)
        assert s.argv[s.argv.index("--tasks") + 1:s.argv.index("--tasks") + 2] == ["report"]  # the recipe's tasks
    assert all(s.subprocess_prefix is None for s in steps)  # no launcher: in this process
    launched = plan({**cfg, "launcher": ["accelerate", "launch", "-m", "radrl.cli"]})
    assert launched[0].subprocess_prefix == ["accelerate", "launch", "-m", "radrl.cli"]


@pytest.mark.parametrize("change, message", [
    ({"arms": {"general": {"model": "x"}}}, "arms must be exactly"),           # an arm missing
    ({"colour": "red"}, "unknown key"),                                         # a typo in the YAML
    ({"eval_data": "/nope.jsonl"}, "eval_data /nope.jsonl does not exist"),     # data not prepared yet
])
def test_config_errors_name_the_fix(tmp_path, synth_data, change, message):
    path = _config(tmp_path, synth_data, tmp_path)
    cfg = {**yaml.safe_load(path.read_text()), **change}
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_config(str(path))


def test_arm_thinking_must_match_its_name(tmp_path, synth_data):
    path = _config(tmp_path, synth_data, tmp_path)
    cfg = yaml.safe_load(path.read_text())
    cfg["arms"]["domain_thinking"]["thinking"] = False
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ValueError, match="domain_thinking must have thinking: true"):
        load_config(str(path))


def test_four_way_table_names_and_formats_by_metric_spec(tmp_path):
    from radrl.train.experiment import four_way_table

    for when, (clinical, rouge) in {"start": (0.25, 0.1), "rl": (0.375, 0.2)}.items():
        path = tmp_path / "general" / f"eval-{when}" / "metrics.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"tasks": {"report": {"aggregate": {"clinical": clinical, "rouge_l": rouge}}}}))
    table = four_way_table({"out": str(tmp_path)})
    assert ("| start | thinking | clinical (CheXpert-rules) before | clinical (CheXpert-rules) after RL | change | "
            "ROUGE-L before |") in table
    assert "| general | no | 25.0 | 37.5 | +12.5 | 10.0 | 20.0 | +10.0 |" in table


@pytest.mark.slow
def test_four_way_on_the_tiny_model_writes_the_table_and_resumes(tiny_model_dir, synth_data, tmp_path, capsys):
    from radrl.cli.experiment import main

    grpo = ["--train_data", str(synth_data["train"]), "--max_steps", "1", "--num_generations", "2",
            "--per_device_train_batch_size", "2", "--max_completion_length", "8", "--bf16", "false",
            "--report_to", "none", "--activation_checkpointing", "false", "--max_pixels", "4096",
            "--save_strategy", "no", "--logging_steps", "1"]
    evals = ["--max-rows", "2", "--max-new-tokens-report", "8", "--batch-size", "2", "--max-pixels", "4096",
             "--device", "cpu"]
    path = _config(tmp_path, synth_data, tiny_model_dir, grpo_args=grpo, eval_args=evals, html=False)
    table = main(["--config", str(path)]).read_text()
    rows = [line for line in table.splitlines() if line.startswith(("| general", "| domain"))]
    assert len(rows) == 4  # the 2 x 2 arms of the report table
    assert {tuple(c.strip() for c in r.split("|")[1:3]) for r in rows} == \
           {("general", "no"), ("general", "yes"), ("domain", "no"), ("domain", "yes")}
    out = tmp_path / "fw"
    for arm in ARMS:
        assert (out / arm / "grpo" / "model.safetensors").exists()
        metrics = json.loads((out / arm / "eval-rl" / "metrics.json").read_text())
        assert "report" in metrics["tasks"]
    board = (out / "compare" / "leaderboard.md").read_text()
    assert all(f"{arm}-rl" in board and f"{arm}-start" in board for arm in ARMS)

    from radrl.cli import main as radrl_main

    capsys.readouterr()
    radrl_main(["experiment", "--config", str(path)])  # everything is done: a rerun runs no step again
    printed = capsys.readouterr().err  # the steps are logged, and `radrl` shows the log on stderr
    assert printed.count("done already") == 12 and ": grpo --config" not in printed
