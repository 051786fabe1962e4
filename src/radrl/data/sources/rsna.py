"""RSNA Pneumonia Detection Challenge boxes, read as Kaggle distributes them.

Why: the RSNA boxes (radiologists' boxes around opacities suspicious for pneumonia) are
the largest public grounding set for one finding, and its images are NIH ChestX-ray14
images: through the RSNA-to-NIH match table the same boxes can sit on the NIH PNGs, so a
user with ChestX-ray14 on disk needs no second copy of the pixels. Files::

    stage_2_train_labels.csv   patientId,x,y,width,height,Target   (Kaggle also ships it zipped;
                               pixels of the 1024x1024 image, (x, y) top-left; Target 0 rows have
                               no box; one row per box, so an image can have several rows)
    stage_2_detailed_class_info.csv   patientId,class  (Lung Opacity / No Lung Opacity / Not Normal / Normal)
    stage_2_train_images/<patientId>.dcm
    a match table to NIH file names (optional): a CSV with patientId (or subset_img_id) and
    nih_image (or img_id / orig_img_id) columns, e.g. rsna_to_nih_matches.csv or the
    challenge's pneumonia_dataset_mapping.csv

Images: the DICOM when ``stage_2_train_images/<patientId>.dcm`` exists, else the matched NIH
PNG found anywhere under root (``images=dicom`` or ``images=nih`` forces one). One sample per
patientId; boxes are labelled "Pneumonia" (what the challenge asked readers to box) and
``labels`` holds ``{"Pneumonia": Target}`` and, where the detailed class is known (the
class-info CSV or the match table's ``rsna_class``), ``"No Finding"``: 1 for "Normal", 0 for
"Lung Opacity" and "No Lung Opacity / Not Normal" (abnormal, just not pneumonia). ``view`` is
the DICOM's ViewPosition (PA/AP), None for the NIH PNGs. Only the Kaggle training set has
labels: split "train".

>>> [len(s.boxes) for s in read("/data/rsna") if hasattr(s, "boxes")][:3]    # doctest: +SKIP
[0, 2, 1]
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from radrl.data.boxes import Box
from radrl.data.schema import NO_FINDING, Sample
from radrl.data.sources import Skip, SourceInfo
from radrl.data.sources._files import (
    csv_dicts,
    find_first,
    header_size,
    index_files,
    pixel_box,
    require,
)

SOURCE = SourceInfo(
    name="rsna",
    expects="""RSNA Pneumonia Detection Challenge (Kaggle) root:
  stage_2_train_labels.csv (or its .csv.zip, e.g. kaggle_stage_2_train_labels.csv.zip)
  stage_2_detailed_class_info.csv                      optional
  stage_2_train_images/<patientId>.dcm                 or, with a match table, the NIH PNGs under root
  rsna_to_nih_matches.csv or pneumonia_dataset_mapping.csv   optional (patientId -> NIH file name)
options: images=dicom|nih""",
    tasks=("grounding", "detection"),  # not in the paper's table: a box-only public set feeds the abnormality tasks
)

LABELS = ["stage_2_train_labels.csv", "stage_2_train_labels.csv.zip", "kaggle_stage_2_train_labels.csv.zip",
          "stage_2_train_labels.csv.gz"]
MATCHES = ["rsna_to_nih_matches.csv", "pneumonia_dataset_mapping.csv", "rsna_to_nih_matches.csv.gz"]
BOX_LABEL = "Pneumonia"


def read_matches(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(patientId -> NIH PNG file name, patientId -> RSNA class where given), from either match-table spelling."""
    out: dict[str, str] = {}
    classes: dict[str, str] = {}
    for _where, row in csv_dicts(path):
        pid = (row.get("patientId") or row.get("subset_img_id") or "").strip()
        nih = (row.get("nih_image") or row.get("img_id") or row.get("orig_img_id") or "").strip()
        if pid and nih:
            out[pid] = nih if nih.lower().endswith(".png") else f"{nih}.png"
        if pid and row.get("rsna_class"):
            classes[pid] = row["rsna_class"].split(";")[0].strip()
    return out, classes


def read_classes(path: Path | None) -> dict[str, str]:
    """patientId -> detailed class from stage_2_detailed_class_info.csv (empty without the file)."""
    if path is None:
        return {}
    return {row["patientId"].strip(): row["class"].strip() for _w, row in csv_dicts(path)
            if row.get("patientId") and row.get("class")}


def read(root: str | Path, images: str | None = None) -> Iterator[Sample | Skip]:
    root = Path(root)
    if images not in (None, "dicom", "nih"):
        raise ValueError(f"rsna: images must be 'dicom' or 'nih', got {images!r}")
    labels_path = require(root, LABELS, "RSNA label file (stage_2_train_labels.csv)")
    dicom_dir = root / "stage_2_train_images"
    use_dicom = images == "dicom" or (images is None and dicom_dir.is_dir())
    matches: dict[str, str] = {}
    classes: dict[str, str] = {}
    nih_index: dict[str, Path] = {}
    match_path = find_first(root, MATCHES)
    if match_path is not None:
        matches, classes = read_matches(match_path)
    if not use_dicom:
        if match_path is None:
            raise FileNotFoundError(f"{root}: no stage_2_train_images/ folder and no match table "
                                    f"({', '.join(MATCHES)}) to find the NIH images; add one of them")
        nih_index = index_files(root, (".png",))
    classes.update(read_classes(find_first(root, ["stage_2_detailed_class_info.csv",
                                                  "stage_2_detailed_class_info.csv.zip"])))

    # patientId -> (where of first row, target, [(where, x, y, w, h)]); 26,684 patients: small.
    patients: dict[str, tuple[str, int, list]] = {}
    for where, row in csv_dicts(labels_path):
        pid = (row.get("patientId") or "").strip()
        target = (row.get("Target") or "").strip()
        if not pid or target not in ("0", "1"):
            yield Skip(where, "malformed row", f"expected patientId and Target 0/1, got {dict(row)}")
            continue
        first, t, boxes = patients.setdefault(pid, (where, int(target), []))
        if int(target) != t:
            yield Skip(where, "malformed row", f"patient {pid}: Target {target} disagrees with {first}")
            continue
        if target == "1":
            boxes.append((where, row.get("x"), row.get("y"), row.get("width"), row.get("height")))

    for pid, (where, target, raw_boxes) in patients.items():
        if use_dicom:
            path = dicom_dir / f"{pid}.dcm"
        elif pid not in matches:
            yield Skip(where, "no NIH match", f"patient {pid} is not in the match table")
            continue
        else:
            path = nih_index.get(matches[pid], root / matches[pid])
        size = header_size(path, where)
        if isinstance(size, Skip):
            yield size
            continue
        width, height, view = size   # the RSNA DICOMs record ViewPosition (PA/AP); the NIH PNGs do not
        boxes: list[Box] = []
        bad = None
        for box_where, x, y, w, h in raw_boxes:
            b = pixel_box(x, y, w, h, width, height, BOX_LABEL, box_where, xywh=True)
            if isinstance(b, Skip):
                bad = b
                break
            boxes.append(b)
        if bad is not None:
            yield bad
            continue
        labels = {"Pneumonia": target}
        if pid in classes:
            labels[NO_FINDING] = int(classes[pid] == "Normal")
        yield Sample(id=pid, image=str(path.resolve()), source=SOURCE.name, split="train", view=view, width=width,
                     height=height, labels=labels, boxes=boxes)
