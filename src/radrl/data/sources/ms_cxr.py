"""MS-CXR (PhysioNet): phrase grounding boxes on MIMIC-CXR images.

Why: MS-CXR pairs radiologist-written phrases with boxes, the paper's phrase-grounding
benchmark (and 971 x 3 SFT pairs). One CSV row is one (phrase, box); an image has one or
more phrases, a phrase one or more boxes.

Layout under ``root`` (the ``ms-cxr/1.1.0`` folder)::

    MS_CXR_Local_Alignment_v1.1.0.csv   dicom_id, category_name, label_text, path, x, y, w, h,
                                        image_width, image_height, split (train|val|test)

``path`` is MIMIC-CXR-JPG's ``files/p10/p10233088/s54276838/<dicom_id>.jpg``, resolved
against ``mimic=PATH`` (the MIMIC-CXR-JPG root; default: ``root``). Boxes are ``x, y``
(top-left) and ``w, h`` in pixels of an ``image_width`` x ``image_height`` image. Version
1.0.0 of the file had no ``split`` column: such rows get ``split=train`` and a counted skip
note once. ``v1.1.0.json`` (COCO form) is not read; the CSV carries the same boxes.

Every box keeps its phrase as ``label`` (``label_text``, e.g. "Small left apical
pneumothorax"); ``labels`` marks each ``category_name`` that is a CheXpert observation as
positive. Rows of one image are emitted together, so the CSV must list an image's rows
contiguously (the released file does; a split-up image is reported, not merged).

A box that is not numeric, empty or more than 2 pixels outside its image (as in the public
adapters, ``_files.pixel_box``), a row without a phrase or with a bad split skips the whole
image with a counted reason: keeping the rest would leave a phrase with part of its boxes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from radrl.data.schema import CHEXPERT_LABELS, Sample
from radrl.data.sources import Skip, SourceInfo
from radrl.data.sources._files import csv_dicts, pixel_box, require_columns

SOURCE = SourceInfo(
    name="ms-cxr",
    expects="""MS-CXR root:
  MS_CXR_Local_Alignment_v1.1.0.csv (dicom_id, category_name, label_text, path, x, y, w, h,
                                     image_width, image_height, split)
  images: the MIMIC-CXR-JPG root holding files/ (mimic=PATH; default root)
options: mimic=PATH, table=FILE""",
    tasks=("phrase_grounding", "conversation"),  # paper.md: phrase grounding 971 x 3, grounded conversations 862 x 4
    repeats={"phrase_grounding": 3, "conversation": 4},
)

SPLITS = {"train": "train", "val": "valid", "valid": "valid", "test": "test"}
NEEDED = ("dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height")


def _find_csv(root: Path) -> Path:
    found = sorted(root.glob("MS_CXR_Local_Alignment_v*.csv"))
    if not found:
        raise FileNotFoundError(f"{root}: no MS_CXR_Local_Alignment_v*.csv; download MS-CXR from PhysioNet here "
                                "or pass table=FILE")
    return found[-1]  # newest version


def _image(rows: list[tuple[str, dict[str, str]]], image_root: Path, has_split: bool) -> Sample | Skip:
    """One image's rows as a Sample; the first bad row (split, size, phrase or box) is the Skip of the
    whole image, because one lost box leaves the phrase's grounding reference incomplete."""
    sample: Sample | None = None
    for where, r in rows:
        split = SPLITS.get(r.get("split") or "train") if has_split else "train"
        if split is None:
            return Skip(where, "bad split", f"split {r.get('split')!r} is not train/val/test")
        try:
            width, height = int(float(r["image_width"])), int(float(r["image_height"]))
        except (TypeError, ValueError):
            return Skip(where, "malformed box", f"image size {r['image_width']!r} x {r['image_height']!r}")
        phrase = " ".join((r["label_text"] or "").split())
        if not phrase:
            return Skip(where, "malformed box", "box without a phrase (label_text)")
        box = pixel_box(r["x"], r["y"], r["w"], r["h"], width, height, phrase, where, xywh=True)
        if isinstance(box, Skip):
            return box
        if sample is None:
            sample = Sample(id=r["dicom_id"], image=str(image_root / r["path"]), source=SOURCE.name, split=split,
                            width=width, height=height)
        sample.boxes.append(box)
        if r["category_name"] in CHEXPERT_LABELS:
            sample.labels[r["category_name"]] = 1
    assert sample is not None  # rows is never empty
    return sample


def read(root: str | Path, mimic: str | None = None, table: str | None = None) -> Iterator[Sample | Skip]:
    """One ``Sample`` per image with all its phrase boxes (normalized 0-1); an image with any bad row
    (a box that is not numeric, empty or outside the image; no phrase; a bad split) is a Skip.

    >>> s = next(read("/data/ms-cxr/1.1.0", mimic="/data/mimic-cxr-jpg/2.0.0"))   # doctest: +SKIP
    >>> s.boxes[0].label, s.split                                                  # doctest: +SKIP
    ('Small left apical pneumothorax', 'train')
    """
    root = Path(root)
    path = Path(table) if table else _find_csv(root)
    image_root = (Path(mimic) if mimic else root).absolute()  # JSONL image paths must not depend on its folder
    header = require_columns(path, NEEDED, "is this an MS-CXR Local Alignment CSV?")
    has_split = "split" in header
    if not has_split:
        yield Skip(str(path), "no split column", "MS-CXR 1.0.0 file: every sample is put in train")
    group: list[tuple[str, dict[str, str]]] = []
    done: set[str] = set()
    for where, r in csv_dicts(path):
        dicom = r["dicom_id"]
        if group and group[0][1]["dicom_id"] != dicom:
            done.add(group[0][1]["dicom_id"])
            yield _image(group, image_root, has_split)
            group = []
        if dicom in done:
            yield Skip(where, "image not contiguous", f"{dicom} listed again after other images")
            continue
        group.append((where, r))
    if group:
        yield _image(group, image_root, has_split)
