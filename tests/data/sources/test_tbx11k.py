"""TBX11K adapter: the real COCO file and PNGs, the published folder layout, and bad entries."""

import json
import shutil

import pytest

from radrl.data.sources import Skip, tbx11k


def test_real_coco(cxr_data):
    rows = list(tbx11k.read(cxr_data / "tbx11k"))
    assert not any(isinstance(r, Skip) for r in rows)
    coco = json.loads((cxr_data / "tbx11k" / "TBX11K_train.json").read_text())
    names = {c["id"]: c["name"] for c in coco["categories"]}
    by_id = {s.id: s for s in rows}
    assert sorted(by_id) == ["h0001", "tb0005", "tb0007"]
    for im in coco["images"]:
        s = by_id[im["file_name"].split("/")[-1][:-4]]
        expect = [(names[a["category_id"]], a["bbox"][0] / 512, a["bbox"][1] / 512, (a["bbox"][0] + a["bbox"][2]) / 512,
                   (a["bbox"][1] + a["bbox"][3]) / 512) for a in coco["annotations"] if a["image_id"] == im["id"]]
        assert [b.label for b in s.boxes] == [e[0] for e in expect]
        assert [c for b in s.boxes for c in b.coords] == pytest.approx([c for e in expect for c in e[1:]])
        assert s.split == "train" and (s.width, s.height) == (512, 512)
    assert by_id["h0001"].labels == {"Tuberculosis": 0, "No Finding": 1}       # health/
    assert by_id["tb0005"].labels == {"Tuberculosis": 1, "No Finding": 0}


def _published(tmp_path, cxr_data, coco, split="val"):
    (tmp_path / "annotations" / "json").mkdir(parents=True)
    (tmp_path / "imgs" / "tb").mkdir(parents=True)
    shutil.copy(cxr_data / "tbx11k" / "tb0005.png", tmp_path / "imgs" / "tb" / "tb0005.png")
    (tmp_path / "annotations" / "json" / f"TBX11K_{split}.json").write_text(json.dumps(coco))
    return tmp_path


COCO = {"categories": [{"id": 1, "name": "ActiveTuberculosis"}],
        "images": [{"id": 1, "file_name": "tb/tb0005.png", "width": 512, "height": 512}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40]}]}


def test_published_layout_val_split(tmp_path, cxr_data):
    (s,) = tbx11k.read(_published(tmp_path, cxr_data, COCO))
    assert s.split == "valid" and s.image.endswith("imgs/tb/tb0005.png")
    assert s.boxes[0].coords == pytest.approx((10 / 512, 20 / 512, 40 / 512, 60 / 512))


@pytest.mark.parametrize("change, reason", [
    (lambda c: c["images"][0].update(width=1024), "size mismatch"),              # JSON size != PNG size
    (lambda c: c["images"][0].update(file_name="tb/nope.png"), "missing image"),  # image not on disk
    (lambda c: c["images"][0].pop("height"), "malformed row"),                   # image entry lacks height
    (lambda c: c["annotations"][0].update(bbox=[10, 20]), "malformed box"),       # bbox with two numbers
    (lambda c: c["annotations"][0].update(category_id=9), "malformed row"),       # unknown category
    (lambda c: c["annotations"].append("junk"), "malformed row"),                # annotation not an object
    (lambda c: c.pop("images"), "malformed file"),                               # not COCO at all
])
def test_bad_entries(tmp_path, cxr_data, change, reason):
    coco = json.loads(json.dumps(COCO))
    change(coco)
    rows = list(tbx11k.read(_published(tmp_path, cxr_data, coco)))
    assert reason in [r.reason for r in rows if isinstance(r, Skip)]


def test_no_annotation_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"TBX11K_<split>.json"):
        list(tbx11k.read(tmp_path))


@pytest.mark.parametrize("file_name, expect", [
    ("health/h1.png", {"Tuberculosis": 0, "No Finding": 1}),   # healthy control
    ("sick/s1.png", {"Tuberculosis": 0, "No Finding": 0}),     # ill, but not TB: never called normal
    ("extra/e1.png", {}),                                      # folder says nothing: no TB label, no normality
])
def test_no_finding_only_for_healthy_images(tmp_path, cxr_data, file_name, expect):
    coco = {"categories": [], "images": [{"id": 1, "file_name": file_name, "width": 512, "height": 512}]}
    (tmp_path / "imgs" / file_name).parent.mkdir(parents=True)
    shutil.copy(cxr_data / "tbx11k" / "h0001.png", tmp_path / "imgs" / file_name)
    (tmp_path / "TBX11K_train.json").write_text(json.dumps(coco))
    (s,) = tbx11k.read(tmp_path)
    assert s.labels == expect
