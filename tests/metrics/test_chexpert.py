"""Rule-based CheXpert labeler, CheXbert-style F1 and the per-sample clinical score."""

import csv
import html
import re
import tarfile
import time

import pytest

from radrl.data.schema import CHEXPERT_LABELS
from radrl.metrics import METRICS
from radrl.metrics.chexpert import _STOPS, _compiled, chexpert_f1, clinical_score, label_report

# (sentence, expected labels; "No Finding" included where the sentence has no positive finding)
SENTENCES = [
    # plain negation
    ("No pneumothorax.", {"No Finding": 1, "Pneumothorax": 0}),
    # positive with size and side words in between
    ("There is a small left pleural effusion.", {"Pleural Effusion": 1}),
    ("There is a small right pleural effusion.", {"Pleural Effusion": 1}),
    # uncertainty cue before the mention
    ("Possible consolidation.", {"Consolidation": -1}),
    # an organ stated normal is a negative mention
    ("Heart size is normal.", {"No Finding": 1, "Cardiomegaly": 0}),
    ("The heart size is normal.", {"No Finding": 1, "Cardiomegaly": 0}),
    ("Normal heart size.", {"No Finding": 1, "Cardiomegaly": 0}),
    # an attribute phrase is a mention
    ("The heart is enlarged.", {"Cardiomegaly": 1}),
    ("Moderate cardiomegaly.", {"Cardiomegaly": 1}),
    # negation inside the phrase
    ("The heart is not enlarged.", {"No Finding": 1, "Cardiomegaly": 0}),
    # one negation covers a list
    ("No focal consolidation, effusion or pneumothorax.",
     {"No Finding": 1, "Consolidation": 0, "Pneumothorax": 0, "Pleural Effusion": 0}),
    # nodules and masses are Lung Lesion
    ("A 1 cm nodule in the left upper lung.", {"Lung Lesion": 1}),
    ("A mass in the right lower lung zone.", {"Lung Lesion": 1}),
    ("Right apical pneumothorax.", {"Pneumothorax": 1}),
    ("Patchy consolidation in the left lower lobe.", {"Consolidation": 1}),
    # nothing mentioned: only No Finding
    ("The lungs are clear.", {"No Finding": 1}),
    ("", {"No Finding": 1}),
    # negation after the mention
    ("Pneumothorax is not seen.", {"No Finding": 1, "Pneumothorax": 0}),
    ("The left effusion has resolved.", {"No Finding": 1, "Pleural Effusion": 0}),
    # negated uncertainty is uncertainty, not negation
    ("Pneumonia cannot be excluded.", {"Pneumonia": -1}),
    # "no ... to suggest" stays negative
    ("No focal opacity to suggest pneumonia.", {"No Finding": 1, "Lung Opacity": 0, "Pneumonia": 0}),
    # negation does not cross a clause boundary
    ("No pleural effusion, but there is a small pneumothorax.", {"Pneumothorax": 1, "Pleural Effusion": 0}),
    ("Cardiomegaly is present and effusions are not seen.", {"Cardiomegaly": 1, "Pleural Effusion": 0}),
    # "no change" is not a negation of the finding
    ("No change in the small left effusion.", {"Pleural Effusion": 1}),
    # "without" negates what follows it only
    ("Cardiomegaly without overt edema.", {"Cardiomegaly": 1, "Edema": 0}),
    # "may represent" hedges the second finding, not the first
    ("Left basilar opacity may represent atelectasis.", {"Lung Opacity": 1, "Atelectasis": -1}),
    # pericardial effusion is not a pleural effusion
    ("Small pericardial effusion.", {"No Finding": 1}),
    # Support Devices does not cancel No Finding
    ("Left PICC line terminates in the SVC. No pneumothorax.",
     {"No Finding": 1, "Pneumothorax": 0, "Support Devices": 1}),
    ("Healed right rib fractures.", {"Fracture": 1}),
    # upper limits of normal is normal
    ("Heart size is at the upper limits of normal.", {"No Finding": 1, "Cardiomegaly": 0}),
    # decimals do not split sentences; capitals do not matter
    ("A 1.5 CM NODULE IS SEEN. NO EFFUSION.", {"Lung Lesion": 1, "Pleural Effusion": 0}),
    # a hedge that qualifies a finding stays negative after a negation ...
    ("No suspicious pulmonary nodules or masses.", {"No Finding": 1, "Lung Lesion": 0}),
    ("No focal consolidation, suspicious opacity or pneumothorax.",
     {"No Finding": 1, "Lung Opacity": 0, "Consolidation": 0, "Pneumothorax": 0}),
    ("No findings concerning for pneumonia.", {"No Finding": 1, "Pneumonia": 0}),
    # ... and is uncertain on its own
    ("Opacity suspicious for pneumonia.", {"Lung Opacity": 1, "Pneumonia": -1}),
]


