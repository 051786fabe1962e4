"""Grounding metrics on boxes: the paper's soft-F1 reward and RadVLM's evaluation.

All boxes are ``Box`` in the project's 0-1 convention; take them from
``radrl.parsing.parse`` (which drops invalid ones) so that training and evaluation read
a completion the same way.

* ``soft_f1`` is the RL reward (Hungarian matching, IoU-weighted F1), exactly as the
  paper defines it; it is smooth in box quality and penalises extra boxes.
  ``soft_f1_centre`` adds credit for centre distance, so that boxes which miss
  (IoU 0) still score by how near they are (a reward variant; evaluation reports ``soft_f1``).
* ``average_precision`` and ``mean_iou`` are what the papers' tables report (mAP@0.5 per
  sample, then averaged); ``accuracy_at`` is the stricter all-or-nothing view;
  ``dataset_average_precision`` is the standard dataset-level AP@0.5 (COCO AP50, every box
  of every row on one precision-recall curve).
* ``score_normal`` scores images without findings: does the answer say so, or draw a box
  (a false positive)?
* ``weighted_box_fusion`` merges several readers' boxes into one reference set (the
  VinDr-CXR protocol, IoU threshold 0.1), as ``ensemble-boxes`` does; it lives in
  ``radrl.data.boxes`` (the VinDr-CXR adapter uses it) and is re-exported here.

>>> from radrl.data.boxes import Box
>>> ref = [Box(0.38, 0.47, 0.76, 0.62)]
>>> round(soft_f1([Box(0.35, 0.51, 0.75, 0.64)], ref), 2)
0.75
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import numpy as np

from radrl.data.boxes import Box, weighted_box_fusion  # re-exported: reader fusion lives with the boxes
from radrl.metrics.base import MetricResult, MetricSpec, package_version

__all__ = ["accuracy_at", "average_precision", "dataset_average_precision", "iou", "iou_matrix", "mean_iou",
           "says_no_abnormality", "score_grounding", "score_normal", "soft_f1", "soft_f1_centre",
           "weighted_box_fusion"]


# Keys of score_grounding, and the normal-image ("detection") keys radrl.eval.score adds.
SPECS = (
    MetricSpec("soft_f1", "soft-F1", description="the paper's grounding reward: Hungarian matching on 1-IoU, "
               "IoU-weighted F1; mean over rows"),
    MetricSpec("map50", "mAP@0.5 (per row)", description="RadVLM's evaluation: AP@0.5 per row (greedy best-IoU "
               "matching, VOC all-points), mean over rows"),
    MetricSpec("ap50_dataset", "AP@0.5 (dataset)", description="COCO-style AP@0.5 with every predicted box of "
               "every row ranked together (k-th box of an answer scores 1/k)"),
    MetricSpec("mean_iou", "mean IoU", description="per reference box its best IoU, mean"),
    MetricSpec("acc50", "acc@0.5", description="share of rows whose boxes all match one-to-one at IoU >= 0.5"),
    MetricSpec("avg_iou_pairs", "avg IoU (all pairs)", description="RadVLM's average IoU over every "
               "prediction-reference pair"),
    MetricSpec("normal_correct", "normal answered normal", description="share of images without findings "
               "answered \"No abnormalities\""),
    MetricSpec("false_positive_rate", "false-positive rate (lower better)", higher_is_better=False,
               description="share of images without findings given at least one predicted box"),
    MetricSpec("false_positive", "false positive (lower better)", higher_is_better=False,
               description="per image without findings: 1 when the answer gives any box (mean: false_positive_rate)"),
)


def iou(a: Box, b: Box) -> float:
    """Intersection over union; 0 for boxes without area (inverted or flat)."""
    return float(iou_matrix([a], [b])[0, 0])


def iou_matrix(pred: Sequence[Box], ref: Sequence[Box]) -> np.ndarray:
    """IoU of every prediction with every reference, shape (len(pred), len(ref))."""
    p = _coords(pred, "prediction")[:, None, :]  # (P, 1, 4)
    r = _coords(ref, "reference")[None, :, :]  # (1, R, 4)
    w = np.clip(np.minimum(p[..., 2], r[..., 2]) - np.maximum(p[..., 0], r[..., 0]), 0, None)
    h = np.clip(np.minimum(p[..., 3], r[..., 3]) - np.maximum(p[..., 1], r[..., 1]), 0, None)
    inter = w * h  # (P, R)

    def area(c: np.ndarray) -> np.ndarray:
        return np.clip(c[..., 2] - c[..., 0], 0, None) * np.clip(c[..., 3] - c[..., 1], 0, None)

    union = area(p) + area(r) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _coords(boxes: Sequence[Box], side: str) -> np.ndarray:
    c = np.array([b.coords for b in boxes], dtype=float).reshape(-1, 4)
    if not np.isfinite(c).all():
        raise ValueError(f"a {side} box has a non-finite coordinate; read boxes with radrl.parsing.parse, "
                         "which drops invalid ones")
    return c


def soft_f1(pred: Sequence[Box], ref: Sequence[Box], extra_fp: int = 0) -> float:
    """The paper's grounding reward: IoU-weighted F1 after one-to-one Hungarian matching.

    Match predictions to references minimising total ``1 - IoU``; TP mass = sum of IoU
    over matched pairs with IoU > 0; FP = #pred - #those pairs (+ ``extra_fp``, e.g. the
    invalid boxes the parser dropped, which the paper's code scores as IoU-0 boxes);
    recall = TP / #ref, precision = TP / (TP + FP), F1 = 2PR / (P + R); 0 when either
    side has no box.

    Worked example (paper): IoU([0.35, 0.51, 0.75, 0.64], [0.38, 0.47, 0.76, 0.62]) =
    0.596; one prediction, one reference: P = 1, R = 0.596, so F1 = 0.747. (paper.md
    says "reward about 0.60", which is the IoU; its own formula and the authors'
    ``soft_f1_hungarian`` both give 0.75.)
    """
    if not pred or not ref:
        return 0.0
    if min(len(pred), len(ref)) >= _SUM_IN_ORDER:
        return _soft_f1_numpy(pred, ref, extra_fp)
    # Plain Python below: numpy's per-call overhead is most of the cost for a few boxes (issue 3 asks
    # >= 50,000 rewards/s on one core). Bit-identical to _soft_f1_numpy: the IoUs are the same float64
    # operations in the same order, the assignment is scipy's on the same costs (or, with one row or
    # column, its first lowest-cost pair), and fewer than 8 matched IoUs are summed by numpy in order.
    a = [_finite(b.coords, "prediction") for b in pred]
    b = [_finite(c.coords, "reference") for c in ref]
    ious = [[_iou_floats(p, r) for r in b] for p in a]  # (P, R)
    if len(a) == 1 or len(b) == 1:
        flat = [v for row in ious for v in row]
        costs = [1.0 - v for v in flat]
        matched = [flat[min(range(len(costs)), key=costs.__getitem__)]]  # first minimum, as scipy picks
    else:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(np.array([[1.0 - v for v in row] for row in ious]))
        matched = [ious[i][j] for i, j in zip(rows.tolist(), cols.tolist(), strict=True)]  # rows ascending
    hits = [v for v in matched if v > 0]
    tp = sum(hits)
    if tp == 0:
        return 0.0
    fp = len(pred) - len(hits) + max(0, extra_fp)
    precision, recall = tp / (tp + fp), tp / len(ref)
    return 2 * precision * recall / (precision + recall)


# numpy sums fewer than 8 values in order, more with 8 partial sums: the Python path covers the former
_SUM_IN_ORDER = 8


def _soft_f1_numpy(pred: Sequence[Box], ref: Sequence[Box], extra_fp: int) -> float:
    """``soft_f1`` on numpy arrays, for many boxes on both sides."""
    return _matched_f1(iou_matrix(pred, ref), extra_fp)


def _matched_f1(scores: np.ndarray, extra_fp: int) -> float:
    """The soft F1 of a (predictions x references) pair-score matrix: Hungarian matching on ``1 - score``,
    TP mass = the matched scores above 0, FP = unmatched predictions + ``extra_fp`` (``soft_f1`` with IoU as
    the score, ``soft_f1_centre`` with its mix)."""
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(1.0 - scores)
    matched = scores[rows, cols]
    hits = matched > 0
    tp = float(matched[hits].sum())
    if tp == 0:
        return 0.0
    fp = scores.shape[0] - int(hits.sum()) + max(0, extra_fp)
    precision, recall = tp / (tp + fp), tp / scores.shape[1]
    return 2 * precision * recall / (precision + recall)


def soft_f1_centre(pred: Sequence[Box], ref: Sequence[Box], extra_fp: int = 0, centre_weight: float = 0.5) -> float:
    """``soft_f1`` in which each matched pair also earns credit for how near its centres are.

    Why: with IoU alone every box that misses its target scores 0, however near it is. Small lesions
    (nodules, a pneumothorax apex) are missed by every rollout of a group early in training, so the
    whole group scores 0, its advantages are 0 and GRPO learns nothing from it. Here a matched pair
    scores ``s = (1 - w) * IoU + w * (1 - d / sqrt(2))`` with ``w = centre_weight`` and ``d`` the
    distance between the two box centres (0-1 coordinates, so ``d <= sqrt(2)`` and ``s`` is in
    [0, 1]): a miss still scores more the nearer it lands, and a box on the wrong side of the chest
    (left/right, about 0.5 apart) scores clearly less than one beside the lesion. The plain centre
    distance is used rather than DIoU's distance over the enclosing box's diagonal because DIoU's
    term flattens out for far boxes (the enclosing box grows with the distance), exactly where a
    missing policy needs the pull.

    Everything else is ``soft_f1``'s: one-to-one Hungarian matching (on ``1 - s``, so a missing box
    is matched to the nearest reference, not an arbitrary one), TP mass = sum of ``s`` over matched
    pairs with ``s > 0``, FP = #pred - #those pairs + ``extra_fp``, recall = TP / #ref, precision =
    TP / (TP + FP), F1 = 2PR / (P + R); 0 when either side has no box. With ``centre_weight=0`` it
    is ``soft_f1`` exactly. Range [0, 1].

    >>> ref = [Box(0.40, 0.40, 0.45, 0.45)]  # a small lesion
    >>> near, far = Box(0.46, 0.40, 0.51, 0.45), Box(0.80, 0.40, 0.85, 0.45)  # both miss: IoU 0
    >>> soft_f1([near], ref), round(soft_f1_centre([near], ref), 3), round(soft_f1_centre([far], ref), 3)
    (0.0, 0.648, 0.528)
    """
    if not 0 <= centre_weight <= 1:
        raise ValueError(f"centre_weight must be in [0, 1], got {centre_weight}; 0 is plain soft_f1, "
                         "0.5 weighs IoU and centre distance equally")
    if not pred or not ref:
        return 0.0
    m = iou_matrix(pred, ref)  # (P, R); also rejects non-finite boxes
    if centre_weight:
        p, r = _coords(pred, "prediction"), _coords(ref, "reference")
        pc = np.stack([(p[:, 0] + p[:, 2]) / 2, (p[:, 1] + p[:, 3]) / 2], axis=1)[:, None, :]  # (P, 1, 2)
        rc = np.stack([(r[:, 0] + r[:, 2]) / 2, (r[:, 1] + r[:, 3]) / 2], axis=1)[None, :, :]  # (1, R, 2)
        near = np.clip(1.0 - np.sqrt(((pc - rc) ** 2).sum(axis=-1)) / math.sqrt(2.0), 0.0, 1.0)
        m = (1.0 - centre_weight) * m + centre_weight * near
    return _matched_f1(m, extra_fp)


def _finite(c: tuple[float, float, float, float], side: str) -> tuple[float, float, float, float]:
    if not all(math.isfinite(v) for v in c):
        raise ValueError(f"a {side} box has a non-finite coordinate; read boxes with radrl.parsing.parse, "
                         "which drops invalid ones")
    return c


def _iou_floats(p: tuple[float, float, float, float], r: tuple[float, float, float, float]) -> float:
    """``iou_matrix`` for one pair, operation for operation (clip at 0 = max with 0.0)."""
    w = max(min(p[2], r[2]) - max(p[0], r[0]), 0.0)
    h = max(min(p[3], r[3]) - max(p[1], r[1]), 0.0)
    inter = w * h
    union = max(p[2] - p[0], 0.0) * max(p[3] - p[1], 0.0) + max(r[2] - r[0], 0.0) * max(r[3] - r[1], 0.0) - inter
    return inter / union if union > 0 else 0.0


def average_precision(pred: Sequence[Box], ref: Sequence[Box], iou_threshold: float = 0.5) -> float:
    """Per-sample AP exactly as RadVLM's ``evaluate_boxes`` computes it (mAP = its mean).

    Predictions are taken in the order written (a VLM gives no confidences). Each one
    is matched to the reference with which it has the highest IoU (the first on ties):
    a true positive when that IoU >= ``iou_threshold`` and that reference is not yet
    matched, otherwise a false positive (even if another reference were free).
    Cumulative precision / recall over the predictions give AP as the area under the
    interpolated precision-recall curve (VOC all-points: sentinels recall 0 and 1 with
    precision 0, precision made monotonically decreasing, summed over recall steps).
    0 when either side has no box.

    >>> from radrl.data.boxes import Box
    >>> a, b = Box(0, 0, .5, .5), Box(.5, .5, 1, 1)
    >>> average_precision([a, Box(0, .5, .5, 1), b], [a, b])  # hit, miss, hit
    0.8333333333333333
    """
    if not pred or not ref:
        return 0.0
    m = iou_matrix(pred, ref)
    best = m.argmax(axis=1)
    tp = np.zeros(len(pred))
    matched: set[int] = set()
    for i, j in enumerate(best):
        if m[i, j] >= iou_threshold and j not in matched:
            tp[i] = 1.0
            matched.add(int(j))
    tp_cum = np.cumsum(tp)
    recall = np.concatenate(([0.0], tp_cum / len(ref), [1.0]))
    precision = np.concatenate(([0.0], tp_cum / np.arange(1, len(pred) + 1), [0.0]))
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.where(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[steps + 1] - recall[steps]) * precision[steps + 1]))


def dataset_average_precision(preds: Sequence[Sequence[Box]], refs: Sequence[Sequence[Box]],
                              iou_threshold: float = 0.5, scores: Sequence[Sequence[float]] | None = None) -> float:
    """Dataset-level AP at ``iou_threshold``: every predicted box of every row ranked together (COCO AP50).

    The standard detection AP, next to RadVLM's per-sample ``average_precision``: one
    precision-recall curve over the whole test set, so a model that answers easy rows with
    one good box and hard rows with many bad ones is not averaged row by row. As COCOeval
    (pycocotools) computes it with ``iouThrs=[iou_threshold]``, area "all", one category:

    * each row is a COCO image and its reference boxes the ground truth; a prediction is
      matched only within its own row (a grounding row asks for one target, so rows of one
      image are separate queries);
    * class-agnostic: a grounding row's request names its target, so every box of a row
      answers that target; no per-finding-class averaging (phrase rows have no classes);
    * within a row, predictions in decreasing score each take the unmatched reference of
      highest IoU >= the threshold (COCO's greedy matching; the last of equal IoUs);
    * all predictions sorted by score give cumulative precision and recall; precision is
      made monotonically decreasing and read at the 101 recall points 0, 0.01, ..., 1
      (0 beyond the highest recall); AP is their mean.

    VLMs give no confidences: by default the k-th box of an answer scores ``1 / k`` (its
    generation order), so the curve's operating points are "the first k boxes of every
    answer", k = 1, 2, ... ``scores`` (one list per row) overrides this. Where scores tie
    (all first boxes, all second boxes...) the tied predictions enter the curve together:
    precision and recall are taken only after each group of equal scores, so the number
    does not depend on the order of the rows (COCOeval instead breaks ties by image id).
    With distinct scores it equals COCOeval exactly (the tests check this on random cases),
    except that COCOeval keeps at most ``maxDets`` (100) boxes per image and this keeps all.
    Invalid boxes (dropped by the parser) are not boxes here, as in ``average_precision``.
    0 when no row has a reference box.

    >>> a, b = Box(0, 0, .5, .5), Box(.5, .5, 1, 1)
    >>> dataset_average_precision([[a], [Box(0, .5, .5, 1)]], [[a], [b]])  # one hit, one miss: P 0.5 at R 0.5
    0.2524752475247525
    """
    if len(preds) != len(refs):
        raise ValueError(f"got {len(preds)} predictions for {len(refs)} references; pass one box list per row")
    if scores is not None and (len(scores) != len(preds) or any(len(s) != len(p) for s, p in zip(scores, preds))):
        raise ValueError("scores must hold one list per row with one score per predicted box")
    n_ref = sum(len(r) for r in refs)
    if n_ref == 0:
        return 0.0
    all_scores: list[float] = []
    hits: list[bool] = []
    for row, (pred, ref) in enumerate(zip(preds, refs)):
        row_scores = [1.0 / (k + 1) for k in range(len(pred))] if scores is None else [float(s) for s in scores[row]]
        order = np.argsort(-np.asarray(row_scores, dtype=float), kind="mergesort")  # COCO's order, ties stable
        m = iou_matrix([pred[i] for i in order], ref) if pred and ref else np.zeros((len(pred), 0))  # (P, R)
        taken = [False] * len(ref)
        for d in range(len(order)):
            best, best_iou = -1, min(iou_threshold, 1 - 1e-10)
            for g in range(len(ref)):
                if not taken[g] and m[d, g] >= best_iou:
                    best, best_iou = g, m[d, g]
            if best >= 0:
                taken[best] = True
            hits.append(best >= 0)
            all_scores.append(row_scores[order[d]])
    if not hits:
        return 0.0
    s = np.asarray(all_scores, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    tp = np.asarray(hits, dtype=bool)[order]
    tp_sum = np.cumsum(tp, dtype=float)
    fp_sum = np.cumsum(~tp, dtype=float)
    last = np.append(s[order][1:] != s[order][:-1], True)  # the end of each group of equal scores
    tp_sum, fp_sum = tp_sum[last], fp_sum[last]
    recall = tp_sum / n_ref
    precision = tp_sum / (fp_sum + tp_sum + np.spacing(1))  # COCOeval's expression, eps included
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    at = np.searchsorted(recall, _RECALL_POINTS, side="left")
    q = np.zeros(len(_RECALL_POINTS))
    q[at < len(precision)] = precision[at[at < len(precision)]]
    return float(np.mean(q))


# COCOeval's recall thresholds, built the same way so searchsorted sees the same floats
_RECALL_POINTS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)


def mean_iou(pred: Sequence[Box], ref: Sequence[Box]) -> float:
    """For each reference, its best IoU with any prediction, averaged over references.

    It asks "how well is each target covered" and ignores extra predictions (soft F1
    and AP punish those). 0 when either side has no box. With one box on each side it
    equals RadVLM's ``avg_iou``; for several boxes RadVLM averages over all
    prediction-reference pairs, reported here as the aggregate ``avg_iou_pairs``.
    """
    if not pred or not ref:
        return 0.0
    return float(iou_matrix(pred, ref).max(axis=0).mean())


def accuracy_at(pred: Sequence[Box], ref: Sequence[Box], threshold: float = 0.5) -> float:
    """1.0 when the boxes match one-to-one, every pair with IoU >= ``threshold``, else 0.

    Same number of boxes on both sides and every Hungarian-matched pair above the
    threshold; with one box each this is the usual phrase-grounding Acc@0.5.
    0 when either side has no box.
    """
    if not pred or not ref or len(pred) != len(ref):
        return 0.0
    from scipy.optimize import linear_sum_assignment

    m = iou_matrix(pred, ref)
    rows, cols = linear_sum_assignment(1.0 - m)
    return float(bool((m[rows, cols] >= threshold).all()))


def score_grounding(preds: Sequence[Sequence[Box]], refs: Sequence[Sequence[Box]],
                    invalid: Sequence[int] | None = None) -> MetricResult:
    """Score a grounding test set: ``soft_f1``, ``map50``, ``mean_iou``, ``acc50`` per sample
    (aggregate = their mean) plus the aggregates ``avg_iou_pairs`` (RadVLM's mean IoU) and
    ``ap50_dataset`` (``dataset_average_precision`` at 0.5: one curve over all rows, so it
    has no per-sample value).

    ``invalid``: per sample, how many predicted boxes the parser dropped; they count as
    false positives in ``soft_f1`` only, as in the paper's reward.
    """
    if len(preds) != len(refs):
        raise ValueError(f"got {len(preds)} predictions for {len(refs)} references; pass one box list per sample")
    invalid = list(invalid) if invalid is not None else [0] * len(preds)
    if len(invalid) != len(preds):
        raise ValueError(f"invalid has {len(invalid)} entries for {len(preds)} samples; pass one count per sample")
    per = {
        "soft_f1": [soft_f1(p, r, extra_fp=k) for p, r, k in zip(preds, refs, invalid)],
        "map50": [average_precision(p, r, 0.5) for p, r in zip(preds, refs)],
        "mean_iou": [mean_iou(p, r) for p, r in zip(preds, refs)],
        "acc50": [accuracy_at(p, r, 0.5) for p, r in zip(preds, refs)],
    }
    agg = {k: _mean(v) for k, v in per.items()}
    pair_sum, pair_count = 0.0, 0
    for p, r in zip(preds, refs):
        if p and r:
            pair_sum += float(iou_matrix(p, r).sum())
            pair_count += len(p) * len(r)
    agg["avg_iou_pairs"] = pair_sum / pair_count if pair_count else 0.0
    agg["ap50_dataset"] = dataset_average_precision(preds, refs, 0.5)
    versions = {
        "scipy": package_version("scipy"),
        "soft_f1": "paper: Hungarian on 1-IoU, TP=sum IoU>0, F1",
        "map50": "RadVLM evaluate_boxes: per-sample AP@0.5, greedy best-IoU, VOC all-points",
        "mean_iou": "per reference best IoU, mean",
        "acc50": "one-to-one Hungarian, all pairs IoU>=0.5, equal counts",
        "ap50_dataset": "COCOeval-style AP@0.5 over all rows, class-agnostic, 101 recall points; "
                        "k-th box of an answer scores 1/k, equal scores enter the curve together",
    }
    return MetricResult(aggregate=agg, per_sample=per, versions=versions)


# What a "nothing is wrong" answer says (its first sentence; case-insensitive). "no <up to 3 words>
# abnormality / finding / ..." but not "no other / further / additional / new ...", which follows a
# finding; "normal" only of the whole image ("Normal chest X-ray.", "the radiograph appears normal"),
# never "heart size is normal" nor the "normal" inside "abnormal".
_NO_ABNORMALITY_RE = re.compile(
    r"\bno\s+(?:(?!other\b|further\b|additional\b|new\b)[\w-]+\s+){0,3}?"
    r"(?:abnormalit(?:y|ies)|abnormal\s+findings?|findings?|patholog(?:y|ies)|lesions?|disease|process)\b"
    r"|\bnothing\s+abnormal\b|\bunremarkable\b|\bwithin\s+normal\s+limits\b"
    r"|^\s*normal\b"
    r"|\bnormal\s+(?:chest|study|exam(?:ination)?|radiograph|x-?ray|film|image|cxr)\b"
    r"|\b(?:chest|study|exam(?:ination)?|radiograph|x-?ray|film|image|cxr)\s+(?:is|appears|looks)\s+"
    r"(?:(?:entirely|completely|essentially|radiographically)\s+)?normal\b",
    re.IGNORECASE)
_FIRST_SENTENCE_RE = re.compile(r"[.;!?](?=\s|$)|\n")
_EMPTY_JSON_RE = re.compile(r"^\s*(?:```(?:json)?\s*)?\[\s*\]\s*(?:```)?\s*$")


def says_no_abnormality(answer: str) -> bool:
    """Whether an answer states that the image shows no abnormality (the reference of a normal
    image's detection row is "No abnormalities.").

    The rule: the answer's first sentence (up to the first ``.;!?`` before a space, or a line
    break; the first one holding a letter) says so in one of the ways radiologists and models
    write it (``_NO_ABNORMALITY_RE``): "no [up to three words] abnormality / findings /
    pathology / lesion / disease / process" ("No acute cardiopulmonary abnormality", "No
    Finding", "There is no evidence of disease"), but not "no other / further / additional /
    new ..." (which follows a finding); "nothing abnormal", "unremarkable", "within normal
    limits"; "normal" of the whole image ("Normal chest X-ray.", "The radiograph appears
    normal."), never of one structure ("Heart size is normal.", "abnormal"). An empty JSON
    list (``[]``, Qwen3-VL's native "no boxes") counts too. Only the first sentence is read,
    so "Opacity in the right base; otherwise unremarkable." does not count. Boxes are
    ``score_normal``'s business, not this function's.

    >>> [says_no_abnormality(a) for a in ("No abnormalities.", "There is no evidence of acute disease.", "[]",
    ...                                   "Cardiomegaly. No other abnormalities.", "Heart size is normal.")]
    [True, True, True, False, False]
    """
    if not isinstance(answer, str):
        return False
    if _EMPTY_JSON_RE.match(answer):
        return True
    first = next((s for s in _FIRST_SENTENCE_RE.split(answer) if any(c.isalpha() for c in s)), "")
    return _NO_ABNORMALITY_RE.search(first) is not None


def score_normal(answers: Sequence[str], preds: Sequence[Sequence[Box]],
                 invalid: Sequence[int] | None = None) -> MetricResult:
    """Score answers on images without findings (detection rows of normal images: the reference is
    "No abnormalities." and no box), where grounding metrics are undefined and false positives show.

    Per sample: ``false_positive`` = 1 when the answer gives any box (a valid one, or one the parser
    dropped as invalid: ``invalid`` counts those per answer, as the grounding reward counts them
    as false positives); ``normal_correct`` = 1 when it gives no box and ``says_no_abnormality``.
    Aggregates: ``normal_correct`` (mean) and ``false_positive_rate`` (mean of ``false_positive``:
    the share of normal images on which the model drew a box). An answer with neither box nor
    normal statement (e.g. "Cardiomegaly.") is neither correct nor a false positive.

    >>> r = score_normal(["No abnormalities.", "Nodule at [0.1, 0.1, 0.2, 0.2]", "Cardiomegaly."],
    ...                  [[], [Box(0.1, 0.1, 0.2, 0.2)], []])
    >>> r.per_sample["normal_correct"], r.per_sample["false_positive"]
    ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
    """
    if len(answers) != len(preds):
        raise ValueError(f"got {len(answers)} answers for {len(preds)} box lists; pass one box list per answer")
    invalid = list(invalid) if invalid is not None else [0] * len(preds)
    if len(invalid) != len(preds):
        raise ValueError(f"invalid has {len(invalid)} entries for {len(preds)} samples; pass one count per sample")
    boxed = [len(p) + max(0, k) > 0 for p, k in zip(preds, invalid)]
    per = {"normal_correct": [float(not b and says_no_abnormality(a)) for a, b in zip(answers, boxed)],
           "false_positive": [float(b) for b in boxed]}
    agg = {"normal_correct": _mean(per["normal_correct"]), "false_positive_rate": _mean(per["false_positive"])}
    versions = {"normal_correct": "no box and the first sentence says no abnormality (says_no_abnormality)",
                "false_positive_rate": "share of answers with any box, invalid ones included"}
    return MetricResult(aggregate=agg, per_sample=per, versions=versions)


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0
