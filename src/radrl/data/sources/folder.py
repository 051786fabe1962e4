"""Your own data: a folder of images and one table (CSV or JSONL) of reports, labels and/or boxes.

Why: a hospital export or a lab's annotation tool has no published layout for radrl to know,
but it can always be written as one row per image (or per box) in a table. This adapter turns
such a table into the project's one ``Sample`` schema, with the same checks and counted skips
as the public adapters, so ``radrl sft`` / ``radrl eval`` read it like any prepared dataset.

    radrl prepare folder --root /data/my-cxr --out data/mine                     # table: the one .csv/.jsonl in root
    radrl prepare folder --root /data/my-cxr --out data/mine -o table=boxes.csv -o units=fraction
    radrl prepare folder --root reports.csv --out data/reports --reports-only  # no images: report rows

Columns (CSV header or JSONL keys; names are matched without regard to case; other columns are
ignored and named once in the log):

=============  ==============================================================================
``image``      the image file: a path relative to the image folder (``--root``, or ``-o images=DIR``),
               an absolute path, or a bare file name (no folder) found anywhere under the image
               folder when exactly one file there has that name. PNG, JPEG or DICOM. Required,
               except with ``--reports-only``.
``id``         the sample id; default: the ``image`` value without its suffix (``a/b.png`` -> ``a_b``),
               or ``row<line>`` with ``--reports-only``. Rows of one id must name one image.
``split``      ``train``, ``valid``, ``test`` ...; default ``-o split=`` (``all``).
``view``       ``PA``, ``AP``, ``LATERAL`` ...; default: the DICOM's ViewPosition, else none.
``findings``   the findings section; ``impression``: the impression section; ``report``: the whole
               report when it is not split into sections (written as ``findings``).
``labels``     observations: a JSON object (``{"Cardiomegaly": 1, "Edema": -1}``, 1/0/-1) or the
               positive ones separated by ``|`` (``Cardiomegaly|Pleural Effusion``).
``label``      with ``x1, y1, x2, y2`` (corners) or ``x, y, w, h`` (top-left corner and size): one box
               per row; rows of one image (same ``id``) are merged. A row with ``label`` and empty
               coordinates (e.g. "No finding") adds no box.
``boxes``      several boxes in one row: a JSON list of ``{"label": ..., "box": [x1, y1, x2, y2]}``.
=============  ==============================================================================

Box coordinates are image pixels (``-o units=pixels``, the default; the image size is read
from its header) or 0-1 fractions of the width and height (``-o units=fraction``); either way
they end in the project's one convention (``radrl.data.boxes.Box``). A box outside its image,
an unreadable image, two rows of one image that disagree on its report, rows of one id that name
different images ("conflicting rows") and a bare name that several files have ("ambiguous image")
skip that image, counted, as in every adapter: none of them may become a sample with another
image's labels or boxes.

With ``--reports-only`` (``read_reports``) no image is opened: each row becomes a report row
``{"id", "source", "split", "findings", "impression", "report"}``, what ``radrl score`` and
``radrl label`` read (``radrl label OUT/reports.jsonl``).

>>> next(read("/data/my-cxr")).boxes                                           # doctest: +SKIP
[Box(x1=0.21..., y1=0.53..., x2=0.30..., y2=0.61..., label='Atelectasis')]
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

from radrl.data.boxes import Box
from radrl.data.schema import POSITIVE, Sample
from radrl.data.sources import Skip, SourceInfo
from radrl.data.sources._files import csv_dicts, files_by_name, header_size, pixel_box

log = logging.getLogger(__name__)

SOURCE = SourceInfo(
    name="folder",
    expects="""your own data: images (PNG, JPEG, DICOM; any sub-folders) and one table describing them:
  --root DIR: the images, and the table as the one .csv/.jsonl directly in DIR (or -o table=FILE)
  --root FILE: the table; images relative to its folder (or -o images=DIR)
  columns: image, id, split, view, findings, impression, report, labels,
           label + x1,y1,x2,y2 (or x,y,w,h) one box a row, boxes (JSON list); docs/data.md
