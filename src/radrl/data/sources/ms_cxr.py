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
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from radrl.data.boxes import Box
from radrl.data.schema import CHEXPERT_LABELS, Sample
from radrl.data.sources import Skip

NAME = "ms-cxr"
EXPECTS = """MS-CXR root:
  MS_CXR_Local_Alignment_v1.1.0.csv (dicom_id, category_name, label_text, path, x, y, w, h,
                                     image_width, image_height, split)
  images: the MIMIC-CXR-JPG root holding files/ (mimic=PATH; default root)
options: mimic=PATH, table=FILE"""

SPLITS = {"train": "train", "val": "valid", "valid": "valid", "test": "test"}
NEEDED = ("dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width", "image_height")


def _find_csv(root: Path) -> Path:
    found = sorted(root.glob("MS_CXR_Local_Alignment_v*.csv"))
    if not found:
        raise FileNotFoundError(f"{root}: no MS_CXR_Local_Alignment_v*.csv; download MS-CXR from PhysioNet here "
                                "or pass table=FILE")
    return found[-1]  # newest version


def read(root: str | Path, mimic: str | None = None, table: str | None = None) -> Iterator[Sample | Skip]:
    """One ``Sample`` per image with all its phrase boxes (normalized 0-1).

    >>> s = next(read("/data/ms-cxr/1.1.0", mimic="/data/mimic-cxr-jpg/2.0.0"))   # doctest: +SKIP
    >>> s.boxes[0].label, s.split                                                  # doctest: +SKIP
    ('Small left apical pneumothorax', 'train')
    """
    root = Path(root)
    path = Path(table) if table else _find_csv(root)
    image_root = (Path(mimic) if mimic else root).absolute()  # JSONL image paths must not depend on its folder
    current: Sample | None = None
    done: set[str] = set()
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in NEEDED if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; is this an MS-CXR Local Alignment CSV?")
        has_split = "split" in (reader.fieldnames or [])
        if not has_split:
            yield Skip(str(path), "no split column", "MS-CXR 1.0.0 file: every sample is put in train")
        for i, r in enumerate(reader, 2):
            where = f"{path}:{i}"
            dicom = r["dicom_id"]
            try:
                width, height = int(float(r["image_width"])), int(float(r["image_height"]))
                x, y, w, h = (float(r[k]) for k in ("x", "y", "w", "h"))
                box = Box.from_xywh_pixels(x, y, w, h, width, height, label=" ".join(r["label_text"].split()))
            except (TypeError, ValueError) as e:
                yield Skip(where, "bad box", f"{e}")
                continue
            if not box.is_valid or not box.label:
                yield Skip(where, "bad box", f"box {x, y, w, h} on {width}x{height} is empty or has no phrase")
                continue
            split = SPLITS.get(r.get("split") or "train") if has_split else "train"
            if split is None:
                yield Skip(where, "bad split", f"split {r.get('split')!r} is not train/val/test")
                continue
            if current is None or current.id != dicom:
                if current is not None:
                    done.add(current.id)
                    yield current
                if dicom in done:
                    yield Skip(where, "image not contiguous", f"{dicom} listed again after other images")
                    current = None
                    continue
                current = Sample(id=dicom, image=str(image_root / r["path"]), source=NAME, split=split,
                                 width=width, height=height)
            current.boxes.append(box)
            if r["category_name"] in CHEXPERT_LABELS:
                current.labels[r["category_name"]] = 1
    if current is not None:
        yield current
