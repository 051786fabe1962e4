"""`radrl score` and `radrl label` on the real report fixtures, input formats and their errors,
and a snapshot of every offline metric and reward value on a fixed set.

Refresh the snapshot (after a deliberate change to a metric, with the reason in the commit):
    RADRL_UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest -q tests/metrics/test_cli.py -k snapshot
"""

import csv
import json
import math
import os
from pathlib import Path

import pytest

from radrl.cli import main as radrl_main
from radrl.data.boxes import Box
from radrl.metrics import METRICS, MetricResult
from radrl.metrics.chexpert import chexpert_f1
from radrl.metrics.files import LABELER_COLUMNS, label_rows, read_reports
from radrl.metrics.grounding import score_grounding
from radrl.metrics.text import score_text
from radrl.rewards import REWARDS

SNAPSHOT = Path(__file__).parent / "fixtures" / "offline_metrics_snapshot.json"


@pytest.fixture(scope="module")
def radeval(cxr_data):
    """The 200 RadEval reference / generated impression pairs (one report per line)."""
    reports = cxr_data / "reports"
    return reports / "radeval_refs_chexpert_impression.txt", reports / "radeval_preds_chexpert_impression.txt"


# --- radrl label ----------------------------------------------------------------------------


def test_label_reproduces_the_chexpert_labelers_file(cxr_data, tmp_path):
    # the 4 hand-labelled reports: same header, column order, codes (1.0/0.0/-1.0/blank) and quoting
    gold = cxr_data / "reports" / "chexpert_labeler_labeled_reports.csv"
    out = tmp_path / "labeled.csv"
    radrl_main(["label", str(gold), "--out", str(out)])
    assert out.read_text(encoding="utf-8") == gold.read_text(encoding="utf-8")


def test_label_to_stdout_from_text(tmp_path, capsys):
    path = tmp_path / "reports.txt"
    path.write_text("Moderate cardiomegaly. No pneumothorax.\nPossible consolidation.\n\n", encoding="utf-8")
    radrl_main(["label", str(path)])
    rows = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert [r["Reports"] for r in rows] == ["Moderate cardiomegaly. No pneumothorax.", "Possible consolidation.", ""]
    assert (rows[0]["Cardiomegaly"], rows[0]["Pneumothorax"], rows[0]["Edema"]) == ("1.0", "0.0", "")
    assert rows[1]["Consolidation"] == "-1.0"
    assert rows[2]["No Finding"] == "1.0"  # nothing mentioned: the labeler's No Finding
    assert list(rows[0]) == ["Reports", *LABELER_COLUMNS]


def test_label_rows_codes():
    # CheXpert's order puts Lung Lesion before Lung Opacity (unlike radrl's CHEXPERT_LABELS)
    row = label_rows(["Right lung mass. Patchy opacity."])[0]
    assert list(row)[4:6] == ["Lung Lesion", "Lung Opacity"]
    assert (row["Lung Lesion"], row["Lung Opacity"], row["No Finding"]) == ("1.0", "1.0", "")


# --- input formats -----------------------------------------------------------------------------

# (case, file name, content, read_reports kwargs, expected reports)
FORMATS = [
    # text: one report per line, a final newline ends the last line, CRLF is accepted
    ("text", "r.txt", "a b.\r\nc d.\r\n", {}, ["a b.", "c d."]),
    # text: blank lines are empty reports, kept for alignment
    ("text_blank", "r.txt", "a\n\nb", {}, ["a", "", "b"]),
    # text: an empty file has no report
    ("text_empty", "r.txt", "", {}, []),
    # text: a report may hold a vertical tab or a Unicode line separator (not line breaks here)
    ("text_odd_breaks", "r.txt", "a\x0bb\u2028c\n", {}, ["a\x0bb\u2028c"]),
    # JSONL: the only string field is the report; blank lines skipped
    ("jsonl_single", "r.jsonl", '{"id": 1, "report": "a"}\n\n{"id": 2, "report": "b"}\n', {}, ["a", "b"]),
    # JSONL: the named field
    ("jsonl_column", "r.jsonl", '{"ref": "a", "pred": "b"}\n', {"column": "pred"}, ["b"]),
    # CSV: the CheXpert labeler's "Reports" column, with quoted newlines inside a report
    ("csv_reports", "r.csv", 'Reports,x\n"line one\nline two",1\nb,2\n', {}, ["line one\nline two", "b"]),
    # CSV: a single column of any name
    ("csv_single", "r.csv", "text\na\nb\n", {}, ["a", "b"]),
    # CSV: the named column
    ("csv_column", "r.csv", "id,findings\n1,a\n2,b\n", {"column": "findings"}, ["a", "b"]),
    # CSV: no header (the CheXpert labeler's input format), first column
    ("csv_no_header", "r.csv", "a,1\nb,2\n", {"header": False}, ["a", "b"]),
    # UTF-8 with a byte-order mark
    ("bom", "r.txt", "\ufeffa\n", {}, ["a"]),
]


