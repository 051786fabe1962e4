"""RadCliQ-v1 from its four components, against values worked out by hand from the published formula."""

import pytest

from radrl.metrics.radcliq import (
    COEFS,
    INTERCEPT,
    MEAN,
    SCALE,
    radcliq_from_components,
    radcliq_v1,
)

# (case, [radgraph, bertscore, chexbert_sim, bleu], expected RadCliQ-v1)
# RadCliQ = sum_k (x_k - mean_k) / scale_k * coef_k + intercept, with
# mean  = 0.53792312, 0.61757256, 0.76479421, 0.44738335
# scale = 0.30282584, 0.22430938, 0.25394391, 0.29892717
# coef  = -0.377083683, -0.3703001, -0.252616218, 4.31504841e-12; intercept 2.46655256e-10
CASES = [
    # every input at its mean: all z = 0, only the intercept is left
    ("at_mean", [0.53792312, 0.61757256, 0.76479421, 0.44738335], 2.46655256e-10),
    # one standard deviation above the mean on each: the coefficients' sum
    # -0.377083683 - 0.3703001 - 0.252616218 + 4.3e-12 + 2.47e-10 = -1.00000000075
    ("one_sd_up", [0.84074896, 0.84188194, 1.01873812, 0.74631052], -1.0000000007490297),
    # a perfect report: z = 0.46207688/0.30282584 = 1.52588, 0.38242744/0.22430938 = 1.70491,
    # 0.23520579/0.25394391 = 0.92621, 1.84898 (BLEU, ~0); -0.57538 - 0.63133 - 0.23398 = -1.44069
    ("perfect", [1.0, 1.0, 1.0, 1.0], -1.4406903118732055),
    # nothing right: z = -1.77636, -2.75322, -3.01167, -1.49664; 0.66983 + 1.01952 + 0.76079 = 2.45014
    ("all_zero", [0.0, 0.0, 0.0, 0.0], 2.4501430996030664),
    # a middling report: z = -1.11594, -0.97000, 0.53243; 0.42080 + 0.35919 - 0.13450 = 0.64547
    ("middling", [0.2, 0.4, 0.9, 0.1], 0.6454671464560079),
    # BLEU alone barely moves it: (1 - 0.44738335) / 0.29892717 * 4.31504841e-12 = 7.98e-12 on the intercept
    ("bleu_only", [0.53792312, 0.61757256, 0.76479421, 1.0], 2.546323415119059e-10),
    # rescaled BERTScore can be negative (an empty answer's floor):
    # z = (-2 - 0.61757256) / 0.22430938 = -11.66943, times -0.3703001 = 4.32121
    ("negative_bertscore", [0.53792312, -2.0, 0.76479421, 0.44738335], 4.32120752498439),
]


@pytest.mark.parametrize("case,x,expected", CASES, ids=[c[0] for c in CASES])
def test_radcliq_v1_table(case, x, expected):
    assert radcliq_v1(*[[v] for v in x]) == [pytest.approx(expected, rel=1e-12, abs=1e-15)]


def test_constants_match_paper_rounding():
    # paper.md gives the same numbers to 4 decimals
    assert [round(v, 4) for v in MEAN] == [0.5379, 0.6176, 0.7648, 0.4474]
    assert [round(v, 4) for v in SCALE] == [0.3028, 0.2243, 0.2539, 0.2989]
    assert [round(v, 4) for v in COEFS] == [-0.3771, -0.3703, -0.2526, 0.0]
    assert 0 < COEFS[3] < 1e-11 and 0 < INTERCEPT < 1e-9


def test_batch_is_per_sample_and_aggregate_is_mean():
    cols = list(zip(*[c[1] for c in CASES]))
    expected = [c[2] for c in CASES]
    r = radcliq_from_components(*cols)
    assert r.per_sample["radcliq_v1"] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert r.aggregate["radcliq_v1"] == pytest.approx(sum(expected) / len(expected), rel=1e-12)
    assert "RadCliQ-v1" in r.versions["radcliq_v1"]


def test_lower_is_better():
    # better components -> lower RadCliQ, so the reward is its negative
    worse, better = radcliq_v1([0.2, 0.6], [0.3, 0.7], [0.5, 0.9], [0.1, 0.4])
    assert better < worse


def test_empty_and_misaligned_inputs():
    assert radcliq_from_components([], [], [], []).aggregate["radcliq_v1"] == 0.0
    with pytest.raises(ValueError, match=r"aligned.*bertscore=1"):
        radcliq_v1([0.5, 0.5], [0.5], [0.5, 0.5], [0.5, 0.5])
    with pytest.raises(ValueError, match="sample 0: non-finite chexbert_sim"):
        radcliq_v1([0.5], [0.5], [float("nan")], [0.5])


# --- RadCliQ-v1 from text, with the component scorers on tiny checkpoints in the real layouts ---------------


