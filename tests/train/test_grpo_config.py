"""GRPO recipe fields that reach the rewards: per-reward options and reward servers."""

import pytest
from trl import TrlParser


def _parse(tmp_path, synth_data, *args, yaml_text=""):
    from radrl.train.grpo import RadrlGRPOConfig

    argv = ["--output_dir", str(tmp_path / "out"), "--model_name_or_path", str(tmp_path),
            "--train_data", str(synth_data["train"]), "--bf16", "false", *args]
    if yaml_text:
        recipe = tmp_path / "recipe.yaml"
        recipe.write_text(yaml_text)
        argv = ["--config", str(recipe), *argv]
    (cfg,) = TrlParser((RadrlGRPOConfig,)).parse_args_and_config(argv)
    return cfg


def test_reward_options_from_yaml_reach_the_reward(tmp_path, synth_data):
    from radrl.rewards import build_rewards

    cfg = _parse(tmp_path, synth_data, yaml_text=(
        "rewards: [grounding_soft_f1, report_clinical, report_length_guard]\n"
        "reward_options:\n  report_length_guard: {min_ratio: 0.6}\n"))
    funcs, _ = build_rewards(dict.fromkeys(cfg.rewards, 1.0), cfg.reward_options)
    assert funcs[2].min_ratio == 0.6


def test_reward_options_as_json_on_the_command_line(tmp_path, synth_data):
    cfg = _parse(tmp_path, synth_data, "--rewards", "grounding_soft_f1", "report_clinical", "report_length_guard",
                 "--reward_options", '{"report_length_guard": {"min_ratio": 0.7}}')
    assert cfg.reward_options == {"report_length_guard": {"min_ratio": 0.7}}


@pytest.mark.parametrize("options, message", [
    # an option the reward does not have: named with the ones it has, at parse time
    ('{"report_length_guard": {"ratio": 0.7}}', r"has no option\(s\) \['ratio'\]"),
    # options for a reward the recipe does not use
    ('{"report_rouge_l": {"floor": -1}}', r"not among the rewards"),
])
def test_bad_reward_options_fail_at_parse_time(tmp_path, synth_data, options, message):
    with pytest.raises(ValueError, match=message):
        _parse(tmp_path, synth_data, "--rewards", "grounding_soft_f1", "report_clinical", "report_length_guard",
               "--reward_options", options)


def test_reward_server_fields(tmp_path, synth_data):
    cfg = _parse(tmp_path, synth_data, "--reward_servers", "http://10.0.0.5:8765", "http://10.0.0.6:8765",
                 "--reward_server_fallback", "-3")
    assert cfg.reward_servers == ["http://10.0.0.5:8765", "http://10.0.0.6:8765"]
    assert cfg.reward_server_fallback == -3.0 and cfg.reward_server_timeout == 60.0


def test_task_mix_is_refused_for_grpo(tmp_path, synth_data):
    # classification / detection / conversation rows have no GRPO reward: refused with the reason
    with pytest.raises(ValueError, match="task_mix is for SFT"):
        _parse(tmp_path, synth_data, "--task_mix", "true")


def test_sft_task_mix_builds_the_paper_mix(tmp_path, synth_data):
    from radrl.data.instructions import build_task_mix
    from radrl.data.schema import read_jsonl
    from radrl.train.common import conversation_dataset
    from radrl.train.sft import RadrlSFTConfig

    (cfg,) = TrlParser((RadrlSFTConfig,)).parse_args_and_config(
        ["--output_dir", str(tmp_path / "out"), "--model_name_or_path", str(tmp_path), "--bf16", "false",
         "--train_data", str(synth_data["train"]), "--task_mix", "true"])
    dataset = conversation_dataset(cfg)
    expected = [r["id"] for r in build_task_mix(read_jsonl(synth_data["train"]))]
    assert dataset["id"] == expected and len(set(dataset["kind"])) > 1  # report rows and abnormality grounding
