"""VinDr-CXR adapter: grouping and weighted box fusion on the real annotation CSV (no images may be
shared), and the end-to-end path on small DICOM trees in both published layouts."""

import itertools
from collections import Counter

import numpy as np
import pytest

from radrl.data.sources import Skip, vindr
from radrl.metrics.grounding import iou

SIZE = (2500, 3000)   # a typical VinDr DICOM size (width, height); the fixture has no images


def _size(rows):
    """The fixture has no DICOMs: a size that holds every box of the image (VinDr sizes vary)."""
    xs = [float(r["x_max"]) for _, r in rows if r["x_max"]] + [SIZE[0]]
    ys = [float(r["y_max"]) for _, r in rows if r["y_max"]] + [SIZE[1]]
    return int(max(xs)) + 1, int(max(ys)) + 1


@pytest.fixture(scope="module")
def groups(cxr_data):
    return vindr.group_annotations(cxr_data / "vindr" / "vinbigdata-train.csv.gz")


def test_real_csv_groups_three_readers_per_image(groups):
    assert len(groups) == 15000 and sum(len(v) for v in groups.values()) == 67914
    readers = Counter(len({row["rad_id"] for _, row in rows}) for rows in groups.values())
    assert readers == {3: 15000}


def test_real_fusion_agrees_with_a_hand_computed_mean(groups):
    """Where each of the three readers drew exactly one box of a finding and all three overlap
    (IoU > 0.1 pairwise), WBF with equal scores returns one box: the mean of the three corners."""
    checked = 0
    for rows in groups.values():
        size = _size(rows)
        fused, labels = vindr.fuse(rows, *size)
        per_class = {}
        for _, r in rows:
            if r["class_name"] != vindr.NO_FINDING_CLASS:
                per_class.setdefault(r["class_name"], []).append(r)
        assert labels == {**{vindr.TO_CHEXPERT.get(c, c): 1 for c in per_class}, "No Finding": int(not per_class)}
        for name, rs in per_class.items():
            out = [b for b in fused if b.label == name]
            assert 1 <= len(out) <= len(rs)
            raw = np.array([[float(r[k]) for k in ("x_min", "y_min", "x_max", "y_max")] for r in rs])
            raw /= [size[0], size[1], size[0], size[1]]
            for b in out:   # every fused box lies inside the hull of that finding's raw boxes
                assert raw[:, 0].min() - 1e-6 <= b.x1 and b.x2 <= raw[:, 2].max() + 1e-6
                assert raw[:, 1].min() - 1e-6 <= b.y1 and b.y2 <= raw[:, 3].max() + 1e-6
            if len(rs) == 3 and len({r["rad_id"] for r in rs}) == 3:
                from radrl.data.boxes import Box

                boxes = [Box(*c) for c in raw]
                if all(iou(a, b) > 0.1 for a, b in itertools.combinations(boxes, 2)):
                    assert len(out) == 1 and out[0].coords == pytest.approx(tuple(raw.mean(0)), abs=1e-6)
                    checked += 1
        if checked >= 300:
            break
    assert checked >= 300


def test_no_finding_image(groups):
    image_id = next(i for i, rows in groups.items() if all(r["class_name"] == "No finding" for _, r in rows))
    assert vindr.fuse(groups[image_id], *SIZE) == ([], {"No Finding": 1})


HEADER = "image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"


def test_kaggle_layout_end_to_end(tmp_path, write_dicom):
    write_dicom(tmp_path / "train" / "a.dicom", np.zeros((1600, 2000), np.uint16))
    write_dicom(tmp_path / "train" / "b.dicom", np.zeros((1000, 1000), np.uint16))
    lines = [
        "a,Cardiomegaly,3,R1,600,800,1400,1200",        # three readers, overlapping: fused to their mean
        "a,Cardiomegaly,3,R2,620,820,1420,1220",
        "a,Cardiomegaly,3,R3,640,840,1440,1240",
        "a,Nodule/Mass,8,R1,100,100,140,140",           # one reader only: kept
        "b,No finding,14,R1,,,,",
        "c,Cardiomegaly,3,R1,600,800,1400,1200",        # no DICOM for c
    ]
    (tmp_path / "train.csv").write_text(HEADER + "\n".join(lines) + "\n")
    rows = list(vindr.read(tmp_path))
    a, b, c = rows
    assert (a.width, a.height, a.split, a.view) == (2000, 1600, "train", None) and a.image.endswith("train/a.dicom")
    cardio = [x for x in a.boxes if x.label == "Cardiomegaly"]
    assert len(cardio) == 1 and cardio[0].coords == pytest.approx((620 / 2000, 820 / 1600, 1420 / 2000, 1220 / 1600))
    assert [x.label for x in a.boxes].count("Nodule/Mass") == 1
    assert a.labels == {"Cardiomegaly": 1, "Lung Lesion": 1, "No Finding": 0}   # CheXpert names for labels
    assert b.boxes == [] and b.labels == {"No Finding": 1}
    assert isinstance(c, Skip) and c.reason == "missing image"


def test_physionet_layout_splits(tmp_path, write_dicom):
    write_dicom(tmp_path / "train" / "a.dicom", np.zeros((1000, 1000), np.uint16))
    write_dicom(tmp_path / "test" / "t.dicom", np.zeros((800, 1000), np.uint16))
    (tmp_path / "annotations").mkdir()
    cols = "image_id,rad_id,class_name,x_min,y_min,x_max,y_max\n"
    (tmp_path / "annotations" / "annotations_train.csv").write_text(cols + "a,R1,Aortic enlargement,1,2,3,4\n")
    (tmp_path / "annotations" / "annotations_test.csv").write_text(cols + "t,R5,Pleural effusion,100,80,300,400\n")
    (tmp_path / "train.csv").write_text(HEADER)   # a Kaggle file beside it is ignored
    a, t = vindr.read(tmp_path)
    assert (a.split, t.split) == ("train", "test")
    assert t.boxes[0].coords == pytest.approx((0.1, 0.1, 0.3, 0.5))


@pytest.mark.parametrize("row, reason", [
    ("a,,3,R1,600,800,1400,1200\n", "malformed row"),              # no class name
    ("a,Cardiomegaly,3,R1,600,800,x,1200\n", "malformed box"),     # non-numeric corner
    ("a,Cardiomegaly,3,R1,600,800,2400,1200\n", "box outside image"),  # beyond the 2000-pixel width
    (",Cardiomegaly,3,R1,600,800,1400,1200\n", "malformed row"),   # no image id
])
def test_bad_rows(tmp_path, write_dicom, row, reason):
    write_dicom(tmp_path / "train" / "a.dicom", np.zeros((1600, 2000), np.uint16))
    (tmp_path / "train.csv").write_text(HEADER + row)
    assert [r.reason for r in vindr.read(tmp_path) if isinstance(r, Skip)] == [reason]


def test_no_annotations(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"annotations_train.csv"):
        list(vindr.read(tmp_path))
