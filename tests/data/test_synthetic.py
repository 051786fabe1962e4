"""The synthetic generator: deterministic, boxes on what was drawn, reports true of the image."""

from __future__ import annotations

import re
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from radrl.data.schema import CHEXPERT_LABELS, read_jsonl
from radrl.data.synthetic import FINDINGS, draw_sample, generate, plan_sample, render, write_dataset

SIZE = 128  # what the tiny model sees; small enough to keep the tests fast

# Words that name each finding in report text, and words that make a sentence a negation.
MENTIONS = {
    "Cardiomegaly": r"heart|cardiac|cardiomegaly|cardiomediastinal",
    "Pleural Effusion": r"effusion|costophrenic",
    "Lung Lesion": r"nodul|mass",
    "Pneumothorax": r"pneumothorax",
    "Consolidation": r"consolidation",
}
NEGATION = r"\bno\b|normal|clear|sharp"


@pytest.fixture(scope="module")
def samples():
    return generate(120, seed=0, size=SIZE)


def sentences(text: str) -> list[str]:
    return re.split(r"(?<=\.)\s+(?=[A-Z])", text)


def mentioned(sentence: str) -> set[str]:
    return {name for name, pat in MENTIONS.items() if re.search(pat, sentence, re.IGNORECASE)}


def first_with(name: str, start: int = 0) -> int:
    """Index of the first training image whose plan draws ``name``."""
    return next(i for i in range(start, 500) if any(f.name == name for f in plan_sample(0, i).findings))


# --- determinism ------------------------------------------------------------------------
@pytest.mark.parametrize("a, b, same", [
    ({"n": 3, "seed": 7}, {"n": 3, "seed": 7}, True),                           # same arguments -> same everything
    ({"n": 3, "seed": 7}, {"n": 3, "seed": 8}, False),                          # another seed -> other images
    ({"n": 3, "seed": 7}, {"n": 3, "seed": 7, "split": "test"}, False),            # splits are separate streams
])
def test_determinism(a, b, same):
    ga, gb = generate(size=64, **a), generate(size=64, **b)
    pixels = [np.array_equal(np.asarray(x[0]), np.asarray(y[0])) for x, y in zip(ga, gb)]
    texts = [x[1].findings == y[1].findings and x[1].boxes == y[1].boxes for x, y in zip(ga, gb)]
    if same:
        assert all(pixels) and all(texts)
        assert [s for _, s in ga] == [s for _, s in gb]
    else:
        assert not any(pixels)


def test_prefix_stability():
    # asking for more images never changes the earlier ones
    short, long = generate(3, seed=3, size=64), generate(6, seed=3, size=64)
    for (ia, sa), (ib, sb) in zip(short, long):
        assert sa == sb and np.array_equal(np.asarray(ia), np.asarray(ib))
    assert draw_sample(3, 4, size=64)[1] == long[4][1]                      # image i depends only on (seed, i)


# --- images and boxes -------------------------------------------------------------------
def test_images_and_boxes_valid(samples):
    for image, s in samples:
        assert image.mode == "L" and image.size == (SIZE, SIZE) == (s.width, s.height)
        assert s.source == "synthetic" and s.view == "PA" and s.image == f"{s.id}.png"
        for b in s.boxes:
            assert b.is_valid and b.label in FINDINGS
            assert (b.x2 - b.x1) * SIZE >= 2 and (b.y2 - b.y1) * SIZE >= 2    # a real region, not a speck


@pytest.mark.parametrize("name, change", [
    ("Pleural Effusion", +15),  # fluid is white
    ("Lung Lesion", +15),       # nodules and masses are white
    ("Consolidation", +15),     # airspace opacity is white
    ("Pneumothorax", -4),       # pleural air is darker than lung (a crescent, with a bright pleural line)
])
def test_box_covers_what_was_drawn(name, change):
    # the box region differs from the same image drawn without that finding, in the expected direction
    i = -1
    for _ in range(3):
        i = first_with(name, i + 1)
        plan = plan_sample(0, i)
        with_it = render(plan, SIZE)
        without = render(replace(plan, findings=tuple(f for f in plan.findings if f.name != name)), SIZE)
        for box in (b for b in with_it.boxes if b.label == name):
            x1, y1, x2, y2 = (round(c) for c in box.to_pixels(SIZE, SIZE))
            a = np.asarray(with_it.image, float)[y1:y2, x1:x2].mean()
            b = np.asarray(without.image, float)[y1:y2, x1:x2].mean()
            assert (a - b) / change > 1, (name, i, a, b)
            assert box.x1 >= with_it.thorax.x1 and box.x2 <= with_it.thorax.x2    # inside the lungs
            assert box.y1 >= with_it.thorax.y1 and box.y2 <= with_it.thorax.y2


