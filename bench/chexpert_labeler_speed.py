"""Speed of the rule-based CheXpert labeler on one CPU core, over the real IU reports.

Labels FINDINGS + IMPRESSION of all 3,955 Indiana University reports with
``radrl.metrics.chexpert.label_report`` (one call per report: ``label_reports`` would
label repeated texts once, and many IU reports repeat, which would flatter the number),
pinned to one core, and reports the best of several repeats as reports/s and chars/s.
Torch-free: only the labeler and the standard library are imported.

    .venv/bin/python bench/chexpert_labeler_speed.py [--data ../shared/data/cxr] [--repeats 7]

Writes ``<out>/chexpert_labeler_speed.json`` and prints a one-line summary.
Target (issue 3): at least 5,000 reports/s on one core.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

from benchlib import cpu_model
from chexpert_labeler_iu import data_dir, load_reports

from radrl.metrics.chexpert import LABELER_VERSION, label_report

TARGET = 5_000  # reports/s


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="shared/data/cxr folder (default: $RADRL_CXR_DATA or <repo>/../shared/data/cxr)")
    ap.add_argument("--repeats", type=int, default=7, help="timed passes over all reports; the best counts")
    ap.add_argument("--out", default=str(REPO / "bench" / "results"), help="folder for the JSON result")
    args = ap.parse_args(argv)

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # one core, as a reward worker would have
    texts = list(load_reports(data_dir(args.data, ("NLMCXR_reports.tgz",)) / "reports" / "NLMCXR_reports.tgz").values())
    n_chars = sum(len(t) for t in texts)
    assert "torch" not in sys.modules, "the labeler benchmark must not import torch"

    for t in texts[:200]:  # warm-up: compile the patterns, fill caches
        label_report(t)
    times = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for t in texts:
            label_report(t)
        times.append(time.perf_counter() - start)
    best = min(times)

    results = {
        "benchmark": "chexpert_labeler_speed",
        "command": "python bench/chexpert_labeler_speed.py" + "".join(f" {a}" for a in (argv or sys.argv[1:])),
        "date": time.strftime("%Y-%m-%d"), "labeler_version": LABELER_VERSION,
        "n_reports": len(texts), "n_chars": n_chars, "mean_chars_per_report": round(n_chars / len(texts), 1),
        "repeats": args.repeats, "seconds_per_pass": [round(t, 4) for t in times],
        "reports_per_s": round(len(texts) / best, 1), "chars_per_s": round(n_chars / best),
        "median_reports_per_s": round(len(texts) / sorted(times)[len(times) // 2], 1),
        "target_reports_per_s": TARGET,
        "machine": {"cpu": cpu_model(), "cores_used": 1, "cores_visible": os.cpu_count(),
                    "python": platform.python_version()},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "chexpert_labeler_speed.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"{results['reports_per_s']:,.0f} reports/s (best of {args.repeats}; median "
          f"{results['median_reports_per_s']:,.0f}), {results['chars_per_s']:,} chars/s, "
          f"{len(texts)} reports of {results['mean_chars_per_report']:.0f} chars on one core of {cpu_model()} "
          f"(target {TARGET:,}/s)")
    return results


if __name__ == "__main__":
    main()
