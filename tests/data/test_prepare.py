"""radrl prepare: real fixtures end to end, every output format, skip counting, --strict, conversations."""

import json
import shutil
from types import SimpleNamespace

import pytest
from PIL import Image

from radrl.data import prepare as prep
from radrl.data.boxes import Box
from radrl.data.schema import Sample, read_jsonl
from radrl.data.sources import Skip, nih


def test_nih_fixture_end_to_end_jsonl(cxr_data, tmp_path):
    summary = prep.prepare("nih", cxr_data / "nih_bbox", tmp_path, fmt="jsonl", progress=False)
    assert (summary["written"], summary["written_by_split"]) == (12, {"all": 12})
    assert summary["skipped_by_reason"] == {"missing image": 868} and len(summary["skipped_examples"]) == 20
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    skipped = [json.loads(line) for line in (tmp_path / "skipped.jsonl").read_text().splitlines()]
    assert len(skipped) == 868 and skipped[0]["reason"] == "missing image" and "BBox_List_2017" in skipped[0]["where"]
    # the split file is what radrl sft / radrl eval read, and it holds exactly the adapter's samples
    written = list(read_jsonl(tmp_path / "all.jsonl"))
    direct = [s for s in nih.read(cxr_data / "nih_bbox") if not isinstance(s, Skip)]
    assert written == direct == list(read_jsonl(tmp_path / "samples.jsonl"))
    assert not (tmp_path / "dataset").exists()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["hf", "parquet"])
def test_dataset_formats_round_trip(cxr_data, tmp_path, fmt):
    summary = prep.prepare("tbx11k", cxr_data / "tbx11k", tmp_path, fmt=fmt, progress=False)
    if fmt == "hf":
        from datasets import load_from_disk

        ds = load_from_disk(str(tmp_path / "dataset"))["train"]
    else:
        from datasets import Dataset

        ds = Dataset.from_parquet(str(tmp_path / "parquet" / "train.parquet"))
    assert summary["written"] == len(ds) == 3
    back = [Sample.from_row(dict(row)) for row in ds]
    assert back == list(read_jsonl(tmp_path / "train.jsonl"))
    assert [len(s.boxes) for s in back] == [1, 2, 0] and back[0].labels == {"Tuberculosis": 1, "No Finding": 0}
    assert not (tmp_path / ".hf_cache").exists()


@pytest.mark.slow
def test_each_sample_is_validated_once(cxr_data, tmp_path, monkeypatch):
    """prepare checks each sample once while writing the JSONL; building the dataset does not check it again."""
    calls = []
    original = Sample.from_row.__func__
    monkeypatch.setattr(Sample, "from_row", classmethod(lambda cls, row, where="row":
                                                         calls.append(where) or original(cls, row, where)))
    summary = prep.prepare("tbx11k", cxr_data / "tbx11k", tmp_path, fmt="parquet", progress=False)
    assert summary["written"] == 3 and len(calls) == 3


def _fake(monkeypatch, **module):
    monkeypatch.setattr(prep, "load_source", lambda name: SimpleNamespace(EXPECTS="", **module))


def test_duplicates_and_invalid_samples_are_counted(monkeypatch, tmp_path):
    def read(root):
        yield Sample(id="a", image="/x/a.png", boxes=[Box(0.1, 0.1, 0.2, 0.2, "Mass")])
        yield Sample(id="a", image="/x/a2.png")                          # same id again
        yield Sample(id="b", image="/x/b.png", boxes=[Box(0.5, 0.5, 1.5, 0.9)])  # box outside 0-1
        yield Sample(id="c", image="/x/c.png", split="test", labels={"Edema": 2})  # label value 2
        yield Skip("file.csv:7", "malformed row", "3 fields")
        yield Sample(id="d", image="/x/d.png", split="test")

    _fake(monkeypatch, read=read)
    s = prep.prepare("fake", tmp_path, tmp_path / "out", fmt="jsonl", progress=False)
    assert s["written_by_split"] == {"test": 1, "train": 1}
    assert s["skipped_by_reason"] == {"invalid sample": 2, "duplicate id": 1, "malformed row": 1}
    assert [x.id for x in read_jsonl(tmp_path / "out" / "test.jsonl")] == ["d"]


