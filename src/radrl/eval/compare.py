"""``radrl compare``: several ``radrl eval`` folders side by side, in the layout of the paper's tables.

    radrl compare SFT=runs/demo/eval-sft GRPO=runs/demo/eval-grpo-report --out runs/demo/compare --published

Writes to ``--out``:

* ``leaderboard.md``: the report table (paper columns: ROUGE-L, BERTScore, CheXbert micro/macro,
  RadGraph F1, GREEN, RadCliQ, then BLEU, answer length, n), the grounding mAP@0.5 table per
  grounding kind (anatomy, abnormality, phrase, when rows carry a ``kind``), the full grounding
  metrics, per-class tables (CheXpert label F1; grounding metrics per finding class), length
  statistics, and paired bootstrap tests of every run against the first (``--baseline``);
  cells are ``value [95 % CI]`` where ``metrics.json`` has an interval;
* ``leaderboard.csv`` (long format: run, source, task, metric, value, ci_low, ci_high) and
  ``leaderboard.json`` (everything above as data);
* ``report.html`` (``radrl.eval.html``): self-contained, with images, boxes, reports and plots.

``--published`` adds the paper's headline numbers (``PUBLISHED``, copied from paper.md) as
reference rows marked "(published)": they were measured with CheXbert, RadGraph and GREEN on
MIMIC-CXR / the grounding benchmarks, not with this run's data or labeler.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from radrl.data.schema import CHEXPERT_LABELS
from radrl.eval.stats import paired_bootstrap
from radrl.parsing import parse

# Paper tables (paper.md, "Headline results"): percent, RadCliQ raw (lower is better).
PUBLISHED_REPORT_COLUMNS = ("ROUGE-L", "BERTScore", "CheXbert micro", "CheXbert macro", "RadGraph F1", "GREEN",
                            "RadCliQ")
PUBLISHED = {
    "report": {
        "MAIRA-2 (7B)": (17.7, 46.6, 52.1, 35.8, 12.9, 21.3, 1.42),
        "CheXagent-2 (3B)": (22.5, 37.4, 54.5, 38.7, 20.1, 29.9, 1.45),
        "LLaVA-Rad (7B)": (22.2, 48.9, 53.3, 39.2, 16.8, 28.6, 1.34),
        "Qwen3-VL (8B)": (14.0, 42.0, 35.3, 20.4, 10.8, 21.9, 1.67),
        "Qwen3-VL + RL": (24.7, 55.8, 47.4, 22.3, 22.5, 25.8, 1.05),
        "RadVLM (SFT, 8B)": (26.0, 53.3, 49.0, 30.5, 19.0, 29.1, 1.14),
        "RadVLM + RL": (29.9, 59.2, 57.0, 33.4, 25.8, 32.7, 0.86),
        "RadVLM-Thinking + RL": (30.0, 59.0, 56.3, 33.6, 25.7, 32.9, 0.87),
    },
    "grounding": {  # mAP@0.5 per benchmark
        "MAIRA-2": {"anatomy": 19.8, "abnormality": 11.3, "MS-CXR": 80.1, "PadChest-GR": 38.8},
        "Qwen3-VL": {"anatomy": 11.1, "abnormality": 5.1, "MS-CXR": 19.0, "PadChest-GR": 10.7},
        "Qwen3-VL + RL": {"anatomy": 79.0, "abnormality": 36.0, "MS-CXR": 79.4, "PadChest-GR": 55.3},
        "RadVLM (SFT)": {"anatomy": 82.1, "abnormality": 44.2, "MS-CXR": 84.6, "PadChest-GR": 59.0},
        "RadVLM + RL": {"anatomy": 84.5, "abnormality": 45.9, "MS-CXR": 87.9, "PadChest-GR": 63.0},
        "RadVLM-Thinking + RL": {"anatomy": 84.9, "abnormality": 43.9, "MS-CXR": 86.4, "PadChest-GR": 60.5},
    },
}
PUBLISHED_BENCHMARKS = ("anatomy", "abnormality", "MS-CXR", "PadChest-GR")

# Report table: (column, metric keys our scorers may write, first found wins, scale).
REPORT_COLUMNS = [
    ("ROUGE-L", ("rouge_l",), "pct"),
    ("BERTScore", ("bertscore",), "pct"),
    ("CheXbert micro", ("chexbert_micro_f1_14", "chexpert_micro_f1_14"), "pct"),
    ("CheXbert macro", ("chexbert_macro_f1_14", "chexpert_macro_f1_14"), "pct"),
    ("RadGraph F1", ("radgraph_f1", "radgraph"), "pct"),
    ("GREEN", ("green",), "pct"),
    ("RadCliQ", ("radcliq", "radcliq_v1"), "raw"),
    ("BLEU", ("bleu",), "pct"),
    ("clinical", ("clinical",), "pct"),
    ("avg chars", ("avg_chars",), "int"),
    ("n", ("n",), "int"),
]
GROUNDING_KEYS = ("soft_f1", "map50", "mean_iou", "acc50", "well_formed", "avg_chars", "n")
PAIRED_KEYS = {"report": ("rouge_l", "clinical", "chexpert_sample_f1", "bertscore", "avg_chars"),
               "grounding": ("soft_f1", "map50", "mean_iou", "acc50")}


@dataclass
class Run:
    """One ``radrl eval`` output folder, read back."""

    name: str
    folder: Path
    metrics: dict
    manifest: dict = field(default_factory=dict)
    per_sample: list[dict] = field(default_factory=list)
    predictions: list[dict] = field(default_factory=list)

    def agg(self, task: str) -> dict:
        return (self.metrics["tasks"].get(task) or {}).get("aggregate", {})

    def ci(self, task: str) -> dict:
        return (self.metrics["tasks"].get(task) or {}).get("ci", {})


def load_run(spec: str) -> Run:
    """``NAME=FOLDER`` or ``FOLDER`` (name: the manifest's name, else the folder name)."""
    name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
    folder = Path(path)
    metrics_path = folder / "metrics.json"
    if not metrics_path.exists():
        raise FileNotFoundError(f"{folder} is not an evaluation folder (no metrics.json); run "
                                f"`radrl eval --out {folder} ...` first, or check the path")
    metrics = json.loads(metrics_path.read_text())
    manifest = json.loads((folder / "manifest.json").read_text()) if (folder / "manifest.json").exists() else {}

    def jsonl(p: Path) -> list[dict]:
        if not p.exists():
            return []
        out = []
        for n, line in enumerate(p.read_text().splitlines(), 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{p}:{n} is not valid JSON ({e}); rerun `radrl eval` into {folder}") from None
        return out

    return Run(name or manifest.get("name") or folder.name, folder, metrics, manifest,
               jsonl(folder / "per_sample.jsonl"), jsonl(folder / "predictions.jsonl"))


def _fmt(value: float | None, scale: str) -> str:
    if value is None:
        return "-"
    return {"pct": f"{100 * value:.1f}", "raw": f"{value:.2f}", "int": f"{value:.0f}"}[scale]


def _first(agg: dict, keys: tuple[str, ...]) -> str | None:
    return next((k for k in keys if k in agg), None)


def report_table(runs: list[Run], published: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the report table (paper layout, then our extra columns)."""
    header = ["model"] + [c for c, _, _ in REPORT_COLUMNS]
    rows = []
    for run in runs:
        agg, ci = run.agg("report"), run.ci("report")
        if not agg:
            continue
        cells = [run.name]
        for _, keys, scale in REPORT_COLUMNS:
            k = _first(agg, keys)
            cell = _fmt(agg.get(k) if k else None, scale)
            if k in ci:
                cell += f" [{_fmt(ci[k][0], scale)}, {_fmt(ci[k][1], scale)}]"
            cells.append(cell)
        rows.append(cells)
    if published:
        for model, values in PUBLISHED["report"].items():
            by_col = dict(zip(PUBLISHED_REPORT_COLUMNS, values))
            rows.append([f"{model} (published)"] + [f"{by_col[c]:.2f}" if c == "RadCliQ" else
                                                    (f"{by_col[c]:.1f}" if c in by_col else "-")
                                                    for c, _, _ in REPORT_COLUMNS])
    return header, rows


def grounding_kinds(runs: list[Run]) -> list[str]:
    return sorted({t.split("/", 1)[1] for r in runs for t in r.metrics["tasks"] if t.startswith("grounding/")})


def grounding_map_table(runs: list[Run], published: bool = False) -> tuple[list[str], list[list[str]]]:
    """mAP@0.5 per grounding kind (the paper's grounding table), plus all grounding rows."""
    kinds = grounding_kinds(runs)
    # The paper's column order (anatomy, abnormality, then the phrase benchmarks), other kinds before the latter.
    cols = [c for c in ("anatomy", "abnormality") if c in kinds or published]
    cols += [k for k in kinds if k not in cols] + (["MS-CXR", "PadChest-GR"] if published else [])
    header = ["model", *cols, "all grounding"]
    rows = []
    for run in runs:
        if not run.agg("grounding"):
            continue
        cells = [run.name]
        for task in [f"grounding/{c}" if c in kinds else None for c in cols] + ["grounding"]:
            agg, ci = (run.agg(task), run.ci(task)) if task else ({}, {})
            cell = _fmt(agg.get("map50"), "pct")
            if "map50" in ci:
                cell += f" [{_fmt(ci['map50'][0], 'pct')}, {_fmt(ci['map50'][1], 'pct')}]"
            cells.append(cell)
        rows.append(cells)
    if published:
        for model, values in PUBLISHED["grounding"].items():
            rows.append([f"{model} (published)"] + [f"{values[c]:.1f}" if c in values else "-"
                                                    for c in header[1:]])
    return header, rows


def grounding_table(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    header = ["model", "task", *GROUNDING_KEYS]
    rows = []
    for run in runs:
        for task in ["grounding"] + [f"grounding/{k}" for k in grounding_kinds(runs)]:
            agg, ci = run.agg(task), run.ci(task)
            if not agg:
                continue
            cells = []
            for k in GROUNDING_KEYS:
                scale = "int" if k in ("avg_chars", "n") else "pct"
                cell = _fmt(agg.get(k), scale)
                if k in ci:
                    cell += f" [{_fmt(ci[k][0], scale)}, {_fmt(ci[k][1], scale)}]"
                cells.append(cell)
            rows.append([run.name, task, *cells])
    return header, rows


def chexpert_per_label(run: Run) -> dict[str, dict[str, float]]:
    """Per CheXpert label: F1 of the run's answers against the references (positive or uncertain = 1, as
    ``chexpert_f1``), with the reference positives as support.

    >>> run = Run("a", Path("."), {"tasks": {}}, predictions=[{"task": "report", "solution": "Cardiomegaly.",
    ...                                                         "completion": "Cardiomegaly."}])
    >>> chexpert_per_label(run)["Cardiomegaly"]
    {'f1': 1.0, 'support': 1.0, 'predicted': 1.0}
    """
    from radrl.metrics.chexpert import label_reports, per_label_f1

    preds = [p for p in run.predictions if p["task"] == "report"]
    if not preds:
        return {}
    refs = label_reports([parse(p["solution"]).answer for p in preds])
    hyps = label_reports([parse(p["completion"], thinking=p.get("thinking", False)).answer for p in preds])
    return per_label_f1(refs, hyps)


def grounding_per_class(run: Run) -> dict[str, dict[str, float]]:
    """Per finding class (the reference answer's label): mean per-sample grounding metrics and row count."""
    label_of = {}
    for p in run.predictions:
        if p["task"] == "grounding":
            boxes = parse(p["solution"]).boxes
            label_of[p["id"]] = (boxes[0].label if boxes and boxes[0].label else "(no label)")
    groups: dict[str, list[dict]] = {}
    for s in run.per_sample:
        if s["task"] == "grounding" and s["id"] in label_of:
            groups.setdefault(label_of[s["id"]], []).append(s)
    return {label: {**{k: statistics.fmean(s[k] for s in rows) for k in ("soft_f1", "map50", "mean_iou")
                       if all(k in s for s in rows)}, "n": float(len(rows))}
            for label, rows in sorted(groups.items())}


def length_stats(run: Run) -> dict[str, dict[str, float]]:
    """Answer length in characters per task (mean, median, 90th percentile, max) and the thinking part's mean:
    the paper compares average characters per answer to spot length hacking."""
    out = {}
    for task in sorted({p["task"] for p in run.predictions}):
        parsed = [parse(p["completion"], thinking=p.get("thinking", False)) for p in run.predictions
                  if p["task"] == task]
        chars = sorted(len(x.answer) for x in parsed)
        refs = [len(parse(p["solution"]).answer) for p in run.predictions if p["task"] == task]
        out[task] = {"mean": statistics.fmean(chars), "median": statistics.median(chars),
                     "p90": chars[min(len(chars) - 1, math.ceil(0.9 * len(chars)) - 1)], "max": chars[-1],
                     "think_mean": statistics.fmean(len(x.think or "") for x in parsed),
                     "reference_mean": statistics.fmean(refs), "n": float(len(chars))}
    return out


def paired_tests(base: Run, other: Run, n_resamples: int = 2000, seed: int = 0) -> dict[str, dict[str, dict]]:
    """``other - base`` per task and metric on the rows both scored (joined on task and id)."""
    a = {(s["task"], s["id"]): s for s in base.per_sample}
    b = {(s["task"], s["id"]): s for s in other.per_sample}
    shared = [k for k in a if k in b]
    out: dict[str, dict[str, dict]] = {}
    for task, keys in PAIRED_KEYS.items():
        rows = [k for k in shared if k[0] == task]
        for key in keys:
            if rows and all(key in a[k] and key in b[k] for k in rows):
                res = paired_bootstrap([b[k][key] for k in rows], [a[k][key] for k in rows],
                                       n_resamples=n_resamples, seed=seed)
                out.setdefault(task, {})[key] = {**res, "n": len(rows)}
    return out


def _md(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def compare(specs: list[str], out: str | Path, published: bool = False, baseline: str | None = None,
            html: bool = True, logs: dict[str, str] | None = None, n_examples: int = 8) -> dict:
    """Read the runs, write leaderboard.md/.csv/.json (and report.html); returns the JSON payload."""
    runs = [load_run(s) for s in specs]
    if len({r.name for r in runs}) != len(runs):
        raise ValueError(f"two runs share a name ({[r.name for r in runs]}); name them: NAME=FOLDER")
    base = next((r for r in runs if r.name == baseline), None) if baseline else runs[0]
    if base is None:
        raise ValueError(f"--baseline {baseline!r} is not one of the runs {[r.name for r in runs]}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "runs": {r.name: {"folder": str(r.folder), "tasks": r.metrics["tasks"], "bootstrap": r.metrics.get("bootstrap"),
                          "model": r.manifest.get("model", {}).get("id", r.metrics.get("model")),
                          "data": r.manifest.get("data", {}).get("path", r.metrics.get("data")),
                          "decoding": r.manifest.get("decoding", r.metrics.get("decoding"))} for r in runs},
        "published": PUBLISHED if published else {},
        "chexpert_per_label": {r.name: chexpert_per_label(r) for r in runs},
        "grounding_per_class": {r.name: grounding_per_class(r) for r in runs},
        "lengths": {r.name: length_stats(r) for r in runs},
        "paired": {"baseline": base.name, "tests": {r.name: paired_tests(base, r) for r in runs if r is not base}},
    }
    (out / "leaderboard.json").write_text(json.dumps(payload, indent=2))
    _write_csv(runs, published, out / "leaderboard.csv")
    (out / "leaderboard.md").write_text(leaderboard_markdown(runs, payload, published))
    if html:
        from radrl.eval.html import write_html

        logs = dict(logs or {})
        for r in runs:  # a run of one of our checkpoints: its training log sits in the checkpoint folder
            found = Path(str(r.manifest.get("model", {}).get("id", ""))) / "log_history.json"
            if r.name not in logs and r.manifest.get("model", {}).get("engine") == "hf" and found.is_file():
                logs[r.name] = str(found)
        payload["logs"] = logs
        write_html(runs, payload, out / "report.html", logs=logs, n_examples=n_examples)
    return payload


def leaderboard_markdown(runs: list[Run], payload: dict, published: bool) -> str:
    boot = next((r.metrics.get("bootstrap") for r in runs if r.metrics.get("bootstrap")), None)
    note = (f"Brackets: {boot['level']:.0%} percentile bootstrap interval over samples ({boot['n_resamples']:,} "
            f"resamples, seed {boot['seed']}); corpus-level metrics (BLEU, CheXpert micro/macro F1) have none."
            if boot else "No bootstrap intervals in these runs.")
    parts = ["# Leaderboard", "", note, ""]
    header, rows = report_table(runs, published)
    if rows:
        parts += ["## Report generation", "", _md(header, rows), "",
                  "Percent except RadCliQ (lower is better) and counts. Our CheXbert columns come from the rule "
                  "labeler (radrl-rules-2, 14 labels, uncertain = positive), not CheXbert; BERTScore, RadGraph and "
                  "GREEN appear when those scorers ran."
                  + (" Rows marked (published) are the paper's numbers on MIMIC-CXR test, for reference only."
                     if published else ""), ""]
    header, rows = grounding_map_table(runs, published)
    if rows:
        parts += ["## Grounding, mAP@0.5", "", _md(header, rows), ""]
        if published:
            parts += [("Rows marked (published) are the paper's benchmarks (Chest ImaGenome, VinDr-CXR, MS-CXR, "
                      "PadChest-GR), for reference only."), ""]
        header, rows = grounding_table(runs)
        parts += ["## Grounding, all metrics", "", _md(header, rows), ""]
    labels = payload["chexpert_per_label"]
    if any(labels.values()):
        names = [n for n in labels if labels[n]]
        rows = [[label] + [f"{100 * labels[n][label]['f1']:.1f}" for n in names]
                + [f"{labels[names[0]][label]['support']:.0f}"] for label in CHEXPERT_LABELS]
        parts += ["## CheXpert F1 per label (rule labeler)", "", _md(["label", *names, "reference positives"], rows), ""]
    classes = payload["grounding_per_class"]
    if any(classes.values()):
        names = [n for n in classes if classes[n]]
        all_labels = sorted({c for n in names for c in classes[n]})
        rows = [[c] + [f"{100 * classes[n][c]['map50']:.1f} / {100 * classes[n][c]['soft_f1']:.1f}"
                       if c in classes[n] else "-" for n in names]
                + [f"{max(classes[n].get(c, {}).get('n', 0) for n in names):.0f}"] for c in all_labels]
        parts += ["## Grounding per class (mAP@0.5 / soft-F1)", "", _md(["class", *names, "n"], rows), ""]
    lengths = payload["lengths"]
    rows = [[n, t, f"{s['mean']:.0f}", f"{s['median']:.0f}", f"{s['p90']:.0f}", f"{s['max']:.0f}",
             f"{s['think_mean']:.0f}", f"{s['reference_mean']:.0f}"] for n, by in lengths.items() for t, s in by.items()]
    if rows:
        parts += ["## Answer length (characters)", "",
                  _md(["model", "task", "mean", "median", "p90", "max", "thinking mean", "reference mean"], rows), ""]
    tests = payload["paired"]["tests"]
    rows = [[n, t, k, f"{100 * r['delta']:+.1f}" if k != "avg_chars" else f"{r['delta']:+.0f}",
             (f"[{100 * r['low']:+.1f}, {100 * r['high']:+.1f}]" if k != "avg_chars"
              else f"[{r['low']:+.0f}, {r['high']:+.0f}]"),
             f"< {1 / 2000:.4f}" if r["p_value"] == 0 else f"{r['p_value']:.4f}", str(r["n"])]
            for n, by in tests.items() for t, ks in by.items() for k, r in ks.items()]
    if rows:
        parts += [f"## Paired bootstrap against {payload['paired']['baseline']}", "",
                  _md(["model", "task", "metric", "delta", "95% CI", "p (two-sided)", "shared rows"], rows), "",
                  ("Delta = model minus baseline on the rows both scored (percentage points; characters for "
                  "avg_chars); 2,000 paired resamples, seed 0."), ""]
    return "\n".join(parts)


def _write_csv(runs: list[Run], published: bool, path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "source", "task", "metric", "value", "ci_low", "ci_high"])
        for run in runs:
            for task, v in run.metrics["tasks"].items():
                ci = v.get("ci", {})
                for k, value in v["aggregate"].items():
                    lo, hi = ci.get(k, (None, None))
                    w.writerow([run.name, "ours", task, k, value, lo, hi])
        if published:  # published values are in percent (RadCliQ raw), as printed in the paper
            for model, values in PUBLISHED["report"].items():
                for col, value in zip(PUBLISHED_REPORT_COLUMNS, values):
                    w.writerow([model, "published", "report", col, value, None, None])
            for model, values in PUBLISHED["grounding"].items():
                for bench, value in values.items():
                    w.writerow([model, "published", f"grounding/{bench}", "mAP@0.5", value, None, None])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="radrl compare", description="Several evaluation runs side by side.")
    p.add_argument("runs", nargs="+", help="radrl eval output folders, optionally NAME=FOLDER")
    p.add_argument("--out", required=True, help="folder for leaderboard.md/.csv/.json and report.html")
    p.add_argument("--published", action="store_true", help="add the paper's numbers as reference rows")
    p.add_argument("--baseline", default=None, help="run the paired tests compare against (default: the first)")
    p.add_argument("--logs", nargs="*", default=[],
                   help="NAME=log_history.json of training runs, for reward and length curves in the HTML "
                        "(found by itself in the checkpoint folder of a run evaluated with --engine hf)")
    p.add_argument("--examples", type=int, default=8, help="examples per task in the HTML report")
    p.add_argument("--no-html", action="store_true")
    a = p.parse_args(argv)
    logs = {}
    for spec in a.logs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).parent.name, spec
        logs[name] = path
    compare(a.runs, a.out, published=a.published, baseline=a.baseline, html=not a.no_html, logs=logs,
            n_examples=a.examples)
    print((Path(a.out) / "leaderboard.md").read_text())
    print(f"written to {a.out}")
