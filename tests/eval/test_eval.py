"""Evaluation: scoring fixed predictions, tables and images, and the whole `radrl eval` path on the tiny model."""

import json

import pytest

from radrl.data.boxes import Box
from radrl.eval.report import draw_boxes, markdown_table, plot_curves
from radrl.eval.score import score


def _row(task, solution, i=0, thinking=False):
    return {"id": f"r{i}", "task": task, "solution": solution, "thinking": thinking,
            "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}]}


def test_score_grounding_on_fixed_predictions():
    rows = [_row("grounding", "Cardiomegaly at [0.30, 0.50, 0.70, 0.80]", 0),
            _row("grounding", "Pleural Effusion at [0.10, 0.60, 0.30, 0.90]", 1)]
    completions = ["Cardiomegaly at [0.30, 0.50, 0.70, 0.80]",   # exact: every score 1
                   "Pleural Effusion at [0.60, 0.10, 0.90, 0.30]"]  # disjoint: every score 0
    agg = score(rows, completions)["grounding"].aggregate
    assert agg["soft_f1"] == pytest.approx(0.5)
    assert agg["map50"] == pytest.approx(0.5)
    assert agg["mean_iou"] == pytest.approx(0.5)
    assert agg["n"] == 2 and agg["well_formed"] == 1.0


def test_eval_grounding_score_equals_the_reward():
    """The number optimised is the number reported: eval soft-F1 == reward, invalid boxes included."""
    from radrl.rewards import GroundingSoftF1

    solution = "Cardiomegaly at [0.30, 0.50, 0.70, 0.80]"
    completions = ["Cardiomegaly at [0.30, 0.50, 0.70, 0.80] and [0.9, 0.9, 0.1, 0.1]",  # one inverted box
                   "Cardiomegaly at [0.31, 0.52, 0.69, 0.80], [0.1, 0.1, 0.2, 0.2]",     # an extra box
                   "no box at all"]
    rows = [_row("grounding", solution, i) for i in range(3)]
    evaluated = score(rows, completions)["grounding"].per_sample["soft_f1"]
    rewarded = GroundingSoftF1()(completions, task=["grounding"] * 3, solution=[solution] * 3)
    assert evaluated == pytest.approx(rewarded)
    assert evaluated[0] == pytest.approx(2 / 3)  # the invalid box is a false positive


def test_score_reports_and_thinking_answers():
    ref = "Moderate cardiomegaly. No pneumothorax."
    rows = [_row("report", ref, 0, thinking=True), _row("report", ref, 1, thinking=True)]
    completions = ["<think>big heart</think>Moderate cardiomegaly. No pneumothorax.",  # answer after </think>
                   "Moderate cardiomegaly. No pneumothorax."]  # thinking asked, no </think>: empty answer
    res = score(rows, completions)["report"]
    assert res.per_sample["rouge_l"] == pytest.approx([1.0, 0.0])
    assert res.per_sample["clinical"][0] == pytest.approx(1.0)
    assert res.aggregate["well_formed"] == 0.5


def test_markdown_table_and_plot(tmp_path):
    table = markdown_table({"SFT": {"grounding": {"soft_f1": 0.5, "map50": 0.25}},
                            "SFT+GRPO": {"grounding": {"soft_f1": 0.75}}}, "grounding")
    lines = table.splitlines()
    assert lines[0].startswith("| model | soft_f1 | map50")
    assert lines[2].startswith("| SFT | 50.0 | 25.0") and lines[3].startswith("| SFT+GRPO | 75.0 | - ")
    history = [{"step": 1, "reward": 0.1}, {"step": 2, "reward": 0.3}]
    assert plot_curves(history, ["reward"], tmp_path / "c.png").exists()
    assert plot_curves(history, ["nothing"], tmp_path / "d.png") is None


def test_draw_boxes_colours_the_right_pixels(tmp_path):
    from PIL import Image

    Image.new("L", (100, 100), 0).save(tmp_path / "x.png")
    out = draw_boxes(str(tmp_path / "x.png"), pred=[Box(0.5, 0.5, 0.9, 0.9)], ref=[Box(0.1, 0.1, 0.4, 0.4)],
                     path=tmp_path / "b.png", scale=1)
    img = Image.open(out).convert("RGB")
    assert img.getpixel((10, 20))[1] > 150      # reference outline: green at its left edge
    assert img.getpixel((50, 70))[0] > 150      # prediction outline: red
    assert img.getpixel((25, 25)) == (0, 0, 0)  # inside the box: untouched


@pytest.mark.slow
def test_evaluate_writes_predictions_metrics_and_images(tiny_model_dir, synth_data, tmp_path):
    from radrl.data.instructions import build_conversations
    from radrl.data.schema import read_jsonl
    from radrl.eval.run import EVAL_TASKS, evaluate

    agg = evaluate(str(tiny_model_dir), str(synth_data["test"]), str(tmp_path), batch_size=8, tasks=EVAL_TASKS,
                   max_new_tokens={"report": 8, "grounding": 8}, device="cpu")
    assert set(agg) == {"report", "grounding"}
    # Every built row is either scored or counted as skipped (detection rows without boxes have no scorer),
    # and each grounding kind gets its own metrics.
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    built = build_conversations(read_jsonl(synth_data["test"]), tasks=EVAL_TASKS, seed=1)
    skipped = manifest["data"]["skipped_rows"].get("count_per_task", {})
    assert manifest["data"]["rows"] + sum(skipped.values()) == len(built)
    assert set(skipped) <= {"detection"}
    kinds = {f"grounding/{r['kind']}" for r in built if r["task"] == "grounding" and r.get("kind")}
    assert kinds and kinds == set(manifest["data"]["rows_per_kind"])
    assert manifest["status"] == "complete" and manifest["software"]["packages"]["torch"].startswith("2.13")
    preds = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == agg["report"]["n"] + agg["grounding"]["n"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["tasks"]["grounding"]["aggregate"]["soft_f1"] == agg["grounding"]["soft_f1"]
    assert kinds <= set(metrics["tasks"])
    low, high = metrics["tasks"]["grounding"]["ci"]["soft_f1"]  # seeded 95% bootstrap interval
    assert low <= agg["grounding"]["soft_f1"] <= high
    assert "rouge_l" in metrics["tasks"]["report"]["ci"] and "bleu" in metrics["tasks"]["report"]["no_ci"]
    per_sample = [json.loads(line) for line in (tmp_path / "per_sample.jsonl").read_text().splitlines()]
    assert [(p["id"], p["task"]) for p in per_sample] == [(p["id"], p["task"]) for p in preds]
    md = (tmp_path / "metrics.md").read_text()
    for kind in kinds:  # each kind's table shows its numbers (with intervals), not dashes
        row = md.split(f"## {kind}\n", 1)[1].strip().split("\n\n", 1)[0].splitlines()[2]
        assert row.split(" | ")[1][0].isdigit() and "[" in row, (kind, row)
    assert list((tmp_path / "boxes").glob("*.png"))
    # --max-rows may grow between runs: a first run that saw only report rows resumes with more rows
    first = tmp_path / "grow"
    evaluate(str(tiny_model_dir), str(synth_data["test"]), str(first), batch_size=8, tasks=EVAL_TASKS,
             max_new_tokens={"report": 8, "grounding": 8}, device="cpu", max_rows=1)
    evaluate(str(tiny_model_dir), str(synth_data["test"]), str(first), batch_size=8, tasks=EVAL_TASKS,
             max_new_tokens={"report": 8, "grounding": 8}, device="cpu", max_rows=4)
    runs = json.loads((first / "manifest.json").read_text())["generation_runs"]
    assert [(r["resumed"], r["generated"]) for r in runs] == [(0, 1), (1, 3)]


@pytest.mark.slow
def test_batched_generation_matches_one_at_a_time(tiny_model_dir, synth_data):
    """Left padding must not change greedy outputs."""
    from radrl.data.instructions import build_conversations
    from radrl.data.schema import read_jsonl
    from radrl.eval.generate import generate
    from radrl.models import load

    model, processor = load(str(tiny_model_dir), device="cpu")
    rows = build_conversations(read_jsonl(synth_data["test"]))[:6]
    batched = generate(model, processor, rows, batch_size=6, max_new_tokens=6, progress=False)
    single = generate(model, processor, rows, batch_size=1, max_new_tokens=6, progress=False)
    assert batched == single
