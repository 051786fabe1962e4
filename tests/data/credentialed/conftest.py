"""Miniature copies of credentialed datasets, in their published layouts, built from code.

We cannot hold MIMIC-CXR, CheXpert-Plus, Chest ImaGenome, MS-CXR or PadChest-GR, so each
fixture writes a few rows with the same file names, folder layout and column names as the
release, plus deliberately broken rows that the adapters must skip and report. Ids follow
the real formats (MIMIC dicom ids are five dash-separated hex groups); all text is ours.
Images are not written: the adapters never open them (tests/data/sources/test_contract.py
writes placeholders where the published layouts put them, to check the paths).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zipfile
from pathlib import Path

import pytest

from radrl.data.schema import CHEXPERT_LABELS

# MIMIC-CXR-JPG -------------------------------------------------------------------------------
D = {k: f"{k * 8}-{k * 8}-{k * 8}-{k * 8}-{k * 8}" for k in "abcdefgh"}  # fake dicom ids, real shape

META_HEADER = ["dicom_id", "subject_id", "study_id", "PerformedProcedureStepDescription", "ViewPosition", "Rows",
               "Columns", "StudyDate", "StudyTime", "ProcedureCodeSequence_CodeMeaning",
               "ViewCodeSequence_CodeMeaning", "PatientOrientationCodeSequence_CodeMeaning"]

# (dicom, subject, study, split, view, rows, columns)
MIMIC_IMAGES = [
    (D["a"], "10000032", "50414267", "train", "PA", 3056, 2544),
    (D["b"], "10000032", "50414267", "train", "LATERAL", 3056, 2544),
    (D["c"], "10000032", "53189527", "train", "AP", 2705, 2539),
    (D["d"], "10000032", "53189527", "train", "PA", 3056, 2544),
    (D["e"], "10000764", "56699142", "train", "LATERAL", 3056, 2544),   # no frontal image
    (D["f"], "10000898", "57375967", "validate", "PA", 3056, 2544),     # report missing
    (D["g"], "10000935", "51111111", "test", "AP", 2544, 3056),         # report without headers
]

REPORTS = {
    "50414267": """                                 FINAL REPORT
 EXAMINATION:  CHEST (PA AND LAT)

 INDICATION:  ___F with cough  // eval for pneumonia

 COMPARISON:  None.

 FINDINGS:

 There is no focal consolidation, pleural effusion or pneumothorax.  The
 cardiomediastinal silhouette is normal.

 IMPRESSION:

 No acute cardiopulmonary process.
""",
    "53189527": """                                 FINAL REPORT
 HISTORY:  Shortness of breath.

 FINDINGS:  Moderate cardiomegaly.  Small bilateral pleural effusions.

 IMPRESSION:  Cardiomegaly with small effusions.
""",
    "56699142": """ FINAL REPORT\n FINDINGS: Lateral view only. Normal.\n""",
    "51111111": """                                 FINAL REPORT
 PORTABLE CHEST.

 Lines and tubes are in standard position.  Lungs are clear.
