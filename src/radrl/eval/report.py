"""Results on disk: metrics JSON, Markdown tables, box images and reward curves."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from radrl.data.boxes import Box
from radrl.eval.stats import mean_cis
from radrl.metrics import MetricResult, all_specs, metric_spec

# The keys a task's tables and summary show first, in this order; every other key a run has follows in spec
# order (radrl.metrics.all_specs: the scorers' keys, then well_formed, avg_chars, n), and a key without a spec
# last, under its own name: nothing is dropped.
TABLE_KEYS = {
    "grounding": ["soft_f1", "map50", "ap50_dataset", "mean_iou", "acc50", "normal_correct", "false_positive_rate"],
    "report": ["rouge_l", "bertscore_distilbert", "bertscore", "chexbert_f1_micro_14", "chexbert_f1_macro_14",
               "radgraph_partial", "green", "radcliq_v1", "chexpert_rules_micro_f1_14", "chexpert_rules_macro_f1_14",
               "chexpert_rules_micro_f1_5", "chexpert_rules_macro_f1_5", "clinical", "bleu"],
}


def table_keys(task: str, present) -> list[str]:
    """The keys of ``present`` in table order for ``task`` (``"grounding/anatomy"`` orders as grounding),
    leaving out a key whose ``same_as`` twin is also present (``bleu4`` beside ``bleu``).

    >>> table_keys("report", ["zz_new", "n", "bleu4", "rouge_l", "avg_chars", "bleu"])
    ['rouge_l', 'bleu', 'avg_chars', 'n', 'zz_new']
    """
    present = set(present)
    order = {k: i for i, k in enumerate(dict.fromkeys([*TABLE_KEYS.get(task.split("/")[0], []), *all_specs()]))}
    keys = sorted(present, key=lambda k: (order.get(k, len(order)), k))
    return [k for k in keys if metric_spec(k).same_as not in present]


def summary_line(task: str, aggregate: dict[str, float]) -> str:
    """One terminal line per task: every key, by its display name, as the tables show it.

    >>> summary_line("report", {"rouge_l": 0.25, "radcliq_v1": 1.1, "n": 3})
    'report (n=3): ROUGE-L 25.0 | RadCliQ-v1 (lower better) 1.100'
    """
    cells = [f"{metric_spec(k).name} {metric_spec(k).format(aggregate[k])}"
             for k in table_keys(task, aggregate) if k != "n"]
    return f"{task} (n={aggregate.get('n', 0):.0f}): " + " | ".join(cells)


def metric_legend(specs) -> str:
    """Markdown bullets for a table's columns: each name, its key, meaning, direction, and whether it needs
    model weights (a column of "-" then says which scorer did not run)."""
    better = {True: "higher is better", False: "lower is better", None: "no better direction"}
    return "\n".join(f"- **{s.name}** (`{s.key}`): {s.description}; {better[s.higher_is_better]}"
                     + ("; needs model weights" if s.needs_weights else "") + "." for s in specs)


def write_metrics(results: dict[str, MetricResult], path: str | Path, extra: dict | None = None,
                  n_resamples: int = 2000, seed: int = 0, alpha: float = 0.05,
                  clusters: dict[str, list] | None = None) -> Path:
    """``metrics.json``: per task its ``aggregate``, ``ci`` and ``no_ci``, and ``versions``.

    ``ci[key] = [low, high]``: percentile bootstrap interval at level ``1 - alpha``
    (``n_resamples`` resamples of the rows, ``seed``) for every aggregate that is the mean
    of its per-sample values; ``no_ci[key]`` says why another aggregate has none (counts,
    corpus-level BLEU / GLEU / CheXpert micro-macro F1, CIDEr). See ``radrl.eval.stats.mean_cis``.
    ``n_resamples=0`` leaves the intervals out.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tasks = {}
    for t, r in results.items():
        tasks[t] = {"aggregate": r.aggregate}
        if n_resamples:
            tasks[t]["ci"], tasks[t]["no_ci"] = mean_cis(r, n_resamples=n_resamples, seed=seed, alpha=alpha,
                                                         clusters=(clusters or {}).get(t))
        tasks[t]["versions"] = r.versions
    payload: dict = {"tasks": tasks}
    if n_resamples:
        payload["bootstrap"] = {"method": "percentile bootstrap over samples", "n_resamples": n_resamples,
                                "seed": seed, "level": 1 - alpha}
    payload.update(extra or {})
    path.write_text(json.dumps(payload, indent=2))
    return path


