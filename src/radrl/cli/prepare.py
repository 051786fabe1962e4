"""``radrl prepare SOURCE --root DIR --out DIR``: a dataset in its published layout -> samples (``radrl.data.prepare``).

Exit codes: 2 for a fatal problem in the data or the options (``PrepareError``, ``--strict``), 1 when no row
could be written."""

from __future__ import annotations

import sys

from radrl.cli.args import ArgumentParser
from radrl.data.prepare import FORMATS, PrepareError, format_summary, list_sources, prepare, readable_sources


def main(argv: list[str] | None = None) -> dict | None:
    p = ArgumentParser(prog="radrl prepare", description="Read a dataset in its published layout into "
                       "samples JSONL + a Hugging Face dataset (radrl prepare --list shows the sources).")
    names = readable_sources()
    p.add_argument("source", nargs="?", choices=names, metavar="SOURCE", help=", ".join(names))
    p.add_argument("--list", action="store_true", help="show every source with the files it expects")
    p.add_argument("--root", help="the dataset folder (or file) as downloaded")
    p.add_argument("--out", help="output folder")
    p.add_argument("-o", "--option", action="append", default=[], metavar="KEY=VALUE",
                   help="adapter option, e.g. -o boxed=only (see --list)")
    p.add_argument("--format", default="hf", choices=FORMATS, help="dataset written beside the JSONL (default hf)")
    p.add_argument("--strict", action="store_true", help="stop at the first skipped row instead of counting it")
    p.add_argument("--decode", action="store_true", help="decode every image fully to find corrupt files now (slow)")
    p.add_argument("--dicom-to-png", action="store_true",
                   help="decode DICOM images once into OUT/images/<id>.png and point the samples there")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="with --dicom-to-png: shrink the PNGs to this pixel budget (Qwen3-VL rule), e.g. 1048576")
    p.add_argument("--reports-only", action="store_true",
                   help="report rows without images (OUT/reports.jsonl) for radrl score / radrl label; "
                        "sources folder and iu-xray")
    p.add_argument("--limit", type=int, default=None, help="stop after this many written rows (a quick look)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if a.list:
        print(list_sources())
        return None
    if not a.source or not a.root or not a.out:
        p.error("SOURCE, --root and --out are required (or --list)")
    options = {}
    for opt in a.option:
        key, sep, value = opt.partition("=")
        if not sep or not key:
            p.error(f"-o expects KEY=VALUE, got {opt!r}")
        options[key] = value
    try:
        summary = prepare(a.source, a.root, a.out, options=options, strict=a.strict, fmt=a.format, limit=a.limit,
                          decode=a.decode, dicom_to_png=a.dicom_to_png, max_pixels=a.max_pixels,
                          progress=not a.no_progress, reports_only=a.reports_only)
    except PrepareError as e:
        print(f"radrl prepare: error: {e}", file=sys.stderr)
        sys.exit(2)
    print(format_summary(summary))
    if summary["written"] == 0:
        # the folder source has no published layout to compare with: point at its table and its rows instead
        what = ("your table, or the folder that holds it and the images, and do its rows name images that exist "
                "there?" if a.source == "folder" else f"the {a.source} dataset folder as downloaded?")
        print(f"radrl prepare: error: no rows written from {a.root}; is --root {what} "
              "(the skip reasons above and radrl prepare --list show what was expected)", file=sys.stderr)
        sys.exit(1)
    return summary
