"""NIH ChestX-ray14 adapter on the real box list and PNGs, the Data_Entry layout, and bad rows."""

import gzip
import os
from collections import Counter

import pytest

from radrl.data.sources import Skip, nih


def _reasons(rows):
    return Counter(r.reason if isinstance(r, Skip) else "ok" for r in rows)


def test_real_box_list(cxr_data):
    rows = list(nih.read(cxr_data / "nih_bbox"))
    # 880 boxed images in the official list, 12 of them shipped in the fixture
    assert _reasons(rows) == {"ok": 12, "missing image": 868}
    with gzip.open(cxr_data / "nih_bbox" / "BBox_List_2017.csv.gz", "rt") as f:
        raw = [line.strip().split(",") for line in f][1:]
    samples = [r for r in rows if not isinstance(r, Skip)]
    for s in samples:
        expect = [(lab, float(x) / 1024, float(y) / 1024, (float(x) + float(w)) / 1024, (float(y) + float(h)) / 1024)
                  for name, lab, x, y, w, h in raw if name == f"{s.id}.png"]
        got = [(b.label, *b.coords) for b in s.boxes]
        assert [g[0] for g in got] == [e[0] for e in expect] and got
        for g, e in zip(got, expect):
            assert g[1:] == pytest.approx(e[1:], abs=1e-9)
        assert (s.width, s.height, s.split, s.source) == (1024, 1024, "all", "nih")
        assert s.labels == {**{nih.TO_CHEXPERT.get(b.label, b.label): 1 for b in s.boxes}, "No Finding": 0}
        assert os.path.isabs(s.image)


def _tree(tmp_path, cxr_data, entry_rows, bbox_rows=None):
    images = tmp_path / "images_001" / "images"
    images.mkdir(parents=True)
    for name in ("00009745_000.png", "00013125_000.png"):
        (images / name).symlink_to(cxr_data / "nih_bbox" / name)
    header = ("Image Index,Finding Labels,Follow-up #,Patient ID,Patient Age,Patient Gender,View Position,"
              "OriginalImage[Width,Height],OriginalImagePixelSpacing[x,y],\n")
    (tmp_path / "Data_Entry_2017.csv").write_text(header + "".join(r + "\n" for r in entry_rows))
    box_header = "Image Index,Finding Label,Bbox [x,y,w,h],,,\n"
    bbox_rows = bbox_rows if bbox_rows is not None else ["00009745_000.png,Cardiomegaly,100,200,300,400"]
    (tmp_path / "BBox_List_2017.csv").write_text(box_header + "".join(r + "\n" for r in bbox_rows))
    (tmp_path / "test_list.txt").write_text("00009745_000.png\n")
    (tmp_path / "train_val_list.txt").write_text("00013125_000.png\n00099999_000.png\n")
    return tmp_path


def test_data_entry_layout_labels_split_view(tmp_path, cxr_data):
    root = _tree(tmp_path, cxr_data, [
        "00009745_000.png,Cardiomegaly|Effusion,0,9745,58,M,PA,2992,2991,0.143,0.143",   # boxed, test split
        "00013125_000.png,No Finding,0,13125,40,F,AP,2500,2048,0.168,0.168",            # no box, train split
        "00099999_000.png,Mass,0,99999,40,F,PA,2500,2048,0.168,0.168",                   # image not on disk
        "00088888_000.png",                                                              # malformed: one field
    ])
    rows = list(nih.read(root))
    assert _reasons(rows) == {"ok": 2, "missing image": 1, "malformed row": 1}
    a, b = [r for r in rows if not isinstance(r, Skip)]
    assert (a.split, a.view, b.split, b.view) == ("test", "PA", "train", "AP")
    # CheXpert names where one fits (Effusion -> Pleural Effusion; Mass and Nodule -> Lung Lesion)
    assert a.labels["Cardiomegaly"] == a.labels["Pleural Effusion"] == 1 and "Effusion" not in a.labels
    assert a.labels["Lung Lesion"] == 0 and a.labels["Emphysema"] == 0 and a.labels["No Finding"] == 0
    assert len(a.labels) == 14 and b.labels["No Finding"] == 1 and b.boxes == []
    assert a.boxes[0].coords == pytest.approx((100 / 1024, 200 / 1024, 400 / 1024, 600 / 1024))
    # boxed=only keeps only the boxed image
    assert [r.id for r in nih.read(root, boxed="only") if not isinstance(r, Skip)] == ["00009745_000"]


@pytest.mark.parametrize("box_row, reason", [
    ("00009745_000.png,Cardiomegaly,100,200", "malformed row"),           # short row
    ("00009745_000.png,Cardiomegaly,abc,200,300,400", "malformed box"),  # non-numeric coordinate
    ("00009745_000.png,Cardiomegaly,900,200,300,400", "box outside image"),  # runs 176 px past the right edge
    ("00009745_000.png,Cardiomegaly,100,200,0,400", "malformed box"),    # zero width
    (",Cardiomegaly,100,200,300,400", "malformed row"),                  # no image name
])
def test_bad_box_rows_are_skipped(tmp_path, cxr_data, box_row, reason):
    root = _tree(tmp_path, cxr_data, ["00009745_000.png,Cardiomegaly,0,9745,58,M,PA,2992,2991,0.143,0.143"],
                 [box_row])
    rows = list(nih.read(root))
    skips = [r for r in rows if isinstance(r, Skip)]
    assert [s.reason for s in skips] == [reason] and "BBox_List_2017.csv:2" in skips[0].where


def test_unreadable_png_and_missing_files(tmp_path, cxr_data):
    root = _tree(tmp_path, cxr_data, ["00009745_000.png,Cardiomegaly,0,9745,58,M,PA,2992,2991,0.143,0.143"])
    target = root / "images_001" / "images" / "00009745_000.png"
    target.unlink()
    target.write_bytes(b"not a png")
    (skip,) = list(nih.read(root))
    assert skip.reason == "unreadable image" and "00009745_000.png" in skip.detail
    with pytest.raises(FileNotFoundError, match=r"Data_Entry_2017.csv nor BBox_List_2017.csv"):
        list(nih.read(tmp_path / "images_001"))
    with pytest.raises(ValueError, match="boxed must be"):
        list(nih.read(root, boxed="yes"))