def write_per_sample(rows: list[dict], results: dict[str, MetricResult], path: str | Path) -> Path:
    """``per_sample.jsonl``: one line per row, ``{"id", "task", <metric>: value, ...}``, in row order.

    ``results[task].per_sample`` lists follow the order of that task's rows (as ``score``
    returns them); later comparisons and paired tests join two runs on ``(task, id)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    seen: dict[str, int] = {}
    lines = []
    for row in rows:
        task = row["task"]
        i = seen[task] = seen.get(task, -1) + 1
        per = results[task].per_sample if task in results else {}
        lines.append(json.dumps({"id": row.get("id"), "task": task, **{k: v[i] for k, v in per.items()}}))
    path.write_text("".join(line + "\n" for line in lines))
    return path


def format_cell(key: str, value: float | None, ci: dict | None = None) -> str:
    """``value [low, high]`` as ``key``'s spec formats it; the interval only where ``ci`` has one."""
    spec = metric_spec(key)
    if value is None or key not in (ci or {}):
        return spec.format(value)
    return f"{spec.format(value)} [{spec.format(ci[key][0])}, {spec.format(ci[key][1])}]"


def markdown_table(runs: dict[str, dict[str, dict[str, float]]], task: str,
                   cis: dict[str, dict[str, dict[str, list[float]]]] | None = None) -> str:
    """Runs side by side for one task: ``runs[name][task] = aggregate dict``, one column per key any run has
    (``table_keys``), headed by its spec's name and formatted by its scale.

    ``cis[name][task][key] = [low, high]`` (the ``ci`` of ``metrics.json``), when given, shows
    a cell as ``value [low, high]``; keys without an interval show the value alone."""
    keys = table_keys(task, {k for r in runs.values() for k in r.get(task, {})})
    lines = ["| model | " + " | ".join(metric_spec(k).name for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, by_task in runs.items():
        agg = by_task.get(task, {})
        ci = ((cis or {}).get(name) or {}).get(task) or {}
        lines.append(f"| {name} | " + " | ".join(format_cell(k, agg.get(k), ci) for k in keys) + " |")
    return "\n".join(lines)


def boxes_image(image: Image.Image | str, pred: list[Box], ref: list[Box], scale: float = 2) -> Image.Image:
    """Reference boxes in green, predicted in red, on a copy of the image resized by ``scale``."""
    from radrl.data.images import load_image  # PNG, JPEG and DICOM alike

    img = (load_image(image) if isinstance(image, str) else image).convert("RGB")
    img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))))
    draw = ImageDraw.Draw(img)
    for boxes, color in ((ref, (0, 200, 0)), (pred, (230, 30, 30))):
        for b in boxes:
            draw.rectangle(b.to_pixels(img.width, img.height), outline=color, width=2)
    return img


def draw_boxes(image: Image.Image | str, pred: list[Box], ref: list[Box], path: str | Path,
               scale: int = 2) -> Path:
    """``boxes_image`` saved to ``path``."""
    img = boxes_image(image, pred, ref, scale)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def plot_curves(log_history: list[dict], keys: list[str], path: str | Path, title: str = "",
                smooth: int = 10) -> Path | None:
    """Training curves (e.g. ``rewards/grounding_soft_f1/mean``) against step; None when no key was logged.

    Each step scores different prompts, so raw per-step rewards are noisy: a running mean over
    ``smooth`` logged points is drawn over the faint raw curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    plotted = False
    for key in keys:
        pts = [(h["step"], h[key]) for h in log_history if key in h and h[key] == h[key]]  # skip NaN
        if pts:
            steps, values = zip(*pts)
            line, = ax.plot(steps, values, alpha=0.25, linewidth=1)
            window = max(1, min(smooth, len(values)))
            running = [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
                       for i in range(len(values))]
            ax.plot(steps, running, color=line.get_color(), linewidth=2, label=f"{key} (running mean)")
            plotted = True
    if not plotted:
        plt.close(fig)
        return None
    ax.set_xlabel("step")
    ax.set_ylabel("reward")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
