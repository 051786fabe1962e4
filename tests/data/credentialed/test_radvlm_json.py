"""RadVLM / LLaVA instruction JSON: import as-is, export ours, round trip, broken entries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from radrl.data.boxes import Box
from radrl.data.instructions import THINK_SUFFIX, build_task_mix, to_dataset
from radrl.data.schema import Sample
from radrl.data.sources import Skip
from radrl.data.sources.radvlm_json import (
    export,
    iter_json_array,
    read_conversations,
    to_llava,
    to_row,
)

ENTRIES = [
    # single turn, image token first (the usual RadVLM form)
    {"id": "mimic-1", "image": "mimic/p10/x.jpg",
     "conversations": [{"from": "human", "value": "<image>\nWrite the findings."},
                       {"from": "gpt", "value": "Heart size is normal."}]},
    # multi-turn: the earlier answer goes into the prompt as an assistant message
    {"id": "mscxr-2", "image": "/abs/y.jpg",
     "conversations": [{"from": "human", "value": "<image>\nWhat do you see?"},
                       {"from": "gpt", "value": "A left effusion."},
                       {"from": "human", "value": "Where is it?" + THINK_SUFFIX},
                       {"from": "gpt", "value": "[0.60, 0.55, 0.95, 0.90]"}]},
    # no <image> token: the image goes into the first user turn
    {"id": "chexpert-3", "image": "c.png",
     "conversations": [{"from": "human", "value": "List the abnormalities."}, {"from": "gpt", "value": "Edema"}]},
    # the same id again (one image used by two tasks): kept under a new id
    {"id": "mimic-1", "image": "mimic/p10/x.jpg",
     "conversations": [{"from": "human", "value": "<image>\nAbnormalities?"}, {"from": "gpt", "value": "None"}]},
    # broken entries, each skipped with a reason
    {"id": "no-image", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "x"}]},
    {"id": "ends-with-human", "image": "a.png", "conversations": [{"from": "human", "value": "<image>\nA?"},
                                                                  {"from": "gpt", "value": "B"},
                                                                  {"from": "human", "value": "C?"}]},
    {"id": "bad-role", "image": "a.png", "conversations": [{"from": "system", "value": "s"},
                                                           {"from": "gpt", "value": "B"}]},
    "not an object",
]


@pytest.fixture
def radvlm_file(tmp_path):
    path = tmp_path / "radvlm" / "all_train.json"
    path.parent.mkdir()
    path.write_text(json.dumps(ENTRIES, indent=1))
    return path


def test_import(radvlm_file):
    items = list(read_conversations(radvlm_file))
    rows = [r for r in items if not isinstance(r, Skip)]
    skips = [s for s in items if isinstance(s, Skip)]
    assert [r["id"] for r in rows] == ["mimic-1", "mscxr-2", "chexpert-3", "mimic-1-all_train-3"]
    one, multi, no_token, _ = rows
    assert one["images"] == [str(radvlm_file.parent / "mimic/p10/x.jpg")]     # relative to the JSON's folder
    assert one["prompt"] == [{"role": "user", "content": [{"type": "image"},
                                                          {"type": "text", "text": "Write the findings."}]}]
    assert (one["solution"], one["task"], one["kind"], one["thinking"]) == ("Heart size is normal.", "imported",
                                                                            "radvlm", False)
    assert [m["role"] for m in multi["prompt"]] == ["user", "assistant", "user"]
    assert multi["images"] == ["/abs/y.jpg"] and multi["task"] == "conversation" and multi["thinking"] is True
    assert no_token["prompt"][0]["content"][0] == {"type": "image"}
    assert [s.reason for s in skips] == ["bad entry"] * 4
    assert "no image path" in skips[0].detail and "end with gpt" in skips[1].detail


def test_images_option_and_folder(radvlm_file, tmp_path):
    (radvlm_file.parent / "more.jsonl").write_text(json.dumps(ENTRIES[0]) + "\n{broken\n")
    items = list(read_conversations(radvlm_file.parent, images=str(tmp_path / "imgs")))
    rows = [r for r in items if not isinstance(r, Skip)]
    assert rows[0]["images"] == [str(tmp_path / "imgs/mimic/p10/x.jpg")]
    # the .jsonl broken line is a counted skip naming file and line
    assert any(s.reason == "bad JSON" and s.where.endswith("more.jsonl:2") for s in items if isinstance(s, Skip))


@pytest.mark.parametrize("chunk", [1, 7, 64, 1 << 20])
def test_incremental_array_reader_matches_json_load(radvlm_file, tmp_path, chunk):
    # element boundaries fall inside chunks at every size, down to one character
    assert [obj for _, obj in iter_json_array(radvlm_file, chunk_size=chunk)] == json.loads(radvlm_file.read_text())
    # top-level scalars cut by a chunk boundary are not split in two
    scalars = tmp_path / "s.json"
    scalars.write_text('[12345, "abc", true, null, 6.5e3]')
    assert [obj for _, obj in iter_json_array(scalars, chunk_size=chunk)] == [12345, "abc", True, None, 6.5e3]


@pytest.mark.parametrize("text, match", [
    ('{"id": 1}', "expected a JSON array"),          # an object, not an array
    ('[{"id": 1}, {"id": ', "truncated"),            # cut off mid-element
    ('[{"id": 1}, {"id" 2}]', "element 1 is not valid JSON"),
    ("", "empty file"),
])
def test_broken_files_fail_clearly(tmp_path, text, match):
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        list(read_conversations(path))


def test_export_then_import_round_trip(tmp_path):
    """Our task mix -> LLaVA JSON -> import: same requests, answers, images (single- and multi-turn)."""
    s = Sample(id="m1", image=str(tmp_path / "img/m1.png"), source="ms-cxr", findings="Small left effusion.",
               labels={"Pleural Effusion": 1}, boxes=[Box(0.6, 0.55, 0.95, 0.9, "Small left effusion.")])
    rows = list(build_task_mix([s], thinking=True))
    out = tmp_path / "export" / "radrl_train.json"
    assert export(rows, out, image_root=tmp_path / "img") == len(rows)
    data = json.loads(out.read_text())
    assert data[0]["image"] == "m1.png" and data[0]["conversations"][0]["value"].startswith("<image>\n")
    back = list(read_conversations(out, images=str(tmp_path / "img")))
    assert len(back) == len(rows)
    for a, b in zip(rows, back):
        assert (b["id"], b["images"], b["solution"], b["thinking"]) == (a["id"], a["images"], a["solution"], True)
        assert b["prompt"] == a["prompt"] and b["completion"] == a["completion"]


def test_to_llava_needs_one_image():
    row = to_row(ENTRIES[0], Path("/d"), "x")
    row["images"] = []
    with pytest.raises(ValueError, match="exactly one image"):
        to_llava(row)


def test_imported_rows_build_a_dataset(radvlm_file, tmp_path):
    from PIL import Image

    rows = [r for r in read_conversations(radvlm_file, images=str(tmp_path)) if not isinstance(r, Skip)]
    for r in rows:
        r["images"] = [str(tmp_path / "a.png")]
    Image.new("L", (16, 16)).save(tmp_path / "a.png")
    ds = to_dataset(rows)
    assert len(ds) == 4 and ds[1]["images"][0].size == (16, 16)


def test_export_llava_writes_the_task_mix(tmp_path, capsys):
    from radrl.cli.export_llava import main as export_main
    from radrl.data.schema import write_jsonl

    samples = [Sample(id="m1", image=str(tmp_path / "img/m1.jpg"), source="mimic-cxr", findings="Clear lungs.",
                      labels={"No Finding": 1}),
               Sample(id="p1", image=str(tmp_path / "img/p1.png"), source="padchest-gr", findings="Cardiomegaly.",
                      boxes=[Box(0.3, 0.45, 0.78, 0.8, "Cardiomegaly.")])]
    write_jsonl(samples, tmp_path / "samples.jsonl")
    out = tmp_path / "llava.json"
    export_main([str(tmp_path / "samples.jsonl"), "--out", str(out), "--image-root", str(tmp_path)])
    data = json.loads(out.read_text())
    # MIMIC: report, classification, conversation; PadChest-GR: phrase grounding x2, conversation x4
    assert len(data) == 3 + 2 + 4 and "wrote 9 conversations" in capsys.readouterr().out
    assert {d["image"] for d in data} == {"img/m1.jpg", "img/p1.png"}
    with pytest.raises(SystemExit):
        export_main([str(tmp_path / "missing.jsonl"), "--out", str(out)])
