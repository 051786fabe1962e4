"""Fixed runs built from the real CXR fixtures: metric and CI snapshot, the comparison tables, the published
reference rows, and the HTML report rendered in headless Chromium."""

import csv
import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from radrl.cli.compare import main
from radrl.data.boxes import Box
from radrl.data.instructions import grounding_answer
from radrl.eval.compare import PUBLISHED, compare
from radrl.eval.contract import ContractError, mismatches
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
    (folder / "manifest.json").write_text(json.dumps({"name": name, "model": {"id": name, "engine": "fixed"},
                                                      "comparable": comparable_block(folder)}))
    return folder


def _sha(value) -> str:
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()


def comparable_block(folder: Path, max_new_tokens: int = 128) -> dict:
    """The manifest's `comparable` block (contract 1) as `radrl eval` writes it, from the run's own files:
    rows, ids and requests per task from predictions.jsonl, metric versions from metrics.json."""
    preds = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    metrics = json.loads((folder / "metrics.json").read_text())["tasks"]
    tasks = {}
    for task in dict.fromkeys(p["task"] for p in preds):
        mine = [p for p in preds if p["task"] == task]
        tasks[task] = {"rows": len(mine), "row_ids_sha256": _sha([p["id"] for p in mine]),
                       "requests_sha256": _sha([p["request"] for p in mine]), "max_new_tokens": max_new_tokens,
                       "mean_image_tokens": 64.0, "metric_versions": metrics[task]["versions"]}
    return {"contract": 1, "data_sha256": _sha("fixture rows"), "prompt_scheme": "radrl-requests-3",
            "pixels": {"min_pixels": 1024, "max_pixels": 451584},
            "decoding": {"temperature": 0.0, "top_p": None, "thinking": False, "box_instruction": False},
            "precision": "float32", "tasks": tasks,
            "machine": {"cpu": "fixture CPU", "isa": "avx512", "threads": 2, "gpus": []}}