@pytest.fixture(scope="module")
def models(clinical_models) -> dict:
    """The shared offline RadCliQ models (tests/conftest.py), keyed by radcliq()'s argument names."""
    return {"radgraph_model": clinical_models["RADRL_RADGRAPH_MODEL"],
            "chexbert_model": clinical_models["RADRL_CHEXBERT_MODEL"],
            "bertscore_model": clinical_models["RADRL_BERTSCORE_MODEL"]}


REFS = ["Mild cardiomegaly. Small left pleural effusion.", "No acute cardiopulmonary process.",
        "The lungs are clear.  No   pneumothorax."]
HYPS = ["mild cardiomegaly with a small left effusion.", "No acute process.", "the lungs are clear. no pneumothorax."]


@pytest.mark.slow
def test_radcliq_from_text_is_the_formula_on_its_components(models):
    from radrl.metrics.bertscore import bertscore, prepare_text
    from radrl.metrics.chexbert import chexbert
    from radrl.metrics.radcliq import bleu2, radcliq
    from radrl.metrics.radgraph import radgraph

    r = radcliq(REFS, HYPS, device="cpu", **models)
    comps = [r.per_sample[k] for k in ("radcliq_radgraph_er", "radcliq_bertscore", "radcliq_chexbert_similarity",
                                       "radcliq_bleu2")]
    assert r.per_sample["radcliq_v1"] == pytest.approx(radcliq_v1(*comps), abs=1e-12)
    assert r.aggregate["radcliq_v1"] == pytest.approx(sum(r.per_sample["radcliq_v1"]) / 3, abs=1e-12)
    # each component is its scorer's value on the prepared text (lower-cased, spaces collapsed)
    refs, hyps = [prepare_text(t) for t in REFS], [prepare_text(t) for t in HYPS]
    assert comps[0] == radgraph(refs, hyps, model=models["radgraph_model"], device="cpu").per_sample["radgraph_er"]
    assert comps[1] == pytest.approx(bertscore(refs, hyps, model=models["bertscore_model"],
                                               device="cpu").per_sample["bertscore"], abs=1e-6)
    # 1e-6: the radcliq call cached the references' CheXbert vectors, encoded in another batch (float32 rounding)
    assert comps[2] == pytest.approx(chexbert(refs, hyps, model=models["chexbert_model"],
                                              device="cpu").per_sample["chexbert_similarity"], abs=1e-6)
    assert comps[3] == bleu2(refs, hyps)
    # the third pair differs only in case and spacing: after preparation it is identical, so BERTScore and
    # the CheXbert cosine are 1, BLEU-2 1, and RadCliQ-v1 is below the mean-report value 0 (better)
    assert [c[2] for c in comps[1:]] == pytest.approx([1.0, 1.0, 1.0], abs=1e-5)
    assert r.per_sample["radcliq_v1"][2] < 0
    assert {"radgraph_model", "bertscore_model", "chexbert_model", "radcliq_v1"} <= set(r.versions)


@pytest.mark.slow
def test_metrics_entry_reads_the_three_variables(models, monkeypatch):
    from radrl.metrics import METRICS

    for var, key in (("RADRL_RADGRAPH_MODEL", "radgraph_model"), ("RADRL_BERTSCORE_MODEL", "bertscore_model"),
                     ("RADRL_CHEXBERT_MODEL", "chexbert_model")):
        monkeypatch.setenv(var, str(models[key]))
    r = METRICS["radcliq"](REFS[:1], HYPS[:1])
    assert len(r.per_sample["radcliq_v1"]) == 1 and set(r.per_sample) == {
        "radcliq_v1", "radcliq_radgraph_er", "radcliq_bertscore", "radcliq_chexbert_similarity", "radcliq_bleu2"}


def test_radcliq_names_the_missing_model(models, monkeypatch):
    # CheXbert not given: its own message, with what to download, comes out (after RadGraph and BERTScore ran)
    from radrl.metrics.chexbert import CheXbertModelMissing
    from radrl.metrics.radcliq import radcliq

    monkeypatch.delenv("RADRL_CHEXBERT_MODEL", raising=False)
    with pytest.raises(CheXbertModelMissing, match=r"chexbert.pth"):
        radcliq(REFS[:1], HYPS[:1], radgraph_model=models["radgraph_model"],
                bertscore_model=models["bertscore_model"], device="cpu")


BLEU2_CASES = [
    # identical after lower-casing and splitting "." off: 1
    ("identical", "No effusion.", "no effusion.", 1.0),
    # one side empty: 0
    ("empty", "No effusion.", "", 0.0),
    # no shared bigram: 0 (no smoothing)
    ("no_bigram", "no effusion .", "effusion no", 0.0),
    # hyp "no effusion" vs ref "no effusion ." : p1 = 1, p2 = 1, brevity penalty exp(1 - 3/2) = 0.60653
    ("brevity", "No effusion.", "no effusion", 0.6065306597126334),
]


@pytest.mark.parametrize("case,ref,hyp,expected", BLEU2_CASES, ids=[c[0] for c in BLEU2_CASES])
def test_bleu2_table(case, ref, hyp, expected):
    from radrl.metrics.radcliq import bleu2

    assert bleu2([ref], [hyp]) == [pytest.approx(expected)]
