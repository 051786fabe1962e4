"""Boxes: the project's one coordinate convention and the only place it is converted.

Convention (``Box``): ``x1, y1, x2, y2`` = left, top, right, bottom, as fractions of
the image width and height (0-1, origin at the top-left corner). Resizing an image
therefore never changes its boxes.

Text forms:

* the paper's: ``[x_min, y_min, x_max, y_max]`` with two decimals, several boxes
  joined with ", " and a final " and ", e.g. ``[0.10, 0.20, 0.30, 0.40] and [0.50, 0.50, 0.90, 0.90]``;
* Qwen3-VL's native one: integers on a 0-1000 grid, ``{"bbox_2d": [x1, y1, x2, y2], "label": ...}``.

>>> b = Box.from_pixels(100, 200, 300, 400, width=1000, height=1000)
>>> format_boxes([b])
'[0.10, 0.20, 0.30, 0.40]'
>>> format_box(Box(0.121, 0.30, 0.124, 0.304))  # too small for two decimals: widened to 0.01
'[0.12, 0.30, 0.13, 0.31]'

Reading boxes back from text is the completion parser's job (``radrl.parsing``), built on ``BOX_RE``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Box:
    """A box in normalized 0-1 ``x1, y1, x2, y2`` (left, top, right, bottom); ``label`` is its finding or phrase."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: str | None = None

    # --- constructors from the conventions datasets use -------------------------------
    @classmethod
    def from_pixels(cls, x1: float, y1: float, x2: float, y2: float, width: int, height: int,
                    label: str | None = None) -> Box:
        """Corner pixels of a ``width`` x ``height`` image; clamped to the image."""
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive to normalize a box, got {width}x{height}")
        return cls(_clamp(x1 / width), _clamp(y1 / height), _clamp(x2 / width), _clamp(y2 / height), label)

    @classmethod
    def from_xywh_pixels(cls, x: float, y: float, w: float, h: float, width: int, height: int,
                         label: str | None = None) -> Box:
        """Top-left corner plus size in pixels (NIH, RSNA, COCO)."""
        return cls.from_pixels(x, y, x + w, y + h, width, height, label)

    @classmethod
    def from_qwen(cls, coords: Iterable[float], label: str | None = None) -> Box:
        """Qwen3-VL's relative 0-1000 grid."""
        x1, y1, x2, y2 = (float(c) / 1000.0 for c in coords)
        return cls(x1, y1, x2, y2, label)

    # --- conversions out --------------------------------------------------------------
    def to_pixels(self, width: int, height: int) -> tuple[float, float, float, float]:
        return (self.x1 * width, self.y1 * height, self.x2 * width, self.y2 * height)

    def to_qwen(self) -> list[int]:
        return [round(_clamp(v) * 1000) for v in (self.x1, self.y1, self.x2, self.y2)]

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "box": [self.x1, self.y1, self.x2, self.y2]}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "box") -> Box:
        try:
            x1, y1, x2, y2 = (float(v) for v in d["box"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{where}: expected {{'box': [x1, y1, x2, y2], 'label': ...}} in 0-1 units, "
                             f"got {d!r}") from None
        box = cls(x1, y1, x2, y2, d.get("label"))
        if not box.is_valid:
            raise ValueError(f"{where}: box {box.coords} is not inside 0-1 with x1 < x2 and y1 < y2; "
                             "convert pixel boxes with Box.from_pixels")
        return box

    # --- geometry ---------------------------------------------------------------------
    @property
    def coords(self) -> tuple[float, float, float, float]:
        return (self.x1, self.y1, self.x2, self.y2)

    @property
    def is_valid(self) -> bool:
        """Finite, inside 0-1 and not inverted or empty."""
        x1, y1, x2, y2 = self.x1, self.y1, self.x2, self.y2  # NaN fails every comparison, inf the bounds
        return -1e-9 <= x1 < x2 <= 1 + 1e-9 and -1e-9 <= y1 < y2 <= 1 + 1e-9


def _clamp(v: float) -> float:
    return min(1.0, max(0.0, float(v)))


# --- the paper's text form -------------------------------------------------------------
def _two_decimals(lo: float, hi: float) -> tuple[float, float]:
    """Round a min/max pair to 0.01; a pair that would collapse (a box under 0.01 wide) is
    widened to 0.01 so the written box stays valid, e.g. a 3-pixel nodule on a 1,024 image."""
    lo, hi = round(_clamp(lo), 2), round(_clamp(hi), 2)
    if hi <= lo:
        hi = min(1.0, lo + 0.01)
        lo = hi - 0.01
    return lo, hi


def format_box(box: Box) -> str:
    """``[x1, y1, x2, y2]`` with two decimals; never writes an empty box."""
    (x1, x2), (y1, y2) = _two_decimals(box.x1, box.x2), _two_decimals(box.y1, box.y2)
    return f"[{x1:.2f}, {y1:.2f}, {x2:.2f}, {y2:.2f}]"


def format_boxes(boxes: Iterable[Box]) -> str:
    """Boxes joined as the paper writes them: ``[a], [b] and [c]``."""
    parts = [format_box(b) for b in boxes]
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+|nan|inf)"
BOX_RE = re.compile(r"\[\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*,\s*(" + _NUM + r")\s*\]",
                    re.IGNORECASE)


# --- Qwen3-VL's JSON form --------------------------------------------------------------
def format_qwen_json(boxes: Iterable[Box]) -> str:
    """Qwen3-VL's native grounding answer: a JSON list of ``{"bbox_2d": [...], "label": ...}``."""
    return json.dumps([{"bbox_2d": b.to_qwen(), "label": b.label or ""} for b in boxes])


