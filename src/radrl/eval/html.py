"""A self-contained HTML report of one or more evaluation runs (``radrl compare`` writes ``report.html``).

Self-contained so it can be mailed, attached to a paper review or opened offline: images are
inlined as base64 PNG data URLs, plots are inline SVG, there is no script or style from
elsewhere. Sections: a red banner listing what the runs measured differently, when compared
with ``--allow-mismatch``; the runs (model, data, decoding); the leaderboard tables; metric bars
with their 95 % bootstrap intervals; reward and length curves from training logs
(``log_history.json`` of ``radrl sft`` / ``radrl grpo``); grounding examples with reference
(green) and predicted (red) boxes per run; reports side by side with the CheXpert findings
(rule labeler) each run matched, missed or added.

A small script marks ``<body data-images="loaded/total">`` once the page has loaded, so a
headless browser can check that every image decoded (``tests/eval/test_compare.py``).
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from radrl.data.images import load_image
from radrl.data.schema import POSITIVE, UNCERTAIN
from radrl.eval.contract import banner
from radrl.eval.report import TABLE_KEYS, boxes_image
from radrl.metrics import metric_spec
from radrl.models.endpoint import image_data_url
from radrl.parsing import parse

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
# Bars: a task's headline keys (radrl.eval.report.TABLE_KEYS) that are shares (0-1), under their spec names.
BAR_KEYS = {task: tuple(k for k in keys if metric_spec(k).scale == "pct") for task, keys in TABLE_KEYS.items()}
CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1400px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f3f3f3}.pub td{color:#777;font-style:italic}.ex{display:flex;gap:1em;flex-wrap:wrap}
.card{border:1px solid #ddd;padding:.5em;border-radius:4px;max-width:420px;font-size:13px}
.m{background:#d4f4d4}.x{background:#fbd5d5}.e{background:#fde8c8}.chip{padding:0 4px;margin:1px;border-radius:3px;
display:inline-block}pre{white-space:pre-wrap;margin:.2em 0}small{color:#666}
.mismatch{background:#fbd5d5;border:2px solid #d62728;padding:.5em 1em;margin-bottom:1em}"""
SCRIPT = """window.addEventListener('load',function(){var i=Array.prototype.slice.call(document.images);
var ok=i.filter(function(x){return x.complete&&x.naturalWidth>0}).length;
document.body.setAttribute('data-images',ok+'/'+i.length)});"""


def _e(x) -> str:
    return html.escape(str(x))


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>"
    body = "".join(f"<tr{' class=pub' if '(published)' in r[0] else ''}>" + "".join(f"<td>{_e(c)}</td>" for c in r)
                   + "</tr>" for r in rows)
    return f"<table>{head}{body}</table>"


def bars_svg(values: dict[str, dict[str, tuple[float, float | None, float | None]]], width: int = 720,
             height: int = 340) -> str:
    """Grouped bars: ``values[metric][run] = (value, ci_low, ci_high)`` in [0, 1]; error bars where a CI exists.
    Metric names are slanted under their group, so long names ("CheXpert-rules micro-F1 (14)") stay legible."""
    metrics = list(values)
    runs = list(dict.fromkeys(r for m in metrics for r in values[m]))
    if not metrics or not runs:
        return ""
    width = max(width, 40 + 60 * len(metrics))
    left, bottom, top = 40, 140, 10  # bottom: slanted names (about 100 px) above the run legend
    plot_h = height - bottom - top
    group_w = (width - left) / len(metrics)
    bar_w = group_w * 0.8 / len(runs)
    def y(v):
        return top + plot_h * (1 - max(0.0, min(1.0, v)))
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    for t in (0, 0.25, 0.5, 0.75, 1.0):
        out.append(f'<line x1="{left}" x2="{width}" y1="{y(t):.1f}" y2="{y(t):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 4}" y="{y(t) + 4:.1f}" font-size="10" text-anchor="end">{100 * t:.0f}</text>')
    for i, m in enumerate(metrics):
        x0 = left + i * group_w + group_w * 0.1
        for j, r in enumerate(runs):
            if r not in values[m]:
                continue
            v, lo, hi = values[m][r]
            x = x0 + j * bar_w
            out.append(f'<rect x="{x:.1f}" y="{y(v):.1f}" width="{bar_w * 0.9:.1f}" height="{y(0) - y(v):.1f}" '
                       f'fill="{COLORS[j % len(COLORS)]}"><title>{_e(r)} {_e(m)}: {100 * v:.1f}</title></rect>')
            if lo is not None and hi is not None:
                cx = x + bar_w * 0.45
                out.append(f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{y(lo):.1f}" y2="{y(hi):.1f}" stroke="#000"/>'
                           f'<line x1="{cx - 3:.1f}" x2="{cx + 3:.1f}" y1="{y(lo):.1f}" y2="{y(lo):.1f}" '
                           'stroke="#000"/>'
                           f'<line x1="{cx - 3:.1f}" x2="{cx + 3:.1f}" y1="{y(hi):.1f}" y2="{y(hi):.1f}" '
                           'stroke="#000"/>')
        lx, ly = left + (i + 0.5) * group_w, height - bottom + 14
        out.append(f'<text x="{lx:.1f}" y="{ly}" font-size="11" text-anchor="end" '
                   f'transform="rotate(-35 {lx:.1f} {ly})">{_e(m)}</text>')
    for j, r in enumerate(runs):
        out.append(f'<rect x="{left + j * 120}" y="{height - 14}" width="10" height="10" '
                   f'fill="{COLORS[j % len(COLORS)]}"/>'
                   f'<text x="{left + j * 120 + 14}" y="{height - 5}" font-size="11">{_e(r)}</text>')
    return "".join(out) + "</svg>"


