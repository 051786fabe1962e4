"""The shared completion parser: think/answer split, boxes, and garbage that must not raise."""

import pickle
import time

import pytest

from radrl.data.boxes import Box
from radrl.parsing import MAX_CHARS, Parsed, parse

BOX = "[0.38, 0.47, 0.76, 0.62]"

# (text, thinking, expected think, expected answer, expected issues)
SPLIT_CASES = [
    # plain answer, no thinking requested
    ("Cardiomegaly.", False, None, "Cardiomegaly.", ()),
    # full think block; answer stripped
    ("<think>big heart</think>\n Cardiomegaly.", True, "big heart", "Cardiomegaly.", ()),
    # Qwen3 puts <think> in the prompt: a lone closing tag is well formed
    ("big heart</think>Cardiomegaly.", True, "big heart", "Cardiomegaly.", ()),
    # thinking requested but never closed: no answer (the paper's reward 0 / -3)
    ("<think>still going", True, "still going", "", ("think_missing", "unbalanced_think", "empty_answer")),
    ("no tags at all", True, "no tags at all", "", ("think_missing", "empty_answer")),
    # answer after the LAST </think>; think is the last block
    ("<think>a</think>x<think>b</think>final", True, "b", "final", ()),
    # a stray extra closing tag is flagged
    ("a</think>b</think>c", True, "a</think>b", "c", ("unbalanced_think",)),
    # thinking not requested, yet the model thought: still split
    ("<think>a</think>answer", False, "a", "answer", ()),
    # closed think with nothing after it
    ("<think>a</think>   ", True, "a", "", ("empty_answer",)),
    # empty input
    ("", False, None, "", ("empty_answer",)),
    # an opened, unclosed think without thinking mode is flagged but kept as the answer
    ("<think>a", False, None, "<think>a", ("unbalanced_think",)),
    # counts match (prompt holds the first <think>) but a block opens after the last close:
    # flagged, so think_format scores it 0
    ("heart big</think>Cardiomegaly.<think>more thoughts", True, "heart big",
     "Cardiomegaly.<think>more thoughts", ("unbalanced_think",)),
]


@pytest.mark.parametrize("text,thinking,think,answer,issues", SPLIT_CASES)
def test_think_answer_split(text, thinking, think, answer, issues):
    p = parse(text, thinking=thinking)
    assert (p.think, p.answer, p.issues) == (think, answer, issues)
    assert p.well_formed == (not issues)


# (answer text, expected [(coords, label)], expected invalid count)
BOX_CASES = [
    # the paper's form with its phrase
    (f"Cardiomegaly at {BOX}.", [((0.38, 0.47, 0.76, 0.62), "Cardiomegaly")], 0),
    # several boxes joined by ", " and " and " share the phrase; a new phrase starts after a comma
    (("Cardiomegaly at [0.1, 0.1, 0.2, 0.2] and [0.3, 0.3, 0.4, 0.4], pleural effusion is located at "
     "[0.5, 0.5, 0.9, 0.9]."),
     [((0.1, 0.1, 0.2, 0.2), "Cardiomegaly"), ((0.3, 0.3, 0.4, 0.4), "Cardiomegaly"),
      ((0.5, 0.5, 0.9, 0.9), "pleural effusion")], 0),
    # a bare box has no label; a new sentence does not inherit the previous phrase
    (f"Nodule at {BOX}. {BOX}", [((0.38, 0.47, 0.76, 0.62), "Nodule"), ((0.38, 0.47, 0.76, 0.62), None)], 0),
    # markdown and arrows around the phrase are stripped
    ("**Left lung** -> [0.1, 0.2, 0.3, 0.4]", [((0.1, 0.2, 0.3, 0.4), "Left lung")], 0),
    # Qwen3-VL JSON on the 0-1000 grid, label from the JSON, converted to 0-1
    ('```json\n[{"bbox_2d": [100, 200, 300, 400], "label": "left lung"}]\n```',
     [((0.1, 0.2, 0.3, 0.4), "left lung")], 0),
    # truncated JSON (no closing brace) still yields its box, without a label
    ('[{"bbox_2d": [100, 200, 300, 400], "label": "a"}, {"bbox_2d": [500, 500, 900, 900]',
     [((0.1, 0.2, 0.3, 0.4), "a"), ((0.5, 0.5, 0.9, 0.9), None)], 0),
    # NaN, inverted and out-of-range boxes are dropped and counted
    ("[nan, 0.1, 0.2, 0.3] [0.5, 0.5, 0.1, 0.9] [0.1, 0.1, 1.5, 0.2] [0.1, 0.1, 0.2, 0.2]",
     [((0.1, 0.1, 0.2, 0.2), None)], 3),
    # an inverted Qwen box is invalid too
    ('{"bbox_2d": [500, 200, 300, 400], "label": "x"}', [], 1),
    # no boxes at all
    ("The lungs are clear.", [], 0),
]


@pytest.mark.parametrize("text,expected,invalid", BOX_CASES)
def test_boxes(text, expected, invalid):
    p = parse(text)
    assert [(tuple(round(v, 6) for v in b.coords), b.label) for b in p.boxes] == expected
    assert p.invalid_boxes == invalid
    assert ("invalid_box" in p.issues) == bool(invalid)