# --- several readers' boxes -> one set ----------------------------------------------------
def weighted_box_fusion(boxes_per_reader: Sequence[Sequence[Box]], iou_threshold: float = 0.1,
                        skip_threshold: float = 0.0, *, scores: Sequence[Sequence[float]] | None = None,
                        weights: Sequence[float] | None = None) -> list[Box]:
    """Merge several readers' boxes (VinDr-CXR: 3 radiologists per image) into one set.

    Weighted boxes fusion (Solovyev et al.), exactly as ``ensemble_boxes.weighted_boxes_fusion``
    with ``conf_type="avg"`` (the reference; it needs numba and pandas, so it is not a
    dependency, and the tests check equality with it). Per label (``Box.label``; boxes of
    different findings never merge): boxes are taken in decreasing score x reader
    weight; each joins the fused box it overlaps most when that IoU is **above**
    ``iou_threshold``, else it starts a new one; a fused box is the score-weighted mean
    of its members' corners. Readers give no confidences, so every box scores 1 unless
    ``scores`` (one list per reader) says otherwise; boxes scoring below
    ``skip_threshold`` (or 0) are dropped. As in ensemble-boxes, corners are clamped to
    0-1, inverted corners swapped and boxes without area dropped. The result is ordered
    by fused confidence (mean member score x min(#readers, #members) / sum of weights:
    boxes more readers agree on first), ties in ensemble-boxes' order; the confidence
    itself is not kept (``Box`` has none). Merged corners are averaged in float32, as
    ensemble-boxes does, so the output equals its output exactly.

    >>> a, b = Box(0.1, 0.1, 0.5, 0.5, "nodule"), Box(0.3, 0.3, 0.7, 0.7, "nodule")
    >>> [(f.label, [round(v, 6) for v in f.coords]) for f in weighted_box_fusion([[a], [b], []])]
    [('nodule', [0.2, 0.2, 0.6, 0.6])]
    >>> len(weighted_box_fusion([[a], [Box(0.3, 0.3, 0.7, 0.7, "mass")]]))  # other finding: kept apart
    2
    """
    n = len(boxes_per_reader)
    w = [1.0] * n if weights is None else [float(x) for x in weights]
    if len(w) != n or not all(math.isfinite(x) and x > 0 for x in w):
        raise ValueError(f"weights must be {n} positive numbers, one per reader; got {weights!r}")
    if scores is None:
        scores = [[1.0] * len(boxes) for boxes in boxes_per_reader]
    if len(scores) != n or any(len(s) != len(b) for s, b in zip(scores, boxes_per_reader)):
        raise ValueError("scores must hold one list per reader with one score per box")

    # label -> [(score x weight, (x1, y1, x2, y2))], labels in order of first appearance
    groups: dict[str | None, list[tuple[float, tuple[float, float, float, float]]]] = {}
    for reader, (boxes, reader_scores) in enumerate(zip(boxes_per_reader, scores)):
        for box, score in zip(boxes, reader_scores):
            score = float(score)
            if not math.isfinite(score) or score < 0:
                raise ValueError(f"reader {reader}: box {box.coords} has score {score}; scores must be >= 0")
            if score < skip_threshold or score == 0:
                continue
            x1, y1, x2, y2 = (float(c) for c in box.coords)
            if not all(math.isfinite(c) for c in (x1, y1, x2, y2)):
                raise ValueError(f"a reader {reader} box has a non-finite coordinate; read boxes with "
                                 "radrl.parsing.parse, which drops invalid ones")
            x1, x2 = sorted((min(max(x1, 0.0), 1.0), min(max(x2, 0.0), 1.0)))
            y1, y2 = sorted((min(max(y1, 0.0), 1.0), min(max(y2, 0.0), 1.0)))
            if (x2 - x1) * (y2 - y1) == 0.0:
                continue
            groups.setdefault(box.label, []).append((score * w[reader], (x1, y1, x2, y2)))

    fused: list[tuple[float, str | None, tuple[float, ...]]] = []  # (confidence, label, corners)
    for label, entries in groups.items():
        order = np.argsort(np.array([e[0] for e in entries]))[::-1]  # ensemble-boxes' order, ties included
        members: list[list[tuple[float, tuple[float, ...]]]] = []
        centres: list[tuple[float, ...]] = []
        for i in order:
            score, corners = entries[i]
            best, best_iou = -1, iou_threshold
            for k, centre in enumerate(centres):  # the first of equal best IoUs wins
                overlap = _iou_corners(corners, centre)
                if overlap > best_iou:
                    best, best_iou = k, overlap
            if best < 0:
                members.append([(score, corners)])
                centres.append(corners)
            else:
                members[best].append((score, corners))
                centres[best] = _weighted_mean(members[best])
        for group, centre in zip(members, centres):
            mean_score = sum(s for s, _ in group) / len(group)
            if len(group) > 1:  # ensemble-boxes keeps a merged box's score in float32 too
                mean_score = float(np.float32(mean_score))
            fused.append((mean_score * min(n, len(group)) / sum(w), label, centre))
    order = np.argsort(np.array([f[0] for f in fused], dtype=float))[::-1]
    return [Box(*fused[i][2], label=fused[i][1]) for i in order]


def _weighted_mean(group: list[tuple[float, tuple[float, ...]]]) -> tuple[float, ...]:
    """Score-weighted mean corners, accumulated in float32 as ensemble-boxes stores a fused
    box: identical results, so matches at the IoU threshold and ties go the same way."""
    acc = np.zeros(4, dtype=np.float32)
    total = np.float64(0.0)
    for score, corners in group:
        acc += score * np.asarray(corners)  # float64 product, rounded into float32
        total += score
    acc /= total
    return tuple(float(v) for v in acc)


def _iou_corners(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
