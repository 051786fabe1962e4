"""NIH ChestX-ray14: labels, view and the official expert box list, read as the NIH distributes them.

Why: ChestX-ray14 is the largest public set with expert boxes (984 boxes on 880 images, 8
findings); its 14 text-mined labels cover all 112,120 images. The files come from the NIH
Box folder::

    Data_Entry_2017.csv        Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,
                               Patient Gender,View Position,OriginalImage[Width,Height],...
    BBox_List_2017.csv         Image Index,Finding Label,Bbox [x,y,w,h]   (header has 9 fields,
                               data rows 6: x, y, w, h in pixels of the 1024x1024 PNG, (x, y) top-left)
    train_val_list.txt, test_list.txt    the official split, one file name a line
    images_001/images/*.png ... images_012/images/*.png    (the unpacked images_0XX.tar.gz)

Rows: with ``Data_Entry_2017.csv``, one sample per listed image (boxes attached where the
box list has them); ``boxed=only`` (or no Data_Entry file) keeps only the boxed images.
Labels: each of the 14 findings is 1 when listed in ``Finding Labels`` and 0 otherwise (the
labels were mined from reports, so absence means negative), under its CheXpert name where
one fits (``TO_CHEXPERT``: Effusion -> Pleural Effusion, Mass and Nodule -> Lung Lesion,
Pleural_Thickening -> Pleural Other) and NIH's name otherwise (Infiltration, Emphysema,
Fibrosis, Hernia); "No Finding" is 1 for NIH's "No Finding" images. Without Data_Entry the
boxed findings are the positives and "No Finding" is 0. Boxes keep the box list's names
(it writes "Infiltrate" where Data_Entry writes "Infiltration"). Split: "train" / "test"
from the official lists, "all" when they are absent.
Box pixels are normalized by the PNG's own size (read from its header).

>>> rows = list(read("/data/ChestX-ray14", boxed="only"))                  # doctest: +SKIP
>>> rows[0].boxes[0]                                                       # doctest: +SKIP
Box(x1=0.2198, y1=0.5342, x2=0.3045, y2=0.6115, label='Atelectasis')
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from radrl.data.boxes import Box
from radrl.data.schema import Sample
from radrl.data.sources import Skip, SourceInfo
from radrl.data.sources._files import (
    csv_rows,
    find_first,
    header_size,
    index_files,
    observation_labels,
    pixel_box,
)

SOURCE = SourceInfo(
    name="nih",
    expects="""NIH ChestX-ray14 root (NIH Box folder layout; .csv.gz also accepted):
  Data_Entry_2017.csv (or Data_Entry_2017_v2020.csv)   labels and view; optional with boxed=only
  BBox_List_2017.csv                                   expert boxes
  train_val_list.txt, test_list.txt                    official split (optional; split 'all' without)
  images_0XX/images/*.png (unpacked tarballs) or any folder of the PNGs under root
options: boxed=only|all (default all when Data_Entry is present)""",
    tasks=("grounding", "detection"),  # not in the paper's table: a box-only public set feeds the abnormality tasks
)

# NIH finding -> CheXpert observation (the rest keep NIH's name).
TO_CHEXPERT = {"Effusion": "Pleural Effusion", "Mass": "Lung Lesion", "Nodule": "Lung Lesion",
               "Pleural_Thickening": "Pleural Other", "Infiltrate": "Infiltration"}
FINDINGS = ("Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
            "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia")


def _names(path: Path | None) -> set[str]:
    return set(path.read_text().split()) if path else set()


def read_box_list(path: Path) -> Iterator[tuple[str, str, str, tuple[str, str, str, str]] | Skip]:
    """(where, image, finding, (x, y, w, h) as text) per box-list row; a short row is a Skip."""
    for where, row in csv_rows(path):
        if len(row) < 6 or not row[0].strip() or not row[1].strip():
            yield Skip(where, "malformed row", f"expected Image Index, Finding Label, x, y, w, h; got {row}")
            continue
        yield where, row[0].strip(), row[1].strip(), (row[2], row[3], row[4], row[5])


def read(root: str | Path, boxed: str | None = None) -> Iterator[Sample | Skip]:
    root = Path(root)
    entry = find_first(root, ["Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv", "Data_Entry_2017.csv.gz"])
    box_file = find_first(root, ["BBox_List_2017.csv", "BBox_List_2017.csv.gz"])
    if boxed not in (None, "only", "all"):
        raise ValueError(f"nih: boxed must be 'only' or 'all', got {boxed!r}")
    if entry is None and box_file is None:
        raise FileNotFoundError(f"{root}: neither Data_Entry_2017.csv nor BBox_List_2017.csv found; "
                                "point --root at the ChestX-ray14 download (radrl prepare --list)")
    only_boxed = boxed == "only" or entry is None
    if only_boxed and box_file is None:
        raise FileNotFoundError(f"{root}: boxed=only needs BBox_List_2017.csv(.gz)")

    boxes: dict[str, list[tuple[str, str, tuple]]] = {}   # image -> [(where, finding, xywh)] (984 rows)
    if box_file is not None:
        for row in read_box_list(box_file):
            if isinstance(row, Skip):
                yield row
                continue
            where, name, finding, xywh = row
            boxes.setdefault(name, []).append((where, finding, xywh))
    test = _names(find_first(root, ["test_list.txt"]))
    train = _names(find_first(root, ["train_val_list.txt"]))
    images = index_files(root, (".png",))

    def split_of(name: str) -> str:
        return "test" if name in test else "train" if name in train else "all"

    if only_boxed:
        listing = ((f"{rows[0][0]} ({name})", name, None, None) for name, rows in boxes.items())
    else:
        listing = _entries(entry)
    for where, name, finding_labels, view in listing:
        if name is None:  # a malformed Data_Entry row
            yield Skip(where, "malformed row", finding_labels or "")
            continue
        path = images.get(name)
        if path is None:
            yield Skip(where, "missing image", f"{name} not found under {root}")
            continue
        size = header_size(path, where)
        if isinstance(size, Skip):
            yield size
            continue
        width, height, _ = size   # the PNGs carry no view; Data_Entry's View Position does
        sample_boxes: list[Box] = []
        bad = None
        for box_where, finding, (x, y, w, h) in boxes.get(name, []):
            b = pixel_box(x, y, w, h, width, height, finding, box_where, xywh=True)
            if isinstance(b, Skip):
                bad = b
                break
            sample_boxes.append(b)
        if bad is not None:  # one wrong box makes the image's box set incomplete: skip the image
            yield bad
            continue
        if finding_labels is None:
            labels = observation_labels({b.label for b in sample_boxes}, TO_CHEXPERT, normal=False)
        else:
            listed = {f.strip() for f in finding_labels.split("|")}
            labels = {TO_CHEXPERT.get(f, f): 0 for f in FINDINGS}
            labels.update(observation_labels(listed & set(FINDINGS), TO_CHEXPERT, normal="No Finding" in listed))
        yield Sample(id=Path(name).stem, image=str(path.resolve()), source=SOURCE.name, split=split_of(name),
                     view=view or None, width=width, height=height, labels=labels, boxes=sample_boxes)


def _entries(path: Path) -> Iterator[tuple[str, str | None, str | None, str | None]]:
    """(where, image, Finding Labels, View Position) per Data_Entry row; positional, because the
    header's bracketed names (``OriginalImage[Width,Height]``) contain commas."""
    for where, row in csv_rows(path):
        if len(row) < 7 or not row[0].strip() or not row[1].strip():
            yield where, None, f"expected Image Index, Finding Labels, ..., View Position; got {row[:7]}", None
            continue
        yield where, row[0].strip(), row[1].strip(), row[6].strip() or None
