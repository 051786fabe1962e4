"""Reports in files, outside training: read them, score them (``radrl score``), label them (``radrl label``).

Why: a researcher comparing against a published system has two files of reports, not a
radrl run; these verbs score them with exactly the code the rewards and ``radrl eval``
use, and label reports the way the CheXpert labeler's ``labeled_reports.csv`` does.

Input files (``read_reports``), chosen by extension:

* ``.jsonl``: one JSON object per line; the report is the field ``--column`` (or, with
  two files, ``--ref-column`` / ``--pred-column``); without one, ``report`` (the rows
  ``radrl prepare --reports-only`` writes), else the only string field.
* ``.csv``: a header row; the column ``--column``, else ``Reports`` (the CheXpert
  labeler's name), else the only column. ``--no-header``: the first column of every row
  (the CheXpert labeler's input format).
* anything else: plain text, one report per line (a final newline ends the last line;
  blank lines are empty reports, kept so that lines stay aligned).

    radrl score --refs refs.txt --preds preds.txt --metrics text,chexpert --out per_sample.jsonl
    radrl label reports.csv --out labeled_reports.csv
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from radrl.data.schema import NEGATIVE, POSITIVE, UNCERTAIN

__all__ = ["LABELER_COLUMNS", "label_rows", "read_reports", "score_files", "write_per_sample"]

# Column order of the CheXpert labeler's labeled_reports.csv (its CATEGORIES, with
# "Airspace Opacity" written as "Lung Opacity"); note Lung Lesion before Lung Opacity.
LABELER_COLUMNS = ("No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Lesion", "Lung Opacity", "Edema",
                   "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
                   "Fracture", "Support Devices")
_CODES = {POSITIVE: "1.0", NEGATIVE: "0.0", UNCERTAIN: "-1.0"}  # as the labeler writes them; blank = not mentioned


def read_reports(path: str | Path, column: str | None = None, header: bool = True) -> list[str]:
    """The reports in a text, JSONL or CSV file (see the module docstring), in file order.

    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "r.jsonl")
    >>> _ = open(f, "w").write('{"id": 1, "report": "No effusion."}\\n')
    >>> read_reports(f)
    ['No effusion.']
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file; give a text (one report per line), .jsonl or .csv file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text ({e}); convert it, e.g. iconv -f latin1 -t utf-8") from e
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        return _read_jsonl(path, text, column)
    if suffix == ".csv":
        return _read_csv(path, text, column, header)
    if column is not None:
        raise ValueError(f"{path}: a column was given ({column!r}) but the file is plain text (one report per line); "
                         "name it .jsonl or .csv if it has columns")
    text = text.replace("\r\n", "\n")
    text = text.removesuffix("\n")
    return text.split("\n") if text else []


def _read_jsonl(path: Path, text: str, column: str | None) -> list[str]:
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {n}: not valid JSON ({e.msg}); each line must be one JSON object") from e
        if not isinstance(row, dict):
            raise ValueError(f"{path}, line {n}: a JSON {type(row).__name__}, not an object with a report field")  # noqa: TRY004 (bad data, not a bad call)
        if column is None:
            fields = [k for k, v in row.items() if isinstance(v, str)]
            fields = ["report"] if "report" in fields else fields   # `radrl prepare --reports-only` rows
            if len(fields) != 1:
                raise ValueError(f"{path}, line {n}: {len(fields)} text fields {fields}; say which holds the report "
                                 "with --column (or --ref-column / --pred-column)")
            column = fields[0]
        value = row.get(column)
        if not isinstance(value, str):
            got = "missing" if column not in row else f"a {type(value).__name__}"
            raise ValueError(f"{path}, line {n}: field {column!r} is {got}, not a report string "  # noqa: TRY004
                             f"(fields: {sorted(row)})")
        out.append(value)
    return out