def test_cardiomegaly_heart_wider_than_half_the_chest():
    # cardiothoracic ratio > 0.5 exactly when Cardiomegaly is drawn; its box is the heart
    for i in range(40):
        d = render(plan_sample(0, i), SIZE)
        ratio = (d.heart.x2 - d.heart.x1) / (d.thorax.x2 - d.thorax.x1)
        big = [b for b in d.boxes if b.label == "Cardiomegaly"]
        assert (ratio > 0.52) if big else (ratio < 0.48), (i, ratio)
        if big:
            assert big[0].coords == d.heart.coords


# --- labels and report text -------------------------------------------------------------
def test_labels_match_boxes(samples):
    for _, s in samples:
        assert set(s.labels) <= set(CHEXPERT_LABELS)
        positive = {k for k, v in s.labels.items() if v == 1 and k != "No Finding"}
        assert positive - {"Lung Opacity"} == {b.label for b in s.boxes}
        assert (s.labels.get("No Finding") == 1) == (not s.boxes)
        assert all(s.labels[k] == 0 for k in s.labels if k not in positive | {"No Finding"})


def test_report_true_of_image(samples):
    for _, s in samples:
        present = {b.label for b in s.boxes}
        said = set()
        assert 1 <= len(sentences(s.findings)) <= 5 and s.impression
        for sent in sentences(s.findings):
            names = mentioned(sent)
            if re.search(NEGATION, sent, re.IGNORECASE):
                assert not names & present, (sent, present)                # negations only for absent findings
                assert all(s.labels.get(n) == 0 for n in names)            # ...and recorded as negatives
            else:
                assert names <= present, (sent, present)
                said |= names
        assert said == present, (s.findings, present)                      # every finding stated positively
        for box in s.boxes:                                               # PA view: image left = patient right
            if box.label == "Cardiomegaly":
                continue
            side = "right" if (box.x1 + box.x2) / 2 < 0.5 else r"left|lingula"
            about = [x for x in sentences(s.findings) if box.label in mentioned(x)]
            assert any(re.search(side + "|bilateral", x, re.IGNORECASE) for x in about), (s.findings, box)


def test_normal_reports(samples):
    normal = [s for _, s in samples if not s.boxes]
    assert normal
    for s in normal:
        assert s.labels["No Finding"] == 1
        assert all(re.search(NEGATION, x, re.IGNORECASE) for x in sentences(s.findings)), s.findings
        assert s.impression in ("No acute cardiopulmonary process.", "No acute intrathoracic abnormality.",
                                "Normal chest radiograph.")


def test_mix_of_findings():
    # over 200 images: every finding, about a fifth normal, several multi-finding images, both sides
    plans = [plan_sample(0, i) for i in range(200)]
    names = [{f.name for f in p.findings} for p in plans]
    assert all(sum(n in x for x in names) >= 20 for n in FINDINGS)
    assert 0.12 <= sum(not x for x in names) / 200 <= 0.35
    assert sum(len(x) >= 2 for x in names) >= 40
    assert {f.side for p in plans for f in p.findings if f.side} == {"left", "right"}
    assert any(sum(f.name == "Pleural Effusion" for f in p.findings) == 2 for p in plans)   # bilateral
    assert any(sum(f.name == "Lung Lesion" for f in p.findings) == 2 for p in plans)       # two nodules


# --- files ------------------------------------------------------------------------------
def test_write_dataset_round_trip(tmp_path):
    paths = write_dataset(tmp_path / "synth", n_train=5, n_test=3, seed=1, size=64)
    train, test = list(read_jsonl(paths["train"])), list(read_jsonl(paths["test"]))
    assert (len(train), len(test)) == (5, 3)
    assert not {s.id for s in train} & {s.id for s in test}
    assert {s.split for s in train} == {"train"} and {s.split for s in test} == {"test"}
    for s, (image, expected) in zip(train, generate(5, seed=1, size=64)):
        assert s.boxes == expected.boxes and s.labels == expected.labels and s.findings == expected.findings
        with Image.open(s.image) as im:
            assert im.size == (64, 64) and np.array_equal(np.asarray(im), np.asarray(image))
