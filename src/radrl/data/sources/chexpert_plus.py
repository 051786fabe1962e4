"""CheXpert-Plus (Stanford AIMI): report sections and CheXbert labels per image.

Why a separate adapter from CheXpert: CheXpert-Plus adds the report text to the CheXpert
images in one large CSV (one row per image, report sections in their own columns), and its
labels come as a separate CheXbert file keyed by the same ``path_to_image``.

Layout under ``root``::

    df_chexpert_plus_240401.csv     path_to_image, frontal_lateral, ap_pa, split (train|valid),
                                    section_findings, section_impression, ... (one row per image)
    chexbert_labels/report_fixed.json   JSON lines: {"path_to_image": ..., "<observation>": 1.0|0.0|-1.0|null}
    PNG/train/patient00001/study1/view1_frontal.png    (the PNG release; path_to_image names .jpg)

Options: ``labels=PATH`` reads labels from another file: JSON lines as above, or a CSV with
``path_to_image`` (or CheXpert's own ``Path``, e.g. ``CheXpert-v1.0/train/patient00001/...``)
and the 14 observation columns, so the original CheXpert ``train.csv`` / ``valid.csv`` serve
too. ``images=PATH`` is the folder the ``path_to_image`` values are relative to (default:
``root/PNG`` with ``.png`` when that folder exists, else ``root`` with the paths as written).
``frontal=True`` (default, as RadVLM) keeps rows whose ``frontal_lateral`` is ``Frontal``.

``release=chexpert`` reads the original CheXpert v1.0 instead (``root`` = ``CheXpert-v1.0``,
or ``-small``, holding ``train.csv`` and ``valid.csv``: ``Path, Sex, Age, Frontal/Lateral,
AP/PA`` + the 14 observations): label-only samples with no report, the paper's CheXpert
abnormality-classification set (191,027 frontal images). Images are ``root/train/...jpg``.

Not verified against a real copy (we cannot hold one): the label file's key names (we accept
the 14 CheXpert observation names exactly, and ignore other keys) and whether ``split``
has values other than train/valid (anything else is skipped and counted).

Images are not opened: width and height stay unknown (``None``); CheXpert-Plus has no boxes.

>>> _rel("CheXpert-v1.0/train/patient00001/study1/view1_frontal.jpg")
'train/patient00001/study1/view1_frontal.jpg'
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from radrl.data.schema import CHEXPERT_LABELS, Sample
from radrl.data.sources import Skip, SourceInfo
from radrl.data.sources._files import csv_dicts, csv_header, label_value, require_columns

SOURCE = SourceInfo(
    name="chexpert-plus",
    expects="""CheXpert-Plus root:
  df_chexpert_plus_240401.csv (path_to_image, frontal_lateral, ap_pa, split, section_findings, section_impression)
  chexbert_labels/report_fixed.json (JSON lines keyed by path_to_image)
  PNG/<path_to_image with .png>  (or images=PATH)
or, with release=chexpert, the CheXpert-v1.0 root: train.csv, valid.csv (Path, Frontal/Lateral, AP/PA, 14 labels)
options: labels=PATH (JSON lines or CSV with path_to_image/Path + 14 observations), images=PATH, frontal=true|false,
  release=plus|chexpert""",
    tasks=("report", "classification"),  # paper.md: reports 186,463 x 1, classification 191,027 x 1
)

REPORTS_CSV = "df_chexpert_plus_240401.csv"
LABELS_JSON = "chexbert_labels/report_fixed.json"
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # report sections exceed csv's 128 kB default on some rows


def _rel(path: str) -> str:
    """The path below the dataset folder: CheXpert's ``CheXpert-v1.0[-small]/`` prefix removed."""
    for prefix in ("CheXpert-v1.0-small/", "CheXpert-v1.0/"):
        if path.startswith(prefix):
            return path[len(prefix):]
    return path


def read_labels(path: Path) -> tuple[dict[str, dict[str, int]], list[Skip]]:
    """path -> labels from a JSON-lines or CSV label file; malformed rows become Skips."""
    labels: dict[str, dict[str, int]] = {}
    skips: list[Skip] = []
    if path.suffix in (".json", ".jsonl"):
        with path.open() as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{i}"
                try:
                    rec = json.loads(line)
                    key = _rel(rec["path_to_image"])
                    labels[key] = {k: v for k in CHEXPERT_LABELS if (v := label_value(rec.get(k), where)) is not None}
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
                    skips.append(Skip(where, "bad label row", str(e)))
        return labels, skips
    header = csv_header(path)
    key_col = "path_to_image" if "path_to_image" in header else "Path"
    if key_col not in header:
        raise ValueError(f"{path}: needs a path_to_image or Path column, found {header}")
    for where, r in csv_dicts(path):
        try:
            labels[_rel(r[key_col])] = {k: v for k in CHEXPERT_LABELS
                                        if (v := label_value(r.get(k), where)) is not None}
        except ValueError as e:
            skips.append(Skip(where, "bad label row", str(e)))
    return labels, skips