def curves_svg(series: dict[str, list[tuple[float, float]]], title: str, width: int = 560, height: int = 220) -> str:
    """Line plot of ``series[name] = [(step, value), ...]`` with its value range on the axis."""
    pts = [p for s in series.values() for p in s]
    if not pts:
        return ""
    x_min, x_max = min(p[0] for p in pts), max(p[0] for p in pts)
    y_min, y_max = min(p[1] for p in pts), max(p[1] for p in pts)
    x_span, y_span = (x_max - x_min) or 1.0, (y_max - y_min) or 1.0
    left, right, top, bottom = 50, 10, 20, 40
    def sx(v):
        return left + (width - left - right) * (v - x_min) / x_span
    def sy(v):
        return top + (height - top - bottom) * (1 - (v - y_min) / y_span)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">',
           f'<text x="{left}" y="14" font-size="12">{_e(title)}</text>',
           f'<text x="{left - 4}" y="{sy(y_max) + 4:.1f}" font-size="10" text-anchor="end">{y_max:.3g}</text>',
           f'<text x="{left - 4}" y="{sy(y_min) + 4:.1f}" font-size="10" text-anchor="end">{y_min:.3g}</text>',
           (f'<text x="{width - right}" y="{height - bottom + 14}" font-size="10" text-anchor="end">'
            f'step {x_max:g}</text>'),
           (f'<rect x="{left}" y="{top}" width="{width - left - right}" height="{height - top - bottom}" fill="none" '
           'stroke="#ccc"/>')]
    for j, (name, s) in enumerate(series.items()):
        color = COLORS[j % len(COLORS)]
        line = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in s)
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{line}"/>'
                   f'<text x="{left + 4}" y="{height - 22 + 12 * (j % 2)}" dx="{(j // 2) * 260}" font-size="10" '
                   f'fill="{color}">{_e(name)}</text>')
    return "".join(out) + "</svg>"


def _log_series(path: str | Path) -> tuple[dict, dict]:
    """(reward curves, completion-length curves) from a Trainer ``log_history.json`` (NaN points skipped)."""
    path = Path(path)
    if path.is_dir():
        path = path / "log_history.json"
    try:
        history = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read training log {path} ({e}); pass the log_history.json a training run "
                         "wrote") from None
    rewards, lengths = {}, {}
    for h in history:
        for k, v in h.items():
            if not isinstance(v, (int, float)) or math.isnan(v) or "step" not in h:
                continue
            if k == "reward" or (k.startswith("rewards/") and k.endswith("/mean")):
                rewards.setdefault(k, []).append((h["step"], v))
            elif k in ("completions/mean_length", "completion_length"):
                lengths.setdefault(k, []).append((h["step"], v))
    return rewards, lengths


def _positives(labels: dict[str, int]) -> set[str]:
    return {k for k, v in labels.items() if v in (POSITIVE, UNCERTAIN)}


def _findings(ref: str, hyp: str) -> str:
    """Chips: findings the answer matched (green), missed (red) and added (orange), by the rule labeler."""
    from radrl.metrics.chexpert import label_report

    r, h = _positives(label_report(ref)), _positives(label_report(hyp))
    chips = ([f'<span class="chip m">&#10003; {_e(x)}</span>' for x in sorted(r & h)]
             + [f'<span class="chip x">missed {_e(x)}</span>' for x in sorted(r - h)]
             + [f'<span class="chip e">added {_e(x)}</span>' for x in sorted(h - r)])
    return "".join(chips) or "<small>no positive findings on either side</small>"


def _examples(runs: list, task: str, n: int) -> list[tuple[str, dict[str, dict]]]:
    """The first ``n`` rows of ``task`` (in the first run's order) with each run's prediction for them."""
    by_run = {r.name: {p["id"]: p for p in r.predictions if p["task"] == task} for r in runs}
    ids = list(dict.fromkeys(i for r in runs for i in by_run[r.name]))[:n]
    return [(i, {name: preds[i] for name, preds in by_run.items() if i in preds}) for i in ids]


def _banner(payload: dict) -> list[str]:
    """The comparison contract's differences (``--allow-mismatch``) above everything else, and the machines note."""
    out = []
    if payload.get("mismatches"):
        items = "".join(f"<li>{_e(m['text'])}</li>" for m in payload["mismatches"])
        out.append(f'<div class="mismatch" role="alert"><b>{_e(banner(payload["mismatches"]))}:</b><ul>{items}</ul>'
                   "</div>")
    if payload.get("machines"):
        out.append(f"<p><small>{_e(payload['machines'])}</small></p>")
    return out


