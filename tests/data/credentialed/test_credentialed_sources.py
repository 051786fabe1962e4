"""Credentialed-dataset adapters on miniature copies of the published layouts (see conftest.py)."""

from __future__ import annotations

import csv
import gzip
import json
import tracemalloc
import zipfile
from collections import Counter
from pathlib import Path

import pytest

from radrl.data.schema import CHEXPERT_LABELS, Sample
from radrl.data.sources import Skip, chexpert_plus, load_source, mimic_cxr

# fake MIMIC dicom ids of the miniature trees (same as conftest.D)
D = {k: f"{k * 8}-{k * 8}-{k * 8}-{k * 8}-{k * 8}" for k in "abcdefgh"}


def _split(items):
    items = list(items)
    return [s for s in items if isinstance(s, Sample)], [s for s in items if isinstance(s, Skip)]


def _reasons(skips):
    return Counter(s.reason for s in skips)


# Every source's declaration and miniature layout: tests/data/sources/test_contract.py.


# --- MIMIC-CXR ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("frontal, ids", [
    ("all", [D["a"], D["c"], D["d"], D["g"]]),          # every PA/AP image (RadVLM's only_frontal)
    ("one", [D["a"], D["d"], D["g"]]),                  # one per study, PA before AP (study 53189527: d not c)
    ("none", [D["a"], D["b"], D["c"], D["d"], D["e"], D["g"]]),  # laterals too
])
def test_mimic_frontal_selection(mimic_root, frontal, ids):
    samples, _ = _split(mimic_cxr.read(mimic_root, frontal=frontal))
    assert [s.id for s in samples] == ids


def test_mimic_sample_fields(mimic_root):
    samples, skips = _split(mimic_cxr.read(mimic_root))
    a = samples[0]
    assert a.image == str(mimic_root / "files/p10/p10000032/s50414267" / f"{D['a']}.jpg")
    assert (a.source, a.split, a.view, a.width, a.height) == ("mimic-cxr", "train", "PA", 2544, 3056)
    # sections kept apart, whitespace collapsed, header lines (INDICATION, COMPARISON) dropped
    assert a.findings == ("There is no focal consolidation, pleural effusion or pneumothorax. "
                          "The cardiomediastinal silhouette is normal.")
    assert a.impression == "No acute cardiopulmonary process."
    assert a.labels == {"No Finding": 1}
    c = samples[1]
    # blank label cells are left out; -1 (uncertain) and 0 (negative) are kept
    assert c.labels == {"Cardiomegaly": 1, "Pleural Effusion": 1, "Edema": -1, "Pneumothorax": 0}
    g = samples[-1]
    # no FINDINGS/IMPRESSION header: the last paragraph becomes the impression; validate -> valid, test kept
    assert (g.findings, g.impression, g.split) == (None, "Lines and tubes are in standard position. Lungs are clear.",
                                                   "test")
    # the lateral-only study and the study without a report are reported, not dropped silently
    assert _reasons(skips) == {"no frontal image": 1, "missing report": 1}
    assert all(str(mimic_root) in s.where for s in skips)


def test_mimic_reports_from_zip_equal_unpacked(tmp_path, mimic_root, trees):
    zipped = trees.write_mimic(tmp_path / "zipped", reports_as_zip=True)
    a, _ = _split(mimic_cxr.read(mimic_root))
    b, _ = _split(mimic_cxr.read(zipped))
    assert [(s.id, s.findings, s.impression) for s in a] == [(s.id, s.findings, s.impression) for s in b]


@pytest.mark.parametrize("layout", ["flat", "flat with s", "files folder"])
def test_mimic_reports_option(mimic_root, tmp_path, layout):
    """reports=PATH: RadVLM-style filtered reports (flat <study_id>.txt, whole text = findings) or files/ itself."""
    if layout == "files folder":
        where = mimic_root / "files"
    else:
        where = tmp_path / "filtered"
        where.mkdir()
        prefix = "s" if layout == "flat with s" else ""
        (where / f"{prefix}50414267.txt").write_text("The lungs are clear.\nNo effusion.\n")
    samples, skips = _split(mimic_cxr.read(mimic_root, reports=str(where)))
    if layout == "files folder":
        assert [s.id for s in samples] == [D["a"], D["c"], D["d"], D["g"]]
    else:
        # only studies with a filtered report are kept; the text is findings, not sectioned
        assert [(s.id, s.findings, s.impression) for s in samples] == [(D["a"], "The lungs are clear. No effusion.",
                                                                        None)]
        assert _reasons(skips)["missing report"] == 3


