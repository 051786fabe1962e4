"""Chest ImaGenome silver dataset (PhysioNet): anatomical region boxes on MIMIC-CXR images.

Why: the paper's anatomical grounding task (80,000 SFT pairs, 2,000 test) asks for one of
up to 36 named regions ("right upper lung zone", "cardiac silhouette", ...) per image.

Layout under ``root`` (the ``chest-imagenome/1.0.0`` folder)::

    silver_dataset/splits/train.csv, valid.csv, test.csv     dicom_id, subject_id, study_id, ...
    silver_dataset/scene_graph/<dicom_id>_SceneGraph.json     (unpacked from scene_graph.zip)
        {"image_id": ..., "viewpoint": "PA", "objects": [{"bbox_name": "left lung",
          "original_x1": 305, "original_y1": 420, "original_x2": 1180, "original_y2": 2320, ...}, ...]}

``original_*`` are pixels of the original MIMIC-CXR image, so the image size comes from the
MIMIC-CXR-JPG metadata table (``Columns`` x ``Rows``) and the image path from its ``files/``
tree: ``mimic=PATH`` names that root (required). Region boxes that fall outside the image
are clamped; a region left empty by clamping is dropped and counted. The gold dataset
(1,000 hand-checked images) is not read by this adapter.

Each ``Sample`` carries every region of the image as a box labelled with its ``bbox_name``;
``radrl.data.instructions`` draws one region per conversation, as RadVLM does.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from radrl.data.boxes import Box
from radrl.data.schema import Sample
from radrl.data.sources import Skip, SourceInfo
from radrl.data.sources._files import csv_dicts, require_columns
from radrl.data.sources.mimic_cxr import image_path, read_metadata

SOURCE = SourceInfo(
    name="chest-imagenome",
    expects="""Chest ImaGenome 1.0.0 root:
  silver_dataset/splits/{train,valid,test}.csv (dicom_id, subject_id, study_id)
  silver_dataset/scene_graph/<dicom_id>_SceneGraph.json (objects: bbox_name, original_x1..original_y2)
  mimic=PATH: the MIMIC-CXR-JPG root (metadata table for image sizes, files/ for images)
options: mimic=PATH (required), splits=train,valid,test""",
    tasks=("anatomy_grounding",),  # paper.md: anatomical grounding 80,000 x 1
)

SPLIT_FILES = {"train": "train.csv", "valid": "valid.csv", "test": "test.csv"}


def read(root: str | Path, mimic: str | None = None,
         splits: str | tuple[str, ...] = ("train", "valid", "test")) -> Iterator[Sample | Skip]:
    """One ``Sample`` per split row whose scene graph exists, with its region boxes (0-1).

    >>> s = next(read("/data/chest-imagenome/1.0.0", mimic="/data/mimic-cxr-jpg/2.0.0"))  # doctest: +SKIP
    >>> s.boxes[0]                                                                         # doctest: +SKIP
    Box(x1=0.0998, y1=0.0998, x2=0.5, y2=0.8001, label='right lung')
    """
    root = Path(root)
    if not mimic:
        raise ValueError("chest-imagenome needs mimic=PATH, the MIMIC-CXR-JPG root: region boxes are in original "
                         "pixels and the image sizes and files come from there")
    mimic_root = Path(mimic).absolute()  # image paths in the written JSONL must not depend on its folder
    if isinstance(splits, str):
        splits = tuple(s.strip() for s in splits.split(","))
    bad = set(splits) - set(SPLIT_FILES)
    if bad:
        raise ValueError(f"unknown split(s) {sorted(bad)}; use train, valid, test")
    graphs = root / "silver_dataset" / "scene_graph"
    if not graphs.is_dir():
        raise FileNotFoundError(f"{graphs} not found; unpack silver_dataset/scene_graph.zip there")
    meta = read_metadata(mimic_root)
    for split in splits:
        table = root / "silver_dataset" / "splits" / SPLIT_FILES[split]
        if not table.is_file():
            yield Skip(str(table), "missing split file", f"no {split} split")
            continue
        require_columns(table, ("dicom_id", "subject_id", "study_id"))
        for where, r in csv_dicts(table):
            dicom = r["dicom_id"]
            graph_path = graphs / f"{dicom}_SceneGraph.json"
            if not graph_path.is_file():  # known to happen in the release (RadVLM keeps a missing_ids list)
                yield Skip(where, "missing scene graph", str(graph_path))
                continue
            if dicom not in meta or not meta[dicom][1] or not meta[dicom][2]:
                yield Skip(where, "no image size", f"{dicom} has no Rows/Columns in the MIMIC-CXR-JPG metadata")
                continue
            view, width, height = meta[dicom]
            try:
                graph = json.loads(graph_path.read_text())
                objects = graph["objects"]
            except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as e:
                yield Skip(str(graph_path), "bad scene graph", f"{type(e).__name__}: {e}")
                continue
            boxes = []
            for k, obj in enumerate(objects):
                try:
                    box = Box.from_pixels(*(float(obj[f"original_{c}"]) for c in ("x1", "y1", "x2", "y2")),
                                          width=width, height=height, label=obj["bbox_name"])
                except (KeyError, TypeError, ValueError) as e:
                    yield Skip(f"{graph_path} object {k}", "bad region box", f"{type(e).__name__}: {e}")
                    continue
                if not box.is_valid:
                    yield Skip(f"{graph_path} object {k}", "empty region box",
                               f"{obj.get('bbox_name')} is empty inside the {width}x{height} image")
                    continue
                boxes.append(box)
            if not boxes:
                yield Skip(where, "no regions", f"{graph_path} has no usable region box")
                continue
            yield Sample(id=dicom, image=str(image_path(mimic_root, r["subject_id"], r["study_id"], dicom)),
                         source=SOURCE.name, split=split, view=graph.get("viewpoint") or view or None,
                         width=width, height=height, boxes=boxes)
