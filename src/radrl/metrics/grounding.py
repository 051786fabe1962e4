"""Grounding metrics on boxes: the paper's soft-F1 reward and RadVLM's evaluation.

All boxes are ``Box`` in the project's 0-1 convention; take them from
``radrl.parsing.parse`` (which drops invalid ones) so that training and evaluation read
a completion the same way.

* ``soft_f1`` is the RL reward (Hungarian matching, IoU-weighted F1), exactly as the
  paper defines it; it is smooth in box quality and penalises extra boxes.
* ``average_precision`` and ``mean_iou`` are what the papers' tables report (mAP@0.5 per
  sample, then averaged); ``accuracy_at`` is the stricter all-or-nothing view.
* ``weighted_box_fusion`` merges several readers' boxes into one reference set (the
  VinDr-CXR protocol, IoU threshold 0.1), as ``ensemble-boxes`` does.

>>> from radrl.data.boxes import Box
>>> ref = [Box(0.38, 0.47, 0.76, 0.62)]
>>> round(soft_f1([Box(0.35, 0.51, 0.75, 0.64)], ref), 2)
0.75
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from radrl.data.boxes import Box
from radrl.metrics import MetricResult, package_version

__all__ = ["accuracy_at", "average_precision", "iou", "iou_matrix", "mean_iou", "score_grounding", "soft_f1",
           "weighted_box_fusion"]


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
    from scipy.optimize import linear_sum_assignment

    m = iou_matrix(pred, ref)
    rows, cols = linear_sum_assignment(1.0 - m)
    matched = m[rows, cols]
    hits = matched > 0
    tp = float(matched[hits].sum())
    fp = len(pred) - int(hits.sum()) + max(0, extra_fp)
    if tp == 0:
        return 0.0
    precision, recall = tp / (tp + fp), tp / len(ref)
    return 2 * precision * recall / (precision + recall)


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
    (aggregate = their mean) plus the aggregate ``avg_iou_pairs`` (RadVLM's mean IoU).

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
    versions = {
        "scipy": package_version("scipy"),
        "soft_f1": "paper: Hungarian on 1-IoU, TP=sum IoU>0, F1",
        "map50": "RadVLM evaluate_boxes: per-sample AP@0.5, greedy best-IoU, VOC all-points",
        "mean_iou": "per reference best IoU, mean",
        "acc50": "one-to-one Hungarian, all pairs IoU>=0.5, equal counts",
    }
    return MetricResult(aggregate=agg, per_sample=per, versions=versions)


def weighted_box_fusion(boxes_per_reader: Sequence[Sequence[Box]], iou_threshold: float = 0.1,
                        skip_threshold: float = 0.0, *, scores: Sequence[Sequence[float]] | None = None,
                        weights: Sequence[float] | None = None) -> list[Box]:
    """Merge several readers' boxes (VinDr-CXR: 3 radiologists per image) into one set.

    Weighted boxes fusion (Solovyev et al.), exactly as ``ensemble_boxes.weighted_boxes_fusion``
    with ``conf_type="avg"`` (the reference; it needs numba and pandas, so it is not a
    dependency, and the tests check equality with it). Per label (``Box.label``; boxes of
    different findings never merge): boxes are taken in decreasing score x reader
    weight; each joins the fused box it overlaps most when that IoU is **above**
    ``iou_threshold``, else it starts a new one; a fused box is the score-weighted mean
    of its members' corners. Readers give no confidences, so every box scores 1 unless
    ``scores`` (one list per reader) says otherwise; boxes scoring below
    ``skip_threshold`` (or 0) are dropped. As in ensemble-boxes, corners are clamped to
    0-1, inverted corners swapped and boxes without area dropped. The result is ordered
    by fused confidence (mean member score x min(#readers, #members) / sum of weights:
    boxes more readers agree on first), ties in ensemble-boxes' order; the confidence
    itself is not kept (``Box`` has none). Merged corners are averaged in float32, as
    ensemble-boxes does, so the output equals its output exactly.

    >>> a, b = Box(0.1, 0.1, 0.5, 0.5, "nodule"), Box(0.3, 0.3, 0.7, 0.7, "nodule")
    >>> [(f.label, [round(v, 6) for v in f.coords]) for f in weighted_box_fusion([[a], [b], []])]
    [('nodule', [0.2, 0.2, 0.6, 0.6])]
    >>> len(weighted_box_fusion([[a], [Box(0.3, 0.3, 0.7, 0.7, "mass")]]))  # other finding: kept apart
    2
    """
    n = len(boxes_per_reader)
    w = [1.0] * n if weights is None else [float(x) for x in weights]
    if len(w) != n or not all(math.isfinite(x) and x > 0 for x in w):
        raise ValueError(f"weights must be {n} positive numbers, one per reader; got {weights!r}")
    if scores is None:
        scores = [[1.0] * len(boxes) for boxes in boxes_per_reader]
    if len(scores) != n or any(len(s) != len(b) for s, b in zip(scores, boxes_per_reader)):
        raise ValueError("scores must hold one list per reader with one score per box")

    # label -> [(score x weight, (x1, y1, x2, y2))], labels in order of first appearance
    groups: dict[str | None, list[tuple[float, tuple[float, float, float, float]]]] = {}
    for reader, (boxes, reader_scores) in enumerate(zip(boxes_per_reader, scores)):
        for box, score in zip(boxes, reader_scores):
            score = float(score)
            if not math.isfinite(score) or score < 0:
                raise ValueError(f"reader {reader}: box {box.coords} has score {score}; scores must be >= 0")
            if score < skip_threshold or score == 0:
                continue
            x1, y1, x2, y2 = (float(c) for c in _coords([box], f"reader {reader}")[0])
            x1, x2 = sorted((min(max(x1, 0.0), 1.0), min(max(x2, 0.0), 1.0)))
            y1, y2 = sorted((min(max(y1, 0.0), 1.0), min(max(y2, 0.0), 1.0)))
            if (x2 - x1) * (y2 - y1) == 0.0:
                continue
            groups.setdefault(box.label, []).append((score * w[reader], (x1, y1, x2, y2)))

    fused: list[tuple[float, str | None, tuple[float, ...]]] = []  # (confidence, label, corners)
    for label, entries in groups.items():
        order = np.argsort(np.array([e[0] for e in entries]))[::-1]  # ensemble-boxes' order, ties included
        members: list[list[tuple[float, tuple[float, ...]]]] = []
        centres: list[tuple[float, ...]] = []
        for i in order:
            score, corners = entries[i]
            best, best_iou = -1, iou_threshold
            for k, centre in enumerate(centres):  # the first of equal best IoUs wins
                overlap = _iou_corners(corners, centre)
                if overlap > best_iou:
                    best, best_iou = k, overlap
            if best < 0:
                members.append([(score, corners)])
                centres.append(corners)
            else:
                members[best].append((score, corners))
                centres[best] = _weighted_mean(members[best])
        for group, centre in zip(members, centres):
            mean_score = sum(s for s, _ in group) / len(group)
            if len(group) > 1:  # ensemble-boxes keeps a merged box's score in float32 too
                mean_score = float(np.float32(mean_score))
            fused.append((mean_score * min(n, len(group)) / sum(w), label, centre))
    order = np.argsort(np.array([f[0] for f in fused], dtype=float))[::-1]
    return [Box(*fused[i][2], label=fused[i][1]) for i in order]


def _weighted_mean(group: list[tuple[float, tuple[float, ...]]]) -> tuple[float, ...]:
    """Score-weighted mean corners, accumulated in float32 as ensemble-boxes stores a fused
    box: identical results, so matches at the IoU threshold and ties go the same way."""
    acc = np.zeros(4, dtype=np.float32)
    total = np.float64(0.0)
    for score, corners in group:
        acc += score * np.asarray(corners)  # float64 product, rounded into float32
        total += score
    acc /= total
    return tuple(float(v) for v in acc)


def _iou_corners(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    inter = max(w, 0.0) * max(h, 0.0)
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0
