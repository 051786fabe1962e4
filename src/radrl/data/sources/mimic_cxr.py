"""MIMIC-CXR-JPG 2.x images + MIMIC-CXR reports, read as PhysioNet distributes them.

Why this adapter reads four files instead of one: MIMIC-CXR-JPG ships images, the official
split, DICOM metadata (view position, pixel size) and CheXpert labels as separate CSVs
keyed by ``dicom_id`` / ``study_id``, and the free-text reports live in the separate
MIMIC-CXR project (``mimic-cxr-reports.zip``). We join them here, streaming.

Layout under ``root`` (the ``mimic-cxr-jpg/2.x.0`` folder)::

    mimic-cxr-2.0.0-split.csv.gz      dicom_id,study_id,subject_id,split   (split: train|validate|test)
    mimic-cxr-2.0.0-metadata.csv.gz   dicom_id,subject_id,study_id,...,ViewPosition,Rows,Columns,...
    mimic-cxr-2.0.0-chexpert.csv.gz   subject_id,study_id,<14 CheXpert observations> (1.0/0.0/-1.0/blank)
    files/p10/p10000032/s50414267/<dicom_id>.jpg
    files/p10/p10000032/s50414267.txt         reports, if mimic-cxr-reports.zip was unpacked here
    mimic-cxr-reports.zip                      ... or the zip itself (members files/p10/p10000032/s50414267.txt)

``reports=PATH`` points elsewhere: a folder holding ``files/`` (or ``files/`` itself), the zip,
or a flat folder of ``<study_id>.txt`` as RadVLM's LLM-filtered reports are stored (those
are plain findings text and go to ``findings`` whole). Plain ``.csv`` files are accepted
beside ``.csv.gz``.

Images: ``Rows`` is the height and ``Columns`` the width of the JPG (the JPG release keeps
the DICOM pixel grid), so boxes from MS-CXR or Chest ImaGenome can be normalized without
opening an image.

Frontal selection (``frontal=``): ``"all"`` (default) keeps every PA or AP image, as the
RadVLM code does (``ViewPosition in {PA, AP}``); ``"one"`` keeps one frontal image per
study, PA before AP, then the first listed; ``"none"`` keeps lateral images too.

Reports are split into sections like the official ``section_parser.py`` of the
``MIT-LCP/mimic-cxr`` repository: upper-case headers ending in a colon start a section;
``FINDINGS`` goes to ``findings``, ``IMPRESSION`` (or ``CONCLUSION``) to ``impression``;
a report with neither gets its last paragraph as ``impression`` (the official script's
``last_paragraph`` fallback). The paper's LLM filter of prior-study references is not
applied here (it needs an LLM); its output is read with ``reports=``.

Memory: the split, metadata and label tables are held as small per-id dicts (tens of MB
for the full release); reports are read one study at a time as its images are emitted.

>>> section_report("FINAL REPORT\\n EXAMINATION: CHEST\\n\\n "
...                "FINDINGS: Normal heart.\\n\\n IMPRESSION: No acute process.")
('Normal heart.', 'No acute process.')
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from radrl.data.schema import CHEXPERT_LABELS, Sample
from radrl.data.sources import Skip, SourceInfo
from radrl.data.sources._files import csv_dicts, label_value, require_columns

SOURCE = SourceInfo(
    name="mimic-cxr",
    expects="""mimic-cxr-jpg 2.x root:
  mimic-cxr-2.0.0-split.csv.gz, mimic-cxr-2.0.0-metadata.csv.gz, mimic-cxr-2.0.0-chexpert.csv.gz
  files/pXX/pNNNNNNNN/sNNNNNNNN/<dicom_id>.jpg
  reports: files/pXX/pNNNNNNNN/sNNNNNNNN.txt (unzipped mimic-cxr-reports.zip) or mimic-cxr-reports.zip
