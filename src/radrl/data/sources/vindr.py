"""VinDr-CXR boxes (three readers per training image, fused), read as PhysioNet or Kaggle ship them.

Why fuse: each VinDr-CXR training image was boxed independently by three of seventeen
radiologists, so the raw CSV holds up to three slightly different boxes per finding.
Training on all of them teaches duplicate boxes; the VinBigData competition winners
merged them with weighted boxes fusion at IoU 0.1, which is what we do
(``radrl.data.boxes.weighted_box_fusion``, per finding). The test set's boxes are
already a five-reader consensus (one reader in the CSV), so fusion leaves them unchanged.

Layouts under ``root``::

    PhysioNet (vindr-cxr/1.0.0):  annotations/annotations_train.csv, annotations/annotations_test.csv
                                  (image_id,rad_id,class_name,x_min,y_min,x_max,y_max),
                                  train/<image_id>.dicom, test/<image_id>.dicom
    Kaggle (vinbigdata):          train.csv (image_id,class_name,class_id,rad_id,x_min,...),
                                  train/<image_id>.dicom  (vinbigdata-train.csv(.gz) also accepted)

Coordinates are corner pixels of the original DICOM, so each image's size is read from its
DICOM header (no pixel decoding), with its ViewPosition when recorded. Rows of class
"No finding" carry no box. ``labels`` holds 1 for every finding at least one reader boxed,
under its CheXpert name where one fits (``TO_CHEXPERT``: Pleural effusion -> Pleural Effusion,
Nodule/Mass -> Lung Lesion, Pleural thickening -> Pleural Other, rib/clavicle fracture ->
Fracture) and VinDr's name otherwise, and ``"No Finding"``: 1 when all readers said no
finding, else 0. Boxes keep VinDr's class names.

>>> rows = group_annotations(Path("vinbigdata-train.csv.gz"))                  # doctest: +SKIP
>>> fuse(rows["9a5094b2563a1ef3ff50dc5c7ff71345"], 2000, 2000)                  # doctest: +SKIP
[Box(x1=0.34..., label='Cardiomegaly'), ...]
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from radrl.data.boxes import Box, weighted_box_fusion
from radrl.data.schema import Sample
from radrl.data.sources import Skip, SourceInfo
from radrl.data.sources._files import (
    csv_dicts,
    header_size,
    observation_labels,
    pixel_box,
)

# VinDr's class names as they read in a request ("Locate the interstitial lung disease"; lower-cased they gave
# "the ild" and "the nodule/mass"); boxes keep VinDr's names. The 22 local labels of the PhysioNet release.
CLASS_NAMES = {"Aortic enlargement": "aortic enlargement", "Atelectasis": "atelectasis",
               "Calcification": "calcification", "Cardiomegaly": "cardiomegaly",
               "Clavicle fracture": "clavicle fracture", "Consolidation": "consolidation", "Edema": "edema",
               "Emphysema": "emphysema", "Enlarged PA": "enlarged pulmonary artery",
               "ILD": "interstitial lung disease", "Infiltration": "infiltration", "Lung cavity": "lung cavity",
               "Lung cyst": "lung cyst", "Lung Opacity": "lung opacity", "Mediastinal shift": "mediastinal shift",
               "Nodule/Mass": "nodule or mass", "Other lesion": "other lesion",
               "Pleural effusion": "pleural effusion", "Pleural thickening": "pleural thickening",
               "Pneumothorax": "pneumothorax", "Pulmonary fibrosis": "pulmonary fibrosis",
               "Rib fracture": "rib fracture"}

SOURCE = SourceInfo(
    name="vindr-cxr",
    expects="""VinDr-CXR root, PhysioNet layout:
  annotations/annotations_train.csv, annotations/annotations_test.csv
  train/<image_id>.dicom, test/<image_id>.dicom
or the Kaggle (vinbigdata) layout:
  train.csv (or vinbigdata-train.csv[.gz]), train/<image_id>.dicom
