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


def test_grounding_answer_without_a_box_is_not_well_formed():
    # parse() does not know the task: "No finding." parses cleanly, but it is no answer to "Locate the nodule"
    solution = "Nodule at [0.30, 0.50, 0.40, 0.60]"
    rows = [_row("grounding", solution, i) for i in range(4)]
    completions = [solution,                       # a box: well formed
                   "No finding.",                  # clean text, no box: not well formed
                   "Nodule at [0.9, 0.9, 0.1, 0.1]",  # only an invalid box: not well formed
                   ""]                             # empty: not well formed
    assert score(rows, completions)["grounding"].aggregate["well_formed"] == 0.25
    # a report needs no box
    assert score([_row("report", "No effusion.")], ["No finding."])["report"].aggregate["well_formed"] == 1.0


def _normal_row(i, **extra):
    """A detection row of an image without findings, as radrl.data.instructions builds it."""
    return {**_row("detection", "No abnormalities.", i), "kind": "detection", "ref_boxes": [], **extra}


def test_normal_images_are_scored():
    rows = [_normal_row(i) for i in range(4)]
    completions = ["No abnormalities.",                        # correct
                   "Nodule at [0.10, 0.10, 0.20, 0.20]",       # a box on a normal image: false positive
                   "There is no evidence of acute disease.",   # correct, in other words
                   "Cardiomegaly."]                            # no box, but not normal either
    res = score(rows, completions)["detection"]
    assert res.per_sample["normal_correct"] == [1.0, 0.0, 1.0, 0.0]
    assert res.per_sample["false_positive"] == [0.0, 1.0, 0.0, 0.0]
    assert res.aggregate["normal_correct"] == 0.5 and res.aggregate["false_positive_rate"] == 0.25
    assert res.aggregate["n"] == 4 and res.aggregate["well_formed"] == 1.0  # no box needed here
    # a normal row's kind names its task: score_by_kind does not repeat it as "detection/detection"
    from radrl.eval.score import score_by_kind

    assert score_by_kind(rows, completions) == {}


def test_detection_row_with_reference_boxes_is_refused():
    # a detection row with boxes is task "grounding" (kind "detection"); as task "detection" it is a bug
    with pytest.raises(ValueError, match="task 'grounding'"):
        score([_normal_row(0, ref_boxes=[[0.1, 0.1, 0.2, 0.2]])], ["No abnormalities."])


# A small NIH-like nodule: 0.3 % of the width; its solution text widens it to two decimals (0.01)
NODULE = [0.121, 0.300, 0.124, 0.304]
NODULE_TEXT = "Nodule at [0.12, 0.30, 0.13, 0.31]"


def test_grounding_uses_full_precision_reference_boxes():
    # the model answers the true box (Qwen JSON on the 0-1000 grid holds it exactly): against the
    # dataset's box it is perfect; against the rounded solution text its IoU is 0.12
    answer = '[{"bbox_2d": [121, 300, 124, 304], "label": "Nodule"}]'
    with_column = score([{**_row("grounding", NODULE_TEXT), "ref_boxes": [NODULE]}], [answer])["grounding"]
    assert with_column.per_sample["mean_iou"] == pytest.approx([1.0])
    assert with_column.aggregate["ap50_dataset"] == pytest.approx(1.0)
    # rows without the column (other builders, RadVLM JSON) fall back to the solution's boxes, as does None
    for row in (_row("grounding", NODULE_TEXT), {**_row("grounding", NODULE_TEXT), "ref_boxes": None}):
        assert score([row], [answer])["grounding"].per_sample["mean_iou"] == pytest.approx([0.12])
    with pytest.raises(ValueError, match="row 'r0': ref_boxes entry"):
        score([{**_row("grounding", NODULE_TEXT), "ref_boxes": [[0.5, 0.5, 0.1]]}], [answer])


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
    table = markdown_table({"SFT": {"grounding": {"soft_f1": 0.5, "map50": 0.25, "n": 4.0, "new_key": 0.5}},
                            "SFT+GRPO": {"grounding": {"soft_f1": 0.75}}}, "grounding")
    lines = table.splitlines()
    # columns headed by their MetricSpec names; a key without a spec is shown under its own name, last
    assert lines[0] == "| model | soft-F1 | mAP@0.5 (per row) | n | new_key |"
    assert lines[2] == "| SFT | 50.0 | 25.0 | 4 | 0.500 |" and lines[3] == "| SFT+GRPO | 75.0 | - | - | - |"
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


def metrics_versions(folder, task):
    return json.loads((folder / "metrics.json").read_text())["tasks"][task]["versions"]


