"""Indiana University chest X-ray collection (Open-i): XML reports and PNG images, as NLM ships them.

Why: IU X-ray is the public report-generation benchmark (3,955 reports, about 7,470
images, CC BY-NC-ND 4.0). Open-i distributes two archives::

    NLMCXR_reports.tgz  -> ecgen-radiology/<n>.xml: <uId id="CXR<n>"/>, sections in
                           <AbstractText Label="COMPARISON|INDICATION|FINDINGS|IMPRESSION">,
                           one <parentImage id="CXR<n>_<k>_IM-...-..."> per image
    NLMCXR_png.tgz      -> <parentImage id>.png

The reports are read straight from the tgz (or an unpacked ``ecgen-radiology/`` folder);
images are found by file name anywhere under root, also in the Kaggle re-packaging
(``images_normalized/<n>_IM-...-....dcm.png``, with ``indiana_projections.csv`` giving each
image's view, "Frontal" or "Lateral"). One sample per image, its report's FINDINGS in
``findings`` and IMPRESSION in ``impression`` (empty sections are None; NLM's
de-identification token ``XXXX`` is kept as written). IU has no official split: "all".
Reports that list no image are skipped as "no image listed".

>>> next(read("/data/iu-xray")).impression                                 # doctest: +SKIP
'Normal chest x-XXXX.'
"""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from radrl.data.schema import Sample
from radrl.data.sources import Skip, SourceInfo
from radrl.data.sources._files import csv_dicts, find_first, header_size, index_files

SOURCE = SourceInfo(
    name="iu-xray",
    expects="""IU X-ray (Open-i) root:
  NLMCXR_reports.tgz (or its unpacked ecgen-radiology/*.xml)
  NLMCXR_png.tgz unpacked under root: <parentImage id>.png (Kaggle: images_normalized/*.dcm.png)
  indiana_projections.csv   optional (Kaggle): view per image""",
    # not in the paper's table; classification yields rows only for samples given labels (read() writes none)
    tasks=("report", "classification"),
)


def parse_report(xml: bytes | str, where: str) -> tuple[str, str | None, str | None, list[str]] | Skip:
    """(report id, findings, impression, image ids) of one Open-i XML report, or a Skip.

    >>> parse_report('<eCitation><uId id="CXR9"/><Abstract><AbstractText Label="FINDINGS">Clear.'
    ...              '</AbstractText></Abstract><parentImage id="CXR9_1_IM-0002-1001"/></eCitation>', "x")
    ('CXR9', 'Clear.', None, ['CXR9_1_IM-0002-1001'])
    """
    try:
        doc = ET.fromstring(xml)
    except ET.ParseError as e:
        return Skip(where, "malformed file", f"not valid XML ({e})")
    uid = doc.find("uId")
    if uid is None or not uid.get("id"):
        return Skip(where, "malformed file", "no <uId id=...> element; not an Open-i report")
    sections = {}
    for el in doc.iter("AbstractText"):
        text = " ".join("".join(el.itertext()).split())
        sections[(el.get("Label") or "").upper()] = text or None
    images = [el.get("id") for el in doc.iter("parentImage") if el.get("id")]
    return uid.get("id"), sections.get("FINDINGS"), sections.get("IMPRESSION"), images


def _reports(root: Path) -> Iterator[tuple[str, bytes]]:
    """(where, XML bytes) per report, streamed from the tgz or the unpacked folder."""
    folder = root / "ecgen-radiology"
    if folder.is_dir():
        for path in sorted(folder.glob("*.xml"), key=lambda p: (len(p.stem), p.stem)):
            yield str(path), path.read_bytes()
        return
    tgz = find_first(root, ["NLMCXR_reports.tgz", "NLMCXR_reports.tar.gz"])
    if tgz is None:
        raise FileNotFoundError(f"{root}: neither NLMCXR_reports.tgz nor ecgen-radiology/ found; download the "
                                "reports from https://openi.nlm.nih.gov/faq (radrl prepare --list)")
    with tarfile.open(tgz, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".xml"):
                yield f"{tgz}:{member.name}", tar.extractfile(member).read()


def read(root: str | Path) -> Iterator[Sample | Skip]:
    root = Path(root)
    images = index_files(root, (".png",))
    views: dict[str, str] = {}
    projections = find_first(root, ["indiana_projections.csv"])
    if projections is not None:
        views = {r.get("filename", ""): r.get("projection") or "" for _, r in csv_dicts(projections)}
    for where, xml in _reports(root):
        parsed = parse_report(xml, where)
        if isinstance(parsed, Skip):
            yield parsed
            continue
        report_id, findings, impression, image_ids = parsed
        if not image_ids:
            yield Skip(where, "no image listed", f"report {report_id} lists no <parentImage>")
            continue
        if not (findings or impression):
            yield Skip(where, "empty report", f"report {report_id} has neither FINDINGS nor IMPRESSION text")
            continue
        for image_id in image_ids:
            kaggle = f"{image_id.removeprefix('CXR')}.dcm.png"   # CXR1_1_IM-0001-3001 -> 1_IM-0001-3001.dcm.png
            kaggle = kaggle.split("_", 1)[0] + "_" + kaggle.split("_", 2)[2] if kaggle.count("_") >= 2 else kaggle
            path = images.get(f"{image_id}.png") or images.get(kaggle)
            image_where = f"{where} image {image_id}"
            if path is None:
                yield Skip(image_where, "missing image", f"{image_id}.png not found under {root}")
                continue
            size = header_size(path, image_where)
            if isinstance(size, Skip):
                yield size
                continue
            yield Sample(id=image_id, image=str(path.resolve()), source=SOURCE.name, split="all",
                         view=views.get(path.name) or None, width=size[0], height=size[1],
                         findings=findings, impression=impression)


def read_reports(root: str | Path) -> Iterator[dict | Skip]:
    """``--reports-only``: one report row per report, images neither needed nor opened, so the reports alone
    (``NLMCXR_reports.tgz``) serve ``radrl score`` and ``radrl label``. A row holds ``id`` (``CXR<n>``),
    ``source``, ``split`` (``all``), ``findings``, ``impression``, ``report`` (findings, else impression) and
    ``images`` (the image ids the report lists); a report with neither section is skipped as "empty report"."""
    for where, xml in _reports(Path(root)):
        parsed = parse_report(xml, where)
        if isinstance(parsed, Skip):
            yield parsed
            continue
        report_id, findings, impression, image_ids = parsed
        if not (findings or impression):
            yield Skip(where, "empty report", f"report {report_id} has neither FINDINGS nor IMPRESSION text")
            continue
        yield {"id": report_id, "source": SOURCE.name, "split": "all", "findings": findings, "impression": impression,
               "report": findings or impression, "images": image_ids}
