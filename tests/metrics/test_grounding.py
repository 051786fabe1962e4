"""Grounding metrics: the paper's soft F1, RadVLM's per-sample AP, IoU and accuracy, and box fusion."""

import importlib.util
import itertools
import json
import math
import random
import warnings
from pathlib import Path

import pytest

from radrl.data.boxes import Box
from radrl.metrics import MetricResult
from radrl.metrics.grounding import (
    accuracy_at,
    average_precision,
    iou,
    mean_iou,
    score_grounding,
    soft_f1,
    weighted_box_fusion,
)

FIXTURES = Path(__file__).parent / "fixtures"

A = Box(0.0, 0.0, 0.5, 0.5)
B = Box(0.5, 0.5, 1.0, 1.0)
C = Box(0.0, 0.5, 0.5, 1.0)
A_HALF = Box(0.0, 0.0, 0.5, 0.25)  # half of A: IoU 0.5 with A
PAPER_PRED = Box(0.35, 0.51, 0.75, 0.64)
PAPER_REF = Box(0.38, 0.47, 0.76, 0.62)


def test_paper_worked_example():
    # paper.md: IoU about 0.60. One box each side, so P = 1 and R = IoU: F1 = 2 IoU / (1 + IoU) = 0.747.
    # (paper.md's "reward about 0.60" is the IoU; its formula and the authors' code give 0.75.)
    assert iou(PAPER_PRED, PAPER_REF) == pytest.approx(0.596, abs=1e-3)
    assert soft_f1([PAPER_PRED], [PAPER_REF]) == pytest.approx(2 * 0.5959 / 1.5959, abs=1e-3)


# (case, pred, ref, soft F1, AP@0.5, mean IoU, Acc@0.5)
CASES = [
    # perfect single match
    ("perfect", [A], [A], 1.0, 1.0, 1.0, 1.0),
    # perfect, two boxes
    ("perfect_two", [A, B], [A, B], 1.0, 1.0, 1.0, 1.0),
    # disjoint boxes score nothing anywhere
    ("disjoint", [A], [B], 0.0, 0.0, 0.0, 0.0),
    # no prediction
    ("empty_pred", [], [A], 0.0, 0.0, 0.0, 0.0),
    # no reference (the paper: 0 when either side is empty)
    ("empty_ref", [A], [], 0.0, 0.0, 0.0, 0.0),
    # both empty
    ("both_empty", [], [], 0.0, 0.0, 0.0, 0.0),
    # IoU exactly 0.5: soft F1 = 2*0.5/1.5; counts as a hit at the 0.5 threshold
    ("half_overlap", [A_HALF], [A], 2 / 3, 1.0, 0.5, 1.0),
    # an extra wrong box: TP=1, FP=1 -> P=0.5, R=1, F1=2/3; AP hit then miss = 1.0; not one-to-one
    ("extra_pred", [A, C], [A], 2 / 3, 1.0, 1.0, 0.0),
    # the miss first: AP falls to 0.5 (order of writing matters, as in RadVLM)
    ("extra_pred_first", [C, A], [A], 2 / 3, 0.5, 1.0, 0.0),
    # one of two references found: P=1, R=0.5 -> F1=2/3; AP 0.5
    ("missed_ref", [A], [A, B], 2 / 3, 0.5, 0.5, 0.0),
    # a duplicate: Hungarian matches it once; the copy is a FP; greedy AP too
    ("duplicate", [A, A], [A], 2 / 3, 1.0, 1.0, 0.0),
    # RadVLM greedy AP: the second A maps to its best reference A, already taken -> FP even though B is free
    # (Hungarian soft F1: TP=2, FP=1 -> 0.8; AP: hit, miss, hit -> 0.5 * 1 + 0.5 * 2/3)
    ("greedy_taken", [A, A, B], [A, B], 0.8, 0.5 + 0.5 * 2 / 3, 1.0, 0.0),
]


@pytest.mark.parametrize("case,pred,ref,f1,ap,miou,acc", CASES, ids=[c[0] for c in CASES])
def test_table(case, pred, ref, f1, ap, miou, acc):
    assert soft_f1(pred, ref) == pytest.approx(f1)
    assert average_precision(pred, ref, 0.5) == pytest.approx(ap)
    assert mean_iou(pred, ref) == pytest.approx(miou)
    assert accuracy_at(pred, ref, 0.5) == pytest.approx(acc)


