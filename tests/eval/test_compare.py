"""Fixed runs built from the real CXR fixtures: metric and CI snapshot, the comparison tables, the published
reference rows, and the HTML report rendered in headless Chromium."""

import csv
import gzip
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from radrl.data.boxes import Box
from radrl.data.instructions import grounding_answer
from radrl.eval.compare import PUBLISHED, compare
from radrl.eval.generate import write_predictions
from radrl.eval.report import write_metrics, write_per_sample
from radrl.eval.score import score

SNAPSHOT = Path(__file__).parent / "fixtures" / "eval_snapshot.json"
CHROMIUM = "/usr/bin/chromium"


def _rows_and_predictions(cxr: Path, n_reports: int = 60):
    """Report rows from the RadEval impression pairs, grounding rows from the NIH expert boxes on the 12 images
    we have, with a fixed 'model': predicted boxes shifted by (i % 4) * 3 % of the image."""
    refs = (cxr / "reports" / "radeval_refs_chexpert_impression.txt").read_text().splitlines()[:n_reports]
    hyps = (cxr / "reports" / "radeval_preds_chexpert_impression.txt").read_text().splitlines()[:n_reports]
    prompt = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Write the report."}]}]
    rows = [{"id": f"rep{i}", "task": "report", "solution": r, "prompt": prompt, "images": []}
            for i, r in enumerate(refs)]
    images = {p.name: p for p in (cxr / "nih_bbox").glob("*.png")}
    with gzip.open(cxr / "nih_bbox" / "BBox_List_2017.csv.gz", "rt") as f:
        boxes = [r for r in csv.reader(f) if r and r[0] in images]
    shifted = []
    for i, (name, label, x, y, w, h, *_) in enumerate(boxes):
        x, y, w, h = (float(v) / 1024 for v in (x, y, w, h))
        ref = Box(x, y, x + w, y + h)
        d = (i % 4) * 0.03
        shifted.append(grounding_answer(label, [Box(min(1, x + d), y, min(1, x + w + d), y + h)]))
        rows.append({"id": f"box{i}", "task": "grounding", "kind": "abnormality",
                     "solution": grounding_answer(label, [ref]), "images": [str(images[name])],
                     "prompt": [{"role": "user", "content": [{"type": "image"},
                                                             {"type": "text", "text": f"Locate the {label}."}]}]})
    return rows, hyps + shifted


def _write_run(folder: Path, name: str, rows, completions) -> Path:
    """A run folder exactly as `radrl eval` writes it, from fixed completions (no model)."""
    folder.mkdir(parents=True)
    write_predictions(rows, completions, folder / "predictions.jsonl")
    results = score(rows, completions)
    from radrl.eval.score import score_by_kind

    write_per_sample(rows, results, folder / "per_sample.jsonl")
    write_metrics({**results, **score_by_kind(rows, completions)}, folder / "metrics.json",
                  extra={"model": name, "data": "fixture", "rows": len(rows)})
    (folder / "manifest.json").write_text(json.dumps({"name": name, "model": {"id": name, "engine": "fixed"}}))
    return folder


@pytest.fixture(scope="module")
def runs(cxr_data, tmp_path_factory):
    rows, completions = _rows_and_predictions(cxr_data)
    base = tmp_path_factory.mktemp("runs")
    fixed = _write_run(base / "fixed", "fixed", rows, completions)
    oracle = _write_run(base / "oracle", "oracle", rows, [r["solution"] for r in rows])  # references as answers
    return fixed, oracle, rows


def test_metrics_and_cis_on_fixed_predictions_match_the_snapshot(runs):
    """Aggregates and 95% bootstrap intervals (2,000 resamples, seed 0) of the fixed run are frozen in
    fixtures/eval_snapshot.json; a change in a metric or the bootstrap shows up here. After an intended
    change, regenerate with RADRL_UPDATE_SNAPSHOT=1 and review the diff."""
    metrics = json.loads((runs[0] / "metrics.json").read_text())
    got = {t: {"aggregate": v["aggregate"], "ci": v["ci"]} for t, v in metrics["tasks"].items()}
    if os.environ.get("RADRL_UPDATE_SNAPSHOT"):
        SNAPSHOT.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
    want = json.loads(SNAPSHOT.read_text())
    assert set(got) == set(want) == {"report", "grounding", "grounding/abnormality"}
    for task in want:
        assert got[task]["aggregate"] == pytest.approx(want[task]["aggregate"], abs=1e-9), task
        assert set(got[task]["ci"]) == set(want[task]["ci"]), task
        for key, interval in want[task]["ci"].items():
            assert got[task]["ci"][key] == pytest.approx(interval, abs=1e-9), (task, key)
        for key, (low, high) in got[task]["ci"].items():  # every interval brackets its estimate
            assert low - 1e-12 <= got[task]["aggregate"][key] <= high + 1e-12, (task, key)