""",
}


def _label_row(subject: str, study: str, values: dict[str, str]) -> list[str]:
    return [subject, study] + [values.get(k, "") for k in CHEXPERT_LABELS]


def write_gz_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with gzip.open(path, "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def write_mimic(root: Path, reports_as_zip: bool = False, extra_split_rows: list[list] | None = None,
                labels: dict[str, dict[str, str]] | None = None) -> Path:
    """A MIMIC-CXR-JPG 2.0.0 root with the four tables, the files/ tree and the reports."""
    root.mkdir(parents=True, exist_ok=True)
    split_rows = [[d, st, su, sp] for d, su, st, sp, *_ in MIMIC_IMAGES]
    split_rows += extra_split_rows or []
    write_gz_csv(root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"], split_rows)
    write_gz_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", META_HEADER,
                 [[d, su, st, "CHEST (PA AND LAT)", v, r, c, "21800506", "213014.531", "Chest", "postero-anterior",
                   "Erect"] for d, su, st, _, v, r, c in MIMIC_IMAGES])
    labels = labels if labels is not None else {
        "50414267": {"No Finding": "1.0"},
        "53189527": {"Cardiomegaly": "1.0", "Pleural Effusion": "1.0", "Edema": "-1.0", "Pneumothorax": "0.0"},
        "51111111": {"Support Devices": "1.0"},
    }
    subjects = {st: su for _, su, st, *_ in MIMIC_IMAGES}
    write_gz_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", ["subject_id", "study_id", *CHEXPERT_LABELS],
                 [_label_row(subjects.get(st, "10000000"), st, v) for st, v in labels.items()])
    texts = {f"files/p{su[:2]}/p{su}/s{st}.txt": REPORTS[st] for _, su, st, *_ in MIMIC_IMAGES if st in REPORTS}
    if reports_as_zip:
        with zipfile.ZipFile(root / "mimic-cxr-reports.zip", "w") as z:
            for rel, text in texts.items():
                z.writestr(rel, text)
    else:
        for rel, text in texts.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
    return root


@pytest.fixture
def mimic_root(tmp_path) -> Path:
    return write_mimic(tmp_path / "mimic-cxr-jpg" / "2.0.0")


# CheXpert-Plus ---------------------------------------------------------------------------------
CHEXPERT_PLUS_HEADER = [
    "path_to_image", "path_to_dcm", "frontal_lateral", "ap_pa", "deid_patient_id", "patient_report_date_order",
    "report", "section_narrative", "section_clinical_history", "section_history", "section_comparison",
    "section_technique", "section_procedure_comments", "section_findings", "section_impression",
    "section_end_of_impression", "section_summary", "section_accession_number", "age", "sex", "race",
    "ethnicity", "interpreter_needed", "insurance_type", "recent_bmi", "deceased", "split"]


def _cp_row(path: str, fl: str, appa: str, findings: str, impression: str, split: str) -> dict:
    row = dict.fromkeys(CHEXPERT_PLUS_HEADER, "")
    row.update(path_to_image=path, path_to_dcm=path.replace(".jpg", ".dcm"), frontal_lateral=fl, ap_pa=appa,
               section_findings=findings, section_impression=impression, split=split,
               report=f"FINDINGS: {findings}\nIMPRESSION: {impression}")
    return row


def write_chexpert_plus(root: Path) -> Path:
    """A CheXpert-Plus root: the reports CSV, the CheXbert labels (JSON lines) and an empty PNG/ folder."""
    (root / "PNG").mkdir(parents=True)
    rows = [
        _cp_row("train/patient00001/study1/view1_frontal.jpg", "Frontal", "AP", "Stable  cardiomegaly.\n",
                "No change.", "train"),
        _cp_row("train/patient00001/study1/view2_lateral.jpg", "Lateral", "", "Stable cardiomegaly.", "", "train"),
        _cp_row("valid/patient64541/study1/view1_frontal.jpg", "Frontal", "PA", "", "Clear lungs.", "valid"),
        _cp_row("train/patient00002/study2/view1_frontal.jpg", "Frontal", "PA", "", "", "train"),   # empty report
        _cp_row("train/patient00003/study1/view1_frontal.jpg", "Frontal", "PA", "Normal.", "", "holdout"),  # bad split
    ]
    with (root / "df_chexpert_plus_240401.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, CHEXPERT_PLUS_HEADER)
        w.writeheader()
        w.writerows(rows)
    (root / "chexbert_labels").mkdir()
    lines = [
        json.dumps({"path_to_image": "train/patient00001/study1/view1_frontal.jpg", "Cardiomegaly": 1.0,
                    "Edema": None, "Pleural Effusion": 0.0, "Support Devices": -1.0}),
        "{not json",
        json.dumps({"path_to_image": "valid/patient64541/study1/view1_frontal.jpg", "No Finding": 1.0}),
        json.dumps({"path_to_image": "train/patient00009/study1/view1_frontal.jpg", "Cardiomegaly": 3.0}),
    ]
    (root / "chexbert_labels" / "report_fixed.json").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def chexpert_plus_root(tmp_path) -> Path:
    return write_chexpert_plus(tmp_path / "chexpert-plus")


# Chest ImaGenome -----------------------------------------------------------------------------------
def _graph(dicom: str, objects: list[dict], view: str = "PA") -> dict:
    return {"image_id": dicom, "viewpoint": view, "patient_id": 10000032, "study_id": 50414267, "gender": "F",
            "age_decile": "50-60", "objects": objects, "attributes": [], "relationships": []}


def _obj(dicom: str, name: str, x1, y1, x2, y2) -> dict:
    return {"object_id": f"{dicom}_{name}", "x1": 0, "y1": 0, "x2": 1, "y2": 1, "width": 1, "height": 1,
            "bbox_name": name, "synsets": ["C0000000"], "name": name.capitalize(),
            "original_x1": x1, "original_y1": y1, "original_x2": x2, "original_y2": y2,
            "original_width": x2 - x1, "original_height": y2 - y1}


def write_imagenome(root: Path) -> Path:
    """A Chest ImaGenome 1.0.0 root (split CSVs, scene graphs) over the images of ``write_mimic``."""
    splits, graphs = root / "silver_dataset" / "splits", root / "silver_dataset" / "scene_graph"
    splits.mkdir(parents=True)
    graphs.mkdir(parents=True)
    header = ["dicom_id", "subject_id", "study_id", "image_id", "path", "ViewPosition"]
    train = [[D["a"], "10000032", "50414267", D["a"], "files/p10/...", "PA"],
             [D["c"], "10000032", "53189527", D["c"], "files/p10/...", "AP"],      # corrupt scene graph
             [D["d"], "10000032", "53189527", D["d"], "files/p10/...", "PA"]]      # missing scene graph
    test = [[D["g"], "10000935", "51111111", D["g"], "files/p10/...", "AP"]]
    for name, rows in (("train.csv", train), ("test.csv", test)):
        with (splits / name).open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
    # image a: 2544 wide x 3056 high
    (graphs / f"{D['a']}_SceneGraph.json").write_text(json.dumps(_graph(D["a"], [
        _obj(D["a"], "right lung", 254, 305, 1272, 2445),
        _obj(D["a"], "cardiac silhouette", 890, 1222, 1781, 2139),
        _obj(D["a"], "left clavicle", 2600, 100, 2900, 300),  # wholly outside the image: empty after clamping
    ])))
    (graphs / f"{D['c']}_SceneGraph.json").write_text('{"image_id": "truncated", "objects": [')
    (graphs / f"{D['g']}_SceneGraph.json").write_text(json.dumps(_graph(D["g"], [
        _obj(D["g"], "trachea", 1400, 0, 1600, 900)], view="AP")))
    return root


@pytest.fixture
def imagenome_root(tmp_path, mimic_root) -> tuple[Path, Path]:
    return write_imagenome(tmp_path / "chest-imagenome" / "1.0.0"), mimic_root


# MS-CXR ----------------------------------------------------------------------------------------------
MS_CXR_HEADER = ["dicom_id", "category_name", "label_text", "path", "x", "y", "w", "h", "image_width",
                 "image_height", "split"]


def _ms_row(dicom, cat, text, x, y, w, h, split, width=2544, height=3056):
    return [dicom, cat, text, f"files/p10/p10000032/s50414267/{dicom}.jpg", x, y, w, h, width, height, split]


def write_ms_cxr(root: Path) -> Path:
    """An MS-CXR 1.1.0 root: the local-alignment CSV (its image paths are MIMIC-CXR-JPG's ``files/``)."""
    root.mkdir(parents=True)
    rows = [
        _ms_row(D["a"], "Pneumothorax", "Small left apical pneumothorax", 1500, 200, 400, 300, "train"),
        _ms_row(D["a"], "Pneumothorax", "Small left apical pneumothorax", 1550, 500, 200, 100, "train"),
        _ms_row(D["a"], "Pleural Effusion", "Right pleural effusion", 200, 2200, 800, 600, "train"),
        _ms_row(D["b"], "Consolidation", "Left lower lobe consolidation", "abc", 1800, 600, 500, "val"),  # bad x
        _ms_row(D["b"], "Consolidation", "Left lower lobe consolidation", 1300, 1800, 0, 500, "val"),  # w = 0
        _ms_row(D["c"], "Lung Opacity", "Patchy opacity at the right base", 300, 2000, 700, 600, "test"),
        _ms_row(D["d"], "Edema", "Mild edema", 100, 100, 500, 500, "train"),
        _ms_row(D["d"], "Edema", "Mild edema", 2400, 100, 500, 500, "train"),  # runs 356 px past the right edge
        _ms_row(D["a"], "Edema", "Mild edema", 100, 100, 2000, 2000, "train"),  # a again: not contiguous
    ]
    with (root / "MS_CXR_Local_Alignment_v1.1.0.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(MS_CXR_HEADER)
        w.writerows(rows)
    return root


@pytest.fixture
def ms_cxr_root(tmp_path) -> Path:
    return write_ms_cxr(tmp_path / "ms-cxr" / "1.1.0")


# PadChest-GR ------------------------------------------------------------------------------------------
PADCHEST_IMAGES = [f"2168401113669640138295431665120133381357478{n}_02-094-102.png" for n in range(6)]


def write_padchest(root: Path) -> Path:
    """A PadChest-GR root: the grounded-reports JSON and the zipped master table (no Padchest_GR_files/)."""
    root.mkdir(parents=True)
    img = PADCHEST_IMAGES
    studies = [
        {"StudyID": "s0", "ImageID": img[0], "findings": [
            {"sentence_en": "Cardiomegaly.", "sentence_es": "Cardiomegalia.", "abnormal": True,
             "boxes": [[0.30, 0.45, 0.78, 0.80]], "extra_boxes": [], "labels": ["cardiomegaly"],
             "locations": [], "progression": None},
            {"sentence_en": "No pleural effusion.", "sentence_es": "Sin derrame.", "abnormal": False},
            {"sentence_en": "Bilateral  basal opacities.", "sentence_es": "Opacidades basales.", "abnormal": True,
             "boxes": [[0.10, 0.60, 0.35, 0.85], [0.62, 0.58, 0.90, 0.86]], "labels": ["infiltrates"]}]},
        {"StudyID": "s1", "ImageID": img[1], "findings": [
            {"sentence_en": "Normal study.", "abnormal": False}]},                                 # no boxes
        {"StudyID": "s2", "ImageID": img[2], "findings": [
            {"sentence_en": "Nodule.", "abnormal": True, "boxes": [[120, 300, 180, 360]]},       # pixels, not 0-1
            {"sentence_en": "Scoliosis.", "abnormal": True, "boxes": [[0.4, 0.1, 0.6, 0.9]]}]},
        {"StudyID": "s3", "ImageID": img[3], "findings": [
            {"sentence_en": "Hilar enlargement.", "abnormal": True, "boxes": [[0.4, 0.3, 0.5, 0.5]]}]},  # no split
        "garbage",
        {"StudyID": "s5", "ImageID": img[5], "findings": [
            {"sentence_en": "Scoliosis.", "abnormal": True, "boxes": [[0.4, 0.1, 0.6, 0.9]]}]},
    ]
    (root / "grounded_reports_20240819.json").write_text(json.dumps(studies))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["ImageID", "StudyID", "PatientID", "PatientSex_DICOM", "label", "label_group", "split"])
    w.writerow([img[0], "s0", "p0", "F", "cardiomegaly", "cardiomegaly", "train"])
    w.writerow([img[0], "s0", "p0", "F", "infiltrates", "infiltrates", "train"])
    w.writerow([img[1], "s1", "p1", "M", "normal", "normal", "validation"])
    w.writerow([img[2], "s2", "p2", "M", "nodule", "nodule", "test"])
    w.writerow([img[4], "s4", "p4", "M", "normal", "normal", "???"])
    w.writerow([img[5], "s5", "p5", "M", "scoliosis", "scoliosis", "test"])
    with zipfile.ZipFile(root / "master_table.csv.zip", "w") as z:
        z.writestr("master_table.csv", buf.getvalue())
    return root


@pytest.fixture
def padchest_root(tmp_path) -> Path:
    return write_padchest(tmp_path / "padchest-gr")


@pytest.fixture(scope="session")
def trees():
    """The builders and constants above, for tests (conftest modules are not importable under importlib mode)."""
    from types import SimpleNamespace

    return SimpleNamespace(D=D, write_mimic=write_mimic, write_gz_csv=write_gz_csv, META_HEADER=META_HEADER,
                           CHEXPERT_PLUS_HEADER=CHEXPERT_PLUS_HEADER)
