"""Lexical report metrics: ROUGE-L and BLEU-4."""


import pytest

from radrl.metrics import METRICS
from radrl.metrics.text import score_text

REF = "the heart size is normal. no pleural effusion or pneumothorax."

# (case, ref, hyp, rouge_l, sentence bleu)
CASES = [
    # identical text scores 1 on both
    ("identical", REF, REF, 1.0, 1.0),
    # case does not matter: both sides are lower-cased
    ("case", REF, REF.upper(), 1.0, 1.0),
    # an empty hypothesis scores 0 and does not raise
    ("empty_hyp", REF, "", 0.0, 0.0),
    # whitespace only is empty too
    ("blank_hyp", REF, "   \n", 0.0, 0.0),
    # an empty reference scores 0 rather than dividing by zero
    ("empty_ref", "", "no effusion.", 0.0, 0.0),
    # nothing in common
    ("disjoint", REF, "moderate cardiomegaly.", 0.0, 0.0),
    # ROUGE-L: LCS 4 of 5 and 4 tokens -> F = 2 * 0.8 * 1 / 1.8; too short for a 4-gram match
    ("subsequence", "heart size is normal.", "the heart size is normal.", 2 * 0.8 / 1.8, None),
]


@pytest.mark.parametrize("case,ref,hyp,rouge,bleu", CASES, ids=[c[0] for c in CASES])
def test_per_sample(case, ref, hyp, rouge, bleu):
    r = score_text([ref], [hyp])
    assert r.per_sample["rouge_l"] == [pytest.approx(rouge)]
    if bleu is not None:
        assert r.per_sample["bleu"] == [pytest.approx(bleu, abs=1e-9)]


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
    assert r.aggregate["rouge_l"] == pytest.approx(sum(r.per_sample["rouge_l"]) / 2)
    assert {"rouge-score", "nltk"} <= set(r.versions)


def test_all_empty_and_no_samples():
    assert score_text(["a b c d e"], [""]).aggregate == {"rouge_l": 0.0, "bleu": 0.0}
    assert score_text([], []).aggregate == {"rouge_l": 0.0, "bleu": 0.0}


def test_length_mismatch_says_the_fix():
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        score_text(["a"], [])


def test_registry_imports_lazily_and_matches():
    assert METRICS["text"]([REF], [REF]).aggregate == score_text([REF], [REF]).aggregate


def test_snapshot_on_radeval_impressions(cxr_data):
    # 199 reference / generated impression pairs from RadEval; pins the packages' behaviour.
    # pycocoevalcap's BleuScorer (what vilmedic / RadEval run) gives corpus BLEU-4 0.101820281628468.
    folder = cxr_data / "reports"
    refs = (folder / "radeval_refs_chexpert_impression.txt").read_text().splitlines()
    hyps = (folder / "radeval_preds_chexpert_impression.txt").read_text().splitlines()
    r = score_text(refs, hyps)
    assert r.aggregate["bleu"] == pytest.approx(0.101820281628468, abs=1e-9)
    assert r.aggregate["rouge_l"] == pytest.approx(0.279075386235376, abs=1e-9)