@pytest.mark.parametrize("case,name,content,kwargs,expected", FORMATS, ids=[f[0] for f in FORMATS])
def test_read_reports(tmp_path, case, name, content, kwargs, expected):
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8"))
    assert read_reports(path, **kwargs) == expected


# (case, file name, content bytes, kwargs, message fragment)
BAD_INPUTS = [
    # JSONL line that is not JSON: file and line named
    ("jsonl_broken", "r.jsonl", b'{"report": "a"}\n{"report": \n', {}, r"r.jsonl, line 2: not valid JSON"),
    # JSONL with two text fields and no --column
    ("jsonl_ambiguous", "r.jsonl", b'{"ref": "a", "pred": "b"}\n', {}, r"line 1: 2 text fields .* --column"),
    # JSONL field missing on a row
    ("jsonl_missing_field", "r.jsonl", b'{"pred": "a"}\n{"id": 3}\n', {"column": "pred"},
     r"line 2: field 'pred' is missing"),
    # JSONL row that is a list
    ("jsonl_list", "r.jsonl", b'["a"]\n', {}, r"line 1: a JSON list, not an object"),
    # CSV with several columns and none named Reports
    ("csv_ambiguous", "r.csv", b"a,b\n1,2\n", {}, r"columns \['a', 'b'\]; say which .* --column"),
    # CSV column that is not in the header
    ("csv_no_column", "r.csv", b"a,b\n1,2\n", {"column": "c"}, r"no column 'c'; the header has"),
    # CSV row too short for the column
    ("csv_short_row", "r.csv", b"id,report\n1,a\n2\n", {"column": "report"}, r"row 3: 1 fields"),
    # a column for a plain-text file
    ("text_with_column", "r.txt", b"a\n", {"column": "x"}, "file is plain text"),
    # not UTF-8
    ("latin1", "r.txt", "caf\xe9\n".encode("latin-1"), {}, "not UTF-8 text"),
]


