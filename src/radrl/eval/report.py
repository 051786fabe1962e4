"""Results on disk: metrics JSON, Markdown tables, box images and reward curves."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

from radrl.data.boxes import Box
from radrl.metrics import MetricResult

# Which aggregate keys a table shows per task, in order (percent unless noted).
TABLE_KEYS = {
    "grounding": ["soft_f1", "map50", "mean_iou", "acc50", "well_formed"],
    "report": ["rouge_l", "bleu", "chexpert_micro_f1_14", "chexpert_macro_f1_5", "clinical", "well_formed", "avg_chars"],
}


def write_metrics(results: dict[str, MetricResult], path: str | Path, extra: dict | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"tasks": {t: {"aggregate": r.aggregate, "versions": r.versions} for t, r in results.items()}}
    payload.update(extra or {})
    path.write_text(json.dumps(payload, indent=2))
    return path


def _fmt(key: str, value: float | None) -> str:
    if value is None:
        return "-"
    if key in ("avg_chars", "n"):
        return f"{value:.0f}"
    return f"{100 * value:.1f}"


def markdown_table(runs: dict[str, dict[str, dict[str, float]]], task: str) -> str:
    """Runs side by side for one task: ``runs[name][task] = aggregate dict``. Scores in percent."""
    keys = TABLE_KEYS.get(task) or sorted({k for r in runs.values() for k in r.get(task, {})})
    lines = ["| model | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for name, by_task in runs.items():
        agg = by_task.get(task, {})
        lines.append(f"| {name} | " + " | ".join(_fmt(k, agg.get(k)) for k in keys) + " |")
    return "\n".join(lines)


def draw_boxes(image: Image.Image | str, pred: list[Box], ref: list[Box], path: str | Path,
               scale: int = 2) -> Path:
    """Reference boxes in green, predicted in red, on an upscaled copy of the image."""
    img = (Image.open(image) if isinstance(image, str) else image).convert("RGB")
    img = img.resize((img.width * scale, img.height * scale))
    draw = ImageDraw.Draw(img)
    for boxes, color in ((ref, (0, 200, 0)), (pred, (230, 30, 30))):
        for b in boxes:
            draw.rectangle(b.to_pixels(img.width, img.height), outline=color, width=2)
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
