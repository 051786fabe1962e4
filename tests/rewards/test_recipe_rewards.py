"""Recipe reward entries: names, import paths, inline specs; "did you mean" errors; the rates rewards log."""

import json
import math
import pickle
import socket

import pytest
from trl import TrlParser

from radrl.cli.reward_server import main as server_main
from radrl.metrics import check_metrics
from radrl.rewards import REWARDS, ReportMetric, build_rewards
from radrl.rewards.remote import remote

REF = "Moderate cardiomegaly. No pneumothorax. Small left pleural effusion."
BOX = "Cardiomegaly at [0.38, 0.47, 0.76, 0.62]"


def test_reward_by_import_path_function_and_class():
    funcs, weights = build_rewards(["report_clinical", "rewards_for_tests:brevity", "rewards_for_tests:BoxCount"],
                                   {"box_count": {"target": 2}}, [1.0, 0.5, 0.25])
    # the function keeps its own name; the class is built and configured by its name (its log key)
    assert [f.__name__ for f in funcs] == ["report_clinical", "brevity", "box_count"] and weights == [1.0, 0.5, 0.25]
    assert funcs[2].target == 2.0
    out = funcs[2]([BOX, "No boxes."], task=["grounding", "report"], solution=[BOX, REF])
    assert out == [-1.0, None]
    # both pickle into dataloader and reward workers and behave the same
    for f in funcs[1:]:
        clone = pickle.loads(pickle.dumps(f))
        assert clone.__name__ == f.__name__
        assert clone(["Short.", BOX], task=["report", "grounding"], solution=[REF, BOX]) == \
            f(["Short.", BOX], task=["report", "grounding"], solution=[REF, BOX])


def test_trl_dotted_path_and_unnamed_instance():
    # TRL's script writes package.module.function; an instance without __name__ logs under its attribute's name
    funcs, _ = build_rewards(["rewards_for_tests.brevity", "rewards_for_tests:unnamed"])
    assert [f.__name__ for f in funcs] == ["brevity", "unnamed"]


def test_inline_spec_is_a_report_metric():
    spec = {"metric": "text", "key": "rouge_l", "sign": 1, "floor": -1, "name": "my_rouge"}
    # a YAML mapping, and the same as JSON (the command line's form)
    mine, clinical = build_rewards([spec, json.dumps({"metric": "chexpert", "key": "clinical"})],
                                   {"my_rouge": {"floor": -0.5}})[0]
    assert isinstance(mine, ReportMetric)
    assert (mine.__name__, mine.metric, mine.key, mine.floor) == ("my_rouge", "text", "rouge_l", -0.5)  # options
    # the default name is report_<key>; same numbers as the registered reward over the same metric key
    assert clinical.__name__ == "report_clinical"
    kwargs = {"task": ["report"] * 2, "solution": [REF] * 2}
    assert clinical([REF, "Heart normal."], **kwargs) == REWARDS["report_clinical"]([REF, "Heart normal."], **kwargs)
    assert mine([REF, "Ok."], **kwargs) == [1.0, -0.5]  # "Ok." is too short: the floor
    assert pickle.loads(pickle.dumps(mine))([REF, "Ok."], **kwargs) == [1.0, -0.5]