options: iou=0.1 (weighted-box-fusion IoU threshold)""",
    tasks=("grounding", "detection"),  # paper.md: abnormality grounding 16,089 x 3, detection 15,000 x 2
    repeats={"grounding": 3, "detection": 2},
    class_names=CLASS_NAMES,
)

NO_FINDING_CLASS = "No finding"
# VinDr class -> CheXpert observation (the rest keep VinDr's name).
TO_CHEXPERT = {"Pleural effusion": "Pleural Effusion", "Nodule/Mass": "Lung Lesion",
               "Pleural thickening": "Pleural Other", "Rib fracture": "Fracture", "Clavicle fracture": "Fracture"}
_LAYOUTS = [  # (annotation file, split, image folder)
    ("annotations/annotations_train.csv", "train", "train"),
    ("annotations/annotations_test.csv", "test", "test"),
    ("train.csv", "train", "train"),
    ("vinbigdata-train.csv", "train", "train"),
    ("vinbigdata-train.csv.gz", "train", "train"),
    ("train.csv.gz", "train", "train"),
]


def annotation_files(root: Path) -> list[tuple[Path, str, Path]]:
    """(annotation CSV, split, image folder) for each file present; PhysioNet names win over Kaggle's."""
    found = [(root / f, split, root / images) for f, split, images in _LAYOUTS if (root / f).is_file()]
    physionet = [t for t in found if t[0].parent.name == "annotations"]
    found = physionet or found[:1]
    if not found:
        raise FileNotFoundError(f"{root}: no VinDr-CXR annotations (looked for "
                                f"{', '.join(f for f, _, _ in _LAYOUTS)}); see radrl prepare --list")
    return found


def group_annotations(path: Path) -> dict[str, list[tuple[str, dict[str, str]]]]:
    """image_id -> [(where, row)], in file order. Holds the CSV (67,914 rows for train) as small dicts."""
    out: dict[str, list[tuple[str, dict[str, str]]]] = {}
    for where, row in csv_dicts(path):
        out.setdefault((row.get("image_id") or "").strip(), []).append((where, row))
    return out


def fuse(rows: list[tuple[str, dict[str, str]]], width: int, height: int,
         iou: float = 0.1) -> tuple[list[Box], dict[str, int]] | Skip:
    """One image's annotation rows -> (fused boxes, labels), or the Skip for its first bad row.

    Boxes are grouped by reader (``rad_id``; a row without one counts as its own reader) and
    fused per finding with weighted boxes fusion at ``iou``.
    """
    readers: dict[str, list[Box]] = {}
    classes: set[str] = set()
    for k, (where, row) in enumerate(rows):
        name = (row.get("class_name") or "").strip()
        if not name:
            return Skip(where, "malformed row", f"no class_name: {dict(row)}")
        classes.add(name)
        if name == NO_FINDING_CLASS:
            continue
        b = pixel_box(row.get("x_min"), row.get("y_min"), row.get("x_max"), row.get("y_max"), width, height,
                      name, where)
        if isinstance(b, Skip):
            return b
        readers.setdefault((row.get("rad_id") or "").strip() or f"row{k}", []).append(b)
    fused = weighted_box_fusion(list(readers.values()), iou_threshold=iou) if readers else []
    findings = classes - {NO_FINDING_CLASS}
    return fused, observation_labels(findings, TO_CHEXPERT, normal=not findings)


def read(root: str | Path, iou: str | float = 0.1) -> Iterator[Sample | Skip]:
    root = Path(root)
    iou = float(iou)
    for path, split, image_dir in annotation_files(root):
        for image_id, rows in group_annotations(path).items():
            where = rows[0][0]
            if not image_id:
                yield Skip(where, "malformed row", "no image_id")
                continue
            image = image_dir / f"{image_id}.dicom"
            if not image.is_file() and (image_dir / f"{image_id}.dcm").is_file():
                image = image_dir / f"{image_id}.dcm"
            size = header_size(image, where)
            if isinstance(size, Skip):
                yield size
                continue
            width, height, view = size
            result = fuse(rows, width, height, iou)
            if isinstance(result, Skip):
                yield result
                continue
            boxes, labels = result
            yield Sample(id=image_id, image=str(image.resolve()), source=SOURCE.name, split=split, view=view,
                         width=width, height=height, labels=labels, boxes=boxes)
