"""RadCliQ-v1: the linear composite of four report metrics that RadVLM-GRPO's reward negates.

RadCliQ-v1 (Yu et al., Patterns 2023; CXR-Report-Metric's ``radcliq-v1.pkl``, restated
with the same numbers in RadEval's ``CompositeMetric``) standardizes four per-sample
values and takes a fixed linear combination; lower is better::

    x = [RadGraph, BERTScore, CheXbert-embedding cosine, BLEU]
    z = (x - MEAN) / SCALE
    RadCliQ-v1 = z . COEFS + INTERCEPT

with the inputs as the reference computes them:

* RadGraph: the mean of RadGraph entity F1 and relation F1 per pair (RadGraph-XL in
  RadEval and the paper);
* BERTScore: ``distilroberta-base`` F1, baseline-rescaled (``radrl.metrics.bertscore``);
* CheXbert-embedding cosine ("s_emb"): cosine of the two reports' CheXbert [CLS] embeddings;
* BLEU: CXR-Report-Metric's BLEU-2 (``fast-bleu``, lower-cased, "." split off, weights
  1/2, 1/2); RadEval feeds its own BLEU instead. Its coefficient is 4.3e-12, so which
  BLEU it is changes RadCliQ by less than 1e-11: it is kept for fidelity, not effect.

The numbers below are the reference's to full precision (paper.md gives them rounded:
mean 0.5379, 0.6176, 0.7648, 0.4474; scale 0.3028, 0.2243, 0.2539, 0.2989; coefficients
-0.3771, -0.3703, -0.2526, ~0; intercept ~0). The first three coefficients sum to -1.0, so
a sample one standard deviation above the mean on every input scores about -1.

This module takes the four components; the full scorer from text needs RadGraph-XL and
CheXbert weights (``radrl.metrics.radgraph``, ``radrl.metrics.chexpert``, later).

>>> radcliq_v1([0.53792312], [0.61757256], [0.76479421], [0.44738335])  # the means: the intercept
[2.46655256e-10]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from radrl.metrics import MetricResult

__all__ = ["COEFS", "COMPONENTS", "INTERCEPT", "MEAN", "SCALE", "radcliq_from_components", "radcliq_v1"]

COMPONENTS = ("radgraph", "bertscore", "chexbert_sim", "bleu")
# StandardScaler fitted by the RadCliQ authors (CXR-Report-Metric normalizer; RadEval radcliq.py)
MEAN = (0.53792312, 0.61757256, 0.76479421, 0.44738335)
SCALE = (0.30282584, 0.22430938, 0.25394391, 0.29892717)
# LinearRegression of radiologist error counts on the standardized inputs (radcliq-v1.pkl)
COEFS = (-3.77083683e-01, -3.70300100e-01, -2.52616218e-01, 4.31504841e-12)
INTERCEPT = 2.46655256e-10


def radcliq_v1(radgraph: Sequence[float], bertscore: Sequence[float], chexbert_sim: Sequence[float],
               bleu: Sequence[float]) -> list[float]:
    """RadCliQ-v1 per sample from the four aligned component lists (lower is better)."""
    columns = (radgraph, bertscore, chexbert_sim, bleu)
    n = len(radgraph)
    if any(len(c) != n for c in columns):
        sizes = ", ".join(f"{name}={len(c)}" for name, c in zip(COMPONENTS, columns))
        raise ValueError(f"RadCliQ-v1 components must be aligned, got {sizes}; pass one value per sample for each")
    out = []
    for i, x in enumerate(zip(*columns)):
        bad = [name for name, v in zip(COMPONENTS, x) if not math.isfinite(v)]
        if bad:
            raise ValueError(f"sample {i}: non-finite {', '.join(bad)} ({x}); fix the scorer that produced it")
        out.append(math.fsum((v - m) / s * c for v, m, s, c in zip(x, MEAN, SCALE, COEFS)) + INTERCEPT)
    return out


def radcliq_from_components(radgraph: Sequence[float], bertscore: Sequence[float], chexbert_sim: Sequence[float],
                            bleu: Sequence[float]) -> MetricResult:
    """``radcliq`` per sample and its mean over samples, as CXR-Report-Metric and RadEval report it."""
    values = radcliq_v1(radgraph, bertscore, chexbert_sim, bleu)
    return MetricResult(
        aggregate={"radcliq": math.fsum(values) / len(values) if values else 0.0},
        per_sample={"radcliq": values},
        versions={"radcliq": "RadCliQ-v1 (CXR-Report-Metric radcliq-v1.pkl coefficients, as RadEval); inputs: "
                             "RadGraph entity/relation F1 mean, rescaled distilroberta-base BERTScore F1, "
                             "CheXbert embedding cosine, BLEU-2; lower is better"},
    )
