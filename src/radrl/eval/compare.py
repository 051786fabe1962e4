"""``radrl compare``: several ``radrl eval`` folders side by side, in the layout of the paper's tables.

    radrl compare SFT=runs/demo/eval-sft GRPO=runs/demo/eval-grpo-report --out runs/demo/compare --published

Writes to ``--out``:

* ``leaderboard.md``: the report table (the paper's columns: ROUGE-L, BERTScore, CheXbert micro-/macro-F1
  (14), GREEN, RadCliQ-v1; then every other metric the runs have, such as our rule labeler's
  CheXpert-rules F1s, BLEU, answer length, n), the grounding mAP@0.5 table per
  grounding kind (anatomy, abnormality, phrase, when rows carry a ``kind``), the full grounding
  metrics, what each metric means (its ``radrl.metrics.MetricSpec``), per-class tables (CheXpert-rules
  label F1; grounding metrics per finding class), length
  statistics, and paired bootstrap tests of every run against the first (``--baseline``);
  cells are ``value [95 % CI]`` where ``metrics.json`` has an interval;
* ``leaderboard.csv`` (long format: run, source, task, metric, value, ci_low, ci_high, data, mismatch, name) and
  ``leaderboard.json`` (everything above as data);
* ``report.html`` (``radrl.eval.html``): self-contained, with images, boxes, reports and plots.

Runs are compared only when they measured the same thing (``radrl.eval.contract``: data, requests,
pixel budget, decoding, precision, token limits, metric versions, on the tasks they share); otherwise
the command refuses, or with ``--allow-mismatch`` writes every output with the differences at its top.
Paired tests use only rows both runs asked with the same request and image.

``--published`` adds the paper's headline numbers (``PUBLISHED``, copied from paper.md) as
reference rows marked "(published) on <dataset>": they were measured with CheXbert, RadGraph and GREEN
on MIMIC-CXR / the grounding benchmarks, not with this run's data or labeler.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from radrl.data.schema import CHEXPERT_LABELS
from radrl.eval.contract import ContractError, banner, machines_note, mismatches, refusal, same_requests
from radrl.eval.report import format_cell, metric_legend, table_keys
from radrl.eval.stats import paired_bootstrap
from radrl.metrics import MetricSpec, metric_spec
from radrl.package import version
from radrl.parsing import parse

# Paper tables (paper.md, "Headline results"): percent, RadCliQ raw (lower is better). The report values follow
# the paper's column names (PUBLISHED_REPORT_COLUMNS, checked against paper.md), which map to our keys in
# PUBLISHED_REPORT_KEYS below.
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
    # Where the paper measured them (paper.md, "Evaluation"): never our data, so every row says so.
    "data": {"report": "MIMIC-CXR test",
             "grounding": {"anatomy": "Chest ImaGenome", "abnormality": "VinDr-CXR", "MS-CXR": "MS-CXR",
                           "PadChest-GR": "PadChest-GR"}},
}


def published_name(model: str, task: str) -> str:
    """A published row's name: the model, "(published)" and the data it was measured on (per column for
    grounding, in the paper's benchmark order), so it is never read as a result on this run's data."""
    data = PUBLISHED["data"][task]
    return f"{model} (published) on {data if isinstance(data, str) else ' / '.join(data.values())}"


PUBLISHED_BENCHMARKS = ("anatomy", "abnormality", "MS-CXR", "PadChest-GR")

# The paper's report columns as our keys, in its order; the report table always starts with them, and a run
# without a scorer shows "-" there (the rule labeler never stands in for CheXbert). The paper's CheXbert F1s
# are placed in the 14-label columns: its table does not say, its text lists 14 labels first, and RadVLM's
# evaluation code calls those "all". Its RadGraph F1 names no level (simple, partial, complete), so it has a
# column of its own beside our radgraph_* columns. Its BERTScore is RadVLM's evaluation (distilbert-base-uncased,
# layer 5): our bertscore_distilbert, not RadCliQ's distilroberta-base `bertscore` (docs/metrics.md).
PAPER_RADGRAPH = MetricSpec("paper_radgraph_f1", "RadGraph F1 (paper; level not stated)", needs_weights=True,
                            description="the paper's RadGraph F1, at a level its table does not state")
PUBLISHED_REPORT_KEYS = ("rouge_l", "bertscore_distilbert", "chexbert_f1_micro_14", "chexbert_f1_macro_14",
                         PAPER_RADGRAPH.key, "green", "radcliq_v1")


def _spec(key: str) -> MetricSpec:
    return PAPER_RADGRAPH if key == PAPER_RADGRAPH.key else metric_spec(key)


def _paper_keys(published: bool) -> list[str]:
    """The report table's first columns; the paper's RadGraph column only beside its published rows."""
    return [k for k in PUBLISHED_REPORT_KEYS if published or k != PAPER_RADGRAPH.key]


def _published_cell(key: str, value: float | None) -> str:
    """A paper number as the paper prints it: percent with 1 decimal, RadCliQ-v1 raw with 2."""
    return "-" if value is None else f"{value:.2f}" if _spec(key).scale == "raw" else f"{value:.1f}"


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


def _tasks(runs: list[Run], task: str) -> list[str]:
    """``task`` and its per-kind results (``grounding/anatomy``) that any run has, the task itself first."""
    found = {t for r in runs for t in r.metrics["tasks"] if t.split("/")[0] == task}
    return sorted(found, key=lambda t: (t != task, t))


def report_table(runs: list[Run], published: bool = False) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the report table: the paper's columns in its order (``PUBLISHED_REPORT_KEYS``), then
    every other key a run has (``table_keys``), each headed by its spec's name. A ``report/<kind>`` result
    is a row of its own."""
    paper = _paper_keys(published)
    tasks = _tasks(runs, "report")
    keys = paper + [k for k in table_keys("report", {k for r in runs for t in tasks for k in r.agg(t)})
                    if k not in paper]
    header = ["model"] + [_spec(k).name for k in keys]
    rows = [[run.name if t == "report" else f"{run.name} ({t})",
             *(format_cell(k, run.agg(t).get(k), run.ci(t)) for k in keys)]
            for run in runs for t in tasks if run.agg(t)]
    if published:
        for model, values in PUBLISHED["report"].items():
            by_key = dict(zip(PUBLISHED_REPORT_KEYS, values))
            rows.append([published_name(model, "report")] + [_published_cell(k, by_key.get(k)) for k in keys])
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
            cells.append(format_cell("map50", agg.get("map50"), ci))
        rows.append(cells)
    if published:
        for model, values in PUBLISHED["grounding"].items():
            rows.append([published_name(model, "grounding")] + [f"{values[c]:.1f}" if c in values else "-"
                                                                 for c in header[1:]])
    return header, rows


