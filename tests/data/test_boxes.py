"""The box codec: the one place coordinates are converted."""

import json
import math

import pytest

from radrl.data.boxes import Box, format_box, format_boxes, format_qwen_json
from radrl.parsing import parse


@pytest.mark.parametrize("box, text", [
    # the paper's worked example, two decimals
    (Box(0.38, 0.47, 0.76, 0.62), "[0.38, 0.47, 0.76, 0.62]"),
    # rounding to two decimals
    (Box(0.123, 0.456, 0.789, 0.999), "[0.12, 0.46, 0.79, 1.00]"),
    # values outside 0-1 are clamped when written
    (Box(-0.1, 0.0, 1.2, 0.5), "[0.00, 0.00, 1.00, 0.50]"),
    # a box narrower than 0.01 would collapse to an invalid [a, b, a, b]: widened to 0.01
    (Box(0.121, 0.300, 0.124, 0.304), "[0.12, 0.30, 0.13, 0.31]"),
    # ... also at the right/bottom border, where it widens inwards
    (Box(0.998, 0.999, 1.0, 1.0), "[0.99, 0.99, 1.00, 1.00]"),
])
def test_format_box(box, text):
    assert format_box(box) == text


@pytest.mark.parametrize("n, text", [
    (0, ""),                                                      # nothing
    (1, "[0.10, 0.10, 0.20, 0.20]"),                              # one box, no joiner
    (2, "[0.10, 0.10, 0.20, 0.20] and [0.30, 0.30, 0.40, 0.40]"),  # two: " and "
    (3, "[0.10, 0.10, 0.20, 0.20], [0.30, 0.30, 0.40, 0.40] and [0.50, 0.50, 0.60, 0.60]"),  # ", " then " and "
])
def test_format_boxes_joiners(n, text):
    boxes = [Box(0.1 + 0.2 * i, 0.1 + 0.2 * i, 0.2 + 0.2 * i, 0.2 + 0.2 * i) for i in range(n)]
    assert format_boxes(boxes) == text


def test_every_written_box_parses_back_valid():
    import random

    rng = random.Random(0)
    for _ in range(2000):
        x1, y1 = rng.random(), rng.random()
        box = Box(x1, y1, min(1.0, x1 + rng.random() * 0.02), min(1.0, y1 + rng.random() * 0.02))
        parsed = parse(format_box(box))
        assert len(parsed.boxes) == 1 and parsed.invalid_boxes == 0, format_box(box)


def test_round_trip_text():
    boxes = [Box(0.05, 0.25, 0.45, 0.75), Box(0.5, 0.1, 0.9, 0.3)]
    parsed = parse("Pleural Effusion at " + format_boxes(boxes) + ".").boxes
    assert [b.coords for b in parsed] == [b.coords for b in boxes]


@pytest.mark.parametrize("pixels, size, expected", [
    # corner pixels on a 1000x500 image
    ((100, 50, 300, 250), (1000, 500), (0.1, 0.1, 0.3, 0.5)),
    # a box past the border is clamped to the image
    ((-10, 0, 1100, 500), (1000, 500), (0.0, 0.0, 1.0, 1.0)),
])
def test_from_pixels(pixels, size, expected):
    b = Box.from_pixels(*pixels, width=size[0], height=size[1])
    assert b.coords == pytest.approx(expected)
    assert b.to_pixels(*size) == pytest.approx(tuple(min(max(p, 0), s) for p, s in zip(pixels, size * 2)))


def test_from_xywh_pixels_matches_nih_convention():
    # NIH / RSNA / COCO: top-left corner plus width and height
    b = Box.from_xywh_pixels(256, 512, 128, 64, width=1024, height=1024)
    assert b.coords == pytest.approx((0.25, 0.5, 0.375, 0.5625))


def test_from_pixels_rejects_empty_image():
    with pytest.raises(ValueError, match="image size"):
        Box.from_pixels(0, 0, 1, 1, width=0, height=10)


def test_qwen_grid_round_trip():
    b = Box(0.38, 0.47, 0.76, 0.62, label="Cardiomegaly")
    assert b.to_qwen() == [380, 470, 760, 620]
    payload = json.loads(format_qwen_json([b]))
    assert payload == [{"bbox_2d": [380, 470, 760, 620], "label": "Cardiomegaly"}]
    assert Box.from_qwen(payload[0]["bbox_2d"]).coords == pytest.approx(b.coords)


@pytest.mark.parametrize("box, valid", [
    (Box(0.1, 0.1, 0.2, 0.2), True),          # ordinary
    (Box(0.2, 0.1, 0.1, 0.2), False),         # inverted x
    (Box(0.1, 0.1, 0.1, 0.2), False),         # zero width
    (Box(0.1, 0.1, 1.5, 0.2), False),         # out of range
    (Box(math.nan, 0.1, 0.2, 0.2), False),    # NaN
])
def test_is_valid(box, valid):
    assert box.is_valid is valid


def test_from_dict_names_the_row_on_error():
    with pytest.raises(ValueError, match="row 7 box 0"):
        Box.from_dict({"box": [0.5, 0.5, 0.1, 0.1]}, where="row 7 box 0")
