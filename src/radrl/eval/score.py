"""Score completions per task with the shared parser and metrics (the rewards' own code)."""

from __future__ import annotations

from collections.abc import Sequence

from radrl.metrics import METRICS, MetricResult
from radrl.metrics.grounding import score_grounding
from radrl.parsing import parse

# Report metrics every evaluation runs (fast, no model files); others are added by name from METRICS.
DEFAULT_REPORT_METRICS = ("text", "chexpert")


def score(rows: list[dict], completions: list[str],
          report_metrics: Sequence[str] = DEFAULT_REPORT_METRICS) -> dict[str, MetricResult]:
    """Per task: grounding -> soft-F1, mAP@0.5, mean IoU, acc@0.5; report -> ``report_metrics`` (names in
    ``radrl.metrics.METRICS``: ROUGE-L, BLEU, CheXpert F1, clinical by default; ``bertscore``, ``meteor``...).

    Thinking rows are scored on the answer after ``</think>`` (empty when it is missing),
    as the rewards do. Each result also counts how many completions parsed cleanly and the
    answer length in characters (``avg_chars``, per sample too: the paper's check for length
    hacking).

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
        refs = [parse(rows[i]["solution"]) for i in idx]
        if task == "grounding":
            # Invalid predicted boxes count as false positives, exactly as in the grounding reward.
            res = score_grounding([p.boxes for p in preds], [r.boxes for r in refs],
                                  invalid=[p.invalid_boxes for p in preds])
        elif task == "report":
            ref_text = [r.answer for r in refs]
            hyp_text = [p.answer for p in preds]
            res = MetricResult.merge([METRICS[m](ref_text, hyp_text) for m in report_metrics])
        else:
            raise ValueError(f"no scorer for task {task!r}; known tasks: grounding, report")
        chars = [float(len(p.answer)) for p in preds]
        res.per_sample["avg_chars"] = chars
        res.aggregate["avg_chars"] = sum(chars) / max(1, len(chars))
        res.aggregate["n"] = float(len(idx))
        res.aggregate["well_formed"] = sum(p.well_formed for p in preds) / max(1, len(preds))
        results[task] = res
    return results


def score_by_kind(rows: list[dict], completions: list[str],
                  report_metrics: Sequence[str] = DEFAULT_REPORT_METRICS) -> dict[str, MetricResult]:
    """``{"grounding/anatomy": result, ...}`` for rows that carry a ``kind`` (grounding sub-task such as
    anatomy, abnormality, phrase); empty when no row has one. Rows without a kind are left out here
    (they are in ``score``'s per-task results).

    >>> score_by_kind([{"id": "a", "task": "report", "solution": "x"}], ["x"])
    {}
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for i, r in enumerate(rows):
        if r.get("kind"):
            groups.setdefault((r["task"], str(r["kind"])), []).append(i)
    out = {}
    for (task, kind), idx in sorted(groups.items()):
        out[f"{task}/{kind}"] = score([rows[i] for i in idx], [completions[i] for i in idx], report_metrics)[task]
    return out
