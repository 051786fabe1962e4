"""Score completions per task with the shared parser and metrics (the rewards' own code)."""

from __future__ import annotations

from radrl.metrics import MetricResult
from radrl.metrics.chexpert import chexpert_f1
from radrl.metrics.grounding import score_grounding
from radrl.metrics.text import score_text
from radrl.parsing import parse


def score(rows: list[dict], completions: list[str]) -> dict[str, MetricResult]:
    """Per task: grounding -> soft-F1, mAP@0.5, mean IoU, acc@0.5; report -> ROUGE-L, BLEU, CheXpert F1, clinical.

    Thinking rows are scored on the answer after ``</think>`` (empty when it is missing),
    as the rewards do. Each result also counts how many completions parsed cleanly.
    """
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
            res = MetricResult.merge([score_text(ref_text, hyp_text), chexpert_f1(ref_text, hyp_text)])
            res.aggregate["avg_chars"] = sum(len(h) for h in hyp_text) / max(1, len(hyp_text))
        else:
            raise ValueError(f"no scorer for task {task!r}; known tasks: grounding, report")
        res.aggregate["n"] = float(len(idx))
        res.aggregate["well_formed"] = sum(p.well_formed for p in preds) / max(1, len(preds))
        results[task] = res
    return results