def test_boxes_come_from_the_answer_only():
    p = parse(f"<think>maybe {BOX}</think>Cardiomegaly at [0.1, 0.1, 0.2, 0.2]", thinking=True)
    assert [b.coords for b in p.boxes] == [(0.1, 0.1, 0.2, 0.2)]


def test_reference_round_trip():
    # the dataset's solution text is written with format_boxes and read with the same parser
    from radrl.data.boxes import format_boxes

    boxes = [Box(0.1, 0.2, 0.3, 0.4), Box(0.5, 0.5, 0.9, 0.9)]
    assert [b.coords for b in parse("Effusion at " + format_boxes(boxes)).boxes] == [b.coords for b in boxes]


# Garbage a policy can emit: never raises, and stays fast.
GARBAGE = [
    None,  # not even a string
    12345,  # a number
    "\x00\x01\ufffd" * 1000,  # control characters
    "Ünïcödé → 心脏 [0.1, 0.2, 0.3, 0.4]",  # non-ASCII around a box
    "[" * 100_000,  # open brackets
    "{" * 100_000,  # open braces
    '{"bbox_2d": [' * 50_000,  # endless truncated JSON
    "<think>" * 50_000,  # tag spam
    "[0.1, 0.1, 0.2, 0.2] and " * 200_000,  # megabytes of boxes
    "is at " * 500_000,  # words the label cleaner strips, megabytes of them
    "[1e309, 0.1, 0.2, 0.3] [99999999999999999999999999, 0, 1, 1]",  # overflowing numbers
]


@pytest.mark.parametrize("text", GARBAGE, ids=range(len(GARBAGE)))
@pytest.mark.parametrize("thinking", [False, True])
def test_garbage_never_raises(text, thinking):
    start = time.perf_counter()
    p = parse(text, thinking=thinking)
    assert isinstance(p, Parsed)
    assert all(b.is_valid for b in p.boxes)
    assert time.perf_counter() - start < 2.0  # capped work: no pathological regex


def test_long_input_is_cut_and_flagged():
    p = parse("a" * (MAX_CHARS + 10))
    assert "truncated_input" in p.issues and len(p.answer) == MAX_CHARS


def test_parsed_is_frozen_and_picklable():
    p = parse(f"Cardiomegaly at {BOX}")
    with pytest.raises(AttributeError):
        p.answer = "x"
    assert pickle.loads(pickle.dumps(p)) == p


# Where radrl's grounding reward departs from the authors' (RadVLM-GRPO verl/custom_rewards/grounding_reward.py),
# as docs/metrics.md ("Grounding: where radrl departs from the authors' reward") decides: the answer is the text
# after the LAST "</think>", exact case (theirs: the first, any case), and a box outside 0-1 is dropped and counted
# as a false positive (theirs: kept, IoU on its raw coordinates). Reference box: [0.40, 0.20, 0.60, 0.40].
# (case, completion, radrl's reward; the authors' value in the comment)
AUTHOR_DIFFERENCES = [
    # two closing tags: the box of the middle block is not in the answer -> 1.0 (authors: both boxes, 0.667)
    ("two_closing_tags", "a</think>[0.10, 0.10, 0.20, 0.20]</think>Nodule at [0.40, 0.20, 0.60, 0.40]", 1.0),
    # "</THINK>" is not Qwen3's tag token, so the thinking answer is missing -> 0 (authors: 1.0)
    ("upper_case_tag", "a</THINK>Nodule at [0.40, 0.20, 0.60, 0.40]", 0.0),
    # a box reaching past the image edge overlaps the reference (IoU 1/7) -> dropped, 0 (authors: 0.143)
    ("out_of_range_overlapping", "a</think>Nodule at [0.50, 0.20, 1.10, 0.40]", 0.0),
    # the same answers where the two agree: an out-of-range box that overlaps nothing is one false positive
    # in both (P 1/2, R 1 -> 2/3)
    ("out_of_range_elsewhere", "a</think>Nodule at [0.40, 0.20, 0.60, 0.40] and [1.20, 0.20, 1.40, 0.40]", 2 / 3),
    ("negative_elsewhere", "a</think>Nodule at [0.40, 0.20, 0.60, 0.40] and [-0.30, 0.20, -0.10, 0.40]", 2 / 3),
    # one well-formed block: the same in both
    ("one_block", "<think>a</think>Nodule at [0.40, 0.20, 0.60, 0.40]", 1.0),
]


@pytest.mark.parametrize("case,completion,reward", AUTHOR_DIFFERENCES, ids=[c[0] for c in AUTHOR_DIFFERENCES])
def test_grounding_conventions_that_differ_from_the_authors(case, completion, reward):
    from radrl.rewards import GroundingSoftF1

    got = GroundingSoftF1()([completion], task=["grounding"], solution=["Nodule at [0.40, 0.20, 0.60, 0.40]"],
                            thinking=[True])
    assert got == [pytest.approx(reward, abs=1e-12)]