@pytest.mark.parametrize("text,expected", SENTENCES, ids=[s[0][:40] or "empty" for s in SENTENCES])
def test_sentences(text, expected):
    assert label_report(text) == expected


def test_labels_come_in_chexpert_order():
    labels = label_report("Small effusion. Moderate cardiomegaly. Possible consolidation.")
    assert list(labels) == [k for k in CHEXPERT_LABELS if k in labels]


def test_hand_labelled_reports(cxr_data):
    # the CheXpert labeler repository's 4 reports with hand-checked labels (blank = not mentioned)
    with open(cxr_data / "reports" / "chexpert_labeler_labeled_reports.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4
    for row in rows:
        text = row.pop("Reports")
        expected = {k: int(float(v)) for k, v in row.items() if v.strip()}
        assert label_report(text) == expected, text


@pytest.fixture(scope="module")
def iu_sections(cxr_data) -> dict[str, dict[str, str]]:
    """uId -> {section label: text} of every IU report."""
    section_re = re.compile(r'<AbstractText Label="([A-Z]+)">(.*?)</AbstractText>', re.DOTALL)
    out = {}
    with tarfile.open(cxr_data / "reports" / "NLMCXR_reports.tgz") as tar:
        for member in tar:
            if member.name.endswith(".xml"):
                xml = tar.extractfile(member).read().decode()
                uid = re.search(r'<uId id="([^"]+)"', xml).group(1)
                out[uid] = {k: html.unescape(v.strip()) for k, v in section_re.findall(xml) if v.strip()}
    assert len(out) == 3955
    return out


def test_every_match_holds_a_trigger_and_no_stop(iu_sections):
    # label_report runs an observation's patterns only between the sentences that hold its
    # first and last trigger (see _window); that is exact only if every match contains a
    # trigger and no sentence stop. Checked on every IU report (all sections) and the cases above.
    texts = ["\n".join(parts.values()).lower() for parts in iu_sections.values()] + [s.lower() for s, _ in SENTENCES]
    matches = 0
    for name, triggers, pattern, _ in _compiled():
        for text in texts:
            for m in pattern.finditer(text):
                matches += 1
                assert any(t in m.group() for t in triggers), (name, m.group(), "add a trigger to _TRIGGERS")
                assert not set(m.group()) & set(_STOPS), (name, m.group())
    assert matches > 10_000


# (IU report, labels of FINDINGS + IMPRESSION): a small regression snapshot of whole reports
IU_SNAPSHOT = [
    # borderline heart size is positive; a tracheostomy tube is a support device
    ("CXR29", {"Cardiomegaly": 1, "Lung Opacity": 1, "Pneumothorax": 0, "Pleural Effusion": 0, "Support Devices": 1}),
    # "no suspicious nodules, pneumonia, effusions, or CHF" negates the whole list; "may represent" hedges
    ("CXR31", {"Lung Opacity": -1, "Lung Lesion": 0, "Edema": 0, "Pneumonia": 0, "Pleural Effusion": 0}),
    # "no focal consolidation, suspicious pulmonary opacity, large pleural effusion, or pneumothorax"
    ("CXR330", {"No Finding": 1, "Lung Opacity": 0, "Consolidation": 0, "Pneumothorax": 0, "Pleural Effusion": 0}),
    # "could represent a pneumonia" is uncertain
    ("CXR332", {"Cardiomegaly": 0, "Lung Opacity": 1, "Pneumonia": -1, "Pneumothorax": 0, "Pleural Effusion": 0}),
    # "densities ... suggestive of coronary artery stents": uncertain device
    ("CXR340", {"Cardiomegaly": 1, "Lung Opacity": 1, "Edema": 0, "Consolidation": 0, "Pleural Effusion": 0,
                "Support Devices": -1}),
    # congestive heart failure with edema, effusions and atelectasis
    ("CXR369", {"Cardiomegaly": 1, "Lung Opacity": 1, "Edema": 1, "Atelectasis": 1, "Pleural Effusion": 1}),
    # old rib fractures are positive, everything else negative
    ("CXR403", {"Cardiomegaly": 0, "Lung Opacity": 0, "Pneumothorax": 0, "Pleural Effusion": 0, "Fracture": 1}),
    # "consolidation, most consistent with pneumonia" is positive pneumonia
    ("CXR3565", {"Lung Opacity": 1, "Consolidation": 1, "Pneumonia": 1, "Pneumothorax": 0, "Pleural Effusion": 0}),
]


def test_iu_report_snapshot(iu_sections):
    for uid, expected in IU_SNAPSHOT:
        # FINDINGS + IMPRESSION, one per line, as bench/chexpert_labeler_iu.py labels them
        text = "\n".join(iu_sections[uid][k] for k in ("FINDINGS", "IMPRESSION") if k in iu_sections[uid])
        assert label_report(text) == expected, (uid, text)


@pytest.mark.parametrize("text", [None, "x" * 1_000_000, "no " * 100_000, "\x00\ufffd" * 1000, "effusion " * 50_000,
                                  "heart " * 50_000 + "enlarged"],
                         ids=["none", "megabyte", "no_spam", "control", "mention_spam", "long_gap"])
def test_garbage_never_raises_and_is_cut(text):
    start = time.perf_counter()
    labels = label_report(text)
    assert set(labels) <= set(CHEXPERT_LABELS) and set(labels.values()) <= {1, 0, -1}
    assert time.perf_counter() - start < 2.0  # long text is cut at MAX_REPORT_CHARS


# (case, ref labels, hyp labels, clinical score)
CLINICAL = [
    # both silent: perfect agreement
    ("both_empty", {}, {}, 1.0),
    # identical statements, negations included
    ("same", {"Cardiomegaly": 1, "Pneumothorax": 0}, {"Cardiomegaly": 1, "Pneumothorax": 0}, 1.0),
    # a missing negation costs recall: 1 of 2 pairs -> F1 2/3
    ("missing_negation", {"Cardiomegaly": 1, "Pneumothorax": 0}, {"Cardiomegaly": 1}, 2 / 3),
    # the wrong status is wrong, even uncertain vs positive
    ("status_mismatch", {"Consolidation": 1}, {"Consolidation": -1}, 0.0),
    # one side silent
    ("hyp_empty", {"Cardiomegaly": 1}, {}, 0.0),
]


@pytest.mark.parametrize("case,ref,hyp,score", CLINICAL, ids=[c[0] for c in CLINICAL])
def test_clinical_score(case, ref, hyp, score):
    assert clinical_score(ref, hyp) == pytest.approx(score)


def test_chexpert_f1_keys_and_conventions():
    refs = ["Moderate cardiomegaly. Small left pleural effusion.", "No acute disease.", "Possible pneumonia."]
    hyps = ["Cardiomegaly. No effusion.", "No acute disease.", "Pneumonia in the right lower lobe."]
    r = chexpert_f1(refs, hyps)
    assert set(r.aggregate) == {"chexpert_rules_micro_f1_14", "chexpert_rules_macro_f1_14", "chexpert_rules_micro_f1_5",
                                "chexpert_rules_macro_f1_5", "clinical"}
    # positives (uncertain counts as positive): ref {Card, Eff}, {NoFinding}, {Pneumonia};
    # hyp {Card}, {NoFinding}, {Pneumonia} -> TP 3, FN 1, FP 0 -> micro 6/7
    assert r.aggregate["chexpert_rules_micro_f1_14"] == pytest.approx(6 / 7)
    # 5 common: Cardiomegaly found, Pleural Effusion missed -> micro 2/3; macro: Card 1, Eff 0, three empty 0
    assert r.aggregate["chexpert_rules_micro_f1_5"] == pytest.approx(2 / 3)
    assert r.aggregate["chexpert_rules_macro_f1_5"] == pytest.approx(1 / 5)
    assert len(r.per_sample["clinical"]) == 3
    assert r.per_sample["clinical"][1] == 1.0  # both state nothing but No Finding
    assert r.per_sample["clinical"][2] == 0.0  # uncertain vs positive
    assert r.aggregate["clinical"] == pytest.approx(sum(r.per_sample["clinical"]) / 3)


def test_chexpert_f1_via_registry_and_mismatch():
    assert METRICS["chexpert"](["No effusion."], ["No effusion."]).aggregate["clinical"] == 1.0
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        chexpert_f1(["a"], [])
