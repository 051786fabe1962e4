"""Conversation rows: tasks, box text, thinking suffix."""

import json

import pytest

from radrl.data.boxes import Box
from radrl.data.instructions import (GROUNDING_PROMPTS, REPORT_PROMPTS, THINK_SUFFIX, build_conversations,
                                     to_dataset)
from radrl.data.schema import Sample


def _sample():
    return Sample(id="s1", image="a.png", findings="Moderate cardiomegaly. No pneumothorax.",
                  boxes=[Box(0.3, 0.5, 0.7, 0.8, "Cardiomegaly"), Box(0.1, 0.6, 0.3, 0.9, "Pleural Effusion"),
                         Box(0.7, 0.6, 0.9, 0.9, "Pleural Effusion")])


def _text(row):
    return row["prompt"][0]["content"][1]["text"]


def test_rows_per_task():
    rows = build_conversations([_sample()])
    # one report row plus one grounding row per finding with boxes
    assert [r["task"] for r in rows] == ["report", "grounding", "grounding"]
    assert rows[0]["solution"] == "Moderate cardiomegaly. No pneumothorax."
    assert _text(rows[0]) in REPORT_PROMPTS
    assert rows[0]["prompt"][0]["content"][0] == {"type": "image"}
    assert rows[0]["images"] == ["a.png"]


def test_grounding_answer_uses_paper_box_text():
    rows = build_conversations([_sample()], tasks=["grounding"])
    by_id = {r["id"]: r for r in rows}
    assert by_id["s1-ground-cardiomegaly"]["solution"] == "Cardiomegaly at [0.30, 0.50, 0.70, 0.80]"
    # several boxes of one finding: joined with " and "
    assert by_id["s1-ground-pleural_effusion"]["solution"] == (
        "Pleural Effusion at [0.10, 0.60, 0.30, 0.90] and [0.70, 0.60, 0.90, 0.90]")
    assert any(_text(by_id["s1-ground-cardiomegaly"]) == t.format(finding="cardiomegaly") for t in GROUNDING_PROMPTS)


def test_qwen_box_format():
    rows = build_conversations([_sample()], tasks=["grounding"], box_format="qwen")
    assert json.loads(rows[0]["solution"])[0] == {"bbox_2d": [300, 500, 700, 800], "label": "Cardiomegaly"}


@pytest.mark.parametrize("thinking", [False, True])
def test_thinking_suffix(thinking):
    rows = build_conversations([_sample()], thinking=thinking)
    assert all(_text(r).endswith(THINK_SUFFIX) == thinking for r in rows)
    assert all(r["thinking"] is thinking for r in rows)


def test_same_seed_same_phrasing_and_unknown_task():
    assert build_conversations([_sample()], seed=3) == build_conversations([_sample()], seed=3)
    with pytest.raises(ValueError, match="unknown task"):
        build_conversations([_sample()], tasks=["vqa"])


def test_sample_without_report_or_boxes_gives_no_rows():
    assert build_conversations([Sample(id="x", image="x.png")]) == []


def test_dataset_decodes_images(tmp_path):
    from PIL import Image

    Image.new("L", (32, 32), 128).save(tmp_path / "a.png")
    s = _sample()
    s.image = str(tmp_path / "a.png")
    ds = to_dataset(build_conversations([s]))
    assert ds[0]["images"][0].size == (32, 32)
