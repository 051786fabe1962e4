"""``radrl tiny-model --size/--set``: larger presets for RL experiments, and sizes checked before building."""

from __future__ import annotations

import pytest

from radrl.cli.tiny_model import main as tiny_model_main
from radrl.models.tiny import SIZE_PRESETS, check_sizes


def _params(s: dict) -> int:
    """Decoder parameters (no embeddings) of a preset: grows with width and depth."""
    head = s.get("head_dim") or s["hidden"] // s["heads"]
    attn = s["hidden"] * head * (2 * s["heads"] + 2 * s["kv_heads"])
    return s["layers"] * (attn + 3 * s["hidden"] * s["intermediate"])


def test_presets_are_valid_and_grow():
    sizes = [_params(check_sizes(dict(SIZE_PRESETS[name]))) for name in ("tiny", "small", "base")]
    assert sizes == sorted(sizes) and len(set(sizes)) == 3


@pytest.mark.parametrize(("sizes", "message"), [
    ({"hiden": 128}, "did you mean 'hidden'"),
    ({"layers": 0}, "positive integer"),
    ({"hidden": 100, "heads": 3}, "not divisible by heads"),
    ({"heads": 6, "kv_heads": 4, "hidden": 96}, "multiple of kv_heads"),
])
def test_bad_sizes_are_refused_with_the_fix(sizes, message):
    with pytest.raises(ValueError, match=message):
        check_sizes(sizes)


def test_cli_builds_a_larger_model(tmp_path, capsys):
    tiny_model_main([str(tmp_path / "t"), "--set", "layers=1", "vision_layers=1"])
    small = tiny_model_main([str(tmp_path / "s"), "--size", "small", "--set", "layers=1", "vision_layers=1"])
    out = capsys.readouterr().out.splitlines()
    counts = [int(line.split(" with ")[1].split(" ")[0].replace(",", "")) for line in out if " with " in line]
    assert len(counts) == 2 and counts[1] > 2 * counts[0]
    assert (small / "config.json").is_file()


def test_cli_refuses_a_bad_override(tmp_path, capsys):
    with pytest.raises(SystemExit):
        tiny_model_main([str(tmp_path / "x"), "--set", "layer=3"])
    assert "did you mean 'layers'" in capsys.readouterr().err
