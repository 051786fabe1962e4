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

The numbers below are RadEval's 8-digit roundings of CXR-Report-Metric's ``radcliq-v1.pkl``
(what the authors' reward ran; the pickle's full doubles, listed in docs/metrics.md, move
RadCliQ-v1 by under 7e-8 for inputs in [-1, 1]). paper.md rounds further:
mean 0.5379, 0.6176, 0.7648, 0.4474; scale 0.3028, 0.2243, 0.2539, 0.2989; coefficients
-0.3771, -0.3703, -0.2526, ~0; intercept ~0. The first three coefficients sum to -1.0, so
a sample one standard deviation above the mean on every input scores about -1.

``radcliq_v1`` takes the four components; ``radcliq`` (``METRICS["radcliq"]``) computes them
from text as RadVLM-GRPO's reward does: both texts lower-cased, space runs collapsed and cut
at 2,048 characters (``radrl.metrics.bertscore.prepare_text``), then ``radcliq_radgraph_er``
(``radrl.metrics.radgraph``, RadGraph-XL), ``radcliq_bertscore`` (``radrl.metrics.bertscore``,
rescaled distilroberta-base), ``radcliq_chexbert_similarity`` (``radrl.metrics.chexbert``) and
``radcliq_bleu2`` (nltk sentence BLEU-2, no smoothing, on CXR-Report-Metric's tokens: lower-cased,
"." split off, split on spaces; fast-bleu's exact value is not reproduced, which moves
RadCliQ by less than 1e-11 through its 4.3e-12 coefficient). It needs the three model
folders (arguments or ``RADRL_RADGRAPH_MODEL``, ``RADRL_BERTSCORE_MODEL``,
``RADRL_CHEXBERT_MODEL``); see docs/metrics.md.

>>> radcliq_v1([0.53792312], [0.61757256], [0.76479421], [0.44738335])  # the means: the intercept
[2.46655256e-10]
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

from radrl.metrics.base import MetricResult, MetricSpec

__all__ = ["COEFS", "COMPONENTS", "INTERCEPT", "MEAN", "SCALE", "bleu2", "check_weights", "radcliq",
           "radcliq_from_components", "radcliq_v1"]

COMPONENTS = ("radgraph", "bertscore", "chexbert_sim", "bleu")
# StandardScaler fitted by the RadCliQ authors (CXR-Report-Metric normalizer; RadEval radcliq.py)
MEAN = (0.53792312, 0.61757256, 0.76479421, 0.44738335)
SCALE = (0.30282584, 0.22430938, 0.25394391, 0.29892717)
# LinearRegression of radiologist error counts on the standardized inputs (radcliq-v1.pkl)
COEFS = (-3.77083683e-01, -3.70300100e-01, -2.52616218e-01, 4.31504841e-12)
INTERCEPT = 2.46655256e-10
# Raw RadCliQ-v1, lower is better. Tools differ in sign: the paper's reward is -RadCliQ-v1, ReXrank prints 1/RadCliQ-v1.
SPECS = (
    MetricSpec("radcliq_v1", "RadCliQ-v1 (lower better)", "raw", False, needs_weights=True,
               description="raw RadCliQ-v1 (Yu et al. 2023), lower is better, mean over samples; the GRPO reward is "
                           "-RadCliQ-v1 and ReXrank prints 1/RadCliQ-v1, so neither compares with this column as is"),
    # Inputs carry a radcliq_ prefix: they are computed on RadCliQ's lower-cased, cut text, and the plain keys
    # (bleu2, radgraph_er, bertscore, chexbert_similarity) belong to the scorers run on the text as written;
    # a merged result of `--metrics radgraph radcliq` would otherwise keep one of two different numbers.
    MetricSpec("radcliq_bleu2", "BLEU-2 (RadCliQ input)", description="nltk sentence BLEU-2 on CXR-Report-Metric's "
               "tokens (lower-cased, '.' split off), mean over samples"),
    MetricSpec("radcliq_radgraph_er", "RadGraph ER (RadCliQ input)", needs_weights=True,
               description="mean of RadGraph-XL entity and relation F1 on RadCliQ's lower-cased text"),
    MetricSpec("radcliq_bertscore", "BERTScore (RadCliQ input)", needs_weights=True,
               description="rescaled distilroberta-base BERTScore F1 on RadCliQ's lower-cased text"),
    MetricSpec("radcliq_chexbert_similarity", "CheXbert cosine (RadCliQ input)", needs_weights=True,
               description="cosine of CheXbert embeddings on RadCliQ's lower-cased text"),
)


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
    """``radcliq_v1`` per sample and its mean over samples, as CXR-Report-Metric and RadEval report it."""
    values = radcliq_v1(radgraph, bertscore, chexbert_sim, bleu)
    return MetricResult(
        aggregate={"radcliq_v1": math.fsum(values) / len(values) if values else 0.0},
        per_sample={"radcliq_v1": values},
        versions={"radcliq_v1": "RadCliQ-v1 (CXR-Report-Metric radcliq-v1.pkl coefficients, as RadEval); inputs: "
                             "RadGraph entity/relation F1 mean, rescaled distilroberta-base BERTScore F1, "
                             "CheXbert embedding cosine, BLEU-2; lower is better"},
    )


