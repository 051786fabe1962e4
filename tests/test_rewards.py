"""TRL reward adapters: row selection, thinking, floors, the generic metric reward, pickling, build_rewards."""

import pickle

import pytest

from radrl.metrics import METRICS, MetricResult
from radrl.metrics.chexpert import chexpert_f1
from radrl.metrics.grounding import soft_f1
from radrl.metrics.text import score_text
from radrl.parsing import parse
from radrl.rewards import (
    REWARDS,
    GroundingSoftF1,
    LengthGuard,
    ThinkFormat,
    build_rewards,
    completion_text,
)

CLINICAL = REWARDS["report_clinical"]
ROUGE = REWARDS["report_rouge_l"]

BOX_REF = "Cardiomegaly at [0.38, 0.47, 0.76, 0.62]"
BOX_PRED = "Cardiomegaly at [0.35, 0.51, 0.75, 0.64]"
REPORT_REF = "Moderate cardiomegaly. No pneumothorax. Small left pleural effusion."


def chat(text):
    """A conversational completion as TRL passes it."""
    return [{"role": "assistant", "content": text}]


# (case, reward, completion, task, solution, thinking, expected)
CASES = [
    # grounding: exact box -> 1
    ("grounding_exact", GroundingSoftF1(), BOX_REF, "grounding", BOX_REF, False, 1.0),
    # grounding: the paper's worked example, through parse + soft_f1
    ("grounding_paper", GroundingSoftF1(), BOX_PRED, "grounding", BOX_REF, False, 0.7468),
    # grounding: thinking requested, </think> present, answer after it is scored
    ("grounding_think", GroundingSoftF1(), "<think>heart</think>" + BOX_REF, "grounding", BOX_REF, True, 1.0),
    # grounding: thinking requested, no </think> -> 0 even if boxes appear
    ("grounding_think_missing", GroundingSoftF1(), "<think>" + BOX_REF, "grounding", BOX_REF, True, 0.0),
    # grounding: boxes only inside the think block do not count
    ("grounding_box_in_think", GroundingSoftF1(), f"<think>{BOX_REF}</think>none", "grounding", BOX_REF, True, 0.0),
    # grounding: an invalid extra box is a false positive
    ("grounding_invalid_extra", GroundingSoftF1(), BOX_REF + " and [0.9, 0.9, 0.1, 0.1]", "grounding", BOX_REF,
     False, 2 / 3),
    # grounding: Qwen JSON answers score the same
    ("grounding_qwen_json", GroundingSoftF1(), '[{"bbox_2d": [380, 470, 760, 620], "label": "Cardiomegaly"}]',
     "grounding", BOX_REF, False, 1.0),
    # grounding reward on a report row: not its task
    ("grounding_on_report", GroundingSoftF1(), REPORT_REF, "report", REPORT_REF, False, None),
    # report: identical report -> 1 on both report rewards
    ("clinical_same", CLINICAL, REPORT_REF, "report", REPORT_REF, False, 1.0),
    ("rouge_same", ROUGE, REPORT_REF, "report", REPORT_REF, False, 1.0),
    # report: thinking requested and missing -> floor 0
    ("clinical_think_missing", CLINICAL, REPORT_REF, "report", REPORT_REF, True, 0.0),
    ("rouge_think_missing", ROUGE, REPORT_REF, "report", REPORT_REF, True, 0.0),
    # report: five characters or fewer is the floor (the paper's guard against empty answers)
    ("clinical_tiny", CLINICAL, "Clear", "report", "The lungs are clear.", False, 0.0),
    # report: thinking present, only the answer is scored
    ("clinical_think", CLINICAL, "<think>no idea</think>" + REPORT_REF, "report", REPORT_REF, True, 1.0),
    # report reward on a grounding row: not its task
    ("clinical_on_grounding", CLINICAL, BOX_REF, "grounding", BOX_REF, False, None),
    ("rouge_on_grounding", ROUGE, BOX_REF, "grounding", BOX_REF, False, None),
]