options: table=FILE, images=DIR, units=pixels|fraction, split=all (the split of rows without one)
--reports-only: rows of report text, no images (for radrl score / radrl label)""",
    # a sample feeds whichever of these it has data for: report text, labels, boxes
    tasks=("report", "classification", "grounding", "detection"),
)

COLUMNS = ("image", "id", "split", "view", "findings", "impression", "report", "labels", "label", "boxes",
           "x1", "y1", "x2", "y2", "x", "y", "w", "h")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".dic")
UNITS = ("pixels", "fraction")
_TEXT = ("split", "view", "findings", "impression")   # one value per image: rows of an image must agree


def find_table(root: Path, table: str | None) -> tuple[Path, Path]:
    """(the table file, the folder image paths are relative to) for ``--root`` and ``-o table=``."""
    if table:
        path = Path(table)
        path = path if path.is_file() or path.is_absolute() else root / table
        if not path.is_file():
            raise FileNotFoundError(f"table {table} not found (looked at {path}); give -o table=FILE as a path "
                                    "or relative to --root")
        return path, root if root.is_dir() else path.parent
    if root.is_file():
        return root, root.parent
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist; --root is your image folder (or the table file)")
    found = sorted(p for p in root.iterdir() if p.is_file() and p.name.lower().endswith((".csv", ".jsonl", ".csv.gz")))
    if len(found) != 1:
        names = [p.name for p in found] or "none"
        raise FileNotFoundError(f"{root}: expected exactly one .csv or .jsonl table directly in the folder, found "
                                f"{names}; name it with -o table=FILE")
    return found[0], root


def table_rows(path: Path) -> Iterator[tuple[str, dict]]:
    """(``file:line``, row with lower-cased keys) for each row of a CSV or JSONL table; streamed.
    Columns radrl does not read are named once in the log, so a misspelt one is noticed."""
    rows = _jsonl(path) if path.name.lower().endswith(".jsonl") else csv_dicts(path)
    warned = False
    for where, row in rows:
        row = {str(k).strip().lower(): v for k, v in row.items() if k is not None}
        if not warned:
            extra = sorted(set(row) - set(COLUMNS))
            if extra:
                log.warning("%s: columns %s are not read (radrl reads %s; docs/data.md)", path, extra,
                            ", ".join(COLUMNS))
            warned = True
        yield where, row


def _jsonl(path: Path) -> Iterator[tuple[str, dict]]:
    with path.open(encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n}: not valid JSON ({e.msg}); each line must be one JSON object") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{n}: a JSON {type(row).__name__}, not an object with the columns "  # noqa: TRY004
                                 "(image, findings, ...)")
            yield f"{path}:{n}", row


def _text(row: dict, key: str) -> str | None:
    v = row.get(key)
    if v is None:
        return None
    v = str(v).strip()
    return v or None


def parse_labels(value, where: str) -> dict[str, int] | Skip:
    """A ``labels`` cell: a JSON object of 1/0/-1 (or that object itself, from JSONL), or positives joined by ``|``.

    >>> parse_labels("Cardiomegaly|Pleural Effusion", "t.csv:2")
    {'Cardiomegaly': 1, 'Pleural Effusion': 1}
    >>> parse_labels('{"Edema": -1}', "t.csv:3")
    {'Edema': -1}
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str) and value.strip().startswith("{"):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            return Skip(where, "bad labels", f"labels is not a JSON object ({e.msg}): {value!r}")
    if isinstance(value, str):
        value = [v.strip() for v in value.split("|") if v.strip()]
    if isinstance(value, list):
        value = dict.fromkeys((str(v) for v in value), POSITIVE)
    if not isinstance(value, dict) or any(v not in (1, 0, -1) or isinstance(v, bool) for v in value.values()):
        return Skip(where, "bad labels", f"labels must be {{name: 1/0/-1}} or names joined by '|', got {value!r}")
    return {str(k): int(v) for k, v in value.items()}


