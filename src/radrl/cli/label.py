"""``radrl label REPORTS``: CheXpert labels of reports as CSV, like the CheXpert labeler's
labeled_reports.csv (``radrl.metrics.files.label_rows``); to standard output by default."""

from __future__ import annotations

import csv
import sys

from radrl.cli.args import ArgumentParser
from radrl.metrics.files import LABELER_COLUMNS, label_rows, read_reports


def main(argv: list[str] | None = None) -> list[dict[str, str]]:
    from radrl.metrics.chexpert import LABELER_VERSION

    p = ArgumentParser(
        prog="radrl label",
        description=f"CheXpert labels of reports with radrl's rule labeler ({LABELER_VERSION}); "
                    "CSV like the CheXpert labeler's labeled_reports.csv.")
    p.add_argument("reports", help="reports: text (one per line), .jsonl or .csv")
    p.add_argument("--column", help="JSONL field / CSV column holding the report")
    p.add_argument("--no-header", action="store_true", help="CSV without header: the report is column 1")
    p.add_argument("--out", default="-", help="output CSV (default: standard output)")
    a = p.parse_args(argv)
    try:
        reports = read_reports(a.reports, a.column, header=not a.no_header)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"radrl label: {e}")
    rows = label_rows(reports)
    out = sys.stdout if a.out == "-" else open(a.out, "w", newline="", encoding="utf-8")  # noqa: SIM115
    try:
        writer = csv.DictWriter(out, fieldnames=["Reports", *LABELER_COLUMNS], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    finally:
        if out is not sys.stdout:
            out.close()
    if a.out != "-":
        print(f"{len(rows)} reports labelled ({LABELER_VERSION}) -> {a.out}")
    return rows