def read_chexpert(root: Path, images: Path, frontal: bool) -> Iterator[Sample | Skip]:
    """CheXpert v1.0 ``train.csv`` / ``valid.csv``: one label-only ``Sample`` per (frontal) image."""
    tables = [root / f"{split}.csv" for split in ("train", "valid")]
    if not any(t.is_file() for t in tables):
        raise FileNotFoundError(f"{root}: no train.csv or valid.csv; point --root at the CheXpert-v1.0 folder")
    for table in tables:
        if not table.is_file():
            yield Skip(str(table), "missing split file", f"no {table.stem} split")
            continue
        require_columns(table, ("Path", *CHEXPERT_LABELS), "is this CheXpert's train.csv / valid.csv?")
        for where, r in csv_dicts(table):
            rel = _rel(r["Path"] or "")
            if not rel:
                yield Skip(where, "no image path", "empty Path")
                continue
            if frontal and r.get("Frontal/Lateral", "Frontal") != "Frontal":
                continue
            try:
                labels = {k: v for k in CHEXPERT_LABELS if (v := label_value(r[k], where)) is not None}
            except ValueError as e:
                yield Skip(where, "bad label row", str(e))
                continue
            if not labels:
                yield Skip(where, "no labels", "every observation is blank")
                continue
            yield Sample(id=rel.rsplit(".", 1)[0].replace("/", "_"), image=str(images / rel), source=SOURCE.name,
                         split=table.stem, view=(r.get("AP/PA") or "").strip() or None, labels=labels)


def read(root: str | Path, labels: str | None = None, images: str | None = None,
         frontal: bool | str = True, release: str = "plus") -> Iterator[Sample | Skip]:
    """One ``Sample`` per image row with a findings or impression section.

    >>> s = next(x for x in read("/data/chexpert-plus") if isinstance(x, Sample))    # doctest: +SKIP
    >>> s.id, s.image                                                                # doctest: +SKIP
    ('train_patient00001_study1_view1_frontal', '/data/chexpert-plus/PNG/train/patient00001/study1/view1_frontal.png')
    """
    root = Path(root).absolute()  # image paths in the written JSONL must not depend on its folder
    frontal = str(frontal).lower() not in ("false", "0", "no")
    if release not in ("plus", "chexpert"):
        raise ValueError(f"release must be 'plus' (CheXpert-Plus) or 'chexpert' (CheXpert v1.0), got {release!r}")
    if release == "chexpert":
        yield from read_chexpert(root, Path(images).absolute() if images else root, frontal)
        return
    table = root / REPORTS_CSV
    if not table.is_file():
        raise FileNotFoundError(f"{table} not found; download CheXpert-Plus from Stanford AIMI and unpack it here")
    label_path = Path(labels) if labels else root / LABELS_JSON
    by_path: dict[str, dict[str, int]] = {}
    if label_path.is_file():
        by_path, skips = read_labels(label_path)
        yield from skips
    elif labels:
        raise FileNotFoundError(f"labels={labels} does not exist")
    else:
        yield Skip(str(label_path), "no label file", "samples carry no labels; pass labels=PATH to add them")
    if images:
        image_root, png = Path(images).absolute(), False
    else:
        png = (root / "PNG").is_dir()
        image_root = root / "PNG" if png else root

    needed = ("path_to_image", "split", "section_findings", "section_impression")
    require_columns(table, needed, "is this df_chexpert_plus_240401.csv?")
    for where, r in csv_dicts(table):
        rel = _rel(r["path_to_image"] or "")
        if not rel:
            yield Skip(where, "no image path", "empty path_to_image")
            continue
        if frontal and r.get("frontal_lateral", "Frontal") != "Frontal":
            continue
        if r["split"] not in ("train", "valid", "test"):
            yield Skip(where, "bad split", f"split {r['split']!r}")
            continue
        findings = " ".join((r["section_findings"] or "").split()) or None
        impression = " ".join((r["section_impression"] or "").split()) or None
        if not (findings or impression):
            yield Skip(where, "empty report", "no section_findings or section_impression")
            continue
        image = image_root / (str(Path(rel).with_suffix(".png")) if png else rel)
        view = (r.get("ap_pa") or "").strip() or None
        yield Sample(id=rel.rsplit(".", 1)[0].replace("/", "_"), image=str(image), source=SOURCE.name,
                     split=r["split"], view=view, findings=findings, impression=impression,
                     labels=dict(by_path.get(rel, {})))
