"""GRPO recipe fields that reach the rewards (per-reward options, reward servers) and the rows GRPO trains on."""

import json

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


def test_reward_options_and_weights_from_yaml_reach_the_trainers_rewards(tmp_path, synth_data):
    # reward_funcs is what grpo.train hands GRPOTrainer: options configure the reward, weights go along
    from radrl.train.grpo import reward_funcs

    cfg = _parse(tmp_path, synth_data, yaml_text=(
        "rewards: [grounding_soft_f1, report_clinical, report_length_guard]\n"
        "reward_weights: [1.0, 2.0, 0.5]\n"
        "reward_options:\n  report_length_guard: {min_ratio: 0.6}\n"))
    funcs, weights = reward_funcs(cfg)
    assert [f.__name__ for f in funcs] == cfg.rewards and weights == [1.0, 2.0, 0.5]
    assert funcs[2].min_ratio == 0.6


def test_reward_servers_move_report_metrics_to_the_servers(tmp_path, synth_data):
    from radrl.rewards.remote import RemoteReportReward
    from radrl.train.grpo import reward_funcs

    cfg = _parse(tmp_path, synth_data, "--rewards", "grounding_soft_f1", "report_clinical", "report_length_guard",
                 "--reward_servers", "http://10.0.0.5:8765", "--reward_server_fallback", "0.1",
                 "--reward_options", '{"report_clinical": {"floor": 0.2}}')
    funcs, weights = reward_funcs(cfg)
    # the report metric is scored remotely (with its options and the fallback); grounding and the guard stay here
    assert [f.__name__ for f in funcs] == cfg.rewards
    assert [isinstance(f, RemoteReportReward) for f in funcs] == [False, True, False]
    assert funcs[1].floor == 0.2 and funcs[1].fallback == 0.1 and weights == [1.0, 1.0, 1.0]


def test_unknown_reward_is_refused_at_parse_time(tmp_path, synth_data):
    with pytest.raises(ValueError, match=r"unknown reward 'report_typo' .*; known rewards"):
        _parse(tmp_path, synth_data, "--rewards", "grounding_soft_f1", "report_typo")


def _conversation_file(tmp_path, synth_data, extra_tasks):
    """report and grounding rows built from the synthetic samples, plus one copy of a row per extra task."""
    from radrl.data.instructions import build_conversations
    from radrl.data.schema import read_jsonl

    rows = build_conversations(list(read_jsonl(synth_data["train"]))[:3], tasks=["report", "grounding"])
    rows = [r for r in rows if r["task"] in extra_tasks["keep"]]
    for n, task in enumerate(extra_tasks["add"]):
        rows.append({**rows[0], "id": f"extra{n}", "task": task, "solution": ""})
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_grpo_drops_rows_no_reward_scores(tmp_path, synth_data, caplog):
    # imported RadVLM conversations and classification rows: every reward returns None for them
    from radrl.train.grpo import grpo_dataset

    path = _conversation_file(tmp_path, synth_data, {"keep": ("report", "grounding"),
                                                     "add": ("imported", "conversation", "classification")})
    cfg = _parse(tmp_path, synth_data, "--train_data", str(path))
    dataset = grpo_dataset(cfg)
    assert set(dataset["task"]) == {"report", "grounding"} and not any(i.startswith("extra") for i in dataset["id"])
    err = caplog.text  # a warning of radrl.train.grpo
    assert "GRPO drops 3 of" in err and "'imported': 1" in err and "'classification': 1" in err


def test_grpo_refuses_a_file_with_no_scored_rows(tmp_path, synth_data):
    from radrl.train.grpo import grpo_dataset

    path = _conversation_file(tmp_path, synth_data, {"keep": ("report",), "add": ("imported",)})
    # only report rows and an imported one, but the recipe trains grounding only
    cfg = _parse(tmp_path, synth_data, "--train_data", str(path), "--tasks", "grounding",
                 "--rewards", "grounding_soft_f1")
    with pytest.raises(ValueError, match=r"none of its \d+ rows is of a task the GRPO rewards score.*'imported': 1"):
        grpo_dataset(cfg)


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
                 "--reward_server_fallback", "0")
    assert cfg.reward_servers == ["http://10.0.0.5:8765", "http://10.0.0.6:8765"]
    assert cfg.reward_server_fallback == 0.0 and cfg.reward_server_timeout == 60.0


def test_reward_server_fallback_outside_a_rewards_range_fails_at_parse_time(tmp_path, synth_data):
    # report_clinical lies in [0, 1]: a fallback of -3 would be refused by the remote reward mid-run otherwise
    with pytest.raises(ValueError, match="fallback must be None or a finite number inside"):
        _parse(tmp_path, synth_data, "--reward_servers", "http://10.0.0.5:8765", "--reward_server_fallback", "-3")


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
