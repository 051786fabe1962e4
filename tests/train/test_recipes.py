"""Every recipe YAML parses into its config class, and config checks say the fix."""

from pathlib import Path

import pytest
import yaml
from trl import TrlParser

REPO = Path(__file__).resolve().parents[2]
# recipes/accelerate holds launch configs, not radrl recipes: tests/train/test_accelerate.py checks them.
RECIPES = sorted(p for p in (REPO / "recipes").rglob("*.yaml") if p.parent.name != "accelerate")


def _config_class(path: Path):
    from radrl.train.grpo import RadrlGRPOConfig
    from radrl.train.sft import RadrlSFTConfig

    return RadrlGRPOConfig if "grpo" in path.stem else RadrlSFTConfig


def test_there_are_recipes():
    assert {p.name for p in RECIPES} >= {"sft.yaml", "grpo_report.yaml", "grpo_grounding.yaml"}


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(REPO)))
def test_recipe_parses(path, tmp_path, synth_data):
    header = [line for line in path.read_text().splitlines() if line.startswith("#")]
    assert path.read_text().startswith("#"), "a recipe starts with a header comment"
    command = f"--config recipes/{path.relative_to(REPO / 'recipes')}"
    assert any(command in line for line in header), f"the header gives the launch command with {command}"
    if path.stem.startswith("four_way"):  # an experiment over a GRPO recipe: check it with its loader
        from radrl.train.experiment import load_config, plan

        raw = yaml.safe_load(path.read_text())
        raw["eval_data"] = str(synth_data["test"])
        raw["grpo_recipe"] = str(REPO / raw["grpo_recipe"])
        (tmp_path / path.name).write_text(yaml.dump(raw))
        assert len([s for s in plan(load_config(str(tmp_path / path.name))) if s.argv[0] == "grpo"]) == 4
        return
    if path.stem == "coldstart":  # `radrl coldstart` options, not a trainer config
        from radrl.cli.coldstart import parse_args

        args = parse_args(["--config", str(path), "--data", str(synth_data["train"]), "--out", str(tmp_path)])
        for key, value in yaml.safe_load(path.read_text()).items():
            if key not in ("data", "out"):
                assert getattr(args, key) == value, key
        return
    # Point the recipe at files that exist here; everything else comes from the YAML, except bf16,
    # which transformers refuses on a machine without a GPU (the GPU recipes set it).
    (cfg,) = TrlParser((_config_class(path),)).parse_args_and_config(
        ["--config", str(path), "--model_name_or_path", str(tmp_path), "--train_data", str(synth_data["train"]),
         "--output_dir", str(tmp_path / "out"), "--bf16", "false"])
    raw = yaml.safe_load(path.read_text())
    for key, value in raw.items():
        if key not in ("model_name_or_path", "train_data", "output_dir", "report_to", "bf16"):
            assert getattr(cfg, key) == value, key


def test_unknown_reward_is_named(tmp_path, synth_data):
    from radrl.train.grpo import RadrlGRPOConfig

    with pytest.raises(ValueError, match=r"unknown reward.*nope"):
        RadrlGRPOConfig(output_dir=str(tmp_path), model_name_or_path=str(tmp_path), train_data=str(synth_data["train"]),
                        rewards=["nope"], bf16=False)


def test_missing_train_data_says_how_to_make_it(tmp_path):
    from radrl.train.sft import RadrlSFTConfig

    with pytest.raises(FileNotFoundError, match="synth-data"):
        RadrlSFTConfig(output_dir=str(tmp_path), model_name_or_path=str(tmp_path), train_data=str(tmp_path / "x.jsonl"),
                       bf16=False)


@pytest.mark.parametrize("name", ["grpo_report.yaml", "grpo_grounding.yaml"])
def test_paper_grpo_settings(name):
    """recipes/qwen3vl-8b maps the paper's verl settings (paper.md) onto TRL's fields."""
    raw = yaml.safe_load((REPO / "recipes" / "qwen3vl-8b" / name).read_text())
    processes = 32  # the launch command in the header
    assert raw["num_generations"] == 8
    assert raw["generation_batch_size"] // raw["num_generations"] == 512  # prompts per step
    completions_per_update = raw["per_device_train_batch_size"] * processes * raw["gradient_accumulation_steps"]
    assert completions_per_update // raw["num_generations"] == 128  # PPO mini-batch, in prompts
    assert raw["num_iterations"] == 1  # one PPO epoch
    assert (raw["learning_rate"], raw["lr_scheduler_type"], raw["beta"]) == (1e-6, "constant", 0.01)
    assert (raw["epsilon"], raw["epsilon_high"], raw["loss_type"], raw["temperature"]) == (0.2, 0.28, "dapo", 1.0)
    assert (raw["min_pixels"], raw["max_pixels"]) == (1024, 451584)
    assert raw["max_completion_length"] == {"grpo_report.yaml": 1024, "grpo_grounding.yaml": 4096}[name]


def test_paper_four_way_resumes_every_arms_grpo(tmp_path, synth_data):
    # a rerun after an interruption continues each arm's GRPO from its newest checkpoint (none: from scratch)
    from radrl.train.experiment import load_config, plan

    path = REPO / "recipes" / "qwen3vl-8b" / "four_way_report.yaml"
    raw = yaml.safe_load(path.read_text())
    raw["eval_data"], raw["grpo_recipe"] = str(synth_data["test"]), str(REPO / raw["grpo_recipe"])
    (tmp_path / path.name).write_text(yaml.dump(raw))
    grpo = [s.argv for s in plan(load_config(str(tmp_path / path.name))) if s.argv[0] == "grpo"]
    assert len(grpo) == 4
    for argv in grpo:
        i = argv.index("--resume_from_checkpoint")
        assert argv[i + 1] == "last"
