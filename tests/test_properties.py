"""Property-based tests: random and adversarial completions against the parser, every reward
and the soft-F1 fast path. A policy in RL emits anything; none of it may raise, and every
value must be finite and inside the reward's documented range (``reward.bounds``)."""

import math
import pickle

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from radrl.data.boxes import Box
from radrl.metrics import METRICS, MetricResult
from radrl.metrics.grounding import _soft_f1_numpy, soft_f1
from radrl.parsing import Parsed, parse
from radrl.rewards import REWARDS, ReportMetric, completion_text

pytestmark = pytest.mark.slow  # ~30 s together on a shared 2-core machine; they run in CI

SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ISSUES = {"not_text", "truncated_input", "think_missing", "unbalanced_think", "empty_answer", "invalid_box"}

# Pieces a policy plausibly (or adversarially) emits: tags, half tags, boxes with odd numbers,
# Qwen JSON, truncated JSON, report phrases, unicode and control characters.
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30),
                    st.sampled_from(["nan", "inf", "-0", "1e309", "0.5.5", "", "1,000", "٣"]))
FRAGMENTS = st.one_of(
    st.sampled_from(["<think>", "</think>", "<think", "think>", "</", "[", "]", "{", "}", '"bbox_2d": ', "\n",
                     "Cardiomegaly at ", " and ", ", ", ".", "No pneumothorax. ", "Moderate cardiomegaly. ",
                     "Possible consolidation. ", "is located at ", "```json\n", "**", "->", "\x00", "\ufffd", "心脏 "]),
    st.builds(lambda a, b, c, d: f"[{a}, {b}, {c}, {d}]", NUMBERS, NUMBERS, NUMBERS, NUMBERS),
    st.builds(lambda a, b, c, d: f"[{a}, {b}, {c}, {d}]", *[st.floats(0, 1).map(lambda v: f"{v:.2f}")] * 4),
    st.builds(lambda a, b, c, d, label: f'{{"bbox_2d": [{a}, {b}, {c}, {d}], "label": {label}}}',
              *[st.integers(-100, 1100)] * 4, st.one_of(st.text(max_size=8).map(repr), st.just("null"))),
    st.text(max_size=30),
)
COMPLETION_TEXT = st.lists(FRAGMENTS, max_size=25).map("".join)
# TRL hands completions as plain strings or as chat messages (content a string or parts)
COMPLETIONS = st.one_of(
    COMPLETION_TEXT,
    COMPLETION_TEXT.map(lambda t: [{"role": "assistant", "content": t}]),
    COMPLETION_TEXT.map(lambda t: [{"role": "assistant", "content": [{"type": "text", "text": t}, {"type": "image"}]}]),
)
SOLUTIONS = st.one_of(
    COMPLETION_TEXT,
    st.sampled_from(["Cardiomegaly at [0.38, 0.47, 0.76, 0.62]", "Moderate cardiomegaly. No pneumothorax.",
                     "Effusion at [0.1, 0.1, 0.3, 0.3] and [0.6, 0.5, 0.9, 0.8]", "", "n/a"]),
)


@SETTINGS
@given(text=st.one_of(COMPLETION_TEXT, st.none(), st.integers(), st.binary(max_size=50)), thinking=st.booleans())
def test_parser_never_raises_and_is_consistent(text, thinking):
    p = parse(text, thinking=thinking)
    assert isinstance(p, Parsed) and isinstance(p.answer, str)
    assert set(p.issues) <= ISSUES and p.well_formed == (not p.issues)
    assert p.invalid_boxes >= 0 and ((p.invalid_boxes > 0) == ("invalid_box" in p.issues))
    assert all(b.is_valid and all(math.isfinite(c) for c in b.coords) for b in p.boxes)
    assert (p.answer == "") == ("empty_answer" in p.issues)
    if thinking and isinstance(text, str) and "</think>" not in text:
        assert p.answer == "" and "think_missing" in p.issues  # a missing </think> is a format failure
    assert p.answer == p.answer.strip()
    assert pickle.loads(pickle.dumps(p)) == p


