"""Bootstrap confidence intervals and the paired bootstrap test between two models.

Every function resamples *samples* (test-set rows) with replacement, ``n_resamples``
times, from one ``numpy`` index matrix of shape ``(n_resamples, n)`` drawn by
``numpy.random.default_rng(seed)``: the same seed gives the same numbers on every
machine, and every metric of a task is resampled with the same rows.

* ``bootstrap_ci``: percentile interval of a statistic (the mean by default) of
  per-sample values. Vectorised; 2,000 x 5,000 takes well under a second.
* ``bootstrap_corpus_ci``: the same for a metric that is not a mean of per-sample
  values (corpus BLEU / GLEU pool n-gram counts; CIDEr's IDF and micro/macro F1
  depend on the whole set): it re-runs the scorer on each resampled
  ``(refs, hyps)``, so it costs ``n_resamples`` scorer calls. Only run when asked.
* ``paired_bootstrap``: difference of means between two models scored on the same
  samples, its percentile interval, and a two-sided p-value (definition below).
* ``mean_cis``: which aggregates of a ``MetricResult`` get an interval (see there);
  ``radrl eval`` writes its output into ``metrics.json``.

>>> bootstrap_ci([1.0, 1.0, 1.0])
(1.0, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from radrl.metrics import MetricResult, check_aligned

__all__ = ["CORPUS_LEVEL", "PER_SAMPLE_KEY", "bootstrap_ci", "bootstrap_corpus_ci", "bootstrap_indices", "mean_cis",
           "paired_bootstrap", "resampled_means"]

# Aggregates that are corpus-level by construction, whatever their values. The equality
# test of ``mean_cis`` can pass by coincidence (all sentence BLEU scores 0, or a single
# sample, where corpus and sentence BLEU agree), so pooled metrics are named here:
# BLEU-n, GLEU and METEOR 1.5 pool n-gram / alignment statistics over the corpus; CIDEr's
# per-sample values use an IDF computed over the scored references, so resampling them
# with the set held fixed is not a bootstrap of the metric, although CIDEr's aggregate is
# their mean. ``bootstrap_corpus_ci`` re-scores resamples for any of them.
CORPUS_LEVEL = {
    **dict.fromkeys(("bleu", "bleu1", "bleu2", "bleu3", "bleu4", "gleu"),
                    "corpus-level: n-gram counts pooled over the corpus"),
    "meteor": "corpus-level: METEOR 1.5 statistics pooled over segments",
    "cider": "corpus-level: per-sample values depend on the scored set (IDF)",
    "ap50_dataset": "dataset-level: one precision-recall curve over the boxes of all rows, no per-sample value "
                    "(bootstrap_corpus_ci re-scores resamples with score_grounding)",
}

# Aggregates that are the mean of a per-sample value of another name (a rate of per-sample 0/1 events).
PER_SAMPLE_KEY = {"false_positive_rate": "false_positive"}


def bootstrap_indices(n: int, n_resamples: int = 2000, seed: int = 0) -> np.ndarray:
    """Row indices ``(n_resamples, n)``, each row ``n`` draws with replacement from ``range(n)``."""
    if n < 1:
        raise ValueError("cannot bootstrap an empty sample; score at least one row")
    if n_resamples < 1:
        raise ValueError(f"n_resamples={n_resamples}; pass a positive count (2000 is the usual choice)")
    return np.random.default_rng(seed).integers(0, n, size=(n_resamples, n), dtype=np.int64)


def resampled_means(values: np.ndarray, clusters: Sequence | None = None, n_resamples: int = 2000,
                    seed: int = 0) -> np.ndarray:
    """Bootstrap means of ``values``, shape ``(n_resamples,)``.

    Without ``clusters`` rows are resampled. With them (one label per row: the image a row asks
    about), whole clusters are resampled and each resample's mean is over the rows of the clusters
    drawn: the grounding rows of one image (one per finding) share the image and the model's reading
    of it, so treating them as independent would make intervals too narrow and p-values too small.
    Clusters are numbered in order of first appearance, so when every row is its own cluster the
    result equals plain row resampling with the same seed.

    >>> x = np.array([1.0, 1.0, 0.0, 0.0])
    >>> bool(np.all(resampled_means(x, ["a", "b", "c", "d"], 50) == resampled_means(x, None, 50)))
    True
    """
    if clusters is None:
        return values[bootstrap_indices(len(values), n_resamples, seed)].mean(axis=1)
    if len(clusters) != len(values):
        raise ValueError(f"{len(clusters)} cluster labels for {len(values)} values; give one per row")
    number = {c: i for i, c in enumerate(dict.fromkeys(clusters))}
    inverse = np.array([number[c] for c in clusters], dtype=np.int64)
    sums = np.bincount(inverse, weights=values, minlength=len(number))
    counts = np.bincount(inverse, minlength=len(number)).astype(np.float64)
    idx = bootstrap_indices(len(number), n_resamples, seed)  # (n_resamples, clusters)
    return sums[idx].sum(axis=1) / counts[idx].sum(axis=1)


def bootstrap_ci(values: Sequence[float], n_resamples: int = 2000, seed: int = 0, alpha: float = 0.05,
                 statistic: Callable[..., np.ndarray] = np.mean) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` at level ``1 - alpha`` of ``statistic(values)``.

    ``statistic(array, axis=1)`` must reduce each row of the resampled ``(n_resamples, n)``
    matrix, as ``np.mean`` or ``np.median`` do. The bounds are the ``alpha/2`` and
    ``1 - alpha/2`` quantiles of the resampled statistics (numpy's default linear
    interpolation). A constant vector gives the degenerate interval ``(c, c)``.

    >>> bootstrap_ci([0.0, 1.0] * 50, seed=0)  # 100 coin flips: about 0.5 +- 0.1
    (0.4, 0.6)
    """
    x = _check(values, "values")
    _check_alpha(alpha)
    stats = statistic(x[bootstrap_indices(len(x), n_resamples, seed)], axis=1)  # (n_resamples,)
    return _percentile(stats, alpha)


