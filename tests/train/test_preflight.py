"""A missing scorer stops `radrl grpo`, `radrl experiment` and `radrl coldstart` before any model loads."""

from pathlib import Path

import pytest
import yaml

from radrl.metrics.bertscore import BertScoreModelMissing
from radrl.metrics.radgraph import RadGraphModelMissing

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "demo" / "grpo_report.yaml"


@pytest.fixture
def no_weights(monkeypatch):
    for var in ("RADRL_BERTSCORE_MODEL", "RADRL_RADGRAPH_MODEL", "RADRL_RADGRAPH_ENCODER", "RADRL_CHEXBERT_MODEL"):
        monkeypatch.delenv(var, raising=False)


class ModelLoaded(Exception):
    """Raised by the stand-in for load_for_training: the run got as far as loading its model."""


@pytest.fixture
def no_model_load(monkeypatch):
    def load(cfg):
        raise ModelLoaded(cfg.model_name_or_path)

    monkeypatch.setattr("radrl.train.grpo.load_for_training", load)


# (reward, error, words of its download instructions)
MISSING = [
    # the paper's reward: the first of its three models is named with where to put it
    ("report_radcliq", RadGraphModelMissing, "reward report_radcliq .* radgraph-xl.tar.gz"),
    ("report_bertscore", BertScoreModelMissing, "reward report_bertscore .* distilroberta-base"),
]


@pytest.mark.parametrize("reward,error,words", MISSING, ids=[m[0] for m in MISSING])
def test_grpo_stops_before_the_model_loads(no_weights, no_model_load, synth_data, tmp_path, reward, error, words):
    from radrl.cli.grpo import main

    with pytest.raises(error, match=words):
        main(["--config", str(RECIPE), "--model_name_or_path", str(tmp_path), "--train_data",
              str(synth_data["train"]), "--output_dir", str(tmp_path / "out"), "--rewards", reward])
    assert not (tmp_path / "out").exists()  # nothing trained, nothing saved


def test_grpo_with_reward_servers_leaves_the_weights_to_them(no_weights, no_model_load, synth_data, tmp_path):
    # report_radcliq scored on a reward server: no local weights needed, the server (not up yet) is asked later
    from radrl.cli.grpo import main

    with pytest.raises(ModelLoaded):
        main(["--config", str(RECIPE), "--model_name_or_path", str(tmp_path), "--train_data",
              str(synth_data["train"]), "--output_dir", str(tmp_path / "out"), "--rewards", "report_radcliq",
              "--reward_servers", "http://127.0.0.1:9"])


# (case, grpo args, eval args, error, words)
EXPERIMENTS = [
    # one arm's reward lacks its weights: found before the first arm trains
    ("reward", ["--rewards", "report_bertscore"], [], BertScoreModelMissing, "reward report_bertscore"),
    # an evaluation's metric lacks its weights: found before any GRPO, not after four trainings
    ("eval_metric", [], ["--metrics", "radgraph", "--max-rows", "2"], RadGraphModelMissing, "RADRL_RADGRAPH_MODEL"),
    # a typo in an evaluation's metrics
    ("eval_typo", [], ["--metrics", "bert_score"], ValueError, "did you mean 'bertscore'"),
]


@pytest.mark.parametrize("case,grpo_args,eval_args,error,words", EXPERIMENTS, ids=[e[0] for e in EXPERIMENTS])
def test_experiment_checks_every_step_first(no_weights, monkeypatch, synth_data, tmp_path, case, grpo_args,
                                            eval_args, error, words):
    from radrl.cli.experiment import main
    from radrl.train import experiment

    def run_step(step, *args):
        raise AssertionError(f"{step.name} ran before the scorers were checked")

    monkeypatch.setattr(experiment, "run_step", run_step)
    arms = {a: {"model": str(tmp_path), "thinking": a.endswith("_thinking")} for a in experiment.ARMS}
    path = tmp_path / "four_way.yaml"
    path.write_text(yaml.safe_dump({
        "grpo_recipe": str(RECIPE), "out": str(tmp_path / "fw"), "eval_data": str(synth_data["test"]), "arms": arms,
        "grpo_args": ["--train_data", str(synth_data["train"]), *grpo_args], "eval_args": eval_args}))
    with pytest.raises(error, match=words):
        main(["--config", str(path)])


def test_coldstart_checks_its_filter_reward_before_asking_the_teacher(no_weights, synth_data, tmp_path):
    from radrl.cli.coldstart import parse_args

    with pytest.raises(BertScoreModelMissing, match="reward report_bertscore"):
        parse_args(["--data", str(synth_data["train"]), "--out", str(tmp_path), "--endpoint", "http://x/v1",
                    "--min_reward", "0.5", "--filter_rewards", "report_bertscore"])


@pytest.mark.slow
def test_a_scorer_failing_mid_run_stops_the_step(tiny_model_dir, synth_data, tmp_path, monkeypatch):
    # past the preflight (this stand-in scorer has no check), a scorer that raises stops TRL's step with its
    # message: no floor paid, no checkpoint saved
    from radrl.cli.grpo import main
    from radrl.metrics import METRICS

    def broken(refs, hyps):
        raise FileNotFoundError("put the weights in /models/x")

    monkeypatch.setitem(METRICS, "radgraph", broken)
    with pytest.raises(FileNotFoundError, match=r"reward report_radgraph .metric 'radgraph'. failed: put the weights"):
        main(["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
              "--output_dir", str(tmp_path / "grpo"), "--tasks", "report", "--rewards", "report_radgraph",
              "--reward_options", '{"report_radgraph": {"min_chars": 0}}', "--max_steps", "1",
              "--num_generations", "4", "--per_device_train_batch_size", "8", "--max_completion_length", "16",
              "--bf16", "false", "--report_to", "none", "--activation_checkpointing", "false",
              "--max_pixels", "4096", "--save_strategy", "no"])
    assert not (tmp_path / "grpo" / "model.safetensors").exists()
