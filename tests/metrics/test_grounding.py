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
    dataset_average_precision,
    iou,
    mean_iou,
    says_no_abnormality,
    score_grounding,
    score_normal,
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
    with pytest.raises(ValueError, match=r"radrl.parsing.parse"):
        iou(Box(math.nan, 0, 1, 1), A)


def test_score_grounding():
    r = score_grounding([[A], [], [A, C]], [[A], [B], [A]])
    assert isinstance(r, MetricResult)
    assert set(r.aggregate) == {"soft_f1", "map50", "mean_iou", "acc50", "avg_iou_pairs", "ap50_dataset"}
    assert "ap50_dataset" not in r.per_sample  # one curve over all rows: no per-sample value
    assert r.per_sample["soft_f1"] == pytest.approx([1.0, 0.0, 2 / 3])
    assert r.aggregate["map50"] == pytest.approx((1.0 + 0.0 + 1.0) / 3)
    # RadVLM's pooled pair mean: pairs (A,A)=1, (A,A)=1, (C,A)=0 over 3 pairs
    assert r.aggregate["avg_iou_pairs"] == pytest.approx(2 / 3)
    assert "scipy" in r.versions


def test_score_grounding_length_mismatch_says_the_fix():
    with pytest.raises(ValueError, match="one box list per sample"):
        score_grounding([[A]], [])


# --- dataset-level AP@0.5 (COCO AP50 over all rows) -------------------------------------------

def _points(*steps):
    """AP of a decreasing step curve ((recall, precision), ...) read at COCO's 101 recall points
    0, 0.01, ..., 1: a point takes the precision of the first step whose recall reaches it, else 0."""
    return sum(next((p for r, p in steps if t / 100 <= r + 1e-12), 0.0) for t in range(101)) / 101


# (case, preds, refs, expected AP)
DATASET_AP = [
    # every row answered exactly: precision 1 at every recall
    ("all_hits", [[A], [B]], [[A], [B]], 1.0),
    # one hit, one miss, both first boxes (tied): they enter together, P 0.5 up to R 0.5
    ("hit_and_miss_tied", [[A], [C]], [[A], [B]], _points((0.5, 0.5))),
    # second boxes rank below all first boxes: the first boxes hit (P 1 up to R 2/3), then a hit and a miss
    ("second_boxes_later", [[A, A_HALF], [B, C]], [[A, A_HALF], [B]], _points((2 / 3, 1.0), (1.0, 0.75))),
    # a row without reference boxes: its boxes are false positives on the shared curve
    ("false_positive_row", [[A], [B]], [[A], []], _points((1.0, 0.5))),
    # a duplicate of a matched box is a false positive (one-to-one matching)
    ("duplicate", [[A, A]], [[A]], 1.0),
    # IoU exactly 0.5 is a hit (>=), as in COCOeval
    ("iou_half", [[A_HALF]], [[A]], 1.0),
    # nothing predicted: AP 0; no reference anywhere: AP 0 (undefined, reported as 0)
    ("no_predictions", [[], []], [[A], [B]], 0.0),
    ("no_references", [[A]], [[]], 0.0),
]


@pytest.mark.parametrize("case,preds,refs,expected", DATASET_AP, ids=[c[0] for c in DATASET_AP])
def test_dataset_ap_table(case, preds, refs, expected):
    assert dataset_average_precision(preds, refs) == pytest.approx(expected, abs=1e-12)


def test_dataset_ap_does_not_depend_on_row_order():
    # the four first boxes (three hits, one miss) tie and enter the curve together, so shuffling the rows
    # changes nothing; breaking the tie by row order, as COCOeval does by image id, would change the AP
    rng = random.Random(3)
    preds, refs = [[A], [C], [B], [A_HALF, B]], [[A], [B], [B], [A]]
    want = dataset_average_precision(preds, refs)
    for _ in range(10):
        order = list(range(len(preds)))
        rng.shuffle(order)
        assert dataset_average_precision([preds[i] for i in order], [refs[i] for i in order]) == want


def _coco_ap50(preds, refs, scores):
    """pycocotools' COCOeval AP at IoU 0.5: each row an image, one category, no 100-box cap."""
    import contextlib
    import io

    import numpy as np
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = {"images": [{"id": i + 1} for i in range(len(refs))], "categories": [{"id": 1, "name": "target"}],
          "annotations": []}
    for i, ref in enumerate(refs):
        for b in ref:
            w, h = b.x2 - b.x1, b.y2 - b.y1
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i + 1, "category_id": 1,
                                      "bbox": [b.x1, b.y1, w, h], "area": w * h, "iscrowd": 0})
    dets = [{"image_id": i + 1, "category_id": 1, "bbox": [b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1], "score": s}
            for i, (pred, row) in enumerate(zip(preds, scores)) for b, s in zip(pred, row)]
    if not dets:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # COCO prints progress
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        evaluator = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        evaluator.params.iouThrs = np.array([0.5])
        evaluator.params.maxDets = [1000]
        evaluator.evaluate()
        evaluator.accumulate()
    precision = evaluator.eval["precision"][0, :, 0, 0, -1]  # (101 recall points,) area "all", last maxDets
    return float(np.mean(precision))


def _random_box(rng):
    x, y = rng.random() * 0.8, rng.random() * 0.8
    return Box(x, y, x + 0.02 + rng.random() * 0.2, y + 0.02 + rng.random() * 0.2)