def _fake_scorer(key, low, high):
    """A stand-in for a model-based scorer: any value in the metric's range, from the text."""

    def scorer(refs, hyps):
        return MetricResult(per_sample={key: [low + (high - low) * ((len(h) * 7919) % 101) / 100 for h in hyps]})

    return scorer


# the model-based metrics' per-sample keys and value ranges (helper metrics' contracts)
FAKES = {"radcliq": ("radcliq_v1", -1.5, 3.5), "bertscore": ("bertscore", -1.0, 1.0),
         "bertscore_distilbert": ("bertscore_distilbert", -1.0, 1.0),
         "radgraph": ("radgraph_complete", 0.0, 1.0), "chexbert": ("chexbert_f1", 0.0, 1.0),
         "green": ("green", 0.0, 1.0), "ratescore": ("ratescore", 0.0, 1.0)}


@SETTINGS
@given(rows=st.lists(st.tuples(COMPLETIONS, st.sampled_from(["report", "grounding", "vqa", None]), SOLUTIONS,
                               st.booleans()), min_size=1, max_size=6))
def test_every_reward_is_finite_and_in_range(rows):
    completions, tasks, solutions, thinking = (list(c) for c in zip(*rows))
    with pytest.MonkeyPatch.context() as mp:
        for name, spec in FAKES.items():
            mp.setitem(METRICS, name, _fake_scorer(*spec))
        for name, reward in REWARDS.items():
            out = reward(completions, task=tasks, solution=solutions, thinking=thinking)
            assert len(out) == len(rows), name
            low, high = reward.bounds
            for value, task, think in zip(out, tasks, thinking):
                applies = think if name == "think_format" else task == reward.task
                assert (value is None) == (not applies), (name, task, value)
                if value is not None:
                    assert isinstance(value, float) and math.isfinite(value), (name, value)
                    assert low <= value <= high, (name, value, reward.bounds)
            if isinstance(reward, ReportMetric):  # the paper's floor: short answer or reference, missing </think>
                for value, c, s, think in zip(out, completions, solutions, thinking):
                    answer = parse(completion_text(c), thinking=think).answer
                    if value is not None and (len(answer) <= reward.min_chars or len((s or "").strip()) <= 5):
                        assert value == reward.floor, (name, answer, s, value)


def _soft_f1_reference(pred, ref, extra_fp=0):
    """soft_f1 as written before the plain-Python path: numpy IoU matrix, scipy Hungarian, numpy sum (the path
    soft_f1 itself takes for 8+ boxes on both sides)."""
    return _soft_f1_numpy(pred, ref, extra_fp) if pred and ref else 0.0


COORD = st.one_of(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.75, 1.0]), st.floats(0, 1))
# Inverted and flat boxes too. At most 7 boxes a side (8 on the prediction side with the duplicate), so
# soft_f1 always takes its plain-Python path: with 8+ on both sides it calls grounding._soft_f1_numpy itself,
# the reference here, and the comparison would test nothing.
BOXES = st.lists(st.builds(Box, COORD, COORD, COORD, COORD), max_size=7)


@settings(max_examples=300, deadline=None)
@given(pred=BOXES, ref=BOXES, extra=st.integers(0, 3), dup=st.booleans())
def test_soft_f1_fast_path_is_bit_identical(pred, ref, extra, dup):
    if dup and pred:
        pred = [*pred, pred[0]]  # duplicates make ties in the assignment
    value = soft_f1(pred, ref, extra_fp=extra)
    assert value == _soft_f1_reference(pred, ref, extra) and type(value) is float
    assert 0.0 <= value <= 1.0


def test_soft_f1_rejects_non_finite_boxes_on_both_paths():
    for pred in ([Box(0.1, 0.1, float("nan"), 0.2)], [Box(0.1, 0.1, float("nan"), 0.2), Box(0, 0, 1, 1)]):
        for ref in ([Box(0, 0, 1, 1)], [Box(0, 0, 1, 1), Box(0, 0, 0.5, 0.5)]):
            with pytest.raises(ValueError, match="prediction box has a non-finite coordinate"):
                soft_f1(pred, ref)
    assert np.isfinite(soft_f1([Box(0, 0, 1, 1)], [Box(0, 0, 1, 1)]))