options: frontal=all|one|none, reports=PATH, splits=train,validate,test""",
    # paper.md: reports 230,980 x 1, classification 237,912 x 1, conversations 86,155 x 1
    tasks=("report", "classification", "conversation"),
)

FRONTAL = ("PA", "AP")
SPLITS = {"train": "train", "validate": "valid", "test": "test"}


def find_table(root: Path, stem: str) -> Path:
    """``stem.csv.gz`` or ``stem.csv`` under root; a clear error names both when neither exists."""
    for name in (f"{stem}.csv.gz", f"{stem}.csv"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"{root}: neither {stem}.csv.gz nor {stem}.csv found; download it from the "
                            "MIMIC-CXR-JPG PhysioNet project into this folder")


def image_path(root: Path, subject_id: str, study_id: str, dicom_id: str) -> Path:
    """files/p10/p10000032/s50414267/<dicom_id>.jpg"""
    return root / "files" / f"p{subject_id[:2]}" / f"p{subject_id}" / f"s{study_id}" / f"{dicom_id}.jpg"


def read_metadata(root: Path) -> dict[str, tuple[str, int | None, int | None]]:
    """dicom_id -> (ViewPosition, width=Columns, height=Rows)."""
    path = find_table(root, "mimic-cxr-2.0.0-metadata")
    require_columns(path, ("dicom_id", "ViewPosition", "Rows", "Columns"))
    meta, shared = {}, {}
    for _, r in csv_dicts(path):
        value = (r["ViewPosition"] or "", _int(r["Columns"]), _int(r["Rows"]))
        meta[r["dicom_id"]] = shared.setdefault(value, value)  # few distinct (view, size) values: share them
    return meta


def _int(v: str | None) -> int | None:
    try:
        return int(float(v)) if v not in (None, "") else None
    except ValueError:
        return None


def read_labels(root: Path) -> dict[str, dict[str, int]]:
    """study_id -> {observation: 1/0/-1}; malformed cells raise with the row."""
    path = find_table(root, "mimic-cxr-2.0.0-chexpert")
    require_columns(path, ("study_id", *CHEXPERT_LABELS))
    out, shared = {}, {}
    for where, r in csv_dicts(path):
        try:
            values = tuple((k, v) for k in CHEXPERT_LABELS if (v := label_value(r[k], where)) is not None)
        except ValueError as e:
            raise ValueError(f"{e}; fix or remove that row") from None
        out[r["study_id"]] = shared.setdefault(values, dict(values))  # shared, read-only: callers copy
    return out


# --- reports ----------------------------------------------------------------------------------
_HEADER = re.compile(r"(?:^|\n)\s*([A-Z][A-Z &()/,-]*[A-Z)]):", re.MULTILINE)
_FINDINGS = {"FINDINGS", "FINDING", "FINDINGS AND IMPRESSION"}
_IMPRESSION = {"IMPRESSION", "IMPRESSIONS", "CONCLUSION", "CONCLUSIONS", "SUMMARY"}


def _clean(text: str) -> str:
    return " ".join(text.split())


def section_report(text: str) -> tuple[str | None, str | None]:
    """(findings, impression) of a MIMIC-CXR report; whitespace collapsed; None when absent."""
    body = text.split("FINAL REPORT", 1)[-1]
    heads = list(_HEADER.finditer(body))
    sections: dict[str, str] = {}
    for h, nxt in zip(heads, [*heads[1:], None]):
        name = h.group(1).strip()
        content = _clean(body[h.end(): nxt.start() if nxt else len(body)])
        if content:
            sections.setdefault(name, content)
    findings = next((sections[k] for k in sections if k in _FINDINGS), None)
    impression = next((sections[k] for k in sections if k in _IMPRESSION), None)
    if findings is None and impression is None:
        paragraphs = [p for p in re.split(r"\n\s*\n", body) if p.strip()]
        if paragraphs:
            last = _HEADER.sub("", paragraphs[-1])
            impression = _clean(last) or None
    return findings, impression


class _Reports:
    """Report text by (subject_id, study_id) from an unpacked tree, the zip (random access), or a flat
    folder of ``<study_id>.txt`` (RadVLM's LLM-filtered reports: plain findings text, no sections)."""

    def __init__(self, where: Path):
        if where.name == "files" and where.is_dir():  # the files/ folder itself was given
            where = where.parent
        self.where = where
        self.zip = None
        if where.is_file() and where.suffix == ".zip":
            self.zip = zipfile.ZipFile(where)
            names = self.zip.namelist()
            # the zip may or may not carry a top folder above files/
            self.prefix = next((n[: n.index("files/")] for n in names if "files/" in n), "")

    def path(self, subject_id: str, study_id: str) -> str:
        return f"files/p{subject_id[:2]}/p{subject_id}/s{study_id}.txt"

    def read(self, subject_id: str, study_id: str) -> tuple[str, bool] | None:
        """(text, is a flat filtered report) or None when the study has no report here."""
        rel = self.path(subject_id, study_id)
        if self.zip is not None:
            try:
                return self.zip.read(self.prefix + rel).decode("utf-8", errors="replace"), False
            except KeyError:
                return None
        for p, flat in ((self.where / rel, False), (self.where / f"{study_id}.txt", True),
                        (self.where / f"s{study_id}.txt", True)):
            if p.is_file():
                return p.read_text(errors="replace"), flat
        return None


def _reports(root: Path, reports: str | None) -> _Reports:
    if reports:
        where = Path(reports)
        if not where.exists():
            raise FileNotFoundError(f"reports={reports} does not exist; point it to mimic-cxr-reports.zip or the "
                                    "folder that holds its files/ tree")
        return _Reports(where)
    if (root / "mimic-cxr-reports.zip").is_file():
        return _Reports(root / "mimic-cxr-reports.zip")
    return _Reports(root)


def _pick(group: list[tuple[str, str, str, str, tuple]], frontal: str) -> list:
    if frontal == "none":
        return group
    front = [g for g in group if g[4][0] in FRONTAL]
    if frontal == "all":
        return front
    for view in FRONTAL:  # "one": PA first, then AP
        for g in front:
            if g[4][0] == view:
                return [g]
    return []


def read(root: str | Path, frontal: str = "all", reports: str | None = None,
         splits: str | tuple[str, ...] = ("train", "validate", "test")) -> Iterator[Sample | Skip]:
    """One ``Sample`` per kept image (id = dicom_id), report sections and study labels attached.

    ``splits`` takes MIMIC's own names (train, validate, test); samples carry train/valid/test.

    >>> s = next(read("/data/physionet.org/files/mimic-cxr-jpg/2.0.0", frontal="one"))  # doctest: +SKIP
    >>> s.id, s.view, s.width, s.height, s.labels                                        # doctest: +SKIP
    ('02aa804e-bde0afdd-112c0b34-7bc16630-4e384014', 'PA', 2544, 3056, {'No Finding': 1})
    """
    root = Path(root).absolute()  # image paths in the written JSONL must not depend on its folder
    if frontal not in ("all", "one", "none"):
        raise ValueError(f"frontal must be 'all', 'one' or 'none', got {frontal!r}")
    if isinstance(splits, str):
        splits = tuple(s.strip() for s in splits.split(","))
    bad = set(splits) - set(SPLITS)
    if bad:
        raise ValueError(f"unknown MIMIC split(s) {sorted(bad)}; use train, validate, test")
    split_path = find_table(root, "mimic-cxr-2.0.0-split")
    require_columns(split_path, ("dicom_id", "study_id", "subject_id", "split"))
    meta, labels, texts = read_metadata(root), read_labels(root), _reports(root, reports)

    def emit(group):
        if not group:
            return
        subject, study = group[0][1], group[0][2]
        kept = _pick(group, frontal)
        if not kept:
            yield Skip(f"{split_path} study {study}", "no frontal image", f"views {[g[4][0] for g in group]}")
            return
        found = texts.read(subject, study)
        if found is None:
            yield Skip(f"{texts.where}/{texts.path(subject, study)}", "missing report",
                       "unpack mimic-cxr-reports.zip under the root or pass reports=")
            return
        text, flat = found
        findings, impression = (_clean(text) or None, None) if flat else section_report(text)
        if not (findings or impression):
            yield Skip(f"{texts.where}/{texts.path(subject, study)}", "empty report", "no findings or impression")
            return
        for dicom, subj, stud, split, (view, w, h) in kept:
            yield Sample(id=dicom, image=str(image_path(root, subj, stud, dicom)), source=SOURCE.name,
                         split=SPLITS[split], view=view or None, width=w, height=h, findings=findings,
                         impression=impression, labels=dict(labels.get(stud, {})))

    group: list = []
    seen: set[str] = set()
    for where, r in csv_dicts(split_path):
        dicom, study, subject, split = r["dicom_id"], r["study_id"], r["subject_id"], r["split"]
        if split not in SPLITS:
            yield Skip(where, "bad split", f"split {split!r} is not train/validate/test")
            continue
        if split not in splits:
            continue
        if dicom not in meta:
            yield Skip(where, "no metadata", f"dicom_id {dicom} not in the metadata table")
            continue
        if group and group[0][2] != study:
            seen.add(group[0][2])
            yield from emit(group)
            group = []
        if study in seen:  # the official CSV lists a study's images together; a study split apart is noted
            yield Skip(where, "study not contiguous", f"study {study} listed again after others")
            continue
        group.append((dicom, subject, study, split, meta[dicom]))
    yield from emit(group)
    if texts.zip is not None:
        texts.zip.close()