def test_limit_stops_after_n_written_rows(cxr_data, tmp_path):
    s = prep.prepare("rsna", cxr_data / "rsna", tmp_path, fmt="jsonl", limit=5, progress=False)
    assert s["written"] == 5 and len((tmp_path / "train.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize("dicom", ["CR-MONO1-10-chest.dcm", "RG1_J2KI.dcm"])   # MONOCHROME1; no meta / JPEG 2000
def test_dicom_to_png(cxr_data, tmp_path, dicom):
    """VinDr (Kaggle layout) with a real DICOM: decoded once to a PNG at the budget, boxes unchanged."""
    import numpy as np

    from radrl.data.images import load_image

    root = tmp_path / "vindr"
    (root / "train").mkdir(parents=True)
    shutil.copy(cxr_data / "dicom" / dicom, root / "train" / "img1.dicom")
    (root / "train.csv").write_text("image_id,class_name,class_id,rad_id,x_min,y_min,x_max,y_max\n"
                                    "img1,Cardiomegaly,3,R1,100,200,300,400\n")
    plain = prep.prepare("vindr-cxr", root, tmp_path / "a", fmt="jsonl", progress=False)
    s = prep.prepare("vindr-cxr", root, tmp_path / "b", fmt="jsonl", dicom_to_png=True, max_pixels=128 * 128,
                     progress=False)
    (before,), (after,) = read_jsonl(tmp_path / "a" / "train.jsonl"), read_jsonl(tmp_path / "b" / "train.jsonl")
    assert plain["written"] == s["written"] == 1 and after.image == str(tmp_path / "b" / "images" / "img1.png")
    png = Image.open(after.image)
    assert png.mode == "L" and png.size == (after.width, after.height) and png.width * png.height <= 128 * 128
    assert after.boxes == before.boxes and (before.width, before.height) != (after.width, after.height)
    expect = np.asarray(load_image(before.image, max_pixels=128 * 128))[..., 0]
    np.testing.assert_array_equal(np.asarray(png), expect)   # the same pixels training would have decoded
    with pytest.raises(prep.PrepareError, match="--max-pixels only applies"):
        prep.prepare("vindr-cxr", root, tmp_path / "c", max_pixels=1000, progress=False)


def test_strict_stops_at_the_first_skip(cxr_data, tmp_path):
    first = r"BBox_List_2017.csv.gz:2 \(00013118_008.png\): missing image.*--strict"
    with pytest.raises(prep.PrepareError, match=first):
        prep.prepare("nih", cxr_data / "nih_bbox", tmp_path, fmt="jsonl", strict=True, progress=False)


def test_decode_finds_corrupt_pixels(cxr_data, tmp_path):
    root = tmp_path / "tbx"
    shutil.copytree(cxr_data / "tbx11k", root)
    (root / "h0001.png").chmod(0o644)
    data = (root / "h0001.png").read_bytes()
    (root / "h0001.png").write_bytes(data[:3000])                 # header intact, pixels cut off
    quick = prep.prepare("tbx11k", root, tmp_path / "a", fmt="jsonl", progress=False)
    assert quick["written"] == 3                                   # headers only: not noticed
    full = prep.prepare("tbx11k", root, tmp_path / "b", fmt="jsonl", decode=True, progress=False)
    assert full["written"] == 2 and full["skipped_by_reason"] == {"unreadable image": 1}
    assert "h0001.png" in full["skipped_examples"][0]["detail"]


@pytest.mark.slow
def test_conversation_sources(monkeypatch, tmp_path):
    png = str(tmp_path / "1.png")
    Image.new("L", (8, 8)).save(png)

    def read_conversations(root):
        msg = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]},
               {"role": "assistant", "content": [{"type": "text", "text": "Normal."}]}]
        yield {"id": "c1", "images": [png], "messages": msg}
        yield Skip("data.json entry 2", "bad entry", "no conversations")
        yield {"id": "c2", "images": [png], "messages": msg, "split": "test"}
        yield {"id": "c1", "images": [png], "messages": msg}                  # duplicate id
        yield {"id": "c3", "images": [str(tmp_path / "gone.png")], "messages": msg}  # image not on disk

    _fake(monkeypatch, read_conversations=read_conversations)
    s = prep.prepare("fake", tmp_path, tmp_path / "out", progress=False)
    assert s["kind"] == "conversations" and s["written_by_split"] == {"test": 1, "train": 1}
    assert s["skipped_by_reason"] == {"bad entry": 1, "duplicate id": 1, "missing image": 1}
    rows = [json.loads(x) for x in (tmp_path / "out" / "conversations.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["c1", "c2"] and rows[0]["messages"][1]["content"][0]["text"] == "Normal."
    from datasets import load_from_disk

    assert load_from_disk(str(tmp_path / "out" / "dataset"))["test"][0]["id"] == "c2"


@pytest.mark.parametrize("call, message", [
    # an option the adapter does not take: the error lists the ones it does
    (lambda cxr, out: prep.prepare("nih", cxr / "nih_bbox", out, options={"frontal": "one"}), r"accepts \['boxed'\]"),
    # a root without the dataset's files: fatal, with the files it looked for and the layout the source declares
    (lambda cxr, out: prep.prepare("tbx11k", out, out / "o"), r"TBX11K_<split>.json(.|\n)*reads:\n +TBX11K root"),
    # a declared source that is generated, not read; an unknown source lists the known ones
    (lambda cxr, out: prep.prepare("synthetic", out, out / "o"), "cannot read synthetic"),
    (lambda cxr, out: prep.prepare("nope", out, out / "o"), "unknown source 'nope'.*tbx11k"),
    # an unknown output format
    (lambda cxr, out: prep.prepare("nih", cxr / "nih_bbox", out, fmt="csv"), "--format must be one of"),
])
def test_fatal_errors_say_what_to_do(cxr_data, tmp_path, call, message):
    with pytest.raises(prep.PrepareError, match=message):
        call(cxr_data, tmp_path)


def test_cli_list_and_run(cxr_data, tmp_path, capsys):
    from radrl.cli import main as radrl
    from radrl.cli.prepare import main

    radrl(["prepare", "--list"])   # the verb is wired to this module
    listed = capsys.readouterr().out
    assert all(f"\n{name}\n" in f"\n{listed}" for name in prep.readable_sources()) and "BBox_List_2017.csv" in listed
    assert "task mix: grounding x3, detection x2" in listed and "\nsynthetic\n" not in listed   # generated, not read
    main(["tbx11k", "--root", str(cxr_data / "tbx11k"), "--out", str(tmp_path), "--format", "jsonl",
               "--no-progress"])
    assert capsys.readouterr().out.startswith("written 3 samples (train 3)\nskipped 0")
    with pytest.raises(SystemExit) as e:
        main(["nih", "--root", str(cxr_data / "nih_bbox"), "--out", str(tmp_path), "--strict", "--no-progress"])
    assert e.value.code == 2 and "missing image" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["nih", "--root", str(tmp_path), "--out", str(tmp_path), "-o", "boxed"])   # not KEY=VALUE
    with pytest.raises(SystemExit) as e:   # every row skipped (no VinDr images here): the run fails
        main(["vindr-cxr", "--root", str(cxr_data / "vindr"), "--out", str(tmp_path / "v"), "--no-progress"])
    assert e.value.code == 1 and "no rows written" in capsys.readouterr().err
    assert json.loads((tmp_path / "v" / "summary.json").read_text())["skipped_by_reason"] == {"missing image": 15000}
