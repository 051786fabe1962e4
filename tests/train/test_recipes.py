"""Every recipe YAML parses into its config class, and config checks say the fix."""

from pathlib import Path

import pytest
import yaml
from trl import TrlParser

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "recipes").rglob("*.yaml"))


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
    # Point the recipe at files that exist here; everything else comes from the YAML.
    (cfg,) = TrlParser((_config_class(path),)).parse_args_and_config(
        ["--config", str(path), "--model_name_or_path", str(tmp_path), "--train_data", str(synth_data["train"]),
         "--output_dir", str(tmp_path / "out")])
    raw = yaml.safe_load(path.read_text())
    for key, value in raw.items():
        if key not in ("model_name_or_path", "train_data", "output_dir", "report_to"):
            assert getattr(cfg, key) == value, key


def test_unknown_reward_is_named(tmp_path, synth_data):
    from radrl.train.grpo import RadrlGRPOConfig

    with pytest.raises(ValueError, match="unknown reward.*nope"):
        RadrlGRPOConfig(output_dir=str(tmp_path), model_name_or_path=str(tmp_path), train_data=str(synth_data["train"]),
                        rewards=["nope"], bf16=False)


def test_missing_train_data_says_how_to_make_it(tmp_path):
    from radrl.train.sft import RadrlSFTConfig

    with pytest.raises(FileNotFoundError, match="synth-data"):
        RadrlSFTConfig(output_dir=str(tmp_path), model_name_or_path=str(tmp_path), train_data=str(tmp_path / "x.jsonl"),
                       bf16=False)
