"""TBX11K tuberculosis boxes (COCO JSON), read as the authors distribute them.

Why: TBX11K is the public grounding set for tuberculosis (active and latent/obsolete TB
boxes on 512x512 images, with healthy and sick-but-not-TB controls). Layout::

    TBX11K/imgs/{health,sick,tb}/*.png
    TBX11K/annotations/json/TBX11K_train.json, TBX11K_val.json     COCO: images[file_name, width,
                               height], annotations[image_id, category_id, bbox = [x, y, w, h] pixels]

Each ``TBX11K_<split>.json`` (at the root or under ``annotations/json``) gives one split
("val" is written "valid", as for the other sources). Image paths are ``imgs/<file_name>``,
``<file_name>`` or the bare file name under root, in that order. Boxes keep the COCO
category names; ``labels`` holds ``{"Tuberculosis": 1}`` for images under ``tb/`` or with a
box, 0 for unboxed ``health/`` and ``sick/`` images, and no Tuberculosis label for an unboxed
image in any other folder (nothing says it is not TB); ``"No Finding"``: 1 for ``health/``
images, 0 for ``sick/`` (ill, not TB) and ``tb/`` ones, absent elsewhere. Box pixels are
normalized by the size the JSON gives for the image, after checking it against the PNG header.

>>> [s.boxes[0].label for s in read("/data/TBX11K") if getattr(s, "boxes", None)][:1]   # doctest: +SKIP
['ActiveTuberculosis']
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from radrl.data.boxes import Box
from radrl.data.schema import NO_FINDING, Sample
from radrl.data.sources import Skip, SourceInfo
from radrl.data.sources._files import header_size, pixel_box

# The COCO category names as they read in a request ("Locate the active tuberculosis"); boxes keep the COCO names.
CLASS_NAMES = {"ActiveTuberculosis": "active tuberculosis",
               "ObsoletePulmonaryTuberculosis": "obsolete pulmonary tuberculosis",
               "PulmonaryTuberculosis": "pulmonary tuberculosis"}

SOURCE = SourceInfo(
    name="tbx11k",
    expects="""TBX11K root:
  annotations/json/TBX11K_train.json, TBX11K_val.json (COCO; also accepted at the root)
  imgs/{health,sick,tb}/*.png""",
    tasks=("grounding", "detection"),  # not in the paper's table: a box-only public set feeds the abnormality tasks
    class_names=CLASS_NAMES,
)

SPLITS = {"train": "train", "val": "valid", "test": "test", "trainval": "train"}


def _annotation_files(root: Path) -> list[Path]:
    found = sorted((root / "annotations" / "json").glob("TBX11K_*.json")) + sorted(root.glob("TBX11K_*.json"))
    if not found:
        raise FileNotFoundError(f"{root}: no TBX11K_<split>.json under annotations/json/ or the root; "
                                "point --root at the unpacked TBX11K folder")
    return found


def _image_path(root: Path, file_name: str) -> Path:
    for candidate in (root / "imgs" / file_name, root / file_name, root / Path(file_name).name):
        if candidate.is_file():
            return candidate
    return root / "imgs" / file_name


def read(root: str | Path) -> Iterator[Sample | Skip]:
    root = Path(root)
    for path in _annotation_files(root):
        split = SPLITS.get(path.stem.split("_", 1)[1].lower(), path.stem.split("_", 1)[1].lower())
        try:
            coco = json.loads(path.read_text())
            categories = {c["id"]: c["name"] for c in coco["categories"]}
            images = coco["images"]
            annotations = coco.get("annotations", [])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            yield Skip(str(path), "malformed file", f"not a COCO annotation file ({type(e).__name__}: {e})")
            continue
        by_image: dict = {}
        for i, a in enumerate(annotations):
            if not isinstance(a, dict) or "image_id" not in a:
                yield Skip(f"{path} annotation {i}", "malformed row", f"annotation without image_id: {a!r}")
                continue
            by_image.setdefault(a["image_id"], []).append((i, a))
        for k, im in enumerate(images):
            where = f"{path} image {k}"
            try:
                file_name, width, height = im["file_name"], int(im["width"]), int(im["height"])
            except (KeyError, TypeError, ValueError):
                yield Skip(where, "malformed row", f"image entry needs file_name, width, height: {im!r}")
                continue
            image = _image_path(root, file_name)
            size = header_size(image, where)
            if isinstance(size, Skip):
                yield size
                continue
            if size[:2] != (width, height):
                yield Skip(where, "size mismatch", f"{image} is {size[0]}x{size[1]}, the JSON says {width}x{height}")
                continue
            boxes: list[Box] = []
            bad = None
            for i, a in by_image.get(im.get("id"), []):
                bbox = a.get("bbox") if isinstance(a.get("bbox"), list) and len(a["bbox"]) == 4 else [None] * 4
                label = categories.get(a.get("category_id"))
                b = pixel_box(*bbox, width, height, label, f"{path} annotation {i}", xywh=True)
                if isinstance(b, Skip) or label is None:
                    bad = b if isinstance(b, Skip) else Skip(f"{path} annotation {i}", "malformed row",
                                                             f"unknown category_id {a.get('category_id')!r}")
                    break
                boxes.append(b)
            if bad is not None:
                yield bad
                continue
            tb = bool(boxes) or file_name.startswith("tb/")
            labels: dict[str, int] = {}
            if tb or file_name.startswith(("health/", "sick/")):  # elsewhere nothing says "not TB"
                labels["Tuberculosis"] = int(tb)
            if file_name.startswith(("health/", "sick/", "tb/")):
                labels[NO_FINDING] = int(file_name.startswith("health/") and not tb)
            yield Sample(id=Path(file_name).stem, image=str(image.resolve()), source=SOURCE.name, split=split,
                         width=width, height=height, labels=labels, boxes=boxes)