# (case, call raising ValueError, words of the message)
BAD = [
    # a reward name with a typo: the closest registered one
    ("reward_typo", lambda: build_rewards(["report_clincal"]),
     r"unknown reward 'report_clincal' \(did you mean 'report_clinical'\?\)"),
    # a dotted typo of a name is tried as a module, and still gets the name it resembles
    ("reward_dotted_typo", lambda: build_rewards(["report.clinical"]),
     r"cannot be imported.*did you mean 'report_clinical'"),
    # a module that does not exist
    ("bad_module", lambda: build_rewards(["no_such_module:reward"]),
     r"reward 'no_such_module:reward' cannot be imported: ModuleNotFoundError"),
    # a module without that attribute: the closest one it has
    ("bad_attribute", lambda: build_rewards(["rewards_for_tests:brevty"]),
     r"module 'rewards_for_tests' has no 'brevty' \(did you mean 'brevity'\?\)"),
    # something that is not a reward
    ("not_callable", lambda: build_rewards(["rewards_for_tests:NOT_A_REWARD"]), r"is a int, not a callable"),
    # options for a plain function: it cannot take them
    ("function_options", lambda: build_rewards(["rewards_for_tests:brevity"], {"brevity": {"x": 1}}),
     r"reward brevity takes no reward_options"),
    # options keyed by a misspelt name
    ("options_typo", lambda: build_rewards(["report_length_guard"], {"report_lenght_guard": {"min_ratio": 1}}),
     r"'report_lenght_guard' \(did you mean 'report_length_guard'\?\), which is not among the rewards"),
    # an inline spec over an unknown metric
    ("inline_metric_typo", lambda: build_rewards([{"metric": "bertscor", "key": "bertscore"}]),
     r"unknown metric 'bertscor' \(did you mean 'bertscore'\?\)"),
    # an inline spec with a misspelt field
    ("inline_field_typo", lambda: build_rewards([{"metric": "text", "key": "gleu", "flor": -1}]),
     r"unknown inline reward field 'flor' \(did you mean 'floor'\?\)"),
    # an inline spec whose key the metric does not declare: stopped at parse time, not after the first rollouts
    ("inline_key_typo", lambda: build_rewards([{"metric": "text", "key": "rouge-l"}]),
     r"unknown key of metric 'text' 'rouge-l' \(did you mean 'rouge_l'\?\)"),
    # an inline spec without its key
    ("inline_no_key", lambda: build_rewards([{"metric": "text"}]), r"needs \['key'\]"),
    # an inline spec with a floor that is not a number
    ("inline_bad_floor", lambda: build_rewards([{"metric": "text", "key": "gleu", "floor": "low"}]),
     r"floor must be a finite number"),
    # an inline reward named like a registered one that is also listed
    ("inline_duplicate", lambda: build_rewards(["report_gleu", {"metric": "text", "key": "gleu"}]),
     r"rewards lists \['report_gleu'\] twice"),
    # a metric typo (radrl eval, radrl score, preflights)
    ("metric_typo", lambda: check_metrics(["chexpret"]), r"unknown metric 'chexpret' \(did you mean 'chexpert'\?\)"),
    # the reward server's --metrics and --scorer
    ("server_metric_typo", lambda: server_main(["--metrics", "chexpret"]),
     r"unknown metric 'chexpret' \(did you mean 'chexpert'\?\).*--scorer NAME="),
    ("server_scorer_typo", lambda: server_main(["--scorer", "x=scorers_for_tests:bertscore_minlm"]),
     r"module 'scorers_for_tests' has no 'bertscore_minlm' \(did you mean 'bertscore_minilm'\?\)"),
]


@pytest.mark.parametrize("case,call,words", BAD, ids=[b[0] for b in BAD])
def test_errors_say_the_fix(case, call, words):
    with pytest.raises(ValueError) as e:
        call()
    assert e.match(words)


def _parse(tmp_path, synth_data, *args, yaml_text=""):
    from radrl.train.grpo import RadrlGRPOConfig

    argv = ["--output_dir", str(tmp_path / "out"), "--model_name_or_path", str(tmp_path),
            "--train_data", str(synth_data["train"]), "--bf16", "false", *args]
    if yaml_text:
        (tmp_path / "recipe.yaml").write_text(yaml_text)
        argv = ["--config", str(tmp_path / "recipe.yaml"), *argv]
    (cfg,) = TrlParser((RadrlGRPOConfig,)).parse_args_and_config(argv)
    return cfg


def test_recipe_mixes_names_paths_and_inline_specs(tmp_path, synth_data):
    from radrl.train.grpo import reward_funcs

    cfg = _parse(tmp_path, synth_data, yaml_text=(
        "rewards:\n"
        "  - grounding_soft_f1\n"
        "  - rewards_for_tests:brevity\n"
        "  - {metric: bertscore, key: bertscore, sign: 1, floor: -1, name: my_bertscore}\n"
        "reward_weights: [1.0, 0.5, 2.0]\n"
        "reward_options:\n  my_bertscore: {min_chars: 10}\n"))
    funcs, weights = reward_funcs(cfg)
    assert [f.__name__ for f in funcs] == ["grounding_soft_f1", "brevity", "my_bertscore"]
    assert weights == [1.0, 0.5, 2.0] and (funcs[2].floor, funcs[2].min_chars) == (-1.0, 10)
    # the command line takes the same: a path, and an inline spec as JSON
    cfg = _parse(tmp_path, synth_data, "--rewards", "grounding_soft_f1", "rewards_for_tests:brevity",
                 '{"metric": "text", "key": "gleu", "name": "gleu"}', "--reward_weights", "1", "1", "3")
    assert [f.__name__ for f in reward_funcs(cfg)[0]] == ["grounding_soft_f1", "brevity", "gleu"]


