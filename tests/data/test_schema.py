"""Sample rows: round trips and errors that name the row."""

import json

import pytest

from radrl.data.boxes import Box
from radrl.data.schema import Sample, read_jsonl, write_jsonl


def _sample(**kw):
    base = {"id": "a", "image": "img/a.png", "findings": "No pneumothorax.", "labels": {"Pneumothorax": 0},
                "boxes": [Box(0.1, 0.2, 0.3, 0.4, "Cardiomegaly")]}
    return Sample(**{**base, **kw})


def test_row_round_trip():
    s = _sample()
    assert Sample.from_row(s.to_row()) == s


def test_jsonl_round_trip_resolves_relative_images(tmp_path):
    write_jsonl([_sample(), _sample(id="b")], tmp_path / "s.jsonl")
    back = list(read_jsonl(tmp_path / "s.jsonl"))
    assert [s.id for s in back] == ["a", "b"]
    assert back[0].image == str(tmp_path / "img/a.png")
    assert back[0].boxes[0].label == "Cardiomegaly"


def test_report_prefers_findings():
    assert _sample(findings=None, impression="Normal.").report == "Normal."
    assert _sample(impression="Normal.").report == "No pneumothorax."


@pytest.mark.parametrize("row, message", [
    ({"image": "x.png"}, "missing required"),                                        # no id
    ({"id": "x", "image": "x.png", "labels": {"Edema": 2}}, "label values"),          # bad label value
    ({"id": "x", "image": "x.png", "boxes": [{"box": [0, 0, 2, 2]}]}, "box 0"),       # box outside 0-1
    (["x", "y"], "expected a JSON object"),                                            # not an object
    ({"id": "x", "image": "x.png", "finding": "typo"}, r"unknown field\(s\) \['finding'\]"),  # misspelt field
    ({"id": "x", "image": "x.png", "findings": 5}, "'findings' must be text"),       # wrong type
    ({"id": "x", "image": "x.png", "labels": ["Edema"]}, "labels must map"),          # labels not a mapping
    ({"id": "x", "image": "x.png", "width": "1024"}, "'width' must be a whole number"),   # text, not a number
    ({"id": "x", "image": "x.png", "height": 1024.5}, "'height' must be a whole number"),  # not whole
    ({"id": "x", "image": "x.png", "width": True}, "'width' must be a whole number"),     # bool is not a size
    ({"id": "x", "image": "x.png", "labels": '{"Edema": 1'}, "labels text is not valid JSON"),  # truncated text
])
def test_from_row_errors(row, message):
    with pytest.raises(ValueError, match=message) as e:
        Sample.from_row(row, where="file.jsonl:3")
    assert str(e.value).startswith("file.jsonl:3")  # every message names the file and row


@pytest.mark.parametrize("size", [None, 0, 1024])
def test_from_row_accepts_whole_or_missing_sizes(size):
    s = Sample.from_row({"id": "x", "image": "x.png", "width": size, "height": size, "labels": '{"Edema": 1}'})
    assert (s.width, s.height, s.labels) == (size, size, {"Edema": 1})


def test_bad_json_line_names_file_and_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text(json.dumps(_sample().to_row()) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:2"):
        list(read_jsonl(p))