def bootstrap_corpus_ci(scorer: Callable[[list, list], MetricResult | float], refs: Sequence, hyps: Sequence,
                        key: str | None = None, n_resamples: int = 2000, seed: int = 0,
                        alpha: float = 0.05) -> tuple[float, float]:
    """Percentile bootstrap ``(low, high)`` of a corpus-level metric by re-scoring resamples.

    ``scorer(refs, hyps)`` returns a ``MetricResult`` (then ``key`` picks the aggregate,
    e.g. ``"bleu"``) or a float. Each resample of rows is scored from scratch, so set-level
    effects (corpus n-gram pooling, IDF, label-pooled F1) are resampled too. Slow:
    ``n_resamples`` full scorer calls, so ``radrl eval`` never runs it by default; lower
    ``n_resamples`` for a quick look. Resamples use the same indices as ``bootstrap_ci``
    with the same seed.

    >>> from radrl.metrics import METRICS
    >>> lo, hi = bootstrap_corpus_ci(METRICS["text"], ["a b c d"] * 3, ["a b c d"] * 3, "bleu", n_resamples=20)
    >>> round(lo, 6), round(hi, 6)  # pycocoevalcap's BLEU smooths by 1e-9, so a perfect match is 1 - 3e-10
    (1.0, 1.0)
    """
    check_aligned(refs, hyps)
    _check_alpha(alpha)
    refs, hyps = list(refs), list(hyps)
    stats = []
    for row in bootstrap_indices(len(refs), n_resamples, seed):
        value = scorer([refs[i] for i in row], [hyps[i] for i in row])
        if isinstance(value, MetricResult):
            if key is None or key not in value.aggregate:
                raise ValueError(f"key={key!r} is not an aggregate of the scorer; "
                                 f"pick one of {sorted(value.aggregate)}")
            value = value.aggregate[key]
        stats.append(float(value))
    return _percentile(np.asarray(stats), alpha)