def bleu2(refs: Sequence[str], hyps: Sequence[str]) -> list[float]:
    """Sentence BLEU-2 per pair on CXR-Report-Metric's tokens (lower-cased, "." split off); 0 for an empty side.

    >>> bleu2(["No effusion."], ["no effusion."])
    [1.0]
    """
    from nltk.translate.bleu_score import sentence_bleu

    def tokens(text: str | None) -> list[str]:
        return [t for t in (text or "").lower().replace(".", " .").split(" ") if t]

    out = []
    with warnings.catch_warnings():  # nltk warns on every pair without a shared bigram; its value 0 is intended
        warnings.simplefilter("ignore", UserWarning)
        for r, h in zip(refs, hyps):
            ref, hyp = tokens(r), tokens(h)
            out.append(float(sentence_bleu([ref], hyp, weights=(0.5, 0.5))) if ref and hyp else 0.0)
    return out


def check_weights(radgraph_model: str | os.PathLike | None = None, bertscore_model: str | os.PathLike | None = None,
                  chexbert_model: str | os.PathLike | None = None) -> None:
    """RadCliQ's three model folders, checked without loading them (``radrl.metrics.check_metrics``): the
    first one missing raises its metric's error, with what to download and where."""
    from radrl.metrics import bertscore, chexbert, radgraph

    radgraph.check_weights(radgraph_model)
    bertscore.check_weights(bertscore_model)
    chexbert.check_weights(chexbert_model)


def radcliq(refs: Sequence[str], hyps: Sequence[str], radgraph_model: str | os.PathLike | None = None,
            bertscore_model: str | os.PathLike | None = None, chexbert_model: str | os.PathLike | None = None,
            device: str | None = None, fast: bool = True) -> MetricResult:
    """RadCliQ-v1 per pair from text (``per_sample["radcliq_v1"]``, lower is better) and its four components
    (``radcliq_radgraph_er``, ``radcliq_bertscore``, ``radcliq_chexbert_similarity``, ``radcliq_bleu2``: prefixed,
    since they are computed on RadCliQ's lower-cased text, not the text the plain scorers read); aggregates are
    means over pairs.
    Model folders: the arguments, else ``RADRL_RADGRAPH_MODEL``, ``RADRL_BERTSCORE_MODEL`` (a folder named
    ``distilroberta-base``, so that its layer and rescaling baseline are RadCliQ's), ``RADRL_CHEXBERT_MODEL``.
    ``fast`` (default, the reward's path): every scorer encodes each distinct text once, in batches of similar
    length, and keeps the references' encodings across calls; ``fast=False`` is the straightforward path
    (bert-score's own ``score``, no cache). Values agree to float rounding (tests/metrics/test_encodings.py).
    """
    from radrl.metrics.base import check_aligned
    from radrl.metrics.bertscore import bertscore, prepare_text
    from radrl.metrics.chexbert import chexbert
    from radrl.metrics.radgraph import radgraph

    check_aligned(refs, hyps)
    refs, hyps = [prepare_text(r) for r in refs], [prepare_text(h) for h in hyps]
    parts = [radgraph(refs, hyps, model=radgraph_model, device=device, fast=fast),
             bertscore(refs, hyps, model=bertscore_model, device=device, fast=fast),
             chexbert(refs, hyps, model=chexbert_model, device=device, fast=fast)]
    components = {"radcliq_radgraph_er": parts[0].per_sample["radgraph_er"],
                  "radcliq_bertscore": parts[1].per_sample["bertscore"],
                  "radcliq_chexbert_similarity": parts[2].per_sample["chexbert_similarity"],
                  "radcliq_bleu2": bleu2(refs, hyps)}
    result = radcliq_from_components(*components.values())
    for name, values in components.items():
        result.per_sample[name] = values
        result.aggregate[name] = math.fsum(values) / len(values) if values else 0.0
    for part in parts:
        result.versions.update(part.versions)
    result.versions["radcliq_text"] = "both sides lower-cased, spaces collapsed, cut at 2048 characters"
    result.versions["radcliq_bleu2"] = "nltk sentence BLEU-2 (no smoothing) on lower-cased tokens with '.' split off"
    return result