def test_mimic_split_filter_and_bad_rows(tmp_path, trees):
    root = trees.write_mimic(tmp_path / "m", extra_split_rows=[
        [D["h"], "59999999", "10001111", "train"],      # dicom without metadata
        [D["a"], "50000000", "10000032", "bogus"],      # unknown split value
        [D["a"], "50414267", "10000032", "train"],      # study listed again after other studies
    ])
    samples, skips = _split(mimic_cxr.read(root, splits="train"))
    assert [s.id for s in samples] == [D["a"], D["c"], D["d"]]
    assert _reasons(skips) == {"no frontal image": 1, "no metadata": 1, "bad split": 1, "study not contiguous": 1}
    assert any("mimic-cxr-2.0.0-split.csv.gz:11" in s.where for s in skips)  # file and line are named


@pytest.mark.parametrize("case, match", [
    ("bad label", r"chexpert.csv.gz:2: .*2.0"),          # a label cell that is not 1/0/-1: file and line named
    ("no metadata table", "metadata"),                  # a missing table names the file to download
    ("split without split column", r"missing column\(s\) \['split'\]"),  # a table without the expected columns
])
def test_mimic_broken_tables_fail_clearly(tmp_path, trees, case, match):
    root = tmp_path / "m"
    trees.write_mimic(root, labels={"50414267": {"Cardiomegaly": "2.0"}} if case == "bad label" else None)
    if case == "no metadata table":
        (root / "mimic-cxr-2.0.0-metadata.csv.gz").unlink()
    if case == "split without split column":
        with gzip.open(root / "mimic-cxr-2.0.0-split.csv.gz", "wt") as f:
            f.write("dicom_id,study_id,subject_id\n")
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        list(mimic_cxr.read(root))


def test_mimic_reads_reports_lazily(mimic_root, monkeypatch):
    """Reports are read when their study is emitted, not up front (the full release has 227 k)."""
    calls = []
    original = mimic_cxr._Reports.read
    monkeypatch.setattr(mimic_cxr._Reports, "read", lambda self, su, st: calls.append(st) or original(self, su, st))
    first = next(s for s in mimic_cxr.read(mimic_root) if isinstance(s, Sample))
    assert first.id == D["a"] and calls == ["50414267"]


@pytest.mark.slow
def test_mimic_memory_stays_bounded(tmp_path, trees):
    """3,000 studies with 8 kB reports (24 MB of text): streaming keeps the peak far below that."""
    root = tmp_path / "big"
    root.mkdir()
    n, report = 3000, "FINAL REPORT\n FINDINGS: " + "No acute process. " * 450 + "\n IMPRESSION: Normal.\n"
    ids = [(f"{i:08x}-0000-0000-0000-000000000000", f"1{i:07d}", f"5{i:07d}") for i in range(n)]
    write_gz_csv = trees.write_gz_csv
    write_gz_csv(root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"],
                 [[d, st, su, "train"] for d, su, st in ids])
    write_gz_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", trees.META_HEADER,
                 [[d, su, st, "", "PA", 3056, 2544, "", "", "", "", ""] for d, su, st in ids])
    write_gz_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", ["subject_id", "study_id", *CHEXPERT_LABELS],
                 [[su, st, "1.0"] + [""] * 13 for _, su, st in ids])
    with zipfile.ZipFile(root / "mimic-cxr-reports.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for _, su, st in ids:
            z.writestr(f"files/p{su[:2]}/p{su}/s{st}.txt", report)
    tracemalloc.start()
    count = sum(isinstance(s, Sample) for s in mimic_cxr.read(root))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == n
    assert peak < 8e6, f"peak {peak / 1e6:.1f} MB while reading {n * len(report) / 1e6:.0f} MB of reports"


# --- CheXpert-Plus ---------------------------------------------------------------------------------------
def test_chexpert_plus(chexpert_plus_root):
    samples, skips = _split(chexpert_plus.read(chexpert_plus_root))
    assert [s.id for s in samples] == ["train_patient00001_study1_view1_frontal",
                                       "valid_patient64541_study1_view1_frontal"]
    s, v = samples
    # the PNG release is used when PNG/ exists; the CSV names .jpg
    assert s.image == str(chexpert_plus_root / "PNG/train/patient00001/study1/view1_frontal.png")
    assert (s.view, s.findings, s.impression) == ("AP", "Stable cardiomegaly.", "No change.")
    # null labels are left out; 1/0/-1 kept
    assert s.labels == {"Cardiomegaly": 1, "Pleural Effusion": 0, "Support Devices": -1}
    assert (v.split, v.findings, v.impression, v.labels) == ("valid", None, "Clear lungs.", {"No Finding": 1})
    # a broken JSON line, an out-of-range label, an empty report and an unknown split are all counted
    assert _reasons(skips) == {"bad label row": 2, "empty report": 1, "bad split": 1}


def test_chexpert_plus_laterals_and_chexpert_csv_labels(chexpert_plus_root, tmp_path):
    labels = tmp_path / "train.csv"   # the original CheXpert train.csv form: Path with the CheXpert-v1.0/ prefix
    with labels.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS])
        w.writerow(["CheXpert-v1.0/train/patient00001/study1/view2_lateral.jpg", "Female", 68, "Lateral", "",
                    *(["1.0"] + [""] * 13)])
    samples, _ = _split(chexpert_plus.read(chexpert_plus_root, labels=str(labels), frontal="false"))
    lateral = next(s for s in samples if s.id.endswith("view2_lateral"))
    assert lateral.labels == {"No Finding": 1} and lateral.view is None


