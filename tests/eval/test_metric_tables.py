"""Tables built from MetricSpecs: every key a run has is shown under its truthful name, nothing is dropped, and the
rule labeler never fills a CheXbert column. Runs are written as `radrl eval` writes them, with the numbers of
model-based scorers (BERTScore, RadCliQ, CheXbert) added as such a run would have them."""

import json
import statistics
from pathlib import Path

import pytest

from radrl.eval.compare import compare, load_run, paired_tests, report_table
from radrl.eval.generate import write_predictions
from radrl.eval.report import markdown_table, summary_line, write_metrics, write_per_sample
from radrl.eval.score import score

REFS = ["Moderate cardiomegaly. No pneumothorax.", "Small left pleural effusion.", "No acute process.",
        "Right lower lobe consolidation."]
BOX = "Cardiomegaly at [0.30, 0.50, 0.70, 0.80]"


def _run(folder: Path, name: str, hyps: list[str], per_sample: dict, aggregate: dict) -> Path:
    """A run folder of 4 report rows and 2 grounding rows; ``per_sample`` / ``aggregate``: extra report keys."""
    prompt = [{"role": "user", "content": [{"type": "text", "text": "Write the report."}]}]
    rows = [{"id": f"r{i}", "task": "report", "solution": r, "prompt": prompt, "images": []}
            for i, r in enumerate(REFS)]
    rows += [{"id": f"g{i}", "task": "grounding", "solution": BOX, "prompt": prompt, "images": []} for i in range(2)]
    completions = [*hyps, BOX, "Cardiomegaly at [0.35, 0.50, 0.70, 0.80]"]
    results = score(rows, completions)
    for k, v in per_sample.items():
        results["report"].per_sample[k] = v
        results["report"].aggregate[k] = statistics.fmean(v)
    results["report"].aggregate.update(aggregate)
    folder.mkdir(parents=True)
    write_predictions(rows, completions, folder / "predictions.jsonl")
    write_per_sample(rows, results, folder / "per_sample.jsonl")
    write_metrics(results, folder / "metrics.json", n_resamples=200, extra={"model": name, "data": "fixture"})
    (folder / "manifest.json").write_text(json.dumps({"name": name, "model": {"id": name, "engine": "fixed"}}))
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("specruns")
    # A: rule labeler only, plus BERTScore, RadCliQ-v1 and a key no spec declares; B adds CheXbert
    extra = {"bertscore": [0.5, 0.6, 0.7, 0.8], "radcliq_v1": [1.2, 0.9, 1.0, 1.1], "future_score": [1, 2, 3, 4]}
    a = _run(base / "a", "A", ["Cardiomegaly.", "Left effusion.", "Normal.", "Pneumonia."], extra, {})
    better = {k: [x + 0.1 if k == "bertscore" else x - 0.3 for x in v] for k, v in extra.items()}
    b = _run(base / "b", "B", REFS, better, {"chexbert_f1_micro_14": 0.42})
    return a, b


def _column(header: list[str], rows: list[list[str]], name: str, model: str) -> str:
    return next(r for r in rows if r[0] == model)[header.index(name)]


def test_model_based_and_unknown_keys_reach_every_table(runs, tmp_path):
    a, b = runs
    agg = json.loads((a / "metrics.json").read_text())["tasks"]["report"]["aggregate"]
    # metrics.md's table: each key under its spec's name, the unknown one under its key
    md = markdown_table({"A": {"report": agg}}, "report")
    for name in ("BERTScore F1", "RadCliQ-v1 (lower better)", "CheXpert-rules micro-F1 (14)", "future_score"):
        assert f" {name} |" in md.splitlines()[0], name
    assert "| 65.0 |" in md and "| 1.050 |" in md  # BERTScore in percent, RadCliQ-v1 raw
    # the leaderboard: the same keys, and a legend that says what they mean and which way is better
    compare([f"A={a}", f"B={b}"], tmp_path, allow_mismatch=True)
    board = (tmp_path / "leaderboard.md").read_text()
    assert "<th>RadCliQ-v1 (lower better)</th>" in (tmp_path / "report.html").read_text()
    header = next(x for x in board.splitlines() if x.startswith("| model | ROUGE-L"))
    for name in ("BERTScore F1", "RadCliQ-v1 (lower better)", "future_score", "BLEU-1", "CIDEr-D", "answer chars"):
        assert f" {name} |" in header, name
    assert "**RadCliQ-v1 (lower better)** (`radcliq_v1`)" in board and "1/RadCliQ-v1" in board
    # the terminal summary names every key too
    line = summary_line("report", agg)
    assert line.startswith("report (n=4): ROUGE-L ") and "RadCliQ-v1 (lower better) 1.050" in line \
        and "future_score 2.500" in line


def test_rule_labeler_never_fills_a_chexbert_column(runs):
    loaded = [load_run(f"A={runs[0]}"), load_run(f"B={runs[1]}")]
    header, rows = report_table(loaded, published=True)
    report = json.loads((runs[0] / "metrics.json").read_text())["tasks"]["report"]
    rules = report["aggregate"]["chexpert_rules_micro_f1_14"]
    assert _column(header, rows, "CheXbert micro-F1 (14)", "A") == "-"  # no CheXbert ran for A
    assert _column(header, rows, "CheXpert-rules micro-F1 (14)", "A") == f"{100 * rules:.1f}"
    assert _column(header, rows, "CheXbert micro-F1 (14)", "B") == "42.0"  # B's CheXbert scorer keys
    assert _column(header, rows, "CheXbert macro-F1 (14)", "B") == "-"
    # the paper's CheXbert numbers sit in the CheXbert column, never in the rule labeler's
    paper = next(r[0] for r in rows if r[0].startswith("RadVLM + RL (published)"))
    assert _column(header, rows, "CheXbert micro-F1 (14)", paper) == "57.0"
    assert _column(header, rows, "CheXpert-rules micro-F1 (14)", paper) == "-"


def test_paired_tests_cover_every_shared_per_sample_key_with_its_direction(runs):
    a, b = load_run(f"A={runs[0]}"), load_run(f"B={runs[1]}")
    tests = paired_tests(a, b, n_resamples=200)
    assert {"rouge_l", "bleu", "clinical", "chexpert_rules_sample_f1", "bertscore", "radcliq_v1", "future_score",
            "avg_chars"} <= set(tests["report"])
    assert "bleu4" not in tests["report"]  # the same numbers as bleu
    assert {"soft_f1", "map50", "mean_iou", "acc50"} <= set(tests["grounding"])
    assert tests["report"]["radcliq_v1"]["higher_is_better"] is False
    assert tests["report"]["radcliq_v1"]["delta"] == pytest.approx(-0.3)  # lower: B improved
    assert tests["report"]["bertscore"]["higher_is_better"] is True
    assert tests["report"]["future_score"]["higher_is_better"] is None
