"""``radrl score --refs FILE --preds FILE``: score generated reports against references
(``radrl.metrics.files.score_files``); prints the aggregate table."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from radrl.cli.args import ArgumentParser
from radrl.metrics import DEVICE_ENV, metric_device, metric_progress
from radrl.metrics.files import score_files, write_per_sample


def main(argv: list[str] | None = None):
    p = ArgumentParser(prog="radrl score", description="Score generated reports against references.")
    p.add_argument("--refs", required=True, help="reference reports: text (one per line), .jsonl or .csv")
    p.add_argument("--preds", required=True, help="generated reports, aligned with --refs, same formats")
    p.add_argument("--metrics", nargs="+", default=["text", "chexpert"], names=True,
                   help="names from radrl.metrics.METRICS, space- or comma-separated (default: text chexpert, the "
                        "offline ones)")
    p.add_argument("--column", help="JSONL field / CSV column holding the report in both files")
    p.add_argument("--ref-column", help="field / column for --refs (overrides --column)")
    p.add_argument("--pred-column", help="field / column for --preds (overrides --column)")
    p.add_argument("--no-header", action="store_true", help="CSV files have no header: the report is column 1")
    p.add_argument("--out", help="write per-sample values: .csv, else JSONL")
    p.add_argument("--metric-device", default=None,
                   help="device of the model-based scorers: cpu, cuda, cuda:1 (default: the GPU when there is one; "
                        "also $RADRL_METRIC_DEVICE)")
    a = p.parse_args(argv)
    metrics = [m.strip() for m in a.metrics if m.strip()]

    try:
        if a.metric_device:   # every scorer reads it
            os.environ[DEVICE_ENV] = metric_device(a.metric_device)
        with metric_progress():   # model-based scorers show their batches on a terminal
            result, refs, preds = score_files(a.refs, a.preds, metrics, a.ref_column or a.column,
                                              a.pred_column or a.column, header=not a.no_header)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"radrl score: {e}")
    print(_table(result.aggregate))
    if a.out:
        write_per_sample(Path(a.out), result.per_sample, refs, preds)
        print(f"per-sample values written to {a.out}")
    return result


def _table(aggregate: dict[str, float]) -> str:
    """Key, value and the key's display name (``radrl.metrics.metric_spec``: which labeler, over how many labels,
    which direction is better), as in every other table."""
    from radrl.metrics import metric_spec

    width = max(len(k) for k in aggregate)
    lines = [f"{'metric':<{width}}  value   name", f"{'-' * width}  ------  ----"]
    for k, v in aggregate.items():
        value = str(int(v)) if k in ("n", "empty_predictions") else f"{v:.4f}"
        lines.append(f"{k:<{width}}  {value:<6}  {metric_spec(k).name}")
    return "\n".join(lines)