def paired_bootstrap(a: Sequence[float], b: Sequence[float], n_resamples: int = 2000, seed: int = 0,
                     alpha: float = 0.05, clusters: Sequence | None = None) -> dict[str, float]:
    """Paired bootstrap test of ``mean(a) - mean(b)`` for two models scored on the same samples.

    ``a[i]`` and ``b[i]`` are the two models' per-sample values on sample ``i``. Each
    resample draws one set of row indices and applies it to both, so the per-sample
    pairing is kept (Koehn 2004, "Statistical Significance Tests for Machine
    Translation Evaluation", EMNLP; Neubig's ``paired-bootstrap.py``). Returns:

    * ``delta``: ``mean(a) - mean(b)`` on the full set;
    * ``low``, ``high``: percentile interval at level ``1 - alpha`` of the resampled deltas;
    * ``p_value``: two-sided, ``min(1, 2 * min(P(d* <= 0), P(d* >= 0)))`` where ``d*`` are
      the resampled deltas: twice the fraction of resamples in which the difference does
      not keep its sign (Koehn's one-sided "1 - fraction of wins", doubled for a
      two-sided test; ties count against significance). Identical inputs give
      ``delta = 0`` and ``p_value = 1``. Its resolution is ``1 / n_resamples``: 0 means
      "no resample flipped the sign", i.e. p < 1/n_resamples, and should be reported so.

    ``clusters`` (one label per sample, e.g. the image a row asks about) resamples whole clusters
    (``resampled_means``): rows of one image are not independent observations.

    >>> paired_bootstrap([1.0, 0.0, 1.0], [1.0, 0.0, 1.0])
    {'delta': 0.0, 'low': 0.0, 'high': 0.0, 'p_value': 1.0}
    """
    x, y = _check(a, "a"), _check(b, "b")
    if len(x) != len(y):
        raise ValueError(f"a has {len(x)} values and b has {len(y)}; a paired test needs both models "
                         "scored on the same samples in the same order (match them by id first)")
    _check_alpha(alpha)
    diff = x - y
    deltas = resampled_means(diff, clusters, n_resamples, seed)  # (n_resamples,)
    low, high = _percentile(deltas, alpha)
    flips = min(float(np.mean(deltas <= 0)), float(np.mean(deltas >= 0)))
    return {"delta": float(diff.mean()), "low": low, "high": high, "p_value": min(1.0, 2.0 * flips)}


def mean_cis(result: MetricResult, n_resamples: int = 2000, seed: int = 0, alpha: float = 0.05,
             tol: float = 1e-9, clusters: Sequence | None = None) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Intervals for the aggregates of ``result`` that are means of their per-sample values.

    An aggregate ``k`` gets a percentile interval ``[low, high]`` when ``per_sample[k]``
    (``per_sample[PER_SAMPLE_KEY[k]]`` for a rate such as ``false_positive_rate``) exists,
    ``k`` is not in ``CORPUS_LEVEL``, and ``aggregate[k]`` equals the mean of those values
    within ``tol``: then resampling rows resamples the metric. Every other aggregate is
    listed with the reason it has none (corpus- or dataset-level, such as BLEU, GLEU, CIDEr,
    the dataset AP ``ap50_dataset``: ``bootstrap_corpus_ci`` handles those by re-scoring; no
    per-sample values, such as counts and CheXpert micro/macro F1). All intervals of one
    result share one index matrix; ``clusters`` (one label per row: its image) resamples whole
    images, as ``resampled_means`` explains.

    >>> mean_cis(MetricResult({"acc": 0.5, "n": 2.0}, {"acc": [1.0, 0.0]}), n_resamples=100)
    ({'acc': [0.0, 1.0]}, {'n': 'no per-sample values'})
    """
    cis: dict[str, list[float]] = {}
    none: dict[str, str] = {}
    n = None
    for key, value in result.aggregate.items():
        per = result.per_sample.get(PER_SAMPLE_KEY.get(key, key))
        if key in CORPUS_LEVEL:
            none[key] = CORPUS_LEVEL[key]
        elif per is None or len(per) == 0:
            none[key] = "no per-sample values"
        elif abs(math.fsum(per) / len(per) - value) > tol:
            none[key] = "corpus-level: not the mean of its per-sample values"
        else:
            n = len(per) if n is None else n
            if len(per) != n:
                raise ValueError(f"per_sample[{key!r}] has {len(per)} values, others {n}; "
                                 "a scorer must return one value per sample for every metric")
            # the same seed and clusters for every key: one index matrix for all intervals of the result
            cis[key] = list(_percentile(resampled_means(_check(per, key), clusters, n_resamples, seed), alpha))
    return cis, none


def _check(values: Sequence[float], name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{name} must be a flat list of per-sample values, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"{name} is empty; score at least one sample before bootstrapping")
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x))[:5].tolist()
        raise ValueError(f"{name} has non-finite values at positions {bad}; NaN is a scorer bug, fix the scorer "
                         "(drop rows that are not applicable instead of scoring them NaN)")
    return x


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha}; pass the tail mass in (0, 1), e.g. 0.05 for a 95% interval")


def _percentile(stats: np.ndarray, alpha: float) -> tuple[float, float]:
    low, high = np.quantile(stats, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)