@pytest.mark.slow
def test_evaluate_writes_predictions_metrics_and_images(tiny_model_dir, synth_data, tmp_path):
    from radrl.data.instructions import build_conversations
    from radrl.data.schema import read_jsonl
    from radrl.eval.run import EVAL_PIXELS, EVAL_TASKS, evaluate

    agg = evaluate(str(tiny_model_dir), str(synth_data["test"]), str(tmp_path), batch_size=8, tasks=EVAL_TASKS,
                   max_new_tokens={"report": 8, "grounding": 8}, device="cpu")
    # Every built row is scored: detection rows of images without findings too (false positives), and each
    # grounding kind gets its own metrics.
    built = build_conversations(read_jsonl(synth_data["test"]), tasks=EVAL_TASKS, seed=1)
    assert set(agg) == {"report", "grounding", "detection"} and any(r["task"] == "detection" for r in built)
    assert {"normal_correct", "false_positive_rate"} <= set(agg["detection"])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["data"]["rows"] == len(built) and not manifest["data"]["skipped_rows"]
    assert manifest["comparable"]["tasks"]["detection"]["max_new_tokens"] == 8  # the grounding limit
    kinds = {f"grounding/{r['kind']}" for r in built if r["task"] == "grounding" and r.get("kind")}
    assert kinds and kinds <= set(manifest["data"]["rows_per_kind"])
    assert manifest["status"] == "complete" and manifest["software"]["packages"]["torch"].startswith("2.13")
    # The comparison contract: an explicit pixel budget (the documented default, not the 64 x 64 the tiny
    # checkpoint was saved with: 128 x 128 images keep 16 image tokens instead of 4), hashes of the rows and
    # requests per task, the metric versions, precision and the machine.
    contract = manifest["comparable"]
    assert contract["pixels"] == {"min_pixels": EVAL_PIXELS[0], "max_pixels": EVAL_PIXELS[1], "applied_by": "radrl"}
    assert manifest["decoding"]["max_pixels"] == EVAL_PIXELS[1]
    assert contract["tasks"]["grounding"]["mean_image_tokens"] == 16.0
    assert contract["tasks"]["report"]["rows"] == agg["report"]["n"] and contract["precision"] == "float32"
    assert contract["tasks"]["report"]["metric_versions"] == metrics_versions(tmp_path, "report")
    assert contract["machine"]["cpu"] and contract["machine"]["threads"] >= 1
    preds = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == sum(a["n"] for a in agg.values())
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
    # --max-rows N is the first N rows of each task (report, grounding, detection: the split has 1 normal image)
    assert [(r["resumed"], r["generated"]) for r in runs] == [(0, 3), (3, 6)]


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


def test_eval_refuses_unknown_metric_and_bad_budget_before_generating(tmp_path, synth_data, monkeypatch):
    # Cheap checks first: nothing is generated (the backend would fail the test) for a typo or a bad budget.
    from radrl.eval import run

    monkeypatch.setattr(run, "make_backend", lambda *a, **k: pytest.fail("generation started"))
    with pytest.raises(ValueError, match="did you mean 'bertscore'"):
        run.evaluate("no-model", str(synth_data["test"]), str(tmp_path / "a"), report_metrics=("text", "bertscor"))
    with pytest.raises(ValueError, match="pixel budget"):
        run.evaluate("no-model", str(synth_data["test"]), str(tmp_path / "b"), min_pixels=4096, max_pixels=1024)
    assert not (tmp_path / "a").exists()


def test_requests_hash_follows_image_bytes_not_paths(tmp_path):
    # The same images under another folder ask the same questions; an image re-exported in place does not.
    from PIL import Image

    from radrl.eval.run import _task_contract

    def rows(folder):
        folder.mkdir(exist_ok=True)
        path = folder / "a.png"
        if not path.exists():
            Image.new("RGB", (64, 64), (10, 10, 10)).save(path)
        return [{"id": "a-report", "task": "report", "images": [str(path)], "thinking": False,
                 "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]}]

    def digest(r):
        return _task_contract(r, {"report": 8}, 1024, 16384)["report"]["requests_sha256"]

    first = digest(rows(tmp_path / "one"))
    assert digest(rows(tmp_path / "two")) == first
    Image.new("RGB", (64, 64), (200, 200, 200)).save(tmp_path / "two" / "a.png")  # another window, same path
    assert digest(rows(tmp_path / "two")) != first


def test_engine_args_cannot_replace_the_pixel_budget():
    from radrl.eval.generate import resolve_engine

    with pytest.raises(ValueError, match="--min-pixels/--max-pixels"):
        resolve_engine("vllm", None, {"mm_processor_kwargs": {"max_pixels": 1}})