def test_bad_import_path_fails_at_parse_time(tmp_path, synth_data):
    with pytest.raises(ValueError, match=r"reward 'my_rewards:brevity' cannot be imported"):
        _parse(tmp_path, synth_data, "--rewards", "grounding_soft_f1", "my_rewards:brevity")


def test_rates_are_logged_through_log_metric():
    logged = {}

    def log_metric(name, value):
        logged[name] = value

    thinking = {"task": ["report", "report", "grounding", "grounding"], "solution": [REF, REF, BOX, BOX],
                "thinking": [True, True, True, False]}
    completions = ["<think>ok</think>" + REF, "<think>never closed", "<think>x</think>" + BOX + " [0.9, 0.9, 0.1, 0.1]",
                   BOX]
    REWARDS["report_clinical"](completions, log_metric=log_metric, **thinking)
    REWARDS["grounding_soft_f1"](completions, log_metric=log_metric, **thinking)
    assert logged == {
        # one of the two report rows never closed </think>: its empty answer is floored
        "rewards/report_clinical/think_missing_ratio": 0.5, "rewards/report_clinical/floored_ratio": 0.5,
        # the grounding row that asked to think closed it; one of the two answers had an invalid box dropped
        "rewards/grounding_soft_f1/think_missing_ratio": 0.0, "rewards/grounding_soft_f1/invalid_boxes_ratio": 0.5}


def dead_url() -> str:
    """A loopback port nothing listens on: connection refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_fallback_ratio_is_logged():
    logged = {}
    reward = remote(REWARDS["report_radcliq"], servers=[dead_url()], fallback=-3.0, retries=0)
    reward([REF, REF + " Also edema.", "", "x"], task=["report"] * 3 + ["grounding"], solution=[REF] * 3 + [BOX],
           log_metric=logged.__setitem__)
    # two of the three report rows needed the (dead) server; the empty one was floored without a request
    assert logged["rewards/report_radcliq/fallback_ratio"] == pytest.approx(2 / 3)
    assert logged["rewards/report_radcliq/floored_ratio"] == pytest.approx(1 / 3)


@pytest.mark.slow
def test_grpo_step_logs_reward_rates(tiny_model_dir, synth_data, tmp_path):
    """One tiny GRPO step: the rates reach TRL's logged metrics, and a reward by import path trains."""
    from radrl.cli.grpo import main

    main(["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
          "--output_dir", str(tmp_path / "grpo"), "--max_steps", "1", "--num_generations", "4",
          "--per_device_train_batch_size", "8", "--max_completion_length", "16", "--learning_rate", "1e-4",
          "--thinking", "true", "--rewards", "grounding_soft_f1", "report_clinical", "rewards_for_tests:brevity",
          "--reward_servers", dead_url(), "--reward_server_fallback", "0", "--reward_server_timeout", "2",
          "--bf16", "false", "--report_to", "none", "--activation_checkpointing", "false", "--max_pixels", "4096",
          "--logging_steps", "1", "--seed", "0"])
    history = json.loads((tmp_path / "grpo" / "log_history.json").read_text())
    logged = {k: v for h in history for k, v in h.items()}
    for key in ("rewards/grounding_soft_f1/think_missing_ratio", "rewards/grounding_soft_f1/invalid_boxes_ratio",
                "rewards/report_clinical/think_missing_ratio", "rewards/report_clinical/floored_ratio",
                "rewards/report_clinical/fallback_ratio", "rewards/brevity/mean"):
        assert key in logged and math.isfinite(logged[key]), key
