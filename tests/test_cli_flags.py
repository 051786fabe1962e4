"""One flag convention for every verb: dashes and space-separated lists, the other spelling accepted where it is
unambiguous (issue 14: `--max-rows` on one verb, `--max_rows` on the next; commas here, spaces there)."""

import pytest

from radrl.cli import args as cli_args
from radrl.cli.args import ArgumentParser
from radrl.cli.verbs import MODULES, VERBS
from radrl.cli.verbs import main as radrl

# Verbs whose fields are TRL's / transformers' dataclass fields (HfArgumentParser: underscores, dashes accepted).
HF_VERBS = {"sft", "grpo"}


class _Built(Exception):
    def __init__(self, parser):
        self.parser = parser


def _parser(verb, monkeypatch) -> ArgumentParser:
    """The parser `radrl <verb>` builds, caught as it starts parsing (nothing of the verb runs)."""
    def catch(self, args=None, namespace=None):
        raise _Built(self)

    monkeypatch.setattr(ArgumentParser, "parse_known_args", catch)
    try:
        VERBS[verb]([])
    except _Built as e:
        return e.parser   # the verb's own parser parses first; subcommand parsers hang off its actions
    except SystemExit:
        pass
    pytest.fail(f"radrl {verb} does not parse with radrl.cli.args.ArgumentParser: build its parser with it "
                "(src/radrl/cli/args.py), so it follows the flag convention")


@pytest.mark.parametrize("verb", [v for v in MODULES if v not in HF_VERBS])
def test_every_verb_takes_dashes_and_the_other_spelling(verb, monkeypatch):
    parser = _parser(verb, monkeypatch)
    subcommands = [a.choices for a in parser._actions if isinstance(a.choices, dict)]
    parsers = [parser] + [p for choices in subcommands for p in choices.values()]
    for p in parsers:
        for action in p._actions:
            long = [s for s in action.option_strings if s.startswith("--")]
            for flag in long:
                assert "_" not in flag, f"radrl {verb} {flag}: flags use dashes (--{flag[2:].replace('_', '-')})"
                if "-" in flag[2:]:   # the underscore spelling reaches the same option
                    assert p.normalize(["--" + flag[2:].replace("-", "_"), "1"]) == [flag, "1"]
            if getattr(action, "radrl_names", False) and long:   # name lists take commas too
                assert p.normalize([long[0], "a,b", "c"]) == [long[0], "a", "b", "c"]
                assert p.normalize([f"{long[0]}=a,b"]) == [long[0], "a", "b"]


def test_eval_and_score_read_both_spellings(monkeypatch, tmp_path):
    from radrl.eval import run

    seen = {}
    monkeypatch.setattr(run, "evaluate", lambda *a, **k: seen.update(k) or {})
    radrl(["eval", "--model", "m", "--data", "d.jsonl", "--out", str(tmp_path), "--max_rows", "3",
           "--tasks", "report,grounding", "--metrics", "bertscore,meteor", "--batch_size", "2"])
    assert (seen["max_rows"], seen["tasks"], seen["batch_size"]) == (3, ("report", "grounding"), 2)
    assert seen["report_metrics"] == ("text", "chexpert", "bertscore", "meteor")
    refs = tmp_path / "refs.txt"
    refs.write_text("No effusion.\nSmall effusion.\n")
    comma = VERBS["score"](["--refs", str(refs), "--preds", str(refs), "--metrics", "text,chexpert"])
    space = VERBS["score"](["--refs", str(refs), "--preds", str(refs), "--metrics", "text", "chexpert"])
    assert comma.aggregate == space.aggregate and "chexpert_rules_micro_f1_14" in comma.aggregate


def test_ambiguous_and_path_lists_are_left_alone():
    p = ArgumentParser(prog="x")
    p.add_argument("--a-b")
    p.add_argument("--a_b")                   # both spellings are different options: nothing is rewritten
    p.add_argument("--logs", nargs="*")      # paths: a comma may be part of a name
    p.add_argument("--tasks", nargs="+", choices=["report", "grounding"])
    assert p.normalize(["--a_b", "1", "--a-b", "2"]) == ["--a_b", "1", "--a-b", "2"]
    assert p.normalize(["--logs", "a,b.jsonl", "--tasks", "report,grounding", "-5"]) == \
        ["--logs", "a,b.jsonl", "--tasks", "report", "grounding", "-5"]
    assert p.normalize(["--tasks", "report", "--", "--a_b"]) == ["--tasks", "report", "--", "--a_b"]
    assert cli_args._spelling("--nope_x", {}) == "--nope_x"   # unknown flags reach argparse's own error


@pytest.mark.parametrize("verb", sorted(HF_VERBS))
def test_trainer_verbs_take_dashes_too(verb, tmp_path):
    from importlib import import_module

    recipe = tmp_path / "r.yaml"
    data = tmp_path / "train.jsonl"
    data.write_text("")
    recipe.write_text(f"model_name_or_path: m\ntrain_data: {data}\noutput_dir: {tmp_path / 'o'}\nuse_cpu: true\n"
                      "bf16: false\nreport_to: none\n")
    parse = import_module(f"radrl.train.{verb}").parse_config
    cfg = parse(["--config", str(recipe), "--learning-rate", "2e-5", "--max_steps", "3", "--max-pixels", "4096"])
    assert (cfg.learning_rate, cfg.max_steps, cfg.max_pixels) == (2e-5, 3, 4096)