def test_soft_f1_is_permutation_invariant():
    pred, ref = [A_HALF, B, C], [A, B]
    values = {round(soft_f1(list(p), list(r)), 12)
              for p in itertools.permutations(pred) for r in itertools.permutations(ref)}
    assert len(values) == 1


def test_soft_f1_uses_the_best_one_to_one_matching():
    # greedy would pair the big box with the first reference; Hungarian finds the better total
    big = Box(0.0, 0.0, 1.0, 0.5)
    left, right = Box(0.0, 0.0, 0.5, 0.5), Box(0.5, 0.0, 1.0, 0.5)
    assert soft_f1([big, left], [left, right]) == pytest.approx(soft_f1([left, big], [left, right]))
    assert soft_f1([big, left], [left, right]) == pytest.approx(6 / 7)  # TP = 1 + 0.5, FP = 0: P = 1, R = 0.75


def test_extra_fp_counts_dropped_boxes():
    # an invalid box the parser dropped is a false positive, as in the paper's code (IoU 0)
    assert soft_f1([A], [A], extra_fp=1) == pytest.approx(2 / 3)


def test_degenerate_and_nan_boxes():
    assert iou(Box(0.2, 0.2, 0.2, 0.4), A) == 0.0  # no area
    with pytest.raises(ValueError, match="radrl.parsing.parse"):
        iou(Box(math.nan, 0, 1, 1), A)