def test_chexpert_v1_release(tmp_path):
    """release=chexpert: CheXpert v1.0 train.csv/valid.csv -> label-only samples (the classification set)."""
    root = tmp_path / "CheXpert-v1.0"
    root.mkdir()
    header = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS]
    blank = [""] * 14
    rows = {"train.csv": [
        ["CheXpert-v1.0/train/patient00001/study1/view1_frontal.jpg", "Female", 68, "Frontal", "AP",
         "", "", "1.0", "", "", "-1.0", "", "", "", "", "0.0", "", "", "1.0"],
        ["CheXpert-v1.0/train/patient00001/study1/view2_lateral.jpg", "Female", 68, "Lateral", "",
         "1.0", *blank[1:]],                                                          # lateral: filtered out
        ["CheXpert-v1.0/train/patient00002/study1/view1_frontal.jpg", "Male", 40, "Frontal", "PA", *blank],  # no labels
        ["CheXpert-v1.0/train/patient00003/study1/view1_frontal.jpg", "Male", 40, "Frontal", "PA",
         "2.0", *blank[1:]]],                                                         # not 1/0/-1
        "valid.csv": [["CheXpert-v1.0/valid/patient64541/study1/view1_frontal.jpg", "Male", 73, "Frontal", "AP",
                       "1.0", *blank[1:]]]}
    for name, rs in rows.items():
        with (root / name).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rs)
    samples, skips = _split(chexpert_plus.read(root, release="chexpert"))
    assert [(s.id, s.split, s.view) for s in samples] == [("train_patient00001_study1_view1_frontal", "train", "AP"),
                                                          ("valid_patient64541_study1_view1_frontal", "valid", "AP")]
    assert samples[0].image == str(root / "train/patient00001/study1/view1_frontal.jpg")
    assert samples[0].labels == {"Cardiomegaly": 1, "Edema": -1, "Pleural Effusion": 0, "Support Devices": 1}
    assert (samples[0].findings, samples[0].impression) == (None, None)
    assert _reasons(skips) == {"no labels": 1, "bad label row": 1}
    with pytest.raises(ValueError, match="release must be"):
        list(chexpert_plus.read(root, release="v2"))


def test_chexpert_plus_missing_column(tmp_path, trees):
    (tmp_path / "df_chexpert_plus_240401.csv").write_text(",".join(h for h in trees.CHEXPERT_PLUS_HEADER
                                                                     if h != "section_findings") + "\n")
    with pytest.raises(ValueError, match="section_findings"):
        list(chexpert_plus.read(tmp_path))


