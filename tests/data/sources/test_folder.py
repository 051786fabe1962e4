"""Bring-your-own-data adapter (``folder``) on the real fixtures: a table of NIH boxes, a DICOM with a report,
reports without images (IU), and the rows it must skip."""

import csv
import gzip
import json
from collections import Counter

import pytest

from radrl.data.prepare import PrepareError, prepare
from radrl.data.schema import read_jsonl
from radrl.data.sources import Skip, folder, nih


def _reasons(items):
    return Counter(i.reason if isinstance(i, Skip) else "ok" for i in items)


def test_nih_boxes_as_a_generic_table_equal_the_nih_adapter(cxr_data, tmp_path):
    # The official box list rewritten as a user's table: one box a row, top-left + size in pixels, bare file names.
    with gzip.open(cxr_data / "nih_bbox" / "BBox_List_2017.csv.gz", "rt") as f:
        raw = [line.strip().split(",")[:6] for line in f][1:]
    present = {p.name for p in (cxr_data / "nih_bbox").glob("*.png")}
    table = tmp_path / "boxes.csv"
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Image", "label", "x", "y", "w", "h", "split"])   # names match without regard to case
        w.writerows([name, label, x, y, wd, h, "test"] for name, label, x, y, wd, h in raw if name in present)
    ours = {s.id: s for s in folder.read(table, images=str(cxr_data / "nih_bbox"))}
    theirs = {s.id: s for s in nih.read(cxr_data / "nih_bbox") if not isinstance(s, Skip)}
    assert sorted(ours) == sorted(theirs) and len(ours) == 12
    for sid, s in ours.items():
        assert [b.label for b in s.boxes] == [b.label for b in theirs[sid].boxes]
        for a, b in zip(s.boxes, theirs[sid].boxes):
            assert a.coords == pytest.approx(b.coords, abs=1e-12)
        assert (s.image, s.width, s.height, s.split, s.source) == (theirs[sid].image, 1024, 1024, "test", "folder")


def test_dicom_with_report_labels_and_fraction_boxes(cxr_data, tmp_path):
    rows = [  # JSONL: a DICOM under a sub-folder path, a PNG by absolute path; boxes as a list and as one a row
        {"image": "dicom/CR-MONO1-10-chest.dcm", "id": "cr1", "findings": "Small left effusion.",
         "impression": "Effusion.", "labels": {"Pleural Effusion": 1, "Edema": 0},
         "boxes": [{"label": "Pleural Effusion", "box": [0.6, 0.6, 0.9, 0.9]}]},
        {"image": str(cxr_data / "tbx11k" / "tb0005.png"), "report": "Right upper lobe cavity.",
         "labels": "Tuberculosis", "label": "Active tuberculosis", "x1": 0.1, "y1": 0.1, "x2": 0.4, "y2": 0.3},
    ]
    table = tmp_path / "mine.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = list(folder.read(table, images=str(cxr_data), units="fraction"))
    assert _reasons(got) == {"ok": 2}
    cr, tb = got
    assert (cr.id, cr.width, cr.height, cr.findings, cr.impression) == ("cr1", 440, 440, "Small left effusion.",
                                                                       "Effusion.")
    assert cr.labels == {"Edema": 0, "Pleural Effusion": 1} and cr.boxes[0].coords == (0.6, 0.6, 0.9, 0.9)
    assert tb.findings == "Right upper lobe cavity." and tb.labels == {"Tuberculosis": 1}   # report -> findings
    assert [b.label for b in tb.boxes] == ["Active tuberculosis"] and tb.width == 512


