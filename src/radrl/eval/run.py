"""``radrl eval``: generate for a held-out split, parse, score, write metrics, tables and box images.

    radrl eval --model runs/demo/grpo --data runs/demo/data/test.jsonl --out runs/demo/eval-grpo
"""

from __future__ import annotations

import json
from pathlib import Path

from radrl.data.instructions import build_conversations
from radrl.data.schema import read_jsonl
from radrl.eval.generate import generate, write_predictions
from radrl.eval.report import (
    TABLE_KEYS,
    draw_boxes,
    markdown_table,
    write_metrics,
    write_per_sample,
)
from radrl.eval.score import score
from radrl.models import load
from radrl.parsing import parse


def evaluate(model_path: str, data: str, out: str, tasks: tuple[str, ...] = ("report", "grounding"),
             batch_size: int = 16, max_new_tokens: dict[str, int] | None = None, thinking: bool = False,
             max_rows: int | None = None, n_box_images: int = 6, device: str | None = None,
             min_pixels: int | None = None, max_pixels: int | None = None, seed: int = 1,
             box_instruction: bool = False) -> dict:
    """Evaluate one model on one samples JSONL; returns ``{task: aggregate metrics}``.

    Writes ``predictions.jsonl``, ``per_sample.jsonl`` (every per-sample metric by id),
    ``metrics.json`` (aggregates with seeded 95% bootstrap intervals, 2,000 resamples, for
    those that are means of per-sample values; see ``write_metrics``), ``metrics.md`` and
    box images."""
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = build_conversations(read_jsonl(data), tasks=tasks, seed=seed, thinking=thinking,
                               box_instruction=box_instruction)
    rows = rows[:max_rows] if max_rows else rows
    if not rows:
        raise ValueError(f"{data} gives no rows for tasks {tasks}; check the file and the tasks")
    model, processor = load(model_path, device=device, min_pixels=min_pixels, max_pixels=max_pixels)
    completions = generate(model, processor, rows, batch_size=batch_size, max_new_tokens=max_new_tokens)
    write_predictions(rows, completions, out_dir / "predictions.jsonl")
    results = score(rows, completions)
    write_per_sample(rows, results, out_dir / "per_sample.jsonl")
    metrics = write_metrics(results, out_dir / "metrics.json", n_resamples=2000, seed=0,
                            extra={"model": model_path, "data": data, "rows": len(rows),
                                   "decoding": {"greedy": True, "max_new_tokens": max_new_tokens,
                                                "thinking": thinking}})
    aggregates = {t: r.aggregate for t, r in results.items()}
    written = json.loads(metrics.read_text())
    cis = {t: v.get("ci", {}) for t, v in written["tasks"].items()}
    boot = written["bootstrap"]
    name = Path(model_path).name
    tables = [f"## {t}\n\n" + markdown_table({name: aggregates}, t, cis={name: cis})
              + f"\n\nBrackets: {boot['level']:.0%} bootstrap interval over samples ({boot['n_resamples']:,} "
              f"resamples, seed {boot['seed']})." for t in aggregates]
    (out_dir / "metrics.md").write_text("\n\n".join(tables) + "\n")
    _box_images(rows, completions, out_dir / "boxes", n_box_images)
    return aggregates


def _box_images(rows: list[dict], completions: list[str], folder: Path, n: int) -> list[Path]:
    paths = []
    for row, completion in zip(rows, completions):
        if row["task"] != "grounding" or len(paths) >= n:
            continue
        pred = parse(completion, thinking=row.get("thinking", False)).boxes
        ref = parse(row["solution"]).boxes
        paths.append(draw_boxes(row["images"][0], pred, ref, folder / f"{row['id']}.png"))
    return paths


def print_summary(aggregates: dict) -> None:
    for task, agg in aggregates.items():
        keys = [k for k in TABLE_KEYS.get(task, agg) if k in agg]
        print(f"{task}: " + ", ".join(f"{k}={agg[k]:.3f}" for k in keys) + f" (n={agg.get('n', 0):.0f})")