def test_score_grounding():
    r = score_grounding([[A], [], [A, C]], [[A], [B], [A]])
    assert isinstance(r, MetricResult)
    assert set(r.aggregate) == {"soft_f1", "map50", "mean_iou", "acc50", "avg_iou_pairs"}
    assert r.per_sample["soft_f1"] == pytest.approx([1.0, 0.0, 2 / 3])
    assert r.aggregate["map50"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    # RadVLM's pooled pair mean: pairs (A,A)=1, (A,A)=1, (C,A)=0 over 3 pairs
    assert r.aggregate["avg_iou_pairs"] == pytest.approx(2 / 3)
    assert "scipy" in r.versions


def test_score_grounding_length_mismatch_says_the_fix():
    with pytest.raises(ValueError, match="one box list per sample"):
        score_grounding([[A]], [])


# --- weighted box fusion (VinDr-CXR: several readers' boxes -> one reference set) --------

def _corners(boxes):
    return [(b.label, tuple(round(v, 6) for v in b.coords)) for b in boxes]


N1, N2 = Box(0.1, 0.1, 0.5, 0.5, "nodule"), Box(0.3, 0.3, 0.7, 0.7, "nodule")  # IoU 0.143
FAR = Box(0.6, 0.0, 0.9, 0.2, "nodule")  # overlaps neither

# (case, readers, keyword arguments, fused boxes as (label, corners), in output order)
WBF_CASES = [
    # one reader, one box: unchanged
    ("single", [[N1]], {}, [("nodule", (0.1, 0.1, 0.5, 0.5))]),
    # two readers agree (IoU 0.143 > 0.1): one box, the plain mean (all scores 1)
    ("two_readers_merge", [[N1], [N2]], {}, [("nodule", (0.2, 0.2, 0.6, 0.6))]),
    # same boxes, stricter threshold (VinDr uses 0.1; ensemble-boxes' default is 0.55): kept apart
    # (equal confidences come out in ensemble-boxes' order, here the input order)
    ("threshold", [[N1], [N2]], {"iou_threshold": 0.3},
     [("nodule", (0.1, 0.1, 0.5, 0.5)), ("nodule", (0.3, 0.3, 0.7, 0.7))]),
    # different findings never merge, however much they overlap
    ("labels_apart", [[N1], [Box(*N1.coords, label="mass")]], {},
     [("mass", (0.1, 0.1, 0.5, 0.5)), ("nodule", (0.1, 0.1, 0.5, 0.5))]),
    # a box more readers agree on comes first; the lone box after it
    ("agreement_first", [[FAR, N1], [N2], []], {},
     [("nodule", (0.2, 0.2, 0.6, 0.6)), ("nodule", (0.6, 0.0, 0.9, 0.2))]),
    # scores weight the corners: 3:1 -> 0.1 * 0.75 + 0.3 * 0.25 = 0.15
    ("scores_weight", [[N1], [N2]], {"scores": [[0.9], [0.3]]}, [("nodule", (0.15, 0.15, 0.55, 0.55))]),
    # reader weights act like scores
    ("reader_weights", [[N1], [N2]], {"weights": [3, 1]}, [("nodule", (0.15, 0.15, 0.55, 0.55))]),
    # a box scoring below skip_threshold is dropped before fusing
    ("skip", [[N1], [N2]], {"scores": [[0.9], [0.1]], "skip_threshold": 0.2}, [("nodule", (0.1, 0.1, 0.5, 0.5))]),
    # no readers, or readers without boxes: nothing
    ("empty", [], {}, []),
    ("empty_readers", [[], []], {}, []),
    # as ensemble-boxes: inverted corners are swapped, coordinates clamped to 0-1, flat boxes dropped
    ("repair", [[Box(0.5, 0.5, 0.1, 0.1, "a"), Box(-0.2, 0.5, 0.3, 1.4, "b"), Box(0.2, 0.2, 0.2, 0.6, "c")]], {},
     [("b", (0.0, 0.5, 0.3, 1.0)), ("a", (0.1, 0.1, 0.5, 0.5))]),
]


@pytest.mark.parametrize("case,readers,kwargs,expected", WBF_CASES, ids=[c[0] for c in WBF_CASES])
def test_weighted_box_fusion_table(case, readers, kwargs, expected):
    assert _corners(weighted_box_fusion(readers, **kwargs)) == expected


def test_weighted_box_fusion_single_list_equals_readers():
    # RadVLM passes all readers' boxes as one list with score 1; that fuses the same corners
    readers = [[N1, FAR], [N2], [Box(0.62, 0.02, 0.88, 0.22, "nodule")]]
    flat = [b for r in readers for b in r]
    assert sorted(_corners(weighted_box_fusion(readers))) == sorted(_corners(weighted_box_fusion([flat])))


def test_weighted_box_fusion_errors_say_the_fix():
    with pytest.raises(ValueError, match="one per reader"):
        weighted_box_fusion([[N1], [N2]], weights=[1])
    with pytest.raises(ValueError, match="one score per box"):
        weighted_box_fusion([[N1], [N2]], scores=[[1.0], []])
    with pytest.raises(ValueError, match="scores must be >= 0"):
        weighted_box_fusion([[N1]], scores=[[math.nan]])
    with pytest.raises(ValueError, match="radrl.parsing.parse"):
        weighted_box_fusion([[Box(math.nan, 0, 1, 1, "x")]])


def _fixture_cases():
    return json.loads((FIXTURES / "wbf_ensemble_boxes.json").read_text())["cases"]


def _fuse(case):
    readers = [[Box(*b[:4], label=b[4]) for b in r] for r in case["readers"]]
    return weighted_box_fusion(readers, case["iou_threshold"], case["skip_threshold"],
                               scores=case["scores"], weights=case["weights"])


def test_weighted_box_fusion_equals_ensemble_boxes_snapshot():
    # 200 random multi-reader cases (jittered shared findings, strays, invalid boxes; scores, weights and
    # thresholds varied) fused by ensemble-boxes 1.0.9 (fixtures/make_wbf_cases.py): same boxes, same order,
    # bit-identical corners (both average merged boxes in float32)
    for i, case in enumerate(_fixture_cases()):
        got = [list(b.coords) + [b.label] for b in _fuse(case)]
        assert got == case["fused"], f"case {i}"


def test_weighted_box_fusion_equals_ensemble_boxes_live():
    # fresh random cases against the installed reference (only when ensemble-boxes is installed)
    if importlib.util.find_spec("ensemble_boxes") is None:
        pytest.skip("ensemble-boxes not installed (a verification tool, not a dependency)")
    spec = importlib.util.spec_from_file_location("make_wbf_cases", FIXTURES / "make_wbf_cases.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    reference, rng = make.reference_wbf(), random.Random(7)
    for _ in range(300):
        case = make.random_case(rng)
        scores = case["scores"] or [[1.0] * len(r) for r in case["readers"]]
        with warnings.catch_warnings():  # ensemble-boxes warns about the invalid boxes it repairs or drops
            warnings.simplefilter("ignore")
            boxes, _, labels = reference([[b[:4] for b in r] for r in case["readers"]], scores,
                                         [[make.LABELS.index(b[4]) for b in r] for r in case["readers"]],
                                         weights=case["weights"], iou_thr=case["iou_threshold"],
                                         skip_box_thr=case["skip_threshold"])
        want = [[float(v) for v in box] + [make.LABELS[int(lab)]] for box, lab in zip(boxes, labels)]
        assert [list(b.coords) + [b.label] for b in _fuse(case)] == want

