"""Every data source keeps the contract: it declares itself, reads its miniature layout, writes valid samples.

Sources are found the way the code finds them (``radrl.data.sources.declared``), so a new module
under src/radrl/data/sources/ is tested here without being listed: the test fails and says what
to add, its ``SOURCE = SourceInfo(...)`` declaration or a builder of its miniature layout in
``LAYOUTS`` below (a few rows in the published file names, columns and folders; docs/extending.md).
Layouts are the shared real fixtures (``cxr_data``) where they exist, else the miniature
credentialed trees of tests/data/credentialed/conftest.py, with placeholder images written where
the published layout puts them (those trees have none).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import pkgutil
import shutil
from collections.abc import Callable, Iterable
from importlib import import_module
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import radrl.data.sources as sources_pkg
from radrl.data.instructions import SOURCE_TASKS, TASKS, build_task_mix
from radrl.data.schema import Sample, read_jsonl
from radrl.data.sources import GENERATED, Skip, SourceInfo, declared, load_source

HERE = Path(__file__).resolve().parent


def _load(path: Path, name: str):
    """A conftest module loaded by path (conftest modules are not importable under --import-mode=importlib)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CRED = _load(HERE.parent / "credentialed" / "conftest.py", "credentialed_layouts")


def _image(path: Path) -> Path:
    """A small placeholder image (the credentialed trees ship none; adapters read their sizes from tables)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (16, 16), 90).save(path)
    return path


def _mimic(tmp: Path) -> Path:
    """The miniature MIMIC-CXR-JPG tree with an image at files/pXX/pSUBJECT/sSTUDY/<dicom_id>.jpg."""
    root = CRED.write_mimic(tmp / "mimic-cxr-jpg" / "2.0.0")
    for dicom, subject, study, *_ in CRED.MIMIC_IMAGES:
        _image(root / f"files/p{subject[:2]}/p{subject}/s{study}/{dicom}.jpg")
    return root


# --- miniature layouts: source name -> (module, tmp_path, cxr_data, write_dicom) -> what it reads ------------------
def _nih(mod, tmp, cxr, write_dicom):
    return mod.read(cxr / "nih_bbox")          # the real box list and 12 PNGs


def _rsna(mod, tmp, cxr, write_dicom):
    return mod.read(cxr / "rsna")              # the real Kaggle labels, match table and 29 NIH PNGs


def _tbx11k(mod, tmp, cxr, write_dicom):
    return mod.read(cxr / "tbx11k")            # the real COCO file and 3 PNGs


def _iu_xray(mod, tmp, cxr, write_dicom):
    shutil.copy(cxr / "reports" / "NLMCXR_reports.tgz", tmp)   # the real reports; two of their images
    for name in ("CXR1_1_IM-0001-3001", "CXR1_1_IM-0001-4001"):
        _image(tmp / "NLMCXR_png" / f"{name}.png")
    return mod.read(tmp)


def _vindr(mod, tmp, cxr, write_dicom):
    # Kaggle layout: train.csv + train/<image_id>.dicom (VinDr images may not be shared: ours are blank)
    write_dicom(tmp / "train" / "a.dicom", np.zeros((1600, 2000), np.uint16))
    write_dicom(tmp / "train" / "b.dicom", np.zeros((1000, 1000), np.uint16))
    (tmp / "train.csv").write_text("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
                                   "a,Cardiomegaly,3,R1,600,800,1400,1200\na,Cardiomegaly,3,R2,620,820,1420,1220\n"
                                   "a,Nodule/Mass,8,R1,100,100,140,140\nb,No finding,14,R1,,,,\n")
    return mod.read(tmp)


def _mimic_cxr(mod, tmp, cxr, write_dicom):
    return mod.read(_mimic(tmp))


def _chexpert_plus(mod, tmp, cxr, write_dicom):
    root = CRED.write_chexpert_plus(tmp / "chexpert-plus")
    with (root / "df_chexpert_plus_240401.csv").open(newline="") as f:   # PNG/<path_to_image with .png>
        for row in csv.DictReader(f):
            _image((root / "PNG" / row["path_to_image"]).with_suffix(".png"))
    return mod.read(root)


def _chest_imagenome(mod, tmp, cxr, write_dicom):
    return mod.read(CRED.write_imagenome(tmp / "chest-imagenome" / "1.0.0"), mimic=str(_mimic(tmp)))


def _ms_cxr(mod, tmp, cxr, write_dicom):
    root, mimic = CRED.write_ms_cxr(tmp / "ms-cxr" / "1.1.0"), tmp / "mimic-cxr-jpg" / "2.0.0"
    with (root / "MS_CXR_Local_Alignment_v1.1.0.csv").open(newline="") as f:   # `path` is under the MIMIC root
        for row in csv.DictReader(f):
            _image(mimic / row["path"])
    return mod.read(root, mimic=str(mimic))


def _padchest_gr(mod, tmp, cxr, write_dicom):
    root = CRED.write_padchest(tmp / "padchest-gr")
    for name in CRED.PADCHEST_IMAGES:
        _image(root / "Padchest_GR_files" / name)
    return mod.read(root)


def _radvlm_json(mod, tmp, cxr, write_dicom):
    _image(tmp / "mimic" / "a.jpg")
    turns = [{"from": "human", "value": "<image>\nDescribe the findings."}, {"from": "gpt", "value": "Normal."},
             {"from": "human", "value": "Any effusion?"}, {"from": "gpt", "value": "No."}]
    (tmp / "radvlm.json").write_text(json.dumps([{"id": "a", "image": "mimic/a.jpg", "conversations": turns[:2]},
                                                 {"id": "a", "image": "mimic/a.jpg", "conversations": turns},
                                                 {"id": "b", "image": "mimic/b.jpg", "conversations": turns[:1]}]))
    return mod.read_conversations(tmp / "radvlm.json")


def _folder(mod, tmp, cxr, write_dicom):
    # your own data: a table of real NIH images, one with a report, one with two boxes (one a row), one broken row
    (tmp / "table.csv").write_text("image,findings,label,x1,y1,x2,y2\n"
                                   "00001369_000.png,No acute disease.,,,,,\n"
                                   "00001933_000.png,,Nodule,100,100,140,150\n00001933_000.png,,Mass,500,500,700,650\n"
                                   "missing.png,Normal.,,,,,\n")
    return mod.read(tmp / "table.csv", images=str(cxr / "nih_bbox"))


def _synthetic(mod, tmp, cxr, write_dicom):
    paths = mod.write_dataset(tmp, n_train=3, n_test=1, size=32)
    return [*read_jsonl(paths["train"]), *read_jsonl(paths["test"])]


LAYOUTS: dict[str, Callable[..., Iterable]] = {
    "nih": _nih, "rsna": _rsna, "tbx11k": _tbx11k, "iu-xray": _iu_xray, "vindr-cxr": _vindr,
    "mimic-cxr": _mimic_cxr, "chexpert-plus": _chexpert_plus, "chest-imagenome": _chest_imagenome,
    "ms-cxr": _ms_cxr, "padchest-gr": _padchest_gr, "radvlm-json": _radvlm_json, "synthetic": _synthetic,
    "folder": _folder,
}

SOURCES = list(declared())


# --- the contract ------------------------------------------------------------------------------------------------
def test_every_module_declares_its_source():
    modules = [f"{sources_pkg.__name__}.{m.name}" for m in pkgutil.iter_modules(sources_pkg.__path__)
               if not m.name.startswith("_")] + list(GENERATED)
    for path in modules:
        module = import_module(path)
        assert isinstance(getattr(module, "SOURCE", None), SourceInfo), (
            f"{path} declares no source: add SOURCE = SourceInfo(name=<its Sample.source>, expects=<files it "
            "reads>, tasks=(...), repeats={...}) (docs/extending.md), or name the module with a leading _ if it is "
            "a helper, not a source")
    assert len(SOURCES) == len(modules)   # one source per module, no name declared twice


@pytest.mark.parametrize("name", SOURCES)
def test_declaration_is_complete(name):
    info, module = declared()[name], load_source(name)
    assert info.name == name and info.expects.strip(), f"{name}: SOURCE.expects must say which files it reads"
    unknown = [t for t in info.tasks if t not in TASKS]
    assert not unknown, f"{name}: SOURCE.tasks names {unknown}, which are not radrl.data.instructions.TASKS"
    assert set(info.repeats) <= set(info.tasks) and all(n >= 1 for n in info.repeats.values())
    reads = hasattr(module, "read") or hasattr(module, "read_conversations")
    assert reads or module.__name__ in GENERATED, f"{name}: define read(root, **options) (or read_conversations)"
    assert info.tasks or hasattr(module, "read_conversations"), (
        f"{name} writes samples but declares no tasks: build_task_mix would give its samples no rows")
    assert SOURCE_TASKS[name] == info.tasks   # the table view shows the declaration


@pytest.mark.parametrize("name", SOURCES)
def test_reads_its_miniature_layout_into_valid_rows(name, tmp_path, cxr_data, write_dicom):
    if name not in LAYOUTS:
        pytest.fail(f"source {name!r} has no miniature layout: add a builder to LAYOUTS in "
                    f"tests/data/sources/{Path(__file__).name} that writes a few rows in the published file names, "
                    "columns and folders (and a broken row or two) and reads them with the module (docs/extending.md)")
    module = load_source(name)
    items = list(LAYOUTS[name](module, tmp_path, cxr_data, write_dicom))
    for skip in (i for i in items if isinstance(i, Skip)):
        assert skip.where and skip.reason, f"{name}: a Skip names where and why: {skip}"
    rows = [i for i in items if not isinstance(i, Skip)]
    assert rows, f"{name}: read nothing from its miniature layout (skips: {items[:3]})"
    ids = [r.id if isinstance(r, Sample) else r["id"] for r in rows]
    assert len(ids) == len(set(ids)), f"{name}: ids repeat"
    if hasattr(module, "read_conversations"):
        for r in rows:   # conversation rows: what `radrl prepare` and the trainers read
            assert r["prompt"] and r["completion"][0]["role"] == "assistant" and r["task"] and r["solution"]
            assert all(Path(p).is_absolute() and Path(p).is_file() for p in r["images"]), r["images"]
        return
    for s in rows:
        assert isinstance(s, Sample), f"{name}: read() yields Sample or Skip, got {type(s).__name__}"
        assert s.source == name, f"{name}: samples must carry source={name!r} (SOURCE.name), got {s.source!r}"
        assert Sample.from_row(json.loads(json.dumps(s.to_row())), where=s.id) == s   # the schema's own checks
        assert all(b.is_valid for b in s.boxes), f"{name}: sample {s.id}: boxes must be 0-1, x1 < x2, y1 < y2"
        assert Path(s.image).is_absolute() and Path(s.image).is_file(), f"{name}: sample {s.id}: {s.image}"
    mix = [r["id"] for r in build_task_mix(rows)]   # its declared tasks fit what it reads
    assert mix, f"{name}: build_task_mix made no rows of its samples with tasks {declared()[name].tasks}"
    assert len(mix) == len(set(mix)), f"{name}: conversation ids repeat"


# --- what the declarations drive -----------------------------------------------------------------------------------
def test_undeclared_source_is_an_error_with_the_fix():
    s = Sample(id="x1", image="x.png", source="my-cxr", findings="Normal.")
    with pytest.raises(ValueError, match=r"'x1': source 'my-cxr' is declared by no data source \(known: .*nih.*\).*"
                                         r"SOURCE = SourceInfo\(name='my-cxr'.*source_tasks="):
        list(build_task_mix([s]))
    with pytest.raises(ValueError, match="has no source"):   # Sample.source left empty
        list(build_task_mix([Sample(id="x2", image="x.png", findings="Normal.")]))
    # the override still works, and names the table it was given when the source is missing from it
    assert [r["id"] for r in build_task_mix([s], source_tasks={"my-cxr": ("report",)})] == ["x1-report"]
    with pytest.raises(ValueError, match="not in the source_tasks= you passed"):
        list(build_task_mix([s], source_tasks={"nih": ("report",)}))


def test_declarations_are_checked_when_written():
    with pytest.raises(ValueError, match=r"repeats name \['detection'\].*not among its tasks"):
        SourceInfo("x", "x.csv", tasks=("grounding",), repeats={"detection": 2})
    with pytest.raises(ValueError, match="whole numbers >= 1"):
        SourceInfo("x", "x.csv", tasks=("grounding",), repeats={"grounding": 0})
    with pytest.raises(ValueError, match=r"Sample.source value"):
        SourceInfo("", "x.csv")