@pytest.mark.parametrize("case,reward,text,task,solution,thinking,expected", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("conversational", [False, True], ids=["plain", "chat"])
def test_reward_table(case, reward, text, task, solution, thinking, expected, conversational):
    completion = chat(text) if conversational else text
    out = reward([completion], task=[task], solution=[solution], thinking=[thinking], prompts=["p"])
    assert out == [pytest.approx(expected, abs=1e-3) if expected is not None else None]


def test_rewards_equal_the_metrics():
    # one source of truth: a reward is the metric's per-sample value on the parsed answer
    hyp = "Mild cardiomegaly. No effusion."
    assert CLINICAL([hyp], task=["report"], solution=[REPORT_REF]) == \
        chexpert_f1([REPORT_REF], [hyp]).per_sample["clinical"]
    assert ROUGE([hyp], task=["report"], solution=[REPORT_REF]) == \
        score_text([REPORT_REF], [hyp]).per_sample["rouge_l"]
    assert GroundingSoftF1()([BOX_PRED], task=["grounding"], solution=[BOX_REF]) == \
        [soft_f1(parse(BOX_PRED).boxes, parse(BOX_REF).boxes)]


def test_grounding_reward_uses_full_precision_reference_boxes():
    # a small nodule (0.3 % of the width) that the solution text widens to two decimals: the true box
    # earns 1 against the dataset's boxes, 2 IoU / (1 + IoU) = 0.214 (IoU 0.12) against the rounded text
    nodule, text = [0.121, 0.300, 0.124, 0.304], "Nodule at [0.12, 0.30, 0.13, 0.31]"
    answer = '[{"bbox_2d": [121, 300, 124, 304], "label": "Nodule"}]'
    reward = GroundingSoftF1()
    columns = {"task": ["grounding", "report", "grounding"], "solution": [text, REPORT_REF, text]}
    # the column's value is used per row; None (a row from another builder) falls back to the solution
    assert reward([answer, REPORT_REF, answer], **columns, ref_boxes=[[nodule], [], None]) == \
        [pytest.approx(1.0), None, pytest.approx(0.24 / 1.12)]
    # without the column: the solution's boxes, as before
    assert reward([answer], task=["grounding"], solution=[text]) == [pytest.approx(0.24 / 1.12)]
    # evaluation scores against the same boxes: the number optimised is the number reported
    from radrl.eval.score import score

    row = {"id": "n", "task": "grounding", "solution": text, "ref_boxes": [nodule]}
    assert score([row], [answer])["grounding"].per_sample["soft_f1"] == reward([answer], **{
        k: [row[k]] for k in ("task", "solution", "ref_boxes")})
    with pytest.raises(ValueError, match=r"grounding_soft_f1.*ref_boxes entry"):
        reward([answer], task=["grounding"], solution=[text], ref_boxes=[[[0.5, 0.5, 0.4, 0.6]]])  # inverted
    with pytest.raises(ValueError, match="column 'ref_boxes' has 2 values for 1 completions"):
        reward([answer], task=["grounding"], solution=[text], ref_boxes=[[nodule], [nodule]])


def test_mixed_batch_keeps_order():
    completions = [BOX_REF, REPORT_REF, BOX_PRED]
    columns = {"task": ["grounding", "report", "grounding"], "solution": [BOX_REF, REPORT_REF, BOX_REF],
                   "thinking": [False, False, False]}
    grounding = GroundingSoftF1()(completions, **columns)
    assert grounding[0] == 1.0 and grounding[1] is None and grounding[2] == pytest.approx(0.7468, abs=1e-3)
    assert CLINICAL(completions, **columns) == [None, 1.0, None]


def test_thinking_column_is_optional():
    assert ROUGE([REPORT_REF], task=["report"], solution=[REPORT_REF]) == [1.0]


@pytest.mark.parametrize("missing", ["task", "solution"])
def test_missing_column_says_the_fix(missing):
    columns = {"task": ["report"], "solution": [REPORT_REF]}
    del columns[missing]
    with pytest.raises(ValueError, match=f"needs the dataset column '{missing}'"):
        CLINICAL([REPORT_REF], **columns)


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_pickling_keeps_name_and_behaviour(name, fake_metrics):
    reward = REWARDS[name]
    assert reward.__name__ == name  # TRL's log key
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.__name__ == name
    kwargs = {"task": ["grounding", "report"], "solution": [BOX_REF, REPORT_REF], "thinking": [False, False]}
    assert clone([BOX_REF, REPORT_REF], **kwargs) == reward([BOX_REF, REPORT_REF], **kwargs)


# (case, completion, text)
FORMATS = [
    # plain string
    ("plain", "abc", "abc"),
    # one assistant message
    ("chat", [{"role": "assistant", "content": "abc"}], "abc"),
    # multimodal content parts: text parts only
    ("parts", [{"role": "assistant", "content": [{"type": "text", "text": "ab"}, {"type": "image"},
                                                 {"type": "text", "text": "c"}]}], "abc"),
    # empty completion list
    ("empty", [], ""),
    # a None content
    ("none_content", [{"role": "assistant", "content": None}], ""),
]


@pytest.mark.parametrize("case,completion,text", FORMATS, ids=[f[0] for f in FORMATS])
def test_completion_text(case, completion, text):
    assert completion_text(completion) == text


def test_build_rewards():
    funcs, weights = build_rewards({"grounding_soft_f1": 1, "report_rouge_l": 0.5})
    assert [f.__name__ for f in funcs] == ["grounding_soft_f1", "report_rouge_l"]
    assert weights == [1.0, 0.5]


# (case, weights, message fragment)
BAD_WEIGHTS = [
    # unknown name: say which, the closest known one, and list the known ones
    ("unknown", {"radcliq": 1.0},
     r"unknown reward 'radcliq' \(did you mean 'report_radcliq'\?\); known rewards: \['grounding_soft_f1'"),
    # infinite weight
    ("inf", {"report_clinical": float("inf")}, "finite numbers"),
    # nothing asked for
    ("empty", {}, "no rewards given"),
    # NaN weight
    ("nan", {"report_clinical": float("nan")}, "finite numbers"),
    # not a number
    ("string", {"report_clinical": "1"}, "finite numbers"),
]


@pytest.mark.parametrize("case,weights,message", BAD_WEIGHTS, ids=[b[0] for b in BAD_WEIGHTS])
def test_build_rewards_errors(case, weights, message):
    with pytest.raises(ValueError, match=message):
        build_rewards(weights)


# --- the generic metric reward ------------------------------------------------------


class FakeScorer:
    """Stands in for a model-based scorer (RadCliQ, BERTScore, ...): records its inputs and
    returns a per-sample value computed from them (a word count), so tests do not need weights."""

    def __init__(self, key):
        self.key, self.calls = key, []

    def __call__(self, refs, hyps):
        self.calls.append((list(refs), list(hyps)))
        return MetricResult(per_sample={self.key: [len(h.split()) / 10 for h in hyps]})


@pytest.fixture
def fake_metrics(monkeypatch):
    """METRICS with fake radcliq / bertscore (both encoders) / radgraph / chexbert / green / ratescore scorers."""
    fakes = {"radcliq": FakeScorer("radcliq_v1"), "bertscore": FakeScorer("bertscore"),
             "radgraph": FakeScorer("radgraph_complete"), "chexbert": FakeScorer("chexbert_f1"),
             "green": FakeScorer("green"), "ratescore": FakeScorer("ratescore"),
             "bertscore_distilbert": FakeScorer("bertscore_distilbert")}
    for name, fake in fakes.items():
        monkeypatch.setitem(METRICS, name, fake)
    return fakes


LONG = "Mild cardiomegaly with small bilateral effusions."  # 6 words -> fake value 0.6

# (case, reward name, completion, solution, thinking, expected)
METRIC_CASES = [
    # the paper's reward: -RadCliQ of the answer
    ("radcliq_value", "report_radcliq", LONG, REPORT_REF, False, -0.6),
    # answer of 5 characters or fewer: the paper's -3
    ("radcliq_short_answer", "report_radcliq", "Clear", REPORT_REF, False, -3.0),
    # reference of 5 characters or fewer: -3 as well (paper: "prediction or reference")
    ("radcliq_short_reference", "report_radcliq", LONG, " n/a ", False, -3.0),
    # thinking requested, no </think>: -3 even though the text is a good report
    ("radcliq_think_missing", "report_radcliq", LONG, REPORT_REF, True, -3.0),
    # thinking requested and closed: only the answer after </think> is scored (6 words, not 8)
    ("radcliq_think", "report_radcliq", "<think>two words</think>" + LONG, REPORT_REF, True, -0.6),
    # the other model-based rewards: value with its sign (+), floors at the bottom of their range
    ("bertscore_value", "report_bertscore", LONG, REPORT_REF, False, 0.6),
    ("bertscore_empty", "report_bertscore", "", REPORT_REF, False, -1.0),
    # the paper's BERTScore-alone ablation (distilbert): its own scorer, too-short answers 0 as the authors' worker
    ("bertscore_distilbert_value", "report_bertscore_distilbert", LONG, REPORT_REF, False, 0.6),
    ("bertscore_distilbert_empty", "report_bertscore_distilbert", "", REPORT_REF, False, 0.0),
    ("radgraph_value", "report_radgraph", LONG, REPORT_REF, False, 0.6),
    ("radgraph_empty", "report_radgraph", "   ", REPORT_REF, False, 0.0),
    ("chexbert_value", "report_chexbert_f1", LONG, REPORT_REF, False, 0.6),
    ("green_value", "report_green", LONG, REPORT_REF, False, 0.6),
    ("ratescore_value", "report_ratescore", LONG, REPORT_REF, False, 0.6),
    ("ratescore_empty", "report_ratescore", "", REPORT_REF, False, 0.0),
    # six characters is enough to be scored
    ("radcliq_six_chars", "report_radcliq", "Normal", REPORT_REF, False, -0.1),
]


@pytest.mark.parametrize("case,name,text,solution,thinking,expected", METRIC_CASES, ids=[c[0] for c in METRIC_CASES])
def test_model_based_rewards_with_fake_scorers(fake_metrics, case, name, text, solution, thinking, expected):
    out = REWARDS[name]([text], task=["report"], solution=[solution], thinking=[thinking])
    assert out == [pytest.approx(expected)]


def test_scorer_sees_parsed_answers_of_kept_rows_only(fake_metrics):
    # design principle 4: the scorer gets the answer after </think>, never raw text; floored rows are not scored
    completions = ["<think>reasoning</think>" + LONG, "<think>no end", "ok", LONG]
    out = REWARDS["report_radcliq"](completions, task=["report", "report", "report", "grounding"],
                                    solution=[REPORT_REF] * 4, thinking=[True, True, False, False])
    assert out == [pytest.approx(-0.6), -3.0, -3.0, None]
    assert fake_metrics["radcliq"].calls == [([REPORT_REF], [LONG])]


def test_no_scorer_call_when_every_row_is_floored(fake_metrics):
    assert REWARDS["report_radcliq"](["", "abc"], task=["report"] * 2, solution=[REPORT_REF] * 2) == [-3.0, -3.0]
    assert fake_metrics["radcliq"].calls == []


@pytest.mark.parametrize("name,metric,key", [
    # rewards over the offline metrics equal the metric's per-sample value
    ("report_gleu", "text", "gleu"),
    ("report_rouge_l", "text", "rouge_l"),
    ("report_clinical", "chexpert", "clinical"),
    ("report_chexpert_f1", "chexpert", "chexpert_rules_sample_f1"),
])
def test_offline_rewards_equal_their_metric(name, metric, key):
    hyps = ["Mild cardiomegaly. No effusion.", "No acute cardiopulmonary process.", REPORT_REF]
    out = REWARDS[name](hyps, task=["report"] * 3, solution=[REPORT_REF] * 3)
    assert out == METRICS[metric]([REPORT_REF] * 3, hyps).per_sample[key]


def test_missing_metric_names_reward_and_metric(monkeypatch):
    monkeypatch.delitem(METRICS, "radcliq", raising=False)
    with pytest.raises(ValueError, match="reward report_radcliq needs the metric 'radcliq'"):
        REWARDS["report_radcliq"]([LONG], task=["report"], solution=[REPORT_REF])


def test_missing_per_sample_key_is_named(monkeypatch):
    monkeypatch.setitem(METRICS, "radcliq", FakeScorer("radcliq"))  # wrong key
    with pytest.raises(ValueError, match=r"no per-sample 'radcliq_v1' \(it has \['radcliq'\]\)"):
        REWARDS["report_radcliq"]([LONG], task=["report"], solution=[REPORT_REF])


def test_scorer_failure_names_the_reward(monkeypatch):
    def broken(refs, hyps):
        raise FileNotFoundError("put the RadGraph weights in /models/radgraph")

    monkeypatch.setitem(METRICS, "radgraph", broken)
    with pytest.raises(FileNotFoundError, match=r"reward report_radgraph .metric 'radgraph'. failed: put the RadGraph"):
        REWARDS["report_radgraph"]([LONG], task=["report"], solution=[REPORT_REF])


def test_pickle_does_not_carry_the_scorer(fake_metrics):
    # the scorer is looked up at call time, so a used reward pickles as small as a fresh one
    reward = REWARDS["report_radcliq"]
    before = len(pickle.dumps(reward))
    reward([LONG], task=["report"], solution=[REPORT_REF])
    assert len(pickle.dumps(reward)) == before < 1000
    assert pickle.loads(pickle.dumps(reward))([LONG], task=["report"], solution=[REPORT_REF]) == [-0.6]


# --- thinking format and length guard ---------------------------------------------------

# (case, completion, thinking, expected)
THINK_CASES = [
    # full block and an answer
    ("full", "<think>heart is big</think>Cardiomegaly.", True, 1.0),
    # the prompt holds <think>: a lone closing tag is well formed
    ("close_only", "heart is big</think>Cardiomegaly.", True, 1.0),
    # never closed
    ("missing_close", "<think>heart is big. Cardiomegaly.", True, 0.0),
    # closed but nothing after it
    ("no_answer", "<think>heart is big</think>  ", True, 0.0),
    # empty reasoning
    ("empty_think", "<think></think>Cardiomegaly.", True, 0.0),
    # a stray second closing tag
    ("two_closes", "<think>a</think>b</think>Cardiomegaly.", True, 0.0),
    # a block reopened after the last close (its text would sit in the answer)
    ("reopened", "heart big</think>Cardiomegaly.<think>more thoughts", True, 0.0),
    # thinking not requested: not this reward's row
    ("not_requested", "Cardiomegaly.", False, None),
]


@pytest.mark.parametrize("case,text,thinking,expected", THINK_CASES, ids=[c[0] for c in THINK_CASES])
def test_think_format(case, text, thinking, expected):
    # any task: the format is the same for reports and boxes
    for task in ("report", "grounding"):
        assert ThinkFormat()([text], task=[task], solution=["x"], thinking=[thinking]) == [expected]


REF40 = "x" * 40  # a 40-character reference

# (case, min_ratio, answer, expected)
LENGTH_CASES = [
    # as long as the reference: no penalty
    ("same_length", 0.5, "y" * 40, 0.0),
    # longer: no penalty (the guard only stops shrinking)
    ("longer", 0.5, "y" * 400, 0.0),
    # exactly min_ratio of the reference: no penalty
    ("at_threshold", 0.5, "y" * 20, 0.0),
    # half the threshold: -0.5
    ("half_threshold", 0.5, "y" * 10, -0.5),
    # empty answer: -1
    ("empty", 0.5, "", -1.0),
    # stricter ratio: 20 of 32 characters -> -0.375
    ("strict", 0.8, "y" * 20, -0.375),
]


@pytest.mark.parametrize("case,ratio,answer,expected", LENGTH_CASES, ids=[c[0] for c in LENGTH_CASES])
def test_length_guard(case, ratio, answer, expected):
    assert LengthGuard(ratio)([answer], task=["report"], solution=[REF40]) == [pytest.approx(expected)]


def test_length_guard_uses_the_answer_after_think():
    # a long reasoning does not buy a short answer out of the penalty
    out = LengthGuard()(["<think>" + "z" * 500 + "</think>" + "y" * 10], task=["report"], solution=[REF40],
                        thinking=[True])
    assert out == [pytest.approx(-0.5)]


def test_length_guard_empty_reference_is_not_penalised():
    assert LengthGuard()(["anything"], task=["report"], solution=["   "]) == [0.0]


# --- build_rewards options ---------------------------------------------------------------


def test_build_rewards_options_configure_a_copy():
    funcs, weights = build_rewards({"report_radcliq": 1.0, "report_length_guard": 0.3},
                                   {"report_length_guard": {"min_ratio": 0.75}, "report_radcliq": {"floor": -5}})
    assert funcs[1].min_ratio == 0.75 and funcs[0].floor == -5.0 and weights == [1.0, 0.3]
    assert REWARDS["report_length_guard"].min_ratio == 0.5 and REWARDS["report_radcliq"].floor == -3.0  # untouched
    assert funcs[0].__name__ == "report_radcliq"  # same log key


# (case, weights, options, message fragment)
BAD_OPTIONS = [
    # an option the reward does not have
    ("unknown_option", {"report_length_guard": 1}, {"report_length_guard": {"ratio": 0.5}},
     r"no option\(s\) \['ratio'\]; its options are \['min_ratio'\]"),
    # options for a reward that is not used
    ("unused", {"report_clinical": 1}, {"report_length_guard": {"min_ratio": 0.5}}, "not among the rewards"),
    # a ratio outside (0, 10]
    ("bad_ratio", {"report_length_guard": 1}, {"report_length_guard": {"min_ratio": 0}}, r"min_ratio must be in"),
    # a floor above a [0, 1] reward's range
    ("floor_outside", {"report_clinical": 1}, {"report_clinical": {"floor": 2}}, "outside its range"),
    # a non-number
    ("string_value", {"report_clinical": 1}, {"report_clinical": {"floor": "low"}}, "must be a finite number"),
    # grounding has no options
    ("no_options", {"grounding_soft_f1": 1}, {"grounding_soft_f1": {"floor": 0}}, "its options are none"),
]


@pytest.mark.parametrize("case,weights,options,message", BAD_OPTIONS, ids=[b[0] for b in BAD_OPTIONS])
def test_build_rewards_option_errors(case, weights, options, message):
    with pytest.raises(ValueError, match=message):
        build_rewards(weights, options)


def test_every_reward_names_itself_and_has_a_range():
    for name, reward in REWARDS.items():
        assert reward.__name__ == name
        low, high = reward.bounds
        assert low < high  # the floor's place in the range is checked by ReportMetric.check()


def test_scorer_failure_of_an_unbuildable_type_still_names_the_reward(monkeypatch):
    # UnicodeDecodeError cannot be rebuilt from one message: a RuntimeError carries the context instead
    def broken(refs, hyps):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setitem(METRICS, "radgraph", broken)
    with pytest.raises(RuntimeError, match=r"reward report_radgraph .metric 'radgraph'. failed: UnicodeDecodeError"):
        REWARDS["report_radgraph"]([LONG], task=["report"], solution=[REPORT_REF])


# --- the model-based rewards on tiny checkpoints in the real layouts (helper B's fixtures) -------------


@pytest.mark.slow
def test_model_based_rewards_equal_their_metrics(clinical_models, monkeypatch):
    # the real METRICS entries, not fakes: each reward is sign * the metric's per-sample value on the parsed
    # answers, and the paper's floors hold (a missing </think> and a too-short answer get -3 under -RadCliQ)
    for var, path in clinical_models.items():  # tiny RadGraph-XL / CheXbert in the real layouts (tests/conftest.py)
        monkeypatch.setenv(var, str(path))
    refs = ["Mild cardiomegaly. Small left pleural effusion.", "No acute cardiopulmonary process.", REPORT_REF,
            REPORT_REF]
    completions = ["<think>heart</think>mild cardiomegaly with a small left effusion.", "No acute process.",
                   "<think>never closed", "Clear"]
    columns = {"task": ["report"] * 4, "solution": refs, "thinking": [True, False, True, False]}
    answers = ["mild cardiomegaly with a small left effusion.", "No acute process."]
    for name, metric, key, sign in [("report_radcliq", "radcliq", "radcliq_v1", -1.0),
                                    ("report_radgraph", "radgraph", "radgraph_complete", 1.0),
                                    ("report_chexbert_f1", "chexbert", "chexbert_f1", 1.0),
                                    ("report_bertscore", "bertscore", "bertscore", 1.0)]:
        out = REWARDS[name](completions, **columns)
        expected = METRICS[metric](refs[:2], answers).per_sample[key]
        # 1e-6, the metrics' contract with the reference packages: the reward keeps each reference's encoding
        # across calls (radrl.metrics.encodings), encoded in another batch than the metric's own call
        assert out[:2] == pytest.approx([sign * v for v in expected], abs=1e-6), name
        assert out[2:] == [REWARDS[name].floor] * 2, name
    assert REWARDS["report_radcliq"].floor == -3.0
