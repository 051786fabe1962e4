"""Small file helpers shared by the dataset adapters (CSV reading, label cells, boxes, image headers).

Why: the same dataset reaches users in several wrappings (``.csv``, ``.csv.gz``, a Kaggle
``.csv.zip``; images in the published sub-folders or flattened into one folder), so the
adapters look files up by a list of candidate names and index images by file name.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path

from radrl.data.boxes import Box
from radrl.data.images import ImageError, image_header
from radrl.data.schema import NO_FINDING
from radrl.data.sources import Skip


def observation_labels(positives: set[str], names: dict[str, str], normal: bool | None) -> dict[str, int]:
    """A dataset's positive findings as ``Sample.labels``: renamed to the CheXpert observation where
    ``names`` maps one (``Effusion`` -> ``Pleural Effusion``), else kept under the dataset's name,
    plus ``"No Finding"``: 1 only when the dataset says the image is normal, 0 when it says it
    is not, absent when it does not say (``normal=None``).

    >>> observation_labels({"Effusion", "Emphysema"}, {"Effusion": "Pleural Effusion"}, normal=False)
    {'Emphysema': 1, 'No Finding': 0, 'Pleural Effusion': 1}
    """
    labels = {names.get(p, p): 1 for p in positives}
    if normal is not None:
        labels[NO_FINDING] = int(normal)
    return dict(sorted(labels.items()))


def find_first(root: Path, candidates: list[str]) -> Path | None:
    """The first candidate (a path relative to ``root``) that exists, else None."""
    for c in candidates:
        if (root / c).is_file():
            return root / c
    return None


def require(root: Path, candidates: list[str], what: str) -> Path:
    """Like ``find_first``, but a missing file is an error that lists every name tried."""
    found = find_first(root, candidates)
    if found is None:
        raise FileNotFoundError(f"{root}: no {what} found (looked for {', '.join(candidates)}); "
                                "point --root at the dataset folder as it was downloaded (radrl prepare --list)")
    return found


def open_text(path: Path) -> io.TextIOBase:
    """A text handle on ``path``: plain, gzip, or the single CSV inside a zip (Kaggle downloads)."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", newline="", encoding="utf-8-sig")
    if path.suffix == ".zip":
        z = zipfile.ZipFile(path)
        members = [n for n in z.namelist() if n.lower().endswith(".csv")]
        if len(members) != 1:
            raise ValueError(f"{path}: expected exactly one .csv inside the zip, found {members}")
        return io.TextIOWrapper(z.open(members[0]), encoding="utf-8-sig", newline="")
    return path.open("r", newline="", encoding="utf-8-sig")


def csv_rows(path: Path) -> Iterator[tuple[str, list[str]]]:
    """(``file:line``, fields) for each data row, header skipped; streamed, so any size works."""
    with open_text(path) as f:
        reader = csv.reader(f)
        next(reader, None)
        for row in reader:
            if row:
                yield f"{path}:{reader.line_num}", row


def csv_dicts(path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """(``file:line``, row dict) for each data row; streamed."""
    with open_text(path) as f:
        reader = csv.DictReader(f)
        for row in reader:
            yield f"{path}:{reader.line_num}", row


def csv_header(path: Path) -> list[str]:
    """The header row of a (``.gz`` / ``.zip``) CSV; empty for an empty file."""
    with open_text(path) as f:
        return next(csv.reader(f), [])


def require_columns(path: Path, needed: tuple[str, ...], hint: str = "is this the right file?") -> list[str]:
    """The header of ``path``; a missing needed column is an error before any row is streamed."""
    header = csv_header(path)
    missing = [c for c in needed if c not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {header[:12]}; {hint}")
    return header


def label_value(v: str | float | None, where: str) -> int | None:
    """A CheXpert label cell (``1.0``, ``0``, ``-1.0``, blank; NaN as pandas writes a blank) as 1/0/-1,
    None when blank (not mentioned); anything else is a ValueError naming ``where``.

    >>> label_value("-1.0", "x.csv:2"), label_value("", "x.csv:2")
    (-1, None)
    """
    if v is None or (isinstance(v, str) and v.strip() == ""):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: label value {v!r} is not 1, 0, -1 or blank") from None
    if math.isnan(f):
        return None
    if f not in (1.0, 0.0, -1.0):
        raise ValueError(f"{where}: label value {v!r} is not 1, 0, -1 or blank")
    return int(f)


def files_by_name(root: Path, suffixes: tuple[str, ...]) -> dict[str, list[Path]]:
    """File name -> every path under ``root`` with that name (sorted), for files with one of ``suffixes``.

    One walk of the tree (about a second for NIH's 112,120 PNGs) instead of guessing which
    ``images_0XX`` folder holds an image. All paths are kept because a name can repeat
    (CheXpert's ``view1_frontal.jpg`` is in every study folder): a caller that looks a name up
    must see that it is ambiguous rather than take one of them.
    """
    found: dict[str, list[Path]] = {}
    for folder, _dirs, files in os.walk(root):
        for name in files:
            if name.lower().endswith(suffixes):
                found.setdefault(name, []).append(Path(folder) / name)
    return {name: sorted(paths) for name, paths in found.items()}


def index_files(root: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """File name -> path, for datasets whose image names are unique by design (NIH, IU X-ray, RSNA's
    NIH images: the name is the image id); a name found twice is the same image copied twice, and the
    first path in sorted order is taken so the choice does not depend on the file system's walk order.
    Tables whose names may repeat use ``files_by_name``."""
    return {name: paths[0] for name, paths in files_by_name(root, suffixes).items()}


def header_size(path: Path, where: str) -> tuple[int, int, str | None] | Skip:
    """(width, height, DICOM view or None) from the image header, or the Skip that says why it cannot be read."""
    if not path.is_file():
        return Skip(where, "missing image", f"{path} does not exist")
    try:
        return image_header(path)
    except ImageError as e:
        return Skip(where, "unreadable image", str(e))


def pixel_box(x1: str | float, y1: str | float, x2: str | float, y2: str | float, width: int, height: int,
              label: str, where: str, xywh: bool = False) -> Box | Skip:
    """A pixel box (corners, or top-left + size with ``xywh``) as a normalized ``Box``; a box that is
    not numeric, empty or outside the image is a Skip, so a bad row never becomes a wrong box."""
    try:
        a, b, c, d = (float(v) for v in (x1, y1, x2, y2))
    except (TypeError, ValueError):
        return Skip(where, "malformed box", f"non-numeric coordinates {[x1, y1, x2, y2]}")
    if xywh:
        c, d = a + c, b + d
    if not (c > a and d > b):
        return Skip(where, "malformed box", f"empty or inverted box {[a, b, c, d]} (pixels)")
    tol = 2.0  # annotation tools round to the pixel grid; further out than this is a wrong image size
    if a < -tol or b < -tol or c > width + tol or d > height + tol:
        return Skip(where, "box outside image", f"box {[a, b, c, d]} outside the {width}x{height} image")
    return Box.from_pixels(a, b, c, d, width, height, label)