def _row_boxes(row: dict, where: str, units: str, width: int, height: int) -> list[Box] | Skip:
    """The boxes one row carries: its ``boxes`` list and its one ``label`` + coordinates box."""
    out: list[Box] = []
    listed = row.get("boxes")
    if isinstance(listed, str) and listed.strip():
        try:
            listed = json.loads(listed)
        except json.JSONDecodeError as e:
            return Skip(where, "malformed box", f"boxes is not a JSON list ({e.msg})")
    if listed and not isinstance(listed, list):
        return Skip(where, "malformed box", f"boxes must be a list of {{'label', 'box': [x1, y1, x2, y2]}}, "
                                            f"got {listed!r}")
    for i, item in enumerate(listed or []):
        coords = item.get("box") if isinstance(item, dict) else item
        label = item.get("label") if isinstance(item, dict) else None
        if not isinstance(coords, list) or len(coords) != 4:
            return Skip(f"{where} box {i}", "malformed box", f"expected [x1, y1, x2, y2], got {item!r}")
        b = _box(*coords, label, f"{where} box {i}", units, width, height)
        if isinstance(b, Skip):
            return b
        out.append(b)
    corners = [row.get(k) for k in ("x1", "y1", "x2", "y2")]
    xywh = [row.get(k) for k in ("x", "y", "w", "h")]
    for values, is_xywh in ((corners, False), (xywh, True)):
        if all(v is None or str(v).strip() == "" for v in values):
            continue
        b = _box(*values, _text(row, "label"), where, units, width, height, xywh=is_xywh)
        if isinstance(b, Skip):
            return b
        out.append(b)
    return out


def _box(x1, y1, x2, y2, label, where: str, units: str, width: int, height: int, xywh: bool = False) -> Box | Skip:
    if units == "pixels":
        return pixel_box(x1, y1, x2, y2, width, height, label, where, xywh=xywh)
    try:
        a, b, c, d = (float(v) for v in (x1, y1, x2, y2))
    except (TypeError, ValueError):
        return Skip(where, "malformed box", f"non-numeric coordinates {[x1, y1, x2, y2]}")
    if xywh:
        c, d = a + c, b + d
    box = Box(a, b, c, d, label)
    if not box.is_valid:
        return Skip(where, "box outside image", f"box {[a, b, c, d]} is not inside 0-1 with x1 < x2 and y1 < y2 "
                                                "(pixel boxes need -o units=pixels)")
    return box


def _image_path(image: str, image_dir: Path) -> Path:
    """Where a row's ``image`` value points: itself when absolute, else under the image folder."""
    return Path(os.path.normpath(image if Path(image).is_absolute() else image_dir / image))


def _default_id(image: str) -> str:
    p = Path(image)
    return str(p.with_suffix("")).lstrip("/").replace("/", "_").replace("\\", "_") if p.suffix else image