def write_html(runs: list, payload: dict, path: str | Path,
               tables: list[tuple[str, list[str], list[list[str]]]] = (), markdown: str = "",
               logs: dict[str, str] | None = None, n_examples: int = 8, image_width: int = 256) -> Path:
    """Write the report; ``runs`` are ``radrl.eval.compare.Run`` objects, ``payload`` ``compare``'s JSON,
    ``tables`` the leaderboard's ``(title, header, rows)`` tables (shown when they have rows) and ``markdown``
    the whole leaderboard.md. ``radrl.eval.compare`` builds both, so this module renders and never imports it."""
    body = [*_banner(payload), f"<h1>radrl evaluation: {_e(', '.join(r.name for r in runs))}</h1>", "<h2>Runs</h2>"]
    rows = [[r.name, str(r.manifest.get("model", {}).get("id", r.metrics.get("model", "?"))),
             str(r.manifest.get("model", {}).get("engine", "hf")),
             str(r.manifest.get("data", {}).get("path", r.metrics.get("data", "?"))),
             str(r.metrics.get("rows", "?")), json.dumps(r.manifest.get("decoding", r.metrics.get("decoding", {})))]
            for r in runs]
    body.append(_table(["run", "model", "engine", "data", "rows", "decoding"], rows))
    for title, header, rows in tables:
        if rows:
            body += [f"<h2>{_e(title)}</h2>", _table(header, rows)]
    body.append("<p><small>Published rows (italic) are the paper's numbers, for reference only. What each column "
                "means, per-class tables, length statistics and paired tests: leaderboard.md (also below)."
                "</small></p>")

    body.append("<h2>Metrics with 95% bootstrap intervals</h2>")
    for task, keys in BAR_KEYS.items():
        values: dict[str, dict] = {}
        for r in runs:
            agg, ci = r.agg(task), r.ci(task)
            for k in keys:
                if k in agg:
                    lo, hi = ci.get(k, (None, None))
                    values.setdefault(metric_spec(k).name, {})[r.name] = (agg[k], lo, hi)
        if values:
            body += [f"<h3>{_e(task)}</h3>", bars_svg(values)]

    if logs:
        body.append("<h2>Training curves</h2>")
        for name, log in logs.items():
            rewards, lengths = _log_series(log)
            body.append(f"<h3>{_e(name)}</h3>" + curves_svg(rewards, "reward (mean per logging step)")
                        + curves_svg(lengths, "completion length (tokens)"))

    grounding = _examples(runs, "grounding", n_examples)
    if grounding:
        body.append("<h2>Grounding examples (green: reference, red: prediction)</h2>")
        skipped = 0
        for row_id, preds in grounding:
            cards = []
            for name, p in preds.items():
                image = p.get("image")
                if not image or not Path(image).exists():
                    skipped += 1
                    continue
                pred = parse(p["completion"], thinking=p.get("thinking", False))
                ref = parse(p["solution"]).boxes
                img = load_image(image)  # its error names the file and the fix
                drawn = boxes_image(img, pred.boxes, ref, scale=image_width / img.width)
                cards.append(f'<div class="card"><b>{_e(name)}</b><br><img src="{image_data_url(drawn)}" '
                             f'alt="{_e(row_id)}" width="{drawn.width}"><pre>{_e(p["request"])}</pre>'
                             f'<small>prediction:</small><pre>{_e(p["completion"][:400])}</pre></div>')
            if cards:
                body.append(f"<h3>{_e(row_id)}</h3><div class=ex>{''.join(cards)}</div>")
        if skipped:
            body.append(f"<p><small>{skipped} example images left out: the predictions have no image path or "
                        "the file is gone.</small></p>")

    reports = _examples(runs, "report", n_examples)
    if reports:
        body.append("<h2>Reports (findings by the CheXpert rule labeler: matched, missed, added)</h2>")
        for row_id, preds in reports:
            first = next(iter(preds.values()))
            ref = parse(first["solution"]).answer
            cards = [f'<div class="card"><b>reference</b><pre>{_e(ref)}</pre></div>']
            for name, p in preds.items():
                ans = parse(p["completion"], thinking=p.get("thinking", False))
                think = f"<details><summary>thinking</summary><pre>{_e(ans.think)}</pre></details>" if ans.think else ""
                cards.append(f'<div class="card"><b>{_e(name)}</b> <small>{len(ans.answer)} chars</small>'
                             f'<pre>{_e(ans.answer)}</pre>{think}{_findings(ref, ans.answer)}</div>')
            body.append(f"<h3>{_e(row_id)}</h3><div class=ex>{''.join(cards)}</div>")

    body.append("<h2>Leaderboard (Markdown)</h2><pre>" + _e(markdown) + "</pre>")
    page = (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>radrl evaluation</title>"
            f"<style>{CSS}</style><script>{SCRIPT}</script></head><body>{''.join(body)}</body></html>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path