@pytest.mark.parametrize("case,name,content,kwargs,message", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_read_reports_errors(tmp_path, case, name, content, kwargs, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_reports(path, **kwargs)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_reports(tmp_path / "nope.txt")


# --- radrl score ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_score_real_files_prints_the_metrics(radeval, capsys, tmp_path):
    refs_path, preds_path = radeval
    out = tmp_path / "per_sample.jsonl"
    radrl_main(["score", "--refs", str(refs_path), "--preds", str(preds_path), "--metrics", "text,chexpert",
                "--out", str(out)])
    lines = capsys.readouterr().out.splitlines()
    printed = dict(line.split()[:2] for line in lines[2:] if len(line.split()) >= 2)
    # each key with its display name: the rule labeler named as such, with its label count
    assert any(line.split()[0] == "chexpert_rules_micro_f1_14" and "CheXpert-rules micro-F1 (14)" in line
               for line in lines)
    refs = refs_path.read_text(encoding="utf-8").split("\n")
    preds = preds_path.read_text(encoding="utf-8").split("\n")
    expected = MetricResult.merge([score_text(refs, preds), chexpert_f1(refs, preds)])
    assert printed["n"] == "200" and printed["empty_predictions"] == "0"
    for key, value in expected.aggregate.items():  # the table is the metrics' own aggregates
        assert float(printed[key]) == pytest.approx(value, abs=5e-5), key
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 200 and rows[7]["reference"] == refs[7] and rows[7]["prediction"] == preds[7]
    for key, values in expected.per_sample.items():
        assert [r[key] for r in rows] == values, key


def test_score_csv_out_and_jsonl_columns(tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text("\n".join(json.dumps({"ref": r, "gen": g}) for r, g in [
        ("No pleural effusion.", "No pleural effusion."),
        ("Moderate cardiomegaly.", "<think>heart looks big</think>Mild cardiomegaly."),  # the think block is dropped
    ]), encoding="utf-8")
    out = tmp_path / "per_sample.csv"
    radrl_main(["score", "--refs", str(data), "--preds", str(data), "--ref-column", "ref", "--pred-column", "gen",
                "--metrics", "text", "--out", str(out)])
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["prediction"] for r in rows] == ["No pleural effusion.", "Mild cardiomegaly."]
    assert float(rows[0]["rouge_l"]) == 1.0 and float(rows[1]["rouge_l"]) == pytest.approx(0.5)


# (case, extra arguments, how to damage the preds file, message fragment)
SCORE_ERRORS = [
    # one prediction missing: both files and both counts named
    ("mismatch", [], lambda lines: lines[:-1], r"refs.txt has 3 references but .*preds.txt has 2 predictions"),
    # a metric that does not exist: the known ones listed
    ("unknown_metric", ["--metrics", "text,bleurt"], None, r"unknown metric\(s\) \['bleurt'\]; choose from"),
]


@pytest.mark.parametrize("case,args,damage,message", SCORE_ERRORS, ids=[s[0] for s in SCORE_ERRORS])
def test_score_errors(tmp_path, case, args, damage, message):
    lines = ["No effusion.", "Mild cardiomegaly.", "Clear lungs."]
    (tmp_path / "refs.txt").write_text("\n".join(lines), encoding="utf-8")
    (tmp_path / "preds.txt").write_text("\n".join(damage(lines) if damage else lines), encoding="utf-8")
    with pytest.raises(SystemExit, match=message):
        radrl_main(["score", "--refs", str(tmp_path / "refs.txt"), "--preds", str(tmp_path / "preds.txt"), *args])


def test_score_needs_a_model_for_bertscore(radeval, monkeypatch):
    # a model-based metric without its weights: the metric's own message (what to download, where) comes through
    monkeypatch.delenv("RADRL_BERTSCORE_MODEL", raising=False)
    with pytest.raises(SystemExit, match="metric 'bertscore' failed: no BERTScore model folder given"):
        radrl_main(["score", "--refs", str(radeval[0]), "--preds", str(radeval[1]), "--metrics", "bertscore"])


# --- snapshot of every offline value ------------------------------------------------------------

# Fixed completions for the rewards: (completion, task, solution, thinking)
REWARD_ROWS = [
    ("Cardiomegaly at [0.35, 0.51, 0.75, 0.64]", "grounding", "Cardiomegaly at [0.38, 0.47, 0.76, 0.62]", False),
    ('[{"bbox_2d": [100, 100, 500, 500], "label": "effusion"}, {"bbox_2d": [600, 600, 900, 900]}]', "grounding",
     "Effusion at [0.1, 0.12, 0.5, 0.5]", False),
    ("<think>heart</think>[0.2, 0.2, 0.4, 0.4] and [nan, 0, 1, 1]", "grounding", "Nodule at [0.2, 0.25, 0.4, 0.4]",
     True),
    ("<think>big heart</think>Moderate cardiomegaly. No pneumothorax.", "report",
     "Moderate cardiomegaly. No pneumothorax. Small left pleural effusion.", True),
    ("No acute cardiopulmonary process.", "report", "Heart size normal and lungs are clear. No effusion.", False),
    ("Clear", "report", "The lungs are clear.", False),
    ("<think>never closed", "report", "Mild pulmonary edema.", True),
]

# Fixed grounding predictions and references for score_grounding
BOX_SETS = [
    ([Box(0.35, 0.51, 0.75, 0.64)], [Box(0.38, 0.47, 0.76, 0.62)], 0),
    ([Box(0.1, 0.1, 0.5, 0.5), Box(0.6, 0.6, 0.9, 0.9)], [Box(0.1, 0.12, 0.5, 0.5)], 1),
    ([], [Box(0.2, 0.2, 0.4, 0.4)], 0),
    ([Box(0.0, 0.0, 0.5, 0.5), Box(0.5, 0.5, 1.0, 1.0)], [Box(0.5, 0.5, 1.0, 1.0), Box(0.0, 0.0, 0.5, 0.5)], 0),
]


def _offline_values(refs_path, preds_path) -> dict:
    refs = refs_path.read_text(encoding="utf-8").split("\n")
    preds = preds_path.read_text(encoding="utf-8").split("\n")
    out = {}
    for name in ("text", "chexpert"):  # METRICS that need no model, Java or download (meteor: test_text.py)
        r = METRICS[name](refs, preds)
        out[name] = {"aggregate": r.aggregate, "per_sample": r.per_sample}
    g = score_grounding([p for p, _, _ in BOX_SETS], [r for _, r, _ in BOX_SETS], invalid=[k for _, _, k in BOX_SETS])
    out["grounding"] = {"aggregate": g.aggregate, "per_sample": g.per_sample}
    completions, tasks, solutions, thinking = (list(c) for c in zip(*REWARD_ROWS, strict=True))
    out["rewards"] = {name: REWARDS[name](completions, task=tasks, solution=solutions, thinking=thinking)
                      for name in ("grounding_soft_f1", "report_gleu", "report_rouge_l", "report_clinical",
                                   "report_chexpert_f1", "think_format", "report_length_guard")}
    return out


def _assert_close(got, want, where="snapshot"):
    if isinstance(want, dict):
        assert sorted(got) == sorted(want), f"{where}: keys {sorted(got)} != {sorted(want)}"
        for k in want:
            _assert_close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert len(got) == len(want), f"{where}: {len(got)} values, snapshot has {len(want)}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            _assert_close(g, w, f"{where}[{i}]")
    elif want is None:
        assert got is None, f"{where}: {got} != None"
    else:
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12), f"{where}: {got!r} != snapshot {want!r}"


@pytest.mark.slow
def test_offline_metric_snapshot(radeval):
    # every offline metric and reward value on fixed inputs; a change here must be deliberate
    got = _offline_values(*radeval)
    if os.environ.get("RADRL_UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    _assert_close(got, json.loads(SNAPSHOT.read_text(encoding="utf-8")))