def _variant(run: Path, folder: Path, block=None, predictions=None) -> Path:
    """A copy of ``run`` whose predictions (``predictions(list) -> list``) and then `comparable` block
    (``block(dict) -> dict | None``, given the block rebuilt from the new predictions) are changed."""
    shutil.copytree(run, folder)
    if predictions:
        lines = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
        (folder / "predictions.jsonl").write_text("".join(json.dumps(p) + "\n" for p in predictions(lines)))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["comparable"] = comparable_block(folder)
    if block:
        manifest["comparable"] = block(manifest["comparable"])
    if manifest["comparable"] is None:  # a run made before the contract
        del manifest["comparable"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
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
    # Report table: the paper's columns first, then ours; the oracle (references as answers) scores 100 on ROUGE-L
    # and the rule labeler's F1s. No CheXbert ran: its columns stay "-" (the rule labeler never fills them).
    header = next(x for x in md.splitlines() if x.startswith("| model | ROUGE-L"))
    assert header.startswith("| model | ROUGE-L | BERTScore F1 (distilbert) | CheXbert micro-F1 (14) | "
                             "CheXbert macro-F1 (14) | "
                             "RadGraph F1 (paper; level not stated) | GREEN | RadCliQ-v1 (lower better) | "
                             "CheXpert-rules micro-F1 (14) | CheXpert-rules macro-F1 (14) |")
    line = next(x for x in md.splitlines() if x.startswith("| B | "))
    # Macro F1 is 85.7 = 12/14: two labels no reference mentions score 0 by definition (chexpert_f1).
    assert line.startswith("| B | 100.0 [100.0, 100.0] | - | - | - | - | - | - | 100.0 | 85.7 |")
    ra, (lo, hi) = a["report"]["aggregate"]["rouge_l"], a["report"]["ci"]["rouge_l"]
    assert f"| A | {100 * ra:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] |" in md
    # Published rows are present and marked with the data they were measured on, with the paper's numbers.
    assert "| RadVLM + RL (published) on MIMIC-CXR test | 29.9 | 59.2 | 57.0 | 33.4 | 25.8 | 32.7 | 0.86 |" in md
    # paper order, one dataset per column; no "all" column
    assert ("| RadVLM + RL (published) on Chest ImaGenome / VinDr-CXR / MS-CXR / PadChest-GR | 84.5 | 45.9 | 87.9 "
            "| 63.0 | - |") in md
    # Per-class tables, lengths and the paired test: the oracle beats the fixed run on every grounding row.
    assert payload["grounding_per_class"]["B"]["Atelectasis"]["map50"] == 1.0
    assert payload["chexpert_per_label"]["B"]["Pleural Effusion"]["f1"] == 1.0
    refs_mean = sum(len(r["solution"]) for r in rows if r["task"] == "report") / 60
    assert payload["lengths"]["B"]["report"]["mean"] == pytest.approx(refs_mean)
    paired = payload["paired"]["tests"]["B"]["grounding"]["mean_iou"]
    assert paired["delta"] > 0 and paired["low"] > 0 and paired["p_value"] < 0.01
    assert (paired["n"], paired["excluded"]) == (len(rows) - 60, 0)  # same rows, same requests: all paired
    assert payload["mismatches"] == [] and payload["machines"] is None and "NOT COMPARABLE" not in md
    # CSV: one line per (run, task, metric), published values marked as such, with the data they come from.
    table = list(csv.DictReader((tmp_path / "leaderboard.csv").open()))
    assert {"ours", "published"} == {r["source"] for r in table}
    assert any(r["run"] == "A" and r["task"] == "grounding/abnormality" and r["metric"] == "map50" for r in table)
    # one unit per metric: the paper's percent values are back on the 0-1 scale of our keys
    assert {(r["metric"], r["value"], r["name"]) for r in table if r["run"] == "RadVLM + RL" and r["task"] == "report"
            and r["metric"] in ("rouge_l", "radcliq_v1")} == {("rouge_l", "0.299", "ROUGE-L"),
                                                               ("radcliq_v1", "0.86", "RadCliQ-v1 (lower better)")}
    assert {r["data"] for r in table if r["source"] == "published" and r["task"] == "grounding/anatomy"} \
        == {"Chest ImaGenome"}
    assert {r["mismatch"] for r in table} == {""}


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


def _set(path: str, value):
    """An edit of the `comparable` block at a dotted path ("pixels.max_pixels", "tasks.report.max_new_tokens")."""
    def edit(block: dict) -> dict:
        *keys, last = path.split(".")
        inner = block
        for k in keys:
            inner = inner[k]
        inner[last] = value
        return block
    return edit


def _ask_differently(preds: list[dict], n: int = 5) -> list[dict]:
    """The first ``n`` report rows asked in other words under the same ids (what another prompt seed does)."""
    report = [p for p in preds if p["task"] == "report"][:n]
    return [{**p, "request": p["request"] + " Be brief."} if p in report else p for p in preds]


# (case, how run B differs from run A, the refusal's line about it)
REFUSED = [
    ("other data file", {"block": _set("data_sha256", "0" * 64)}, "A vs B: data_sha256: "),
    ("other requests, same ids", {"predictions": _ask_differently}, "A vs B: report: requests_sha256: "),
    ("other pixel budget", {"block": _set("pixels.max_pixels", 200704)}, "A vs B: pixels.max_pixels: 451584 vs 200704"),
    ("other token limit", {"block": _set("tasks.report.max_new_tokens", 256)},
     "A vs B: report: max_new_tokens: 128 vs 256"),
    ("other metric version", {"block": _set("tasks.grounding.metric_versions.map50", "other")},
     'A vs B: grounding: metric_versions.map50: '),
    ("run made before the contract", {"block": lambda b: None},
     ("B: manifest.json has no `comparable` block (evaluated before radrl checked comparisons); re-run `radrl eval` "
      "into a new folder")),
]


@pytest.mark.parametrize("case,variant,line", REFUSED, ids=[r[0] for r in REFUSED])
def test_compare_refuses_runs_that_measured_different_things(runs, tmp_path, case, variant, line):
    other = _variant(runs[0], tmp_path / "B", **variant)
    with pytest.raises(ContractError) as e:
        compare([f"A={runs[0]}", f"B={other}"], tmp_path / "out", html=False)
    lines = str(e.value).splitlines()
    # a heading, one line per difference (naming runs, field and both values), then the fix
    assert len(lines) == 3 and lines[1].strip().startswith(line), str(e.value)
    assert "--allow-mismatch" in lines[2] and "radrl eval" in lines[2]
    assert not (tmp_path / "out").exists()  # nothing written


def test_runs_with_different_task_sets_compare_on_the_tasks_they_share(runs, tmp_path):
    """SFT on report and grounding, each GRPO model on its own task: compared where they overlap; another
    machine is noted, not refused."""
    def only(task):
        return lambda preds: [p for p in preds if p["task"] == task]
    report = _variant(runs[0], tmp_path / "R", predictions=only("report"), block=_set("machine.isa", "avx2"))
    grounding = _variant(runs[0], tmp_path / "G", predictions=only("grounding"))
    payload = compare([f"A={runs[0]}", f"R={report}", f"G={grounding}"], tmp_path / "out", html=False)
    assert payload["mismatches"] == []
    assert "R: fixture CPU, avx2, 2 threads" in payload["machines"]
    assert payload["machines"] in (tmp_path / "out" / "leaderboard.md").read_text()
    # R's paired tests: the 60 report rows; its grounding rows were never asked (absent from its predictions).
    assert set(payload["paired"]["tests"]["R"]) == {"report"}
    assert payload["paired"]["tests"]["R"]["report"]["rouge_l"]["n"] == 60
    # ...but a grounding run with another token limit is refused against A, the first run with grounding.
    other = _variant(grounding, tmp_path / "G2", block=_set("tasks.grounding.max_new_tokens", 64))
    with pytest.raises(ContractError, match="A vs G2: grounding: max_new_tokens: 128 vs 64"):
        compare([f"A={runs[0]}", f"R={report}", f"G2={other}"], tmp_path / "out2", html=False)


# (case, block of B as a change of A's, the differences reported: a field that follows from another is not repeated)
A = {"contract": 1, "data_sha256": "d", "pixels": {"max_pixels": 4},
     "tasks": {"report": {"rows": 2, "row_ids_sha256": "i", "requests_sha256": "r", "mean_image_tokens": 8.0}}}
FOLLOWS = [
    ("same", {}, []),
    ("fewer rows: other ids and requests follow", {"tasks": {"report": {**A["tasks"]["report"], "rows": 1,
                                                                      "row_ids_sha256": "j", "requests_sha256": "s"}}},
     ["A vs B: report: rows: 2 vs 1"]),
    ("other pixels: other image tokens follow",
     {"pixels": {"max_pixels": 8}, "tasks": {"report": {**A["tasks"]["report"], "mean_image_tokens": 9.0}}},
     ["A vs B: pixels.max_pixels: 4 vs 8"]),
    ("a metric only B scored (shown as '-' for A)",
     {"tasks": {"report": {**A["tasks"]["report"], "metric_versions": {"bertscore": "roberta-large L17"}}}}, []),
    ("same pixels, other image tokens", {"tasks": {"report": {**A["tasks"]["report"], "mean_image_tokens": 9.0}}},
     ["A vs B: report: mean_image_tokens: 8.0 vs 9.0"]),
    ("another contract version", {"contract": 2}, [("B: comparison contract 2, this radrl reads 1; re-run "
                                                    "`radrl eval` with this radrl into a new folder")]),
]


@pytest.mark.parametrize("case,change,want", FOLLOWS, ids=[f[0] for f in FOLLOWS])
def test_mismatches_one_line_per_cause(case, change, want):
    assert [m["text"] for m in mismatches({"A": A, "B": {**A, **change}})] == want


def test_allow_mismatch_writes_the_differences_atop_every_output(runs, tmp_path):
    other = _variant(runs[0], tmp_path / "B", predictions=_ask_differently, block=_set("pixels.max_pixels", 200704))
    out = tmp_path / "cmp"
    args = [f"A={runs[0]}", f"B={other}", "--out", str(out), "--examples", "1"]
    with pytest.raises(ContractError):
        main(args)
    main([*args, "--allow-mismatch"])
    md = (out / "leaderboard.md").read_text().splitlines()
    assert md[2].startswith("> **NOT COMPARABLE (written with --allow-mismatch): 2 difference(s)")
    assert md[4] == "> - A vs B: pixels.max_pixels: 451584 vs 200704"
    assert md[5].startswith("> - A vs B: report: requests_sha256: ")
    payload = json.loads((out / "leaderboard.json").read_text())
    assert [(m["runs"], m["task"], m["field"]) for m in payload["mismatches"]] == [
        (["A", "B"], None, "pixels.max_pixels"), (["A", "B"], "report", "requests_sha256")]
    table = list(csv.DictReader((out / "leaderboard.csv").open()))  # a plain CSV reader still reads it
    by_task = {r["task"]: r["mismatch"] for r in table if r["run"] == "B"}
    assert "pixels.max_pixels" in by_task["grounding"] and "requests_sha256" not in by_task["grounding"]
    assert "pixels.max_pixels" in by_task["report"] and "report: requests_sha256" in by_task["report"]
    page = (out / "report.html").read_text()
    assert re.search(r'<body><div class="mismatch" role="alert"><b>NOT COMPARABLE .*pixels\.max_pixels: 451584 vs '
                     r'200704</li>', page)
    # The paired tests leave out the 5 report rows asked differently.
    paired = payload["paired"]["tests"]["B"]
    assert (paired["report"]["rouge_l"]["n"], paired["report"]["rouge_l"]["excluded"]) == (55, 5)
    assert paired["grounding"]["map50"]["excluded"] == 0


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
    assert 'y="55.0" width' in svg  # A's bar top: top margin 10 + plot height (240 - 140 for the names - 10) * 0.5
    assert 'transform="rotate(-35' in svg  # long metric names are slanted under their group
    assert curves_svg({}, "empty") == ""  # nothing logged: no plot
    assert "polyline" in curves_svg({"r": [(1, 0.1), (2, 0.3)]}, "reward")
    # Findings: cardiomegaly matched, effusion missed, pneumothorax added.
    chips = _findings("Cardiomegaly. Small left pleural effusion.", "Cardiomegaly. Right pneumothorax.")
    assert "&#10003; Cardiomegaly" in chips and "missed Pleural Effusion" in chips and "added Pneumothorax" in chips
    (tmp_path / "log_history.json").write_text("{broken")
    with pytest.raises(ValueError, match=r"log_history.json"):
        _log_series(tmp_path)


def test_vary_lets_the_experiments_variable_differ_and_says_so():
    # The four-way experiment compares thinking and direct models on the same requests (one with " /think"):
    # thinking is its variable, allowed with --vary and named in the leaderboard; anything else still refuses.
    from radrl.eval.contract import mismatches

    base = {"contract": 1, "data_sha256": "d", "decoding": {"thinking": False, "temperature": 0.0},
            "tasks": {"report": {"rows": 2, "requests_sha256": "r"}}}
    think = {**base, "decoding": {"thinking": True, "temperature": 0.0}}
    assert [m["field"] for m in mismatches({"A": base, "B": think})] == ["decoding.thinking"]
    assert mismatches({"A": base, "B": think}, vary=("decoding.thinking",)) == []
    # the paper's defaults give thinking arms 4,096 report tokens against 1,024: the 8B experiment varies both
    longer = {**think, "tasks": {"report": {"rows": 2, "requests_sha256": "r", "max_new_tokens": 4096}}}
    base_limit = {**base, "tasks": {"report": {"rows": 2, "requests_sha256": "r", "max_new_tokens": 1024}}}
    assert mismatches({"A": base_limit, "B": longer}, vary=("decoding.thinking", "max_new_tokens")) == []
    other = {**think, "tasks": {"report": {"rows": 2, "requests_sha256": "s"}}}
    assert [m["field"] for m in mismatches({"A": base, "B": other}, vary=("decoding.thinking",))] == \
        ["requests_sha256"]
