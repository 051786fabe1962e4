"""Score completions per task with the shared parser and metrics (the rewards' own code)."""

from __future__ import annotations

from collections.abc import Sequence

from radrl.data.boxes import Box
from radrl.metrics import METRICS, MetricResult
from radrl.metrics.grounding import score_grounding, score_normal
from radrl.parsing import Parsed, parse, reference_boxes

# Report metrics every evaluation runs (fast, no model files); others are added by name from METRICS.
DEFAULT_REPORT_METRICS = ("text", "chexpert")
# Row tasks ``score`` scores ("detection": images without findings; a detection row with boxes is
# task "grounding", kind "detection").
SCORED_TASKS = ("detection", "grounding", "report")


def score(rows: list[dict], completions: list[str],
          report_metrics: Sequence[str] = DEFAULT_REPORT_METRICS) -> dict[str, MetricResult]:
    """Per task (``SCORED_TASKS``):

    * ``grounding`` -> soft-F1, mAP@0.5 (per sample, RadVLM's), mean IoU, acc@0.5, and the dataset-level
      ``ap50_dataset`` (COCO AP50 over all rows), against the row's ``ref_boxes`` column (the dataset's
      boxes at full precision) when the row has it, else the boxes read from its ``solution`` (rows of
      other builders, e.g. imported RadVLM JSON); see ``radrl.parsing.reference_boxes``;
    * ``detection`` (images without findings, reference "No abnormalities.", no box) -> ``normal_correct``
      and ``false_positive`` per sample, ``normal_correct`` and ``false_positive_rate`` aggregated
      (``radrl.metrics.grounding.score_normal``); a detection row whose reference has boxes is an error
      (those rows are task "grounding", kind "detection");
    * ``report`` -> ``report_metrics`` (names in ``radrl.metrics.METRICS``: ROUGE-L, BLEU, CheXpert F1,
      clinical by default; ``bertscore``, ``meteor``...).

    Thinking rows are scored on the answer after ``</think>`` (empty when it is missing),
    as the rewards do. Each result also counts the completions that are well formed
    (``well_formed``: parsed without issues and, for grounding, with at least one valid box:
    a grounding answer without a box did not answer) and the answer length in characters
    (``avg_chars``, per sample too: the paper's check for length hacking).

    >>> row = {"id": "a", "task": "report", "solution": "No effusion."}
    >>> score([row], ["No effusion."])["report"].aggregate["rouge_l"]
    1.0
    """
    unknown = [m for m in report_metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown report metric(s) {unknown}; choose from {sorted(METRICS)}")
    results: dict[str, MetricResult] = {}
    for task in sorted({r["task"] for r in rows}):
        idx = [i for i, r in enumerate(rows) if r["task"] == task]
        preds = [parse(completions[i], thinking=rows[i].get("thinking", False)) for i in idx]
        if task == "grounding":
            # Invalid predicted boxes count as false positives, exactly as in the grounding reward.
            res = score_grounding([p.boxes for p in preds], [_reference(rows[i]) for i in idx],
                                  invalid=[p.invalid_boxes for p in preds])
        elif task == "detection":
            for i in idx:
                if boxes := _reference(rows[i]):
                    raise ValueError(f"row {rows[i].get('id')!r}: task 'detection' is for images without findings, "
                                     f"but its reference has {len(boxes)} box(es); a detection row with boxes is task "
                                     "'grounding' (kind 'detection'), as radrl.data.instructions builds it")
            res = score_normal([p.answer for p in preds], [p.boxes for p in preds],
                               invalid=[p.invalid_boxes for p in preds])
        elif task == "report":
            ref_text = [parse(rows[i]["solution"]).answer for i in idx]
            hyp_text = [p.answer for p in preds]
            res = MetricResult.merge([METRICS[m](ref_text, hyp_text) for m in report_metrics])
        else:
            raise ValueError(f"no scorer for task {task!r}; known tasks: {', '.join(SCORED_TASKS)}")
        chars = [float(len(p.answer)) for p in preds]
        res.per_sample["avg_chars"] = chars
        res.aggregate["avg_chars"] = sum(chars) / max(1, len(chars))
        res.aggregate["n"] = float(len(idx))
        res.aggregate["well_formed"] = sum(_well_formed(p, task) for p in preds) / max(1, len(preds))
        results[task] = res
    return results


def _reference(row: dict) -> list[Box]:
    """The row's reference boxes: its ``ref_boxes`` column when present (full precision), else the solution's."""
    return reference_boxes(row["solution"], row.get("ref_boxes"), where=f"row {row.get('id')!r}")


def _well_formed(p: Parsed, task: str) -> bool:
    """Parsed without issues; a grounding answer must also hold a valid box (``parse`` does not know the
    task, so "No finding." parses cleanly, but it is no answer to "Locate the nodule")."""
    return p.well_formed and (task != "grounding" or bool(p.boxes))


def score_by_kind(rows: list[dict], completions: list[str],
                  report_metrics: Sequence[str] = DEFAULT_REPORT_METRICS) -> dict[str, MetricResult]:
    """``{"grounding/anatomy": result, ...}`` for rows that carry a ``kind`` (grounding sub-task such as
    anatomy, abnormality, phrase); empty when no row has one. Rows without a kind are left out here
    (they are in ``score``'s per-task results), and so is a kind that names its own task ("detection"
    rows of normal images have kind "detection": that group is ``score``'s "detection" result).

    >>> score_by_kind([{"id": "a", "task": "report", "solution": "x"}], ["x"])
    {}
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        if r.get("kind") and r["kind"] != r["task"]:
            groups.setdefault((r["task"], str(r["kind"])), []).append(i)
    out = {}
    for (task, kind), idx in sorted(groups.items()):
        out[f"{task}/{kind}"] = score([rows[i] for i in idx], [completions[i] for i in idx], report_metrics)[task]
    return out