def grounding_table(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    """Every key of every box task (grounding, its kinds, and any other non-report task such as detection),
    one row per run and task, columns in ``table_keys`` order under their spec names."""
    tasks = _tasks(runs, "grounding") + sorted({t for r in runs for t in r.metrics["tasks"]
                                                if t.split("/")[0] not in ("report", "grounding")})
    keys = table_keys("grounding", {k for r in runs for t in tasks for k in r.agg(t)})
    header = ["model", "task", *(metric_spec(k).name for k in keys)]
    return header, [[run.name, t, *(format_cell(k, run.agg(t).get(k), run.ci(t)) for k in keys)]
                    for run in runs for t in tasks if run.agg(t)]


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
    """``other - base`` per task and metric on the rows both scored with the same request and image (joined on
    task and id): a row asked differently is not a paired observation. ``n``: rows paired; ``excluded``: rows of
    the task only one run scored or asked differently. Rows of one image are resampled together (a grounding
    row per finding of one image is not an independent observation). Every per-sample key both runs have on all
    paired rows is tested; ``higher_is_better`` (from its spec) says which sign of ``delta`` is an improvement."""
    a = {(s["task"], s["id"]): s for s in base.per_sample}
    b = {(s["task"], s["id"]): s for s in other.per_sample}
    same = same_requests(base.predictions, other.predictions)
    # rows of one image resample together (radrl.eval.stats.resampled_means); a row without one is its own
    image = {(p["task"], p["id"]): p.get("sample_id") or f"{p['task']}/{p['id']}" for p in base.predictions}
    image.update({k: k for k in a if k not in image})
    shared = [k for k in a if k in b and k in same]
    out: dict[str, dict[str, dict]] = {}
    for task in sorted({k[0] for k in shared}):
        rows = [k for k in shared if k[0] == task]
        excluded = len({k for k in [*a, *b] if k[0] == task}) - len(rows)
        numeric = {k for k, v in a[rows[0]].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for key in table_keys(task, numeric & set(b[rows[0]])):
            if all(key in a[k] and key in b[k] for k in rows):
                res = paired_bootstrap([b[k][key] for k in rows], [a[k][key] for k in rows],
                                       n_resamples=n_resamples, seed=seed, clusters=[image[k] for k in rows])
                out.setdefault(task, {})[key] = {**res, "n": len(rows), "excluded": excluded,
                                                 "higher_is_better": metric_spec(key).higher_is_better}
    return out


def _md(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(r) + " |" for r in rows])


def compare(specs: list[str], out: str | Path, published: bool = False, baseline: str | None = None,
            html: bool = True, logs: dict[str, str] | None = None, n_examples: int = 8,
            allow_mismatch: bool = False, vary: tuple[str, ...] = ()) -> dict:
    """Read the runs, check that they measured the same thing (``radrl.eval.contract``), write
    leaderboard.md/.csv/.json (and report.html); returns the JSON payload. Runs that differ are refused,
    or with ``allow_mismatch`` written with the differences at the top of every output; ``vary`` names
    settings that are the experiment's variable (``decoding.thinking``) and may differ without a banner."""
    runs = [load_run(s) for s in specs]
    if len({r.name for r in runs}) != len(runs):
        raise ValueError(f"two runs share a name ({[r.name for r in runs]}); name them: NAME=FOLDER")
    blocks = {r.name: r.manifest.get("comparable") for r in runs}
    differences = mismatches(blocks, tuple(vary))
    if differences and not allow_mismatch:
        raise ContractError(refusal(differences))
    base = next((r for r in runs if r.name == baseline), None) if baseline else runs[0]
    if base is None:
        raise ValueError(f"--baseline {baseline!r} is not one of the runs {[r.name for r in runs]}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "radrl_version": version(),
        "mismatches": differences,
        "varied": list(vary),
        "machines": machines_note(blocks),
        "runs": {r.name: {"folder": str(r.folder), "tasks": r.metrics["tasks"], "bootstrap": r.metrics.get("bootstrap"),
                          "model": r.manifest.get("model", {}).get("id", r.metrics.get("model")),
                          "data": r.manifest.get("data", {}).get("path", r.metrics.get("data")),
                          "decoding": r.manifest.get("decoding", r.metrics.get("decoding")),
                          "radrl_version": r.manifest.get("radrl_version"),
                          "comparable": blocks[r.name]} for r in runs},
        "published": PUBLISHED if published else {},
        "chexpert_per_label": {r.name: chexpert_per_label(r) for r in runs},
        "grounding_per_class": {r.name: grounding_per_class(r) for r in runs},
        "lengths": {r.name: length_stats(r) for r in runs},
        "paired": {"baseline": base.name, "tests": {r.name: paired_tests(base, r) for r in runs if r is not base}},
    }
    (out / "leaderboard.json").write_text(json.dumps(payload, indent=2))
    _write_csv(runs, published, out / "leaderboard.csv", differences)
    markdown = leaderboard_markdown(runs, payload, published)
    (out / "leaderboard.md").write_text(markdown)
    if html:
        from radrl.eval.html import write_html

        logs = dict(logs or {})
        for r in runs:  # a run of one of our checkpoints: its training log sits in the checkpoint folder
            found = Path(str(r.manifest.get("model", {}).get("id", ""))) / "log_history.json"
            if r.name not in logs and r.manifest.get("model", {}).get("engine") == "hf" and found.is_file():
                logs[r.name] = str(found)
        payload["logs"] = logs
        tables = [("Report generation", *report_table(runs, published)),
                  (f"Grounding, {metric_spec('map50').name}", *grounding_map_table(runs, published)),
                  ("Grounding, all metrics", *grounding_table(runs))]
        write_html(runs, payload, out / "report.html", tables, markdown, logs=logs, n_examples=n_examples)
    return payload


def _labeler(runs: list[Run]) -> str:
    """The rule labeler version(s) the runs' metrics.json record (``versions["chexpert_labeler"]``)."""
    found = {t.get("versions", {}).get("chexpert_labeler") for r in runs for t in r.metrics["tasks"].values()}
    return ", ".join(sorted(v for v in found if v)) or "radrl-rules"


def varied_note(runs: list[Run], vary: list[str]) -> str:
    """``decoding.thinking: A=false, B=true``: each run's value of each varied setting."""
    def value(run: Run, field: str):
        v = run.manifest.get("comparable") or {}
        for k in field.split("."):
            v = v.get(k) if isinstance(v, dict) else None
        return json.dumps(v)

    return "; ".join(f"{f}: " + ", ".join(f"{r.name}={value(r, f)}" for r in runs) for f in vary)


def leaderboard_markdown(runs: list[Run], payload: dict, published: bool) -> str:
    boot = next((r.metrics.get("bootstrap") for r in runs if r.metrics.get("bootstrap")), None)
    note = (f"Brackets: {boot['level']:.0%} percentile bootstrap interval over samples ({boot['n_resamples']:,} "
            f"resamples, seed {boot['seed']}); corpus-level metrics (BLEU, GLEU, CIDEr-D, micro/macro F1) have none."
            if boot else "No bootstrap intervals in these runs.")
    parts = ["# Leaderboard", ""]
    if payload.get("mismatches"):  # first thing a reader sees: these scores are not a fair comparison
        parts += [f"> **{banner(payload['mismatches'])}:**", ">",
                  *(f"> - {m['text']}" for m in payload["mismatches"]), ""]
    if payload.get("machines"):
        parts += [payload["machines"], ""]
    if payload.get("varied"):  # the experiment's own variable: allowed to differ, and said so
        parts += [f"Varied on purpose (everything else matches): {varied_note(runs, payload['varied'])}.", ""]
    parts += [note, ""]
    header, rows = report_table(runs, published)
    if rows:
        parts += ["## Report generation", "", _md(header, rows), "",
                  "Percent, except raw values (CIDEr-D; RadCliQ-v1, where lower is better) and counts; (14) and (5): "
                  "the CheXpert labels an F1 averages over. CheXpert-rules columns come from our rule labeler "
                  f"({_labeler(runs)}), never from CheXbert: CheXbert, BERTScore, RadGraph and GREEN columns show "
                  "\"-\" unless their scorer ran."
                  + (" Rows marked (published) are the paper's numbers on MIMIC-CXR test, for reference only; its "
                     "CheXbert F1s sit in the 14-label columns (its table does not say; its text lists 14 labels "
                     "first), and its RadGraph F1, whose level it does not state, has a column of its own."
                     if published else ""), ""]
    header, rows = grounding_map_table(runs, published)
    if rows:
        parts += [f"## Grounding, {metric_spec('map50').name}", "", _md(header, rows), ""]
        if published:
            parts += [("Rows marked (published) are the paper's benchmarks (Chest ImaGenome, VinDr-CXR, MS-CXR, "
                      "PadChest-GR), for reference only."), ""]
    header, rows = grounding_table(runs)
    if rows:
        parts += ["## Grounding, all metrics", "", _md(header, rows), ""]
    shown = {k for r in runs for t in r.metrics["tasks"] for k in r.agg(t)}
    if shown:  # every column above, the paper's included
        paper = _paper_keys(published)
        keys = paper + [k for k in table_keys("report", shown) if k not in paper]
        parts += ["## Metrics", "", metric_legend(_spec(k) for k in keys), ""]
    labels = payload["chexpert_per_label"]
    if any(labels.values()):
        names = [n for n in labels if labels[n]]
        rows = [[label] + [f"{100 * labels[n][label]['f1']:.1f}" for n in names]
                + [f"{labels[names[0]][label]['support']:.0f}"] for label in CHEXPERT_LABELS]
        parts += [f"## CheXpert-rules F1 per label ({_labeler(runs)}, not CheXbert)", "",
                  _md(["label", *names, "reference positives"], rows), ""]
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
             f"{s['think_mean']:.0f}", f"{s['reference_mean']:.0f}"]
            for n, by in lengths.items() for t, s in by.items()]
    if rows:
        parts += ["## Answer length (characters)", "",
                  _md(["model", "task", "mean", "median", "p90", "max", "thinking mean", "reference mean"], rows), ""]
    tests = payload["paired"]["tests"]
    better, spec = {True: "higher", False: "lower", None: "-"}, metric_spec
    rows = [[n, t, spec(k).name, better[spec(k).higher_is_better], spec(k).format_delta(r["delta"]),
             f"[{spec(k).format_delta(r['low'])}, {spec(k).format_delta(r['high'])}]",
             f"< {1 / 2000:.4f}" if r["p_value"] == 0 else f"{r['p_value']:.4f}", str(r["n"]), str(r["excluded"])]
            for n, by in tests.items() for t, ks in by.items() for k, r in ks.items()]
    if rows:
        parts += [f"## Paired bootstrap against {payload['paired']['baseline']}", "",
                  _md(["model", "task", "metric", "better", "delta", "95% CI", "p (two-sided)", "paired rows",
                       "excluded rows"], rows), "",
                  ("Delta = model minus baseline in the mean of per-sample values (sentence-level for BLEU and "
                   "GLEU, whose tables show corpus values) on the rows both scored with the same request and image, "
                   "in the metric's unit (percentage points for percentages); \"better\" says which sign is an "
                   "improvement; excluded: rows only one run scored or asked differently; 2,000 paired resamples, "
                   "seed 0."), ""]
    return "\n".join(parts)


