"""IU X-ray (Open-i) adapter: the real report archive, images by file name, and bad reports."""

import shutil
from collections import Counter

import pytest
from PIL import Image

from radrl.data.sources import Skip, iu_xray


def test_real_reports_archive(cxr_data):
    rows = list(iu_xray.read(cxr_data / "reports"))   # reports only: every listed image is missing
    reasons = Counter(r.reason for r in rows)
    # 3,955 reports: 104 list no image, 25 have neither findings nor impression, the rest list 7,430 images
    assert reasons == {"missing image": 7430, "no image listed": 104, "empty report": 25}
    assert any("CXR1_1_IM-0001-3001" in r.where for r in rows)


@pytest.mark.parametrize("xml, expect", [
    # the normal case: sections apart, images in order
    (('<eCitation><uId id="CXR7"/><Abstract><AbstractText Label="FINDINGS">Heart  normal.\n</AbstractText>'
     '<AbstractText Label="IMPRESSION">No acute disease.</AbstractText></Abstract>'
     '<parentImage id="CXR7_1_IM-2"/><parentImage id="CXR7_1_IM-3"/></eCitation>'),
     ("CXR7", "Heart normal.", "No acute disease.", ["CXR7_1_IM-2", "CXR7_1_IM-3"])),
    # an empty FINDINGS element is None, not ""
    (('<eCitation><uId id="CXR8"/><AbstractText Label="FINDINGS"/><AbstractText Label="IMPRESSION">Clear.'
     '</AbstractText></eCitation>'), ("CXR8", None, "Clear.", [])),
    # not XML
    ("<eCitation><uId", "malformed file"),
    # XML but not an Open-i report
    ("<html><body/></html>", "malformed file"),
])
def test_parse_report(xml, expect):
    got = iu_xray.parse_report(xml, "r.xml")
    assert (got.reason if isinstance(got, Skip) else got) == expect


def test_end_to_end_with_images(tmp_path, cxr_data):
    shutil.copy(cxr_data / "reports" / "NLMCXR_reports.tgz", tmp_path)
    pngs = tmp_path / "NLMCXR_png"
    pngs.mkdir()
    Image.new("L", (420, 512), 90).save(pngs / "CXR1_1_IM-0001-3001.png")
    Image.new("L", (512, 400), 90).save(pngs / "CXR1_1_IM-0001-4001.png")
    (pngs / "CXR10_IM-0002-1001.png").write_bytes(b"broken")     # report 10's frontal image, corrupt
    rows = list(iu_xray.read(tmp_path))
    samples = [r for r in rows if not isinstance(r, Skip)]
    assert [s.id for s in samples] == ["CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"]
    s = samples[0]
    assert s.findings.startswith("The cardiac silhouette and mediastinum size are within normal limits.")
    assert s.impression == "Normal chest x-XXXX." and (s.width, s.height) == (420, 512) and s.split == "all"
    skips = [r for r in rows if isinstance(r, Skip) and r.reason == "unreadable image"]
    assert len(skips) == 1 and "CXR10_IM-0002-1001" in skips[0].where


def test_unpacked_folder_and_kaggle_names(tmp_path):
    (tmp_path / "ecgen-radiology").mkdir()
    (tmp_path / "ecgen-radiology" / "1.xml").write_text(
        '<eCitation><uId id="CXR1"/><AbstractText Label="IMPRESSION">Normal.</AbstractText>'
        '<parentImage id="CXR1_1_IM-0001-4001"/></eCitation>')
    (tmp_path / "images" / "images_normalized").mkdir(parents=True)
    Image.new("L", (64, 64)).save(tmp_path / "images" / "images_normalized" / "1_IM-0001-4001.dcm.png")
    (tmp_path / "indiana_projections.csv").write_text("uid,filename,projection\n1,1_IM-0001-4001.dcm.png,Lateral\n")
    (s,) = iu_xray.read(tmp_path)
    assert s.view == "Lateral" and s.image.endswith("1_IM-0001-4001.dcm.png") and s.findings is None


def test_no_reports(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"NLMCXR_reports.tgz"):
        list(iu_xray.read(tmp_path))