def read(root: str | Path, table: str | None = None, images: str | None = None, units: str = "pixels",
         split: str = "all") -> Iterator[Sample | Skip]:
    if units not in UNITS:
        raise ValueError(f"-o units={units!r}: choose pixels (image pixels, the default) or fraction (0-1)")
    table_path, image_dir = find_table(Path(root), table)
    image_dir = Path(images) if images else image_dir
    groups: dict[str, list[tuple[str, dict]]] = {}   # id -> its rows, in file order (boxes may come one a row)
    for where, row in table_rows(table_path):
        image = _text(row, "image")
        if image is None:
            yield Skip(where, "no image listed", "the row has no image value; use --reports-only for report rows "
                                                 "without images")
            continue
        groups.setdefault(_text(row, "id") or _default_id(image), []).append((where, row))
    index: dict[str, list[Path]] | None = None
    for sample_id, rows in groups.items():
        where = rows[0][0]
        image = _text(rows[0][1], "image")
        path = _image_path(image, image_dir)
        other = next(((w, r) for w, r in rows[1:] if _image_path(_text(r, "image"), image_dir) != path), None)
        if other is not None:   # `a/b.png` and `a_b.png` share the default id `a_b`: never merge two films
            yield Skip(other[0], "conflicting rows", f"id {sample_id!r}: image {_text(other[1], 'image')!r} "
                                                     f"differs from an earlier row's {image!r}; give each image "
                                                     "its own id (an id column)")
            continue
        if not path.is_file() and "/" not in image and "\\" not in image:
            # a bare name: look it up under the image folder, but only where one file has it, as names repeat
            # (CheXpert's view1_frontal.jpg in every study); a path with folders is never looked up elsewhere
            index = files_by_name(image_dir, IMAGE_SUFFIXES) if index is None else index
            found = index.get(image, [])
            if len(found) > 1:
                yield Skip(where, "ambiguous image", f"{image!r} matches {len(found)} files under {image_dir} "
                                                     f"({', '.join(map(str, found[:2]))}, ...); give its path "
                                                     "relative to the image folder")
                continue
            path = found[0] if found else path
        merged = _merge(sample_id, rows, split)
        if isinstance(merged, Skip):
            yield merged
            continue
        size = header_size(path, where)
        if isinstance(size, Skip):
            yield size
            continue
        width, height, dicom_view = size
        boxes: list[Box] = []
        bad = None
        for row_where, row in rows:
            got = _row_boxes(row, row_where, units, width, height)
            if isinstance(got, Skip):
                bad = got
                break
            boxes += got
        if bad is not None:
            yield bad
            continue
        yield Sample(id=sample_id, image=str(path.resolve()), source=SOURCE.name, split=merged["split"],
                     view=merged["view"] or dicom_view, width=width, height=height, findings=merged["findings"],
                     impression=merged["impression"], labels=merged["labels"], boxes=boxes)


def _merge(sample_id: str, rows: list[tuple[str, dict]], split: str) -> dict | Skip:
    """The per-image fields of an image's rows (the first non-empty value of each); rows that disagree
    (two different reports for one image) skip the image, as the table cannot say which is right."""
    out: dict = dict.fromkeys(_TEXT)
    labels: dict[str, int] = {}
    for where, row in rows:
        row = {**row, "findings": _text(row, "findings") or _text(row, "report")}
        for key in _TEXT:
            value = _text(row, key)
            if value is not None and out[key] is not None and value != out[key]:
                return Skip(where, "conflicting rows", f"image {sample_id!r}: {key} {value!r} differs from an earlier "
                                                       f"row's {out[key]!r}")
            out[key] = out[key] or value
        got = parse_labels(row.get("labels"), where)
        if isinstance(got, Skip):
            return got
        labels.update(got)
    out["split"] = out["split"] or split
    out["labels"] = dict(sorted(labels.items()))
    return out


def read_reports(root: str | Path, table: str | None = None, split: str = "all") -> Iterator[dict | Skip]:
    """Report rows ``{"id", "source", "split", "findings", "impression", "report"}`` from the table, images
    neither needed nor opened; a row without report text is skipped as "empty report"."""
    table_path, _ = find_table(Path(root), table)
    for where, row in table_rows(table_path):
        findings = _text(row, "findings") or _text(row, "report")
        impression = _text(row, "impression")
        if not (findings or impression):
            yield Skip(where, "empty report", "no findings, impression or report text")
            continue
        line = where.rpartition(":")[2]
        yield {"id": _text(row, "id") or f"row{line}", "source": SOURCE.name, "split": _text(row, "split") or split,
               "findings": findings, "impression": impression, "report": findings or impression}
