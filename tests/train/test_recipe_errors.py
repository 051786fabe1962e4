"""`radrl sft` / `radrl grpo` recipe mistakes are one line naming the recipe, the field and the closest valid
name (issue 14: no --config gave "Your setup doesn't support bf16/gpu"; a typo gave HF's message without the
file; a wrong type gave an argparse usage error that did not name the YAML)."""

import pytest

from radrl.cli.verbs import main as radrl

# (case, recipe text, what the one-line error must say after "<recipe>: ")
RECIPE_CASES = [
    ("misspelt field", "learning_rte: 1.0e-5\n", "unknown field 'learning_rte' (did you mean 'learning_rate'?)"),
    ("misspelt radrl field", "model_name_or_pth: x\n",
     "unknown field 'model_name_or_pth' (did you mean 'model_name_or_path'?)"),
    ("text for a number", "learning_rate: fast\n", "field 'learning_rate': 'fast' is not a number"),
    ("fraction for a whole number", "max_steps: 2.5\n", "field 'max_steps': 2.5 is not a whole number"),
    ("misspelt choice", "lr_scheduler_type: cosin\n", "field 'lr_scheduler_type': 'cosin' is not one of"),
    ("text for a boolean", "use_lora: maybe\n", "field 'use_lora': 'maybe' is not true or false"),
    ("two mistakes, both named", "learning_rte: 1\nmax_steps: x\n",
     "unknown field 'learning_rte' (did you mean 'learning_rate'?); field 'max_steps': 'x' is not a whole number"),
]


@pytest.mark.parametrize("verb", ["sft", "grpo"])
@pytest.mark.parametrize("case,text,expect", RECIPE_CASES, ids=[c[0] for c in RECIPE_CASES])
def test_recipe_mistakes_name_file_field_and_fix(verb, case, text, expect, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    with pytest.raises(SystemExit) as e:
        radrl([verb, "--config", str(recipe)])
    assert e.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"radrl {verb}: error: {recipe}: {expect}"), err
    assert len(err) == 2 and "--help lists every field" in err[0]   # one line (+ the RADRL_DEBUG hint)


@pytest.mark.parametrize("verb", ["sft", "grpo"])
def test_no_recipe_says_a_recipe_is_needed(verb, capsys):
    with pytest.raises(SystemExit):
        radrl([verb, "--output_dir", "x"])
    err = capsys.readouterr().err
    assert f"radrl {verb} needs a recipe: --config RECIPE.yaml (e.g. recipes/demo/{verb}.yaml" in err
    assert "bf16" not in err


def test_command_line_typo_and_dashes(tmp_path, capsys):
    from radrl.train.sft import parse_config

    recipe = tmp_path / "r.yaml"
    data = tmp_path / "train.jsonl"
    data.write_text("")
    recipe.write_text(f"model_name_or_path: m\ntrain_data: {data}\noutput_dir: {tmp_path / 'o'}\nuse_cpu: true\n"
                      "bf16: false\nreport_to: none\n")
    with pytest.raises(ValueError, match=r"radrl sft: unknown option --lerning_rate \(did you mean '--learning_rate'"):
        parse_config(["--config", str(recipe), "--lerning_rate", "1e-5"])
    cfg = parse_config([f"--config={recipe}", "--learning-rate", "3e-5", "--max_steps", "2"])   # dashes work too
    assert (cfg.learning_rate, cfg.max_steps, cfg.model_name_or_path) == (3e-5, 2, "m")