def test_comparison_tables_from_two_fixed_runs(runs, tmp_path):
    fixed, oracle, rows = runs
    payload = compare([f"A={fixed}", f"B={oracle}"], tmp_path, published=True, html=False)
    md = (tmp_path / "leaderboard.md").read_text()
    a = json.loads((fixed / "metrics.json").read_text())["tasks"]
    # Report table: paper columns first; the oracle (references as answers) scores 100 on ROUGE-L and CheXpert.
    line = next(x for x in md.splitlines() if x.startswith("| B | "))
    # Macro F1 is 85.7 = 12/14: two labels no reference mentions score 0 by definition (chexpert_f1).
    assert line.startswith("| B | 100.0 [100.0, 100.0] | - | 100.0 | 85.7 | - | - | - | 100.0 |")
    ra, (lo, hi) = a["report"]["aggregate"]["rouge_l"], a["report"]["ci"]["rouge_l"]
    assert f"| A | {100 * ra:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] |" in md
    # Published rows are present and marked, with the paper's numbers.
    assert "| RadVLM + RL (published) | 29.9 | 59.2 | 57.0 | 33.4 | 25.8 | 32.7 | 0.86 |" in md
    assert "| RadVLM + RL (published) | 84.5 | 45.9 | 87.9 | 63.0 | - |" in md  # paper order; no "all" column
    # Per-class tables, lengths and the paired test: the oracle beats the fixed run on every grounding row.
    assert payload["grounding_per_class"]["B"]["Atelectasis"]["map50"] == 1.0
    assert payload["chexpert_per_label"]["B"]["Pleural Effusion"]["f1"] == 1.0
    refs_mean = sum(len(r["solution"]) for r in rows if r["task"] == "report") / 60
    assert payload["lengths"]["B"]["report"]["mean"] == pytest.approx(refs_mean)
    paired = payload["paired"]["tests"]["B"]["grounding"]["mean_iou"]
    assert paired["delta"] > 0 and paired["low"] > 0 and paired["p_value"] < 0.01
    # CSV: one line per (run, task, metric), published values marked as such.
    table = list(csv.DictReader((tmp_path / "leaderboard.csv").open()))
    assert {"ours", "published"} == {r["source"] for r in table}
    assert any(r["run"] == "A" and r["task"] == "grounding/abnormality" and r["metric"] == "map50" for r in table)


def test_published_rows_match_paper_md(cxr_data):
    """PUBLISHED is a copy of paper.md's headline tables; any drift fails here."""
    path = cxr_data.parents[1] / "docs" / "paper.md"  # shared/docs/paper.md beside shared/data/cxr
    assert path.exists(), f"{path} missing: the shared folder should hold docs/paper.md next to data/cxr"
    paper = path.read_text()
    for model, values in PUBLISHED["report"].items():
        assert f"| {model} | " + " | ".join(f"{v:.2f}" if i == 6 else f"{v:.1f}" for i, v in enumerate(values)) \
            + " |" in paper, model
    for model, values in PUBLISHED["grounding"].items():
        assert f"| {model} | " + " | ".join(f"{values[b]:.1f}" for b in values) + " |" in paper, model


# (case, run folders given, error text)
ERRORS = [
    ("not an eval folder", lambda t, f: [str(t)], "no metrics.json"),
    ("two runs with one name", lambda t, f: [f"X={f}", f"X={f}"], "share a name"),
]


@pytest.mark.parametrize("case,specs,error", ERRORS, ids=[e[0] for e in ERRORS])
def test_compare_errors_say_the_fix(runs, tmp_path, case, specs, error):
    with pytest.raises((ValueError, FileNotFoundError), match=error):
        compare(specs(tmp_path, runs[0]), tmp_path / "out", html=False)


def test_html_report_renders_in_headless_chromium(runs, tmp_path):
    """Self-contained HTML with every image inlined: Chromium loads it from disk with networking off and
    the page's own script counts the decoded images."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install -y chromium (.ci/run does this)"
    log = tmp_path / "log_history.json"
    log.write_text(json.dumps([{"step": s, "rewards/grounding_soft_f1/mean": s / 10, "completions/mean_length": 50 - s}
                               for s in range(1, 6)]))
    compare([f"A={runs[0]}", f"B={runs[1]}"], tmp_path / "cmp", published=True, logs={"grpo": str(log)},
            n_examples=3)
    page = (tmp_path / "cmp" / "report.html").read_text()
    n_images = page.count('<img src="data:image/png;base64,')
    assert n_images == 6  # 3 grounding examples x 2 runs
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing loaded from elsewhere
    assert page.count("<svg") == 4  # report bars, grounding bars, reward curve, length curve
    assert "missed" in page or "&#10003;" in page  # report findings marked
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                          "--disable-component-update", "--disable-sync", "--no-first-run",
                          f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", "--dump-dom",
                          (tmp_path / "cmp" / "report.html").as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    marker = re.search(r'<body data-images="(\d+)/(\d+)"', dom)
    assert marker, f"the page's load script did not run; DOM starts: {dom[:300]!r}"
    assert marker.groups() == (str(n_images), str(n_images))  # every image decoded (naturalWidth > 0)


def test_html_pieces_bars_curves_and_findings(tmp_path):
    from radrl.eval.html import _findings, _log_series, bars_svg, curves_svg

    svg = bars_svg({"rouge_l": {"A": (0.5, 0.4, 0.6), "B": (0.25, None, None)}}, height=240)
    assert svg.count("<rect") == 2 + 2  # two bars + two legend swatches
    assert svg.count("<line") == 5 + 3  # five grid lines + one error bar (A only: B has no interval)
    assert 'y="105.0" width' in svg  # A's bar top: top margin 10 + plot height 190 * (1 - 0.5)
    assert curves_svg({}, "empty") == ""  # nothing logged: no plot
    assert "polyline" in curves_svg({"r": [(1, 0.1), (2, 0.3)]}, "reward")
    # Findings: cardiomegaly matched, effusion missed, pneumothorax added.
    chips = _findings("Cardiomegaly. Small left pleural effusion.", "Cardiomegaly. Right pneumothorax.")
    assert "&#10003; Cardiomegaly" in chips and "missed Pleural Effusion" in chips and "added Pneumothorax" in chips
    (tmp_path / "log_history.json").write_text("{broken")
    with pytest.raises(ValueError, match="log_history.json"):
        _log_series(tmp_path)
