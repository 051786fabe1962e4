"""RSNA adapter: the real Kaggle labels zip + match table + NIH PNGs, the DICOM layout, and bad rows."""

import csv
import io
import zipfile
from collections import Counter

import numpy as np
import pytest

from radrl.data.sources import Skip, rsna


def test_real_labels_through_the_nih_match_table(cxr_data):
    rows = list(rsna.read(cxr_data / "rsna"))
    samples = [r for r in rows if not isinstance(r, Skip)]
    reasons = Counter(r.reason for r in rows if isinstance(r, Skip))
    assert len(samples) == 29 and reasons == {"missing image": 26655}   # 26,684 patients, 29 images shipped
    with zipfile.ZipFile(cxr_data / "rsna" / "kaggle_stage_2_train_labels.csv.zip") as z:
        raw = list(csv.DictReader(io.TextIOWrapper(z.open("stage_2_train_labels.csv"))))
    by_patient = {}
    for r in raw:
        by_patient.setdefault(r["patientId"], []).append(r)
    assert Counter(len(s.boxes) for s in samples) == {1: 21, 2: 8}      # several boxes per image occur
    for s in samples:
        expect = [(float(r["x"]) / 1024, float(r["y"]) / 1024, (float(r["x"]) + float(r["width"])) / 1024,
                   (float(r["y"]) + float(r["height"])) / 1024) for r in by_patient[s.id] if r["Target"] == "1"]
        assert [c for b in s.boxes for c in b.coords] == pytest.approx([c for e in expect for c in e])
        # the match table's rsna_class says "Lung Opacity": not normal
        assert s.labels == {"Pneumonia": 1, "No Finding": 0} and all(b.label == "Pneumonia" for b in s.boxes)
        assert s.image.endswith(".png") and (s.width, s.height) == (1024, 1024)


def _labels(root, lines):
    (root / "stage_2_train_labels.csv").write_text("patientId,x,y,width,height,Target\n" + "\n".join(lines) + "\n")


def test_dicom_layout(tmp_path, write_dicom):
    write_dicom(tmp_path / "stage_2_train_images" / "p1.dcm", np.zeros((600, 800), np.uint16), ViewPosition="PA")
    write_dicom(tmp_path / "stage_2_train_images" / "p2.dcm", np.zeros((600, 800), np.uint16), ViewPosition="AP ")
    _labels(tmp_path, ["p1,80,60,160,120,1", "p1,400,300,80,60,1", "p2,,,,,0", "p3,,,,,0"])
    (tmp_path / "stage_2_detailed_class_info.csv").write_text("patientId,class\np1,Lung Opacity\np1,Lung Opacity\n"
                                                              "p2,No Lung Opacity / Not Normal\n")
    rows = list(rsna.read(tmp_path))
    p1, p2, p3 = rows
    assert [c for b in p1.boxes for c in b.coords] == pytest.approx([0.1, 0.1, 0.3, 0.3, 0.5, 0.5, 0.6, 0.6])
    assert p1.image.endswith("p1.dcm") and (p1.width, p1.height) == (800, 600)
    assert p2.boxes == [] and p2.labels == {"Pneumonia": 0, "No Finding": 0}   # no pneumonia, yet not normal
    assert (p1.view, p2.view) == ("PA", "AP")   # from each DICOM's ViewPosition
    assert isinstance(p3, Skip) and p3.reason == "missing image"


@pytest.mark.parametrize("lines, reason", [
    (["p1,80,60,160,120,yes"], "malformed row"),              # Target not 0/1
    ([",80,60,160,120,1"], "malformed row"),                  # no patientId
    (["p1,80,60,160,120,1", "p1,,,,,0"], "malformed row"),    # Target disagrees between rows of one patient
    (["p1,80,60,x,120,1"], "malformed box"),                  # non-numeric width
    (["p1,700,60,160,120,1"], "box outside image"),           # 60 px past the right edge of 800
])
def test_bad_rows(tmp_path, write_dicom, lines, reason):
    write_dicom(tmp_path / "stage_2_train_images" / "p1.dcm", np.zeros((600, 800), np.uint16))
    _labels(tmp_path, lines)
    assert reason in [r.reason for r in rsna.read(tmp_path) if isinstance(r, Skip)]


def test_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"stage_2_train_labels.csv"):
        list(rsna.read(tmp_path))
    _labels(tmp_path, ["p1,,,,,0"])
    with pytest.raises(FileNotFoundError, match="match table"):
        list(rsna.read(tmp_path))