def test_bad_rows_are_counted_skips_naming_the_row(cxr_data, tmp_path):
    img = "00009745_000.png"
    (tmp_path / "t.csv").write_text(
        "image,id,findings,label,x1,y1,x2,y2,labels\n"
        f"{img},a,Normal.,,,,,,\n"                           # ok
        "nothere.png,b,Normal.,,,,,,\n"                      # missing image
        f"{img},c,,Nodule,10,10,2000,40,\n"                  # box outside the 1024x1024 image
        f"{img},d,One.,,,,,,\n{img},d,Two.,,,,,,\n"           # two reports for one image
        f"{img},e,,,,,,,\"{{bad\"\n"                         # labels neither JSON nor names
        ",f,Text only.,,,,,,\n")                             # no image: a reports-only row
    got = list(folder.read(tmp_path / "t.csv", images=str(cxr_data / "nih_bbox")))
    assert _reasons(got) == {"ok": 1, "missing image": 1, "box outside image": 1, "conflicting rows": 1,
                             "bad labels": 1, "no image listed": 1}
    conflict = next(s for s in got if isinstance(s, Skip) and s.reason == "conflicting rows")
    assert conflict.where.endswith("t.csv:6") and "'Two.'" in conflict.detail
    with pytest.raises(ValueError, match=r"units=.percent.*pixels.*fraction"):
        list(folder.read(tmp_path / "t.csv", units="percent"))


def test_a_name_is_looked_up_only_when_bare_and_unique(cxr_data, tmp_path):
    # CheXpert-like: the same file name in every patient folder. A mistyped folder must not take another
    # patient's film, and a bare name that several folders have cannot say which film it means.
    films = sorted((cxr_data / "nih_bbox").glob("*.png"))
    for patient, film in (("p1", films[0]), ("p2", films[1]), ("p4/study1", films[2])):
        (tmp_path / patient).mkdir(parents=True)
        (tmp_path / patient / "view1_frontal.png").symlink_to(film)
    (tmp_path / "t.csv").write_text(
        "image,id,findings\n"
        "p3/view1_frontal.png,typo,Mistyped folder.\n"     # missing image (not p1's or p2's film)
        "view1_frontal.png,bare,Which patient?\n"           # ambiguous image: three files have the name
        "p1/view1_frontal.png,p1,Right.\n")                 # ok
    got = list(folder.read(tmp_path / "t.csv"))
    assert _reasons(got) == {"ok": 1, "missing image": 1, "ambiguous image": 1}
    ambiguous = next(s for s in got if isinstance(s, Skip) and s.reason == "ambiguous image")
    assert ambiguous.where.endswith("t.csv:3") and "matches 3 files" in ambiguous.detail
    [sample] = [s for s in got if not isinstance(s, Skip)]
    assert sample.image == str(films[0].resolve())
    # a bare name that one file has is still found in its sub-folder
    (tmp_path / "p4/study1/only.png").symlink_to(films[3])
    (tmp_path / "t.csv").write_text("image,findings\nonly.png,Found.\n")
    [sample] = folder.read(tmp_path / "t.csv")
    assert sample.image == str(films[3].resolve())


def test_different_images_under_one_id_are_not_merged(cxr_data, tmp_path):
    # `a/b.png` and `a_b.png` both get the default id `a_b`: merging would give one film the other's box
    films = sorted((cxr_data / "nih_bbox").glob("*.png"))
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.png").symlink_to(films[0])
    (tmp_path / "a_b.png").symlink_to(films[1])
    (tmp_path / "c.png").symlink_to(films[2])
    (tmp_path / "t.csv").write_text(
        "image,id,label,x1,y1,x2,y2\n"
        "a/b.png,,Nodule,10,10,50,50\n"
        "a_b.png,,Mass,100,100,200,200\n"
        "c.png,c,Nodule,10,10,50,50\n"
        "./c.png,c,Mass,100,100,200,200\n")              # one image spelt two ways: merged
    got = list(folder.read(tmp_path / "t.csv"))
    assert _reasons(got) == {"ok": 1, "conflicting rows": 1}
    conflict = next(s for s in got if isinstance(s, Skip))
    assert conflict.where.endswith("t.csv:3") and "'a_b.png'" in conflict.detail and "id column" in conflict.detail
    [sample] = [s for s in got if not isinstance(s, Skip)]
    assert sample.id == "c" and [b.label for b in sample.boxes] == ["Nodule", "Mass"]


