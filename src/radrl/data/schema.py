"""The one sample schema every data source produces.

A ``Sample`` is one image (or study) with what we know about it: report text,
observation labels and grounding boxes. Real dataset adapters and the synthetic
generator both emit it, and ``instructions`` turns it into conversations. On disk
(JSONL, Parquet, Hugging Face datasets) a sample is the plain dict from ``to_row``;
``from_row`` validates such a dict and says which field is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from radrl.data.boxes import Box

# The 14 CheXpert observations, in the order CheXpert / CheXbert report them.
CHEXPERT_LABELS = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

# Label values, as in the CheXpert CSVs: 1 positive, 0 negative, -1 uncertain;
# an observation that is not mentioned is simply absent from ``Sample.labels``.
POSITIVE, NEGATIVE, UNCERTAIN = 1, 0, -1
# Label keys are CheXpert observation names where one fits (NIH "Effusion" is written
# "Pleural Effusion"), else the dataset's own finding name ("Emphysema", "Tuberculosis").
# NO_FINDING is 1 only when the dataset itself says the image is normal: a sample whose
# labels hold no CheXpert positive is not therefore normal (TBX11K's "sick" images,
# RSNA's "No Lung Opacity / Not Normal").
NO_FINDING = "No Finding"


@dataclass
class Sample:
    """One image with its report, labels and boxes.

    ``image`` is a path (absolute, or relative to the folder of the file that lists
    the sample). ``boxes`` use the project's one convention (see ``Box``).
    ``findings`` and ``impression`` are kept apart because report-generation
    targets and metrics differ on which section they use.
    """

    id: str
    image: str
    source: str = ""
    split: str = "train"
    view: str | None = None
    width: int | None = None
    height: int | None = None
    findings: str | None = None
    impression: str | None = None
    labels: dict[str, int] = field(default_factory=dict)
    boxes: list[Box] = field(default_factory=list)

    @property
    def report(self) -> str | None:
        """The report-generation target: the findings section, else the impression."""
        return self.findings or self.impression

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["boxes"] = [b.to_dict() for b in self.boxes]
        row["labels"] = json.dumps(self.labels, sort_keys=True)  # Arrow needs one fixed type per column
        return row

    @classmethod
    def from_row(cls, row: Any, where: str = "row") -> Sample:
        """Build a sample from ``to_row`` output; ``where`` names the file and row in errors."""
        # ValueError, not TypeError, for every bad row: readers catch one exception type per row.
        if not isinstance(row, dict):
            got = type(row).__name__
            raise ValueError(f"{where}: expected a JSON object with the sample fields, got {got}")  # noqa: TRY004
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(row) - known)
        if unknown:
            raise ValueError(f"{where}: unknown field(s) {unknown}; a sample has {sorted(known)}")
        missing = [k for k in ("id", "image") if not row.get(k)]
        if missing:
            raise ValueError(f"{where}: missing required field(s) {missing}; "
                             "every sample needs an id and an image path")
        for key in ("id", "image", "source", "split", "view", "findings", "impression"):
            if row.get(key) is not None and not isinstance(row[key], str):
                raise ValueError(f"{where}: field {key!r} must be text, got {type(row[key]).__name__}")
        for key in ("width", "height"):
            v = row.get(key)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise ValueError(f"{where}: field {key!r} must be a whole number of pixels or null, got {v!r}")
        labels = row.get("labels") or {}
        if isinstance(labels, str):
            try:
                labels = json.loads(labels)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: labels text is not valid JSON ({e}); "
                                 'write it as {"Cardiomegaly": 1, ...}') from None
        if not isinstance(labels, dict):
            got = type(labels).__name__
            raise ValueError(f"{where}: labels must map observation -> 1/0/-1, got {got}")  # noqa: TRY004
        bad = {k: v for k, v in labels.items() if v not in (POSITIVE, NEGATIVE, UNCERTAIN)}
        if bad:
            raise ValueError(f"{where}: label values must be 1, 0 or -1 (leave unmentioned ones out), got {bad}")
        boxes = row.get("boxes") or []
        if not isinstance(boxes, list):
            raise ValueError(  # noqa: TRY004
                f"{where}: boxes must be a list of {{'box': [x1, y1, x2, y2], 'label': ...}}")
        boxes = [Box.from_dict(b, where=f"{where} box {i}") if isinstance(b, dict) else
                 Box.from_dict({"box": b}, where=f"{where} box {i}") for i, b in enumerate(boxes)]
        rest = {k: v for k, v in row.items() if k not in ("labels", "boxes")}
        return cls(**rest, labels={k: int(v) for k, v in labels.items()}, boxes=boxes)


def hf_features():
    """The ``datasets.Features`` of ``Sample.to_row()``: fixed up front so that a first batch without
    boxes (or without a view) cannot make ``datasets`` guess a null type for the whole column.

    >>> sorted(hf_features())[:3]
    ['boxes', 'findings', 'height']
    """
    from datasets import Features, List, Value

    text = Value("string")
    return Features({"id": text, "image": text, "source": text, "split": text, "view": text,
                     "width": Value("int64"), "height": Value("int64"), "findings": text, "impression": text,
                     "labels": text, "boxes": List({"label": text, "box": List(Value("float64"))})})


def write_jsonl(samples: Iterable[Sample], path: str | Path) -> int:
    """Write samples as JSON lines; returns how many were written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w") as f:
        for s in samples:
            row = s.to_row()
            row["labels"] = s.labels  # JSONL keeps the dict readable
            f.write(json.dumps(row) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> Iterator[Sample]:
    """Read samples written by ``write_jsonl``; image paths are resolved against the file's folder."""
    path = Path(path)
    with path.open() as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{i}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{where}: not valid JSON ({e}); fix or remove that line") from None
            s = Sample.from_row(row, where=where)
            if not Path(s.image).is_absolute():
                s.image = str(path.parent / s.image)
            yield s