def _random_rows(rng, n_rows):
    """Rows of 0-3 reference boxes; predictions jitter most of them (hits and near misses) plus strays."""
    refs = [[_random_box(rng) for _ in range(rng.randint(0, 3))] for _ in range(n_rows)]
    preds = []
    for ref in refs:
        jittered = [Box(*(c + rng.gauss(0, 0.03) for c in b.coords)) for b in ref if rng.random() < 0.8]
        strays = [_random_box(rng) for _ in range(rng.randint(0, 2))]
        row = [b for b in jittered if b.x1 < b.x2 and b.y1 < b.y2] + strays
        rng.shuffle(row)
        preds.append(row)
    return preds, refs


def test_dataset_ap_equals_pycocotools_on_random_cases():
    # 300 random test sets with distinct random scores: our AP equals COCOeval's exactly (same matching,
    # same 101-point interpolation, same eps); with ties (generation-order scores) they differ on purpose
    pytest.importorskip("pycocotools", reason="pycocotools is the reference (test extra)")
    rng = random.Random(0)
    checked = 0
    for _ in range(300):
        preds, refs = _random_rows(rng, rng.randint(1, 12))
        if not any(refs):
            continue
        scores = [[rng.random() for _ in row] for row in preds]
        assert dataset_average_precision(preds, refs, 0.5, scores) == _coco_ap50(preds, refs, scores)
        checked += 1
    assert checked > 250


def test_dataset_ap_generation_order_equals_pycocotools_without_ties():
    # the default scores 1/k (k-th box of an answer) tie only across rows: on one row they are distinct,
    # and the result must equal COCOeval given the scores 1, 1/2, 1/3, ...
    pytest.importorskip("pycocotools", reason="pycocotools is the reference (test extra)")
    rng = random.Random(1)
    for _ in range(50):
        preds, refs = _random_rows(rng, 1)
        if refs[0]:
            scores = [[1 / (k + 1) for k in range(len(preds[0]))]]
            assert dataset_average_precision(preds, refs) == _coco_ap50(preds, refs, scores)


def test_dataset_ap_errors_say_the_fix():
    with pytest.raises(ValueError, match="one box list per row"):
        dataset_average_precision([[A]], [])
    with pytest.raises(ValueError, match="one score per predicted box"):
        dataset_average_precision([[A, B]], [[A]], scores=[[1.0]])


# --- images without findings: normal_correct, false_positive ---------------------------------

# (case, answer, says no abnormality)
NORMAL_ANSWERS = [
    ("reference", "No abnormalities.", True),
    ("reference_lower", "no abnormality detected", True),
    ("no_finding_label", "No Finding", True),
    ("no_acute", "No acute cardiopulmonary abnormality.", True),
    ("no_evidence", "There is no evidence of acute disease.", True),
    ("no_process", "No acute cardiopulmonary process.", True),
    ("normal_first", "Normal chest X-ray.", True),
    ("normal_study", "This is a normal study.", True),
    ("appears_normal", "The radiograph appears normal.", True),
    ("unremarkable", "Unremarkable chest radiograph.", True),
    ("wnl", "Cardiomediastinal silhouette within normal limits.", True),
    ("nothing_abnormal", "Nothing abnormal is seen.", True),
    ("empty_json", "[]", True),  # Qwen3-VL's native "no boxes"
    ("empty_json_fenced", "```json\n[]\n```", True),
    # a finding first, "no other ..." after it: not a normal answer
    ("other", "Cardiomegaly. No other abnormalities.", False),
    ("further", "Small nodule; no further findings.", False),
    # only the first sentence counts
    ("otherwise", "Opacity in the right base; otherwise unremarkable.", False),
    # "normal" of one structure, "abnormal", "not normal"
    ("structure_normal", "Heart size is normal.", False),
    ("abnormal", "Abnormal opacity in the left lung.", False),
    ("not_normal", "The chest X-ray is not normal.", False),
    # a finding without a box, and nothing at all
    ("finding", "Cardiomegaly.", False),
    ("empty", "", False),
]


@pytest.mark.parametrize("case,answer,expected", NORMAL_ANSWERS, ids=[c[0] for c in NORMAL_ANSWERS])
def test_says_no_abnormality(case, answer, expected):
    assert says_no_abnormality(answer) is expected


def test_score_normal():
    answers = ["No abnormalities.",            # correct
               "No abnormalities. [0.1, 0.1, 0.2, 0.2]",  # says normal but draws a box: false positive
               "No abnormalities.",            # an invalid box the parser dropped: still a false positive
               "Cardiomegaly."]                # no box, not normal: neither
    preds = [[], [Box(0.1, 0.1, 0.2, 0.2)], [], []]
    r = score_normal(answers, preds, invalid=[0, 0, 1, 0])
    assert r.per_sample == {"normal_correct": [1.0, 0.0, 0.0, 0.0], "false_positive": [0.0, 1.0, 1.0, 0.0]}
    assert r.aggregate == {"normal_correct": 0.25, "false_positive_rate": 0.5}
    with pytest.raises(ValueError, match="one box list per answer"):
        score_normal(["x"], [])


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
    with pytest.raises(ValueError, match=r"radrl.parsing.parse"):
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
        got = [[*b.coords, b.label] for b in _fuse(case)]
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
        assert [[*b.coords, b.label] for b in _fuse(case)] == want