# --- Chest ImaGenome ----------------------------------------------------------------------------------------
def test_chest_imagenome(imagenome_root):
    root, mimic = imagenome_root
    mod = load_source("chest-imagenome")
    samples, skips = _split(mod.read(root, mimic=str(mimic)))
    assert [s.id for s in samples] == [D["a"], D["g"]]
    a, g = samples
    # original pixels / (Columns, Rows) of the MIMIC metadata
    lung = next(b for b in a.boxes if b.label == "right lung")
    assert lung.coords == pytest.approx((254 / 2544, 305 / 3056, 1272 / 2544, 2445 / 3056))
    assert sorted(b.label for b in a.boxes) == ["cardiac silhouette", "right lung"]
    assert a.image == str(mimic / "files/p10/p10000032/s50414267" / f"{D['a']}.jpg")
    assert (g.split, g.view, g.width, g.height) == ("test", "AP", 3056, 2544)
    # outside-the-image region, truncated JSON, missing scene graph, absent valid.csv
    assert _reasons(skips) == {"empty region box": 1, "bad scene graph": 1, "missing scene graph": 1,
                               "missing split file": 1}


def test_chest_imagenome_needs_mimic(imagenome_root):
    with pytest.raises(ValueError, match="mimic=PATH"):
        list(load_source("chest-imagenome").read(imagenome_root[0]))


# --- MS-CXR -----------------------------------------------------------------------------------------------
def test_ms_cxr(ms_cxr_root, tmp_path):
    mod = load_source("ms-cxr")
    samples, skips = _split(mod.read(ms_cxr_root, mimic=str(tmp_path / "jpg")))
    assert [s.id for s in samples] == [D["a"], D["c"]]
    a, c = samples
    assert a.image == str(tmp_path / "jpg/files/p10/p10000032/s50414267" / f"{D['a']}.jpg")
    # one box per row, x/y top-left + w/h in pixels of image_width x image_height; the phrase is the label
    assert [b.label for b in a.boxes] == ["Small left apical pneumothorax"] * 2 + ["Right pleural effusion"]
    assert a.boxes[0].coords == pytest.approx((1500 / 2544, 200 / 3056, 1900 / 2544, 500 / 3056))
    assert a.labels == {"Pneumothorax": 1, "Pleural Effusion": 1}
    assert (c.split, c.labels) == ("test", {"Lung Opacity": 1})
    # b: non-numeric x (the image's first bad row; its zero-width row goes with it); d: one of its two boxes
    # runs outside the image, so d is skipped whole (its phrase would keep half its boxes); a listed again later
    assert _reasons(skips) == {"malformed box": 1, "box outside image": 1, "image not contiguous": 1}
    assert [s.where.rsplit(":", 1)[1] for s in skips] == ["5", "9", "10"]


def test_ms_cxr_skip_names_file_line_after_multiline_phrase(tmp_path):
    """A quoted phrase spanning two lines: the bad row after it is reported at its real file line."""
    path = tmp_path / "MS_CXR_Local_Alignment_v1.1.0.csv"
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width",
                    "image_height", "split"])
        w.writerow(["d1", "Edema", "Mild\nedema", "files/d1.jpg", 10, 10, 50, 50, 100, 100, "train"])
        w.writerow(["d2", "Edema", "Edema", "files/d2.jpg", "abc", 10, 50, 50, 100, 100, "train"])
    assert path.read_text().count("\n") == 4  # header: line 1, d1: lines 2-3, d2: line 4
    samples, skips = _split(load_source("ms-cxr").read(tmp_path, mimic=str(tmp_path)))
    assert [s.boxes[0].label for s in samples] == ["Mild edema"]
    assert [s.where for s in skips] == [f"{path}:4"]


# --- PadChest-GR --------------------------------------------------------------------------------------------
def test_padchest_gr(padchest_root):
    mod = load_source("padchest-gr")
    samples, skips = _split(mod.read(padchest_root))
    assert len(samples) == 2
    s0, s5 = samples
    assert s0.image.startswith(str(padchest_root / "Padchest_GR_files")) and s0.image.endswith(".png")
    assert s0.findings == "Cardiomegaly. No pleural effusion. Bilateral basal opacities."
    assert [b.label for b in s0.boxes] == ["Cardiomegaly.", "Bilateral basal opacities.",
                                           "Bilateral basal opacities."]
    assert s0.boxes[0].coords == (0.30, 0.45, 0.78, 0.80)  # already 0-1
    assert (s0.split, s5.split, [b.label for b in s5.boxes]) == ("train", "test", ["Scoliosis."])
    # '???' split row, a boxless study, a pixel box (it skips its whole study s2: "Scoliosis." keeps its box,
    # but "Nodule." would lose its only one), a study missing from the master table, a non-object
    assert _reasons(skips) == {"bad split": 1, "no boxes": 1, "bad box": 1, "not in master table": 1,
                               "bad study": 1}


