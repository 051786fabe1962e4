"""An unreadable image skips its rows, counted and named, instead of aborting the whole evaluation (issue 14)."""

import json
import logging
from pathlib import Path

from radrl.data.schema import read_jsonl, write_jsonl


def test_unreadable_images_are_counted_skips_named_in_the_manifest(tiny_model_dir, synth_data, tmp_path, caplog):
    from radrl.eval.run import evaluate

    samples = list(read_jsonl(synth_data["test"]))[:4]
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(Path(samples[0].image).read_bytes()[:200])   # a real PNG cut short: its header still reads
    samples[0].image = str(truncated)
    samples[1].image = str(tmp_path / "gone.png")
    data = tmp_path / "test.jsonl"
    write_jsonl(samples, data)
    with caplog.at_level(logging.WARNING, logger="radrl"):
        evaluate(str(tiny_model_dir), str(data), str(tmp_path / "ev"), tasks=("report",), device="cpu",
                       batch_size=4, max_new_tokens={"report": 4}, progress=False)
    manifest = json.loads((tmp_path / "ev" / "manifest.json").read_text())
    record = manifest["data"]["unreadable_images"]
    assert (record["rows"], record["images"], record["rows_per_task"]) == (2, 2, {"report": 2})
    named = {f["image"]: f for f in record["files"]}
    assert set(named) == {str(truncated), str(tmp_path / "gone.png")}
    assert named[str(truncated)]["rows"] == [f"{samples[0].id}-report"] and "truncated.png" in \
        named[str(truncated)]["error"]
    assert manifest["data"]["rows"] == 2 and manifest["status"] == "complete"
    lines = (tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["id"] for line in lines) == sorted(f"{s.id}-report" for s in samples[2:])
    assert any("skipped 2 rows whose image cannot be read (2 images" in r.getMessage() for r in caplog.records)


def test_image_verdicts_are_cached_by_size_and_time(synth_data, tmp_path, monkeypatch):
    """A resumed evaluation decodes only the files that changed since the last check (a DICOM test split takes
    minutes to decode), and a changed file is decoded again."""
    from radrl.data import images
    from radrl.eval.run import drop_unreadable

    good = tmp_path / "good.png"
    good.write_bytes(Path(next(iter(read_jsonl(synth_data["test"]))).image).read_bytes())
    bad = tmp_path / "bad.png"
    bad.write_bytes(good.read_bytes()[:200])
    rows = [{"id": "g", "task": "report", "images": [str(good)]}, {"id": "b", "task": "report", "images": [str(bad)]}]
    cache = tmp_path / "image_check.json"
    decoded = []
    real = images.load_image
    monkeypatch.setattr(images, "load_image", lambda p, *a, **k: decoded.append(p) or real(p, *a, **k))
    first = drop_unreadable(rows, cache=cache)
    assert [r["id"] for r in first[0]] == ["g"] and len(decoded) == 2
    second = drop_unreadable(rows, cache=cache)
    assert second == first and len(decoded) == 2          # both verdicts came from the cache
    bad.write_bytes(good.read_bytes())                     # the file was fixed: decoded again, now kept
    third = drop_unreadable(rows, cache=cache)
    assert [r["id"] for r in third[0]] == ["g", "b"] and decoded[2:] == [str(bad)]
    cache.write_text("not json")                           # a broken cache is only a cache
    assert drop_unreadable(rows, cache=cache)[0] == third[0]
