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
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


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
            raise ValueError(f"{where}: expected {{'box': [x1, y1, x2, y2], 'label': ...}} in 0-1 units, got {d!r}") from None
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