def _read_csv(path: Path, text: str, column: str | None, header: bool) -> list[str]:
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not header:
        if column is not None:
            raise ValueError(f"{path}: --column {column!r} needs a header row; drop --no-header")
        return [row[0] if row else "" for row in rows]
    if not rows:
        return []
    names = rows[0]
    if column is None:
        column = "Reports" if "Reports" in names else (names[0] if len(names) == 1 else None)
        if column is None:
            raise ValueError(f"{path}: columns {names}; say which holds the report with --column "
                             "(or --no-header for a headerless file whose first column is the report)")
    if column not in names:
        raise ValueError(f"{path}: no column {column!r}; the header has {names}")
    i = names.index(column)
    out = []
    for n, row in enumerate(rows[1:], 2):
        if not row:
            continue
        if i >= len(row):
            raise ValueError(f"{path}, row {n}: {len(row)} fields, no {column!r} (field {i + 1}); fix the row")
        out.append(row[i])
    return out


# --- radrl score --------------------------------------------------------------------------


def score_files(refs_path: str | Path, preds_path: str | Path, metrics: list[str], ref_column: str | None = None,
                pred_column: str | None = None, header: bool = True):
    r"""Read both files, parse each report (a ``<think>`` block is dropped, as in eval and the
    rewards) and run the named ``METRICS`` on them: one ``MetricResult`` for all (plus ``n``
    and ``empty_predictions``), and the parsed references and predictions it scored.

    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "refs.txt"), "w").write("No effusion.\nMild cardiomegaly.\n")
    >>> _ = open(os.path.join(d, "preds.txt"), "w").write("No effusion.\n<think>big</think>Cardiomegaly.\n")
    >>> result, refs, preds = score_files(os.path.join(d, "refs.txt"), os.path.join(d, "preds.txt"), ["chexpert"])
    >>> preds, result.aggregate["chexpert_rules_micro_f1_14"], result.aggregate["n"]
    (['No effusion.', 'Cardiomegaly.'], 1.0, 2.0)
    """
    from radrl.metrics.base import MetricResult, named_error
    from radrl.metrics.registry import METRICS
    from radrl.parsing import parse

    unknown = [m for m in metrics if m not in METRICS]
    if not metrics or unknown:
        raise ValueError(f"unknown metric(s) {unknown or metrics}; choose from {sorted(METRICS)}")
    refs = read_reports(refs_path, ref_column, header)
    preds = read_reports(preds_path, pred_column, header)
    if len(refs) != len(preds):
        raise ValueError(f"{refs_path} has {len(refs)} references but {preds_path} has {len(preds)} predictions; "
                         "the files must be aligned, one report per sample in the same order")
    if not refs:
        raise ValueError(f"{refs_path} and {preds_path} hold no reports")
    refs = [parse(r).answer for r in refs]
    preds = [parse(p).answer for p in preds]
    results = []
    for name in metrics:
        try:
            results.append(METRICS[name](refs, preds))
        except Exception as e:
            raise named_error(e, f"metric {name!r} failed") from e
    result = MetricResult.merge(results)
    result.aggregate["n"] = float(len(refs))
    result.aggregate["empty_predictions"] = float(sum(not p for p in preds))
    return result, refs, preds


def write_per_sample(path: Path, per_sample: dict[str, list[float]], refs: list[str], preds: list[str]) -> None:
    """One row per sample (index, reference, prediction, every per-sample value): CSV when ``path`` ends in
    ``.csv``, else JSONL."""
    keys = list(per_sample)
    rows = [{"index": i, "reference": r, "prediction": h, **{k: per_sample[k][i] for k in keys}}
            for i, (r, h) in enumerate(zip(refs, preds, strict=True))]
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".csv":
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=["index", "reference", "prediction", *keys])
            writer.writeheader()
            writer.writerows({k: (repr(v) if isinstance(v, float) else v) for k, v in row.items()} for row in rows)
    else:
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")


# --- radrl label --------------------------------------------------------------------------


def label_rows(reports: list[str]) -> list[dict[str, str]]:
    """One row per report: ``Reports`` and the 14 observations coded as the CheXpert
    labeler writes them ("1.0", "0.0", "-1.0", "" for not mentioned).

    >>> row = label_rows(["Moderate cardiomegaly. No pneumothorax."])[0]
    >>> row["Cardiomegaly"], row["Pneumothorax"], row["Edema"]
    ('1.0', '0.0', '')
    """
    from radrl.metrics.chexpert import label_reports

    return [{"Reports": text, **{c: _CODES[labels[c]] if c in labels else "" for c in LABELER_COLUMNS}}
            for text, labels in zip(reports, label_reports(reports), strict=True)]