def test_padchest_gr_not_a_list_is_value_error(padchest_root):
    (padchest_root / "grounded_reports_20240819.json").write_text('{"StudyID": "s0"}')
    with pytest.raises(ValueError, match="expected a JSON list of studies, got dict"):
        list(load_source("padchest-gr").read(padchest_root))


def test_padchest_gr_truncated_json(padchest_root):
    path = padchest_root / "grounded_reports_20240819.json"
    path.write_text(path.read_text()[:100])
    with pytest.raises(ValueError, match="not valid JSON"):
        list(load_source("padchest-gr").read(padchest_root))


def test_sample_rows_roundtrip(mimic_root, ms_cxr_root):
    """Adapter output survives the schema's own validation (what `radrl prepare` writes)."""
    samples = _split(mimic_cxr.read(mimic_root))[0] + _split(load_source("ms-cxr").read(ms_cxr_root))[0]
    for s in samples:
        assert Sample.from_row(json.loads(json.dumps(s.to_row())), where=s.id) == s


def test_prepare_then_task_mix(ms_cxr_root, padchest_root, tmp_path):
    """`radrl prepare` writes the adapters' samples; the task mix reads them back into conversation rows."""
    from radrl.data.instructions import build_task_mix
    from radrl.data.prepare import prepare
    from radrl.data.schema import read_jsonl

    rows = []
    for name, root in (("ms-cxr", ms_cxr_root), ("padchest-gr", padchest_root)):
        summary = prepare(name, root, tmp_path / name, fmt="jsonl", progress=False)
        assert summary["written"] == 2 and summary["skipped"] > 0
        rows += list(build_task_mix(read_jsonl(tmp_path / name / "samples.jsonl")))
    kinds = Counter((r["task"], r["kind"]) for r in rows)
    # MS-CXR: 2 + 1 phrases, x3 repeats; PadChest-GR: 2 + 1 phrases, x2 repeats
    assert kinds[("grounding", "phrase")] == 3 * 3 + 3 * 2
    # every sample has two turns or more (MS-CXR: abnormalities + phrases; PadChest-GR: report + phrases), x4
    assert kinds[("conversation", "grounded_conversation")] == 2 * 4 + 2 * 4
    assert sum(kinds.values()) == 15 + 16


@pytest.mark.parametrize("name", ["mimic-cxr", "ms-cxr", "padchest-gr", "chexpert-plus"])
def test_relative_root_gives_absolute_image_paths(name, mimic_root, ms_cxr_root, padchest_root, chexpert_plus_root,
                                                  monkeypatch):
    """`radrl prepare --root ../data` must write image paths that still hold when read from the output folder."""
    root = {"mimic-cxr": mimic_root, "ms-cxr": ms_cxr_root, "padchest-gr": padchest_root,
            "chexpert-plus": chexpert_plus_root}[name]
    monkeypatch.chdir(root.parent)
    samples, _ = _split(load_source(name).read(root.name))
    assert samples and all(Path(s.image).is_absolute() and str(root) in s.image for s in samples)


def test_chexpert_plus_skip_line_after_multiline_report(tmp_path):
    """Report sections span lines inside quotes: a Skip names the bad row's real file line, not its row count."""
    table = tmp_path / chexpert_plus.REPORTS_CSV
    with table.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path_to_image", "frontal_lateral", "split", "section_findings", "section_impression"])
        w.writerow(["train/p1/study1/view1_frontal.jpg", "Frontal", "train", "Heart normal.\nLungs clear.\n", ""])
        w.writerow(["train/p2/study1/view1_frontal.jpg", "Frontal", "???", "Clear.", ""])
    samples, skips = _split(chexpert_plus.read(tmp_path))
    assert samples[0].findings == "Heart normal. Lungs clear."
    assert [s.where for s in skips if s.reason == "bad split"] == [f"{table}:5"]  # header 1, first row 2-4
