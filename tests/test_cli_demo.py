"""The command line: verbs, help, logging, and the demo end to end at toy sizes."""

import json
import logging

import pytest

from radrl.cli import VERBS, main


def test_help_lists_every_verb(capsys):
    main([])
    out = capsys.readouterr().out
    assert all(verb in out for verb in VERBS)


def test_unknown_verb_exits_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["trian"])
    assert e.value.code == 2 and "unknown verb" in capsys.readouterr().out


def test_errors_are_one_line_with_the_fix(tmp_path, capsys, monkeypatch, synth_data):
    # a missing checkpoint: the message that names it and the fix, exit 1, no traceback
    monkeypatch.delenv("RADRL_DEBUG", raising=False)
    args = ["eval", "--model", str(tmp_path / "nope"), "--data", str(synth_data["test"]), "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 1 and f"radrl eval: error: checkpoint folder {tmp_path / 'nope'} does not exist" in err
    # RADRL_DEBUG=1 keeps the traceback (the exception itself) for debugging
    monkeypatch.setenv("RADRL_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(args)


def test_progress_is_logged_on_stderr(tmp_path, capsys):
    # library modules log (logging.getLogger(__name__)) instead of printing; a `radrl` run shows their INFO
    # lines on stderr as plain text, and stdout keeps only the command's result (here the CSV)
    path = tmp_path / "reports.txt"
    path.write_text("No effusion.\n", encoding="utf-8")
    main(["label", str(path)])
    logging.getLogger("radrl.demo").info("[1/7] a stage")
    captured = capsys.readouterr()
    assert captured.out.startswith("Reports,") and "a stage" not in captured.out
    assert "[1/7] a stage\n" in captured.err


@pytest.mark.slow
def test_demo_end_to_end_small(tmp_path):
    from radrl.cli.demo import main as demo

    # 2 GRPO steps: the demo recipes log every 2 steps (logging_steps: 2), so each run logs its rewards once
    report = demo(["--out", str(tmp_path), "--train", "12", "--test", "3", "--sft-steps", "2", "--grpo-steps", "2",
                   "--eval-rows", "6"])
    text = report.read_text()
    assert "## grounding" in text and "| SFT+GRPO |" in text and "## Time" in text
    assert (tmp_path / "reward_curve.png").stat().st_size > 0 and "![reward curve](reward_curve.png)" in text
    assert (tmp_path / "results.json").exists()
    board = (tmp_path / "compare" / "leaderboard.md").read_text()
    assert "SFT+GRPO-report" in board and "SFT+GRPO-grounding" in board
    assert "<img" in (tmp_path / "compare" / "report.html").read_text()
    # the radrl version that made every output: results, checkpoints, evaluation manifests, the comparison
    from radrl.package import version

    for path in ("results.json", "sft/radrl.json", "grpo-report/radrl.json", "eval-sft/manifest.json",
                 "compare/leaderboard.json"):
        assert json.loads((tmp_path / path).read_text())["radrl_version"] == version(), path


def test_smoke_flag_sets_the_sizes_and_explicit_values_win(monkeypatch, tmp_path):
    # `radrl demo --smoke` (what CI runs from the installed wheel) is the demo at SMOKE sizes; --train etc. override
    from radrl.cli import demo as cli_demo
    from radrl.demo import SMOKE

    seen = {}
    monkeypatch.setattr(cli_demo, "run_demo", lambda out, **k: seen.clear() or seen.update(k))
    cli_demo.main(["--smoke", "--out", str(tmp_path)])
    assert {k: seen[k] for k in SMOKE} == SMOKE
    cli_demo.main(["--smoke", "--train", "20", "--out", str(tmp_path)])
    assert seen["train"] == 20 and seen["test"] == SMOKE["test"]
    cli_demo.main(["--out", str(tmp_path)])
    assert (seen["train"], seen["test"], seen.get("sft_steps")) == (600, 400, None)   # the recipes' own steps
    assert seen["threads"] is None  # torch's default thread count unless --threads (results.json records it)
    cli_demo.main(["--smoke", "--threads", "1", "--out", str(tmp_path)])
    assert seen["threads"] == 1
    for bad in ("0", "-2"):  # refused before anything runs, never torch's default in disguise
        seen.clear()
        with pytest.raises(SystemExit):
            cli_demo.main(["--smoke", "--threads", bad, "--out", str(tmp_path)])
        assert not seen
