"""PadChest-GR (BIMCV): grounded radiology reports, sentence by sentence, with boxes.

Why: the paper's second phrase-grounding set (4,478 x 2 SFT pairs, its own benchmark) and
grounded conversations (2,225 x 4). Each finding sentence of a report may carry boxes.

Layout under ``root``::

    grounded_reports_20240819.json   [{"StudyID": ..., "ImageID": "<name>.png", "findings": [
                                        {"sentence_en": ..., "sentence_es": ..., "abnormal": true,
                                         "boxes": [[x1, y1, x2, y2], ...], "extra_boxes": [...],
                                         "labels": [...], "locations": [...], "progression": ...}, ...]}, ...]
    master_table.csv (or master_table.csv.zip)   one row per (study, label): StudyID, ImageID, PatientID, split, ...
    Padchest_GR_files/<ImageID>       the PNGs (images=PATH for another folder, e.g. RadVLM's images_grounding/)

Boxes in ``boxes`` are already normalized to 0-1 (x_min, y_min, x_max, y_max); a box with
a coordinate above 1 (or otherwise not a 0-1 box) is not guessed at: it skips the whole
image with a counted reason, since the sentence would otherwise keep only part of its boxes.
``extra_boxes`` are not used. Sentences with ``abnormal: false`` often have no ``boxes`` key;
they still join the report text.

Each ``Sample``: ``findings`` = the English sentences joined (the grounded report), boxes
labelled with their sentence. Labels stay empty: PadChest's label vocabulary is not
CheXpert's. The JSON file is one array of about 4,500 studies (tens of MB), read whole;
the master table is read row by row into a StudyID/ImageID -> split dict.

Not verified against a real copy: the exact ``split`` spellings (we map train, validation /
val / valid, test) and whether ``ImageID`` carries the ``.png`` extension (we add it when
missing).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from radrl.data.boxes import Box
from radrl.data.schema import Sample
from radrl.data.sources import Skip, SourceInfo
from radrl.data.sources._files import csv_dicts, require

SOURCE = SourceInfo(
    name="padchest-gr",
    expects="""PadChest-GR root:
  grounded_reports_20240819.json (ImageID, StudyID, findings: sentence_en, boxes in 0-1)
  master_table.csv or master_table.csv.zip (StudyID, ImageID, split)
  Padchest_GR_files/<ImageID>  (or images=PATH)
options: images=PATH, reports=FILE""",
    # paper.md: phrase grounding 4,478 x 2, grounded conversations 2,225 x 4
    tasks=("phrase_grounding", "conversation"),
    repeats={"phrase_grounding": 2, "conversation": 4},
)

SPLITS = {"train": "train", "validation": "valid", "val": "valid", "valid": "valid", "test": "test"}


def _box(b, text: str, where: str) -> Box | Skip:
    """One ``boxes`` entry (x1, y1, x2, y2 in 0-1) as a Box, or the Skip that says why not."""
    try:
        x1, y1, x2, y2 = (float(v) for v in b)
    except (TypeError, ValueError):
        return Skip(where, "bad box", f"{b!r} is not four numbers")
    box = Box(x1, y1, x2, y2, label=text)
    if not box.is_valid:
        return Skip(where, "bad box", f"{b!r} is not a 0-1 box with x1 < x2, y1 < y2")
    return box


def read(root: str | Path, images: str | None = None, reports: str | None = None) -> Iterator[Sample | Skip]:
    """One ``Sample`` per image with a split in the master table and at least one boxed sentence.

    >>> s = next(x for x in read("/data/padchest-gr") if isinstance(x, Sample))   # doctest: +SKIP
    >>> s.boxes[0]                                                                # doctest: +SKIP
    Box(x1=0.3, y1=0.45, x2=0.78, y2=0.8, label='Cardiomegaly.')
    """
    root = Path(root)
    image_root = (Path(images) if images else root / "Padchest_GR_files").absolute()  # independent of the JSONL
    split_of: dict[str, str] = {}
    master = require(root, ["master_table.csv", "master_table.csv.zip"], "PadChest-GR master table")
    for where, r in csv_dicts(master):
        split = SPLITS.get((r.get("split") or "").strip().lower())
        if split is None:
            yield Skip(where, "bad split", f"split {r.get('split')!r}")
            continue
        for key in ("ImageID", "StudyID"):
            if r.get(key):
                split_of[r[key]] = split
    path = Path(reports) if reports else root / "grounded_reports_20240819.json"
    if not path.is_file():
        found = sorted(root.glob("grounded_reports_*.json"))
        if not found:
            raise FileNotFoundError(f"{path} not found; download PadChest-GR from BIMCV or pass reports=FILE")
        path = found[-1]
    try:
        studies = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e}); re-download the file") from None
    if not isinstance(studies, list):
        raise ValueError(f"{path}: expected a JSON list of studies, got {type(studies).__name__}")  # noqa: TRY004
    for n, st in enumerate(studies):
        where = f"{path} study {n}"
        if not isinstance(st, dict) or not st.get("ImageID"):
            yield Skip(where, "bad study", "not an object with an ImageID")
            continue
        image_id = st["ImageID"] if str(st["ImageID"]).lower().endswith(".png") else f"{st['ImageID']}.png"
        split = split_of.get(st["ImageID"]) or split_of.get(str(st.get("StudyID", "")))
        if split is None:
            yield Skip(where, "not in master table", f"{st['ImageID']} has no split")
            continue
        sentences, boxes, bad = [], [], None
        for k, fnd in enumerate(st.get("findings") or []):
            text = " ".join(str(fnd.get("sentence_en") or "").split()) if isinstance(fnd, dict) else ""
            if not text:
                if isinstance(fnd, dict) and fnd.get("boxes"):  # boxes with no sentence to ground
                    bad = Skip(f"{where} finding {k}", "bad finding", "boxes but no sentence_en")
                    break
                yield Skip(f"{where} finding {k}", "bad finding", "no sentence_en")
                continue
            sentences.append(text)
            for b in fnd.get("boxes") or []:
                box = _box(b, text, f"{where} finding {k}")
                if isinstance(box, Skip):
                    bad = box
                    break
                boxes.append(box)
            if bad is not None:
                break
        if bad is not None:  # one wrong box makes the sentence's box set incomplete: skip the image
            yield bad
            continue
        if not boxes:
            yield Skip(where, "no boxes", f"{st['ImageID']} has no boxed sentence")
            continue
        yield Sample(id=Path(image_id).stem, image=str(image_root / image_id), source=SOURCE.name, split=split,
                     findings=" ".join(sentences), boxes=boxes)