def test_nothing_written_names_the_table_not_a_published_layout(tmp_path, capsys):
    from radrl.cli.prepare import main

    (tmp_path / "t.csv").write_text("image,findings\nnothere.png,Normal.\n")
    with pytest.raises(SystemExit) as e:
        main(["folder", "--root", str(tmp_path), "--out", str(tmp_path / "out"), "--format", "jsonl", "--no-progress"])
    err = capsys.readouterr().err
    assert e.value.code == 1 and "is --root your table, or the folder that holds it" in err
    assert "folder folder" not in err and "as downloaded" not in err


def test_table_lookup_says_what_to_name(tmp_path):
    (tmp_path / "a.csv").write_text("image\n")
    (tmp_path / "b.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match=r"exactly one .csv or .jsonl.*\['a.csv', 'b.jsonl'\].*-o table=FILE"):
        list(folder.read(tmp_path))
    assert folder.find_table(tmp_path, "a.csv") == (tmp_path / "a.csv", tmp_path)


def test_prepare_folder_writes_samples_the_task_mix_reads(cxr_data, tmp_path):
    from radrl.data.instructions import build_task_mix

    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "x.png").symlink_to(cxr_data / "nih_bbox" / "00001369_000.png")
    (tmp_path / "imgs" / "table.csv").write_text("image,split,findings,label,x1,y1,x2,y2\n"
                                                 "x.png,test,Left lower lobe atelectasis.,Atelectasis,10,20,300,400\n")
    summary = prepare("folder", tmp_path / "imgs", tmp_path / "out", fmt="jsonl", progress=False)
    assert summary["written_by_split"] == {"test": 1}
    [s] = read_jsonl(tmp_path / "out" / "test.jsonl")
    rows = list(build_task_mix([s]))
    assert sorted(r["task"] for r in rows) == ["grounding", "grounding", "report"]   # grounding + detection
    assert s.boxes[0].coords == pytest.approx((10 / 1024, 20 / 1024, 300 / 1024, 400 / 1024))


def test_reports_only_iu_and_a_table_feed_score_and_label(cxr_data, tmp_path):
    from radrl.metrics.files import label_rows, read_reports, score_files

    summary = prepare("iu-xray", cxr_data / "reports", tmp_path / "iu", fmt="hf", progress=False, reports_only=True)
    # every one of the 3,955 reports becomes a row, images or not, except those with no text at all
    assert summary["written"] + summary["skipped"] == 3955 and set(summary["skipped_by_reason"]) == {"empty report"}
    assert summary["kind"] == "reports" and "dataset" not in summary["files"]
    path = tmp_path / "iu" / "reports.jsonl"
    first = json.loads(path.open().readline())
    assert first["id"] == "CXR1" and first["report"] == first["findings"] and first["images"]
    reports = read_reports(path)        # the `report` field, without --column
    assert len(reports) == summary["written"]
    assert label_rows(reports[:1])[0]["Pleural Effusion"] == "0.0"   # "no ... pleural effusion"
    result, _, _ = score_files(path, path, ["text"])
    assert result.aggregate["n"] == summary["written"]

    (tmp_path / "r.csv").write_text("id,report\nr1,No effusion.\nr2,\n")   # a table of reports, no images at all
    s2 = prepare("folder", tmp_path / "r.csv", tmp_path / "r", fmt="jsonl", progress=False, reports_only=True)
    assert (s2["written"], s2["skipped_by_reason"]) == (1, {"empty report": 1})
    with pytest.raises(PrepareError, match=r"nih has no reports-only mode; sources with one: .*folder.*iu-xray"):
        prepare("nih", cxr_data / "nih_bbox", tmp_path / "n", progress=False, reports_only=True)