def _write_csv(runs: list[Run], published: bool, path: Path, found: list[dict] = ()) -> None:
    """Long format. ``data`` says which dataset a value was measured on (published rows: the paper's);
    ``mismatch`` (empty when the runs are comparable) holds the differences that concern the row's run and task.
    ``metric`` is the key, ``name`` its spec's display name; values are in the key's unit everywhere (0-1 for
    percentages; the paper's percent numbers are divided by 100), so one metric's rows compare directly."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["run", "source", "task", "metric", "value", "ci_low", "ci_high", "data", "mismatch", "name"])
        for run in runs:
            data = run.manifest.get("data", {}).get("path", run.metrics.get("data"))
            for task, v in run.metrics["tasks"].items():
                ci = v.get("ci", {})
                note = "; ".join(m["text"] for m in found
                                 if run.name in m["runs"] and m["task"] in (None, task.split("/")[0]))
                for k, value in v["aggregate"].items():
                    lo, hi = ci.get(k, (None, None))
                    w.writerow([run.name, "ours", task, k, value, lo, hi, data, note, metric_spec(k).name])
        if published:  # the paper prints percent (RadCliQ raw): back to the key's unit
            def unit(key: str, value: float) -> float:
                return value / 100 if _spec(key).scale == "pct" else value

            for model, values in PUBLISHED["report"].items():
                for k, value in zip(PUBLISHED_REPORT_KEYS, values):
                    w.writerow([model, "published", "report", k, unit(k, value), None, None,
                                PUBLISHED["data"]["report"], "", _spec(k).name])
            for model, values in PUBLISHED["grounding"].items():
                for bench, value in values.items():
                    w.writerow([model, "published", f"grounding/{bench}", "map50", unit("map50", value), None, None,
                                PUBLISHED["data"]["grounding"][bench], "", metric_spec("map50").name])
