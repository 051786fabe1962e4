"""TRL reward adapters: row selection, thinking, completion formats, pickling, the registry."""

import pickle

import pytest

from radrl.metrics.chexpert import chexpert_f1
from radrl.metrics.grounding import soft_f1
from radrl.metrics.text import score_text
from radrl.parsing import parse
from radrl.rewards import REWARDS, GroundingSoftF1, ReportClinical, ReportRougeL, build_rewards, completion_text

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
    ("clinical_same", ReportClinical(), REPORT_REF, "report", REPORT_REF, False, 1.0),
    ("rouge_same", ReportRougeL(), REPORT_REF, "report", REPORT_REF, False, 1.0),
    # report: thinking requested and missing -> floor 0
    ("clinical_think_missing", ReportClinical(), REPORT_REF, "report", REPORT_REF, True, 0.0),
    ("rouge_think_missing", ReportRougeL(), REPORT_REF, "report", REPORT_REF, True, 0.0),
    # report: five characters or fewer is the floor (the paper's guard against empty answers)
    ("clinical_tiny", ReportClinical(), "Clear", "report", "The lungs are clear.", False, 0.0),
    # report: thinking present, only the answer is scored
    ("clinical_think", ReportClinical(), "<think>no idea</think>" + REPORT_REF, "report", REPORT_REF, True, 1.0),
    # report reward on a grounding row: not its task
    ("clinical_on_grounding", ReportClinical(), BOX_REF, "grounding", BOX_REF, False, None),
    ("rouge_on_grounding", ReportRougeL(), BOX_REF, "grounding", BOX_REF, False, None),
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
    assert ReportClinical()([hyp], task=["report"], solution=[REPORT_REF]) == \
        chexpert_f1([REPORT_REF], [hyp]).per_sample["clinical"]
    assert ReportRougeL()([hyp], task=["report"], solution=[REPORT_REF]) == \
        score_text([REPORT_REF], [hyp]).per_sample["rouge_l"]
    assert GroundingSoftF1()([BOX_PRED], task=["grounding"], solution=[BOX_REF]) == \
        [soft_f1(parse(BOX_PRED).boxes, parse(BOX_REF).boxes)]


def test_mixed_batch_keeps_order():
    completions = [BOX_REF, REPORT_REF, BOX_PRED]
    columns = dict(task=["grounding", "report", "grounding"], solution=[BOX_REF, REPORT_REF, BOX_REF],
                   thinking=[False, False, False])
    grounding = GroundingSoftF1()(completions, **columns)
    assert grounding[0] == 1.0 and grounding[1] is None and grounding[2] == pytest.approx(0.7468, abs=1e-3)
    assert ReportClinical()(completions, **columns) == [None, 1.0, None]


def test_thinking_column_is_optional():
    assert ReportRougeL()([REPORT_REF], task=["report"], solution=[REPORT_REF]) == [1.0]


@pytest.mark.parametrize("missing", ["task", "solution"])
def test_missing_column_says_the_fix(missing):
    columns = {"task": ["report"], "solution": [REPORT_REF]}
    del columns[missing]
    with pytest.raises(ValueError, match=f"needs the dataset column '{missing}'"):
        ReportClinical()([REPORT_REF], **columns)


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_pickling_keeps_name_and_behaviour(name):
    reward = REWARDS[name]
    assert reward.__name__ == name  # TRL's log key
    clone = pickle.loads(pickle.dumps(reward))
    assert clone.__name__ == name
    kwargs = dict(task=["grounding", "report"], solution=[BOX_REF, REPORT_REF], thinking=[False, False])
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
    # unknown name: say which, and list the known ones
    ("unknown", {"radcliq": 1.0}, r"unknown reward\(s\) \['radcliq'\]; known rewards: \['grounding_soft_f1'"),
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
