"""A fast rule-based CheXpert labeler and the report metrics built on it.

Why rules and not CheXbert: CheXbert's weights are a separate download that our
machines cannot fetch, and a reward runs on every rollout, so the labeler has to be
cheap on one CPU core. It follows the CheXpert labeler's design (mention extraction,
then negation and uncertainty classification, then aggregation) with regular
expressions instead of a dependency parse:

1. Lower-case, split into sentences (periods that are not decimal points, ``;``,
   ``!``, ``?``, line breaks), and sentences into clauses at words such as "but",
   "however", "which", "except" or a comma that starts a new statement (", the").
   Negation and uncertainty never reach across a clause.
2. Find mentions of the 14 observations (``_MENTIONS``: synonyms and phrases such as
   "heart ... enlarged", "nodule", "mass" -> Lung Lesion) and statements that an
   organ is normal (``_NORMAL``: "heart size is normal" -> Cardiomegaly negative).
3. Classify each mention by the nearest cue before it in its clause ("no", "without",
   "free of", "negative for", "resolved" -> negative; "may", "possible", "cannot be
   excluded", "likely", "suspicious for", "question of" -> uncertain) or by the
   predicate right after it ("... is not seen", "... has resolved" -> negative;
   "... cannot be excluded" -> uncertain). A hedge that qualifies a finding
   ("suspicious", "to suggest", "concerning for") is uncertain on its own but stays
   negative after a negation: "no suspicious nodules", "no opacity to suggest pneumonia".
4. Aggregate per observation as CheXpert does: positive if any mention is positive,
   else uncertain if any is uncertain, else negative; "No Finding" is 1 when no
   observation other than Support Devices is positive or uncertain.

Where conventions differ, the expert labels of the Indiana University reports (Open-i,
NegBio gold standard; ``shared/data/cxr/reports``) decide, because they are the check we
can run: "probable X", "X versus Y", "consistent with X" and "borderline heart size"
are positive there (17 of 18 "probable" reports are), "heart size at the upper limits
of normal" is normal, "infection" and "vascular congestion" are not Pneumonia or Edema.
On the 2,598 development reports this labeler reaches micro F1 0.96 and macro F1 0.93
over the seven observations they share with CheXpert (uncertain counted negative, as the
gold does; ``bench/chexpert_labeler_iu.py`` computes and records the table).

Speed (``bench/chexpert_labeler_speed.py``: ~8,000 IU reports/s on one core): each
observation has a few trigger substrings (``_TRIGGERS``), one of which every match of its
patterns contains; its patterns run only over the sentences between the first and the
last trigger, and not at all when none occurs. This saves work without changing a label.

``label_report`` gives CheXpert values (1 positive, 0 negative, -1 uncertain,
unmentioned observations absent). ``chexpert_f1`` gives CheXbert-style F1 (uncertain
counts as positive, as RadEval / f1chexbert do in report-generation mode) and the
per-sample ``clinical`` score used as a reward.

>>> label_report("Moderate cardiomegaly. No pneumothorax. Possible consolidation.")
{'Cardiomegaly': 1, 'Consolidation': -1, 'Pneumothorax': 0}
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Sequence
from functools import lru_cache

from radrl.data.schema import CHEXPERT_LABELS, NEGATIVE, POSITIVE, UNCERTAIN
from radrl.metrics.base import MetricResult, MetricSpec, check_aligned

__all__ = [
    "COMMON5",
    "LABELER_VERSION",
    "MAX_REPORT_CHARS",
    "chexpert_f1",
    "clinical_score",
    "label_f1",
    "label_report",
    "label_reports",
    "per_label_f1",
]

LABELER_VERSION = "radrl-rules-2"
MAX_REPORT_CHARS = 8_192  # a report is ~1 k characters; runaway text is cut, not scanned
COMMON5 = ("Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Pleural Effusion")
NO_FINDING, SUPPORT_DEVICES = "No Finding", "Support Devices"

# Keys of chexpert_f1: every name says "CheXpert-rules" (this rule labeler, not CheXbert) and the label count.
_RULES = f"the rule labeler ({LABELER_VERSION}, not CheXbert; uncertain counts as positive)"
_OVER = {14: "the 14 CheXpert labels incl. No Finding", 5: "the 5 common labels (COMMON5)"}
SPECS = (
    *(MetricSpec(f"chexpert_rules_{avg}_f1_{n}", f"CheXpert-rules {avg}-F1 ({n})", labels=n,
                 description=f"{avg}-averaged F1 over {_OVER[n]} by {_RULES}; corpus-level")
      for n in (14, 5) for avg in ("micro", "macro")),
    MetricSpec("clinical", "clinical (CheXpert-rules)", description="F1 over the (observation, status) pairs the "
               "rule labeler finds, negations included (the report_clinical reward); mean over samples"),
    MetricSpec("chexpert_rules_sample_f1", "CheXpert-rules example F1 (14)", labels=14,
               description=f"per-report F1 of the two 14-label vectors by {_RULES}"),
)

# Gaps inside a phrase ("heart size is mildly enlarged") stay inside one statement:
# no sentence or clause punctuation, no clause words, at most a few words.
_GAP = (r"(?:(?!\b(?:but|however|although|though|whereas|while|which|and the|with|without|no|normal)\b)"
        r"[^.;:,\n]){0,40}?")
_HEART = (r"(?:heart(?: size)?|cardiac (?:silhouette|shadow|size|contours?|diameter|outline|borders?|configuration)"
          r"|size of the heart)")
_MEDIASTINUM = (r"(?:cardiomediastin\w*(?: (?:silhouette|contours?|size|width))?"
                r"|mediastin\w*(?: (?:silhouette|contours?|width))?)")
_ENLARGED = (r"(?:enlarged|enlargement|large|larger|increased|prominent|prominence|widened|widening|globular"
             r"|cardiomegaly)")
_NORMAL_WORDS = r"(?:normal|within normal limits|unremarkable|not enlarged|nonenlarged|non-enlarged|unenlarged)"

# Observation -> mention patterns. A pattern's (?P<key>...) group, when present, marks
# the word that cues act on ("the heart is not enlarged": "not" precedes "enlarged").
_MENTIONS: dict[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": (
        rf"{_MEDIASTINUM}{_GAP}\b(?P<key>{_ENLARGED}|borderline)",
        rf"\b(?P<key>{_ENLARGED}|borderline) (?:(?:of )?the )?{_MEDIASTINUM}",
        r"\bpneumomediastinum\b",
    ),
    "Cardiomegaly": (
        r"\bcardiomegaly\b",
        r"\bcardiac enlargement\b",
        rf"\b{_HEART}\b{_GAP}\b(?P<key>{_ENLARGED}|borderline)\b",
        rf"\b(?P<key>{_ENLARGED}|borderline) (?:(?:of )?the )?{_HEART}\b",
    ),
    "Lung Opacity": (
        r"\bopaci\w*",
        r"\bair[- ]?space (?:disease|process|opacit\w*|consolidation)",
        r"\binfiltrat\w*",
        r"\bdensit(?:y|ies)\b",
        r"\bhaz(?:y|iness)\b",
        r"\bground[- ]glass\b",
        r"\binterstitial (?:markings?|pattern|prominence|opacit\w*|thickening|disease|changes?|edema)",
        r"\breticular\w*",
        r"\b(?:parenchymal )?scar(?:ring|s)?\b",
        r"\bperibronchial (?:thickening|cuffing)",
    ),
    "Lung Lesion": (
        r"\bnodul(?:e|es|ar)\b",
        r"\bmass(?:es)?\b",
        r"\b(?:lung |pulmonary |cavitary )?lesions?\b",
        r"\btumou?rs?\b",
        r"\bneoplasm\w*",
        r"\bcarcinoma\b",
        r"\bmalignan\w*",
        r"\bmetasta\w*",
        r"\bcavitar\w*|\bcavitation\b",
    ),
    "Edema": (
        r"\b(?:o)?edema\b(?<!soft tissue edema)",
        r"\b(?:congestive )?heart failure\b",
        r"\bchf\b",
        r"\bfluid overload\b",
    ),
    "Consolidation": (
        r"\bconsolidat\w*",
    ),
    "Pneumonia": (
        r"\b(?:broncho)?pneumonia\w*",
        r"\bpneumonitis\b",
        r"\baspiration\b",
    ),
    "Atelectasis": (
        r"\batelecta\w*",
        r"\b(?:lobar |segmental |lung |lobe )collapse\b",
        r"\bcollapse of (?:\w+ ){0,6}?(?:lobes?|lung)\b",
    ),
    "Pneumothorax": (
        r"\b(?:hydro)?pneumothora\w*",
    ),
    "Pleural Effusion": (
        r"\beffusions?\b(?<!pericardial effusion)(?<!pericardial effusions)(?<!joint effusion)(?<!joint effusions)",
        r"\bpleural fluid\b",
        r"\bhydrothora\w*",
        r"\bfluid (?:in|within|along) the (?:\w+ )?(?:pleural|fissure|costophrenic)",
    ),
    "Pleural Other": (
        r"\bpleural (?:thickening|scar\w*|plaques?|calcification\w*|abnormalit\w*|based (?:opacity|density))",
        r"\bfibrothorax\b",
        r"\bapical (?:pleural )?(?:cap|capping)\b",
        r"\bpleuro-?parenchymal (?:scar\w*|thickening)",
    ),
    "Fracture": (
        r"\bfractur\w*",
        r"\bfx\b",
    ),
    "Support Devices": (
        r"\bpace(?:maker|r)s?\b",
        r"\b(?:aicd|icd|defibrillator)\b",
        (r"\b(?:endotracheal|tracheostomy|nasogastric|orogastric|feeding|chest|et|ng|og|enteric|gastric|thoracostomy)"
         r" tubes?\b"),
        r"\b(?:ett|dobhoff|picc|swan-ganz|lvad|port-a-cath|portacath|ivc filter|stents?|catheters?)\b",
        r"\b(?:central venous|central|venous|picc) (?:line|catheter)s?\b",
        r"\b(?:pacer|pacing|pacemaker) (?:wires?|leads?)\b",
        r"\b(?:sternotomy|sternal) wires?\b",
        r"\b(?:surgical )?(?:hardware|prosthes\w*)\b",
        r"\b(?:valve replacement|prosthetic valve)\b",
        r"\b(?:cardiac|loop) (?:device|recorder|monitor)\b",
        r"\bport\b",
        r"\bdrains?\b",
    ),
}

# Observation -> statements that the organ is normal: a negative mention.
_NORMAL: dict[str, tuple[str, ...]] = {
    "Cardiomegaly": (
        rf"\b{_HEART}\b{_GAP}\b{_NORMAL_WORDS}",
        rf"\b{_NORMAL_WORDS} (?:\w+ )?{_HEART}\b",
        r"\bheart(?:,| and) (?:\w+ ){0,4}(?:are|is) (?:\w+ )?(?:normal|within normal limits|unremarkable)",
    ),
    "Enlarged Cardiomediastinum": (
        rf"{_MEDIASTINUM}{_GAP}\b{_NORMAL_WORDS}",
        rf"\b{_NORMAL_WORDS} (?:\w+ )?{_MEDIASTINUM}",
    ),
}

# Observation -> substrings of which every match of its mention and normal patterns above
# contains at least one ("triggers"). No match contains a character of ``_STOPS`` either, so
# every match lies in a sentence that holds a trigger: the patterns are run only over the
# span from the first to the last such sentence (``_window``), and not at all when no
# trigger occurs. This changes no label, only the work: a substring search is far cheaper
# than a regex scan, and most reports mention few observations. Keep the triggers in step
# with the patterns: tests/metrics/test_chexpert.py checks that every match carries one.
_STOPS = ".;\n"
_STOP_RE = re.compile(f"[{_STOPS}]")
_TRIGGERS: dict[str, tuple[str, ...]] = {
    "Enlarged Cardiomediastinum": ("mediastin",),
    "Cardiomegaly": ("cardiomegaly", "heart", "cardiac"),
    "Lung Opacity": ("opaci", "air", "infiltrat", "densit", "haz", "ground", "interstitial", "reticular", "scar",
                     "peribronchial"),
    "Lung Lesion": ("nodul", "mass", "lesion", "tumo", "neoplasm", "carcinoma", "malignan", "metasta", "cavita"),
    "Edema": ("edema", "heart failure", "chf", "fluid overload"),
    "Consolidation": ("consolidat",),
    "Pneumonia": ("pneumoni", "aspiration"),
    "Atelectasis": ("atelecta", "collapse"),
    "Pneumothorax": ("pneumothora",),
    "Pleural Effusion": ("effusion", "fluid", "hydrothora"),
    "Pleural Other": ("pleural thickening", "pleural scar", "pleural plaque", "pleural calcification",
                      "pleural abnormalit", "pleural based", "fibrothorax", "apical cap", "apical pleural cap",
                      "pleuro"),
    "Fracture": ("fractur", "fx"),
    "Support Devices": ("pacemaker", "pacer", "pacing", "icd", "defibrillator", "tube", "ett", "dobhoff", "picc",
                        "swan-ganz", "lvad", "port", "ivc filter", "stent", "catheter", "central", "venous", "stern",
                        "hardware", "prosthes", "valve", "device", "recorder", "monitor", "drain"),
}

# Cues. Uncertain forms that contain a negation ("cannot be excluded") come first, so
# that their "not" is not read as a negation.
_PRE_CUES = re.compile(
    r"(?P<unc>\bcan ?not (?:be )?(?:excluded|exclude|ruled out|rule out)|\bcan't (?:be )?(?:exclude|rule out)"
    r"|\bnot (?:be |been )?(?:entirely |totally |completely )?(?:excluded|exclude|ruled out)"
    r"|\bmay\b|\bmight\b|\bcould\b|\bcan (?:be|represent)\b|\bpossibl[ey]\b|\bquestion\w*|\blikely\b"
    r"|\bconsider\b|\bconsideration\b|\bfavou?r\w*"
    r"|\bcorrelat\w*|\b(?:evaluat\w*|assess\w*) for\b"
    r"|\bsuspect\w*|\bdifferential\b|\bequivocal\b|\bindeterminate\b"
    r"|\bpresum\w*|\brule out\b|\br/o\b|\bversus (?:possible|early)\b|\bcannot be differentiated\b)"
    r"|(?P<weak>\bsuggest\w*|\bsuspicio\w*|\bconcern\w* for\b|\bworrisome\b)"
    r"|(?P<neg>\bno\b(?! (?:interval |significant |substantial |appreciable )?change)(?! longer)"
    r"|\bno longer\b|\bnot\b|\bwithout\b(?! (?:interval |significant )?change)|\bfree of\b|\bnegative for\b"
    r"|\babsence of\b|\babsent\b|\bresolution of\b|\bresolved\b|\bresolving\b|\bclear of\b|\bremoval of\b"
    r"|\bremoved\b|\brather than\b|\bnor\b|\bnon-|\bdisappear\w*|\bexclude[sd]?\b|\brules? out\b)")
_POST_GAP = (r"(?:(?!\b(?:is|are|was|were|has|have|had|appears?|remains?|seen|noted|but|however|which|and there)\b)"
             r"[^.;:\n]){0,40}?")
_POST_NEG = re.compile(
    rf"^{_POST_GAP}\b(?:(?:is|are|was|were|has|have|had|has been|have been|had been|appears?|remains?)\s+)?"
    r"(?:(?:not|no longer)\s+(?:\w+\s+){0,2}?(?:seen|identified|present|visuali[sz]ed|demonstrated|appreciated|evident"
    r"|detected|noted|visible|apparent|enlarged|increased|observed|shown|definite|convincing|identifiable)"
    r"|absent|resolved|cleared|removed|gone|excluded|ruled out|not|negative)\b")
_POST_UNC = re.compile(
    rf"^{_POST_GAP}\b(?:(?:is|are|was|were)\s+)?(?:(?:also |again )?"
    r"(?:possible|possibly|suspected|questioned|questionable"
    r"|(?:can ?not|could not|may not) (?:be )?(?:entirely )?(?:excluded|ruled out)"
    r"|not (?:be )?(?:entirely )?(?:excluded|ruled out)"
    r"|(?:may|might|could) be (?:present|seen|developing)|(?:in|within) the differential"
    r"|(?:also |another |would be )?(?:a )?consideration)\b|\?)")

# a period that is not a decimal point (written so that every branch starts with a literal, which
# lets the regex engine skip ahead to candidate characters), ";", "!", "?" or a line break
_SENTENCE_RE = re.compile(r"\.(?:(?<!\d\.)|(?!\d))|[;!?\n]")
_CLAUSE_RE = re.compile(
    r"\b(?:but|however|although|though|whereas|while|which|except|aside from|apart from|other than|otherwise)\b"
    r"|,\s*(?:and\s+)?(?:there|the|this|these|it|heart|lungs?)\b|\band (?:there|the|heart|lungs?)\b|:")


@lru_cache(maxsize=1)
def _compiled() -> tuple[tuple[str, tuple[str, ...], re.Pattern, int], ...]:
    """(observation, triggers, pattern, status of a match before cues) for every mention pattern."""
    out = []
    for name, patterns in _MENTIONS.items():
        out.append((name, _TRIGGERS[name], re.compile("|".join(f"(?:{p})" for p in _numbered_keys(patterns))),
                    POSITIVE))
    for name, patterns in _NORMAL.items():
        out.append((name, _TRIGGERS[name], re.compile("|".join(f"(?:{p})" for p in patterns)), NEGATIVE))
    return tuple(out)


def _numbered_keys(patterns: Sequence[str]) -> list[str]:
    # Python forbids one group name twice in a pattern: key0, key1, ...
    return [p.replace("(?P<key>", f"(?P<key{i}>") for i, p in enumerate(patterns)]


def label_report(text: str) -> dict[str, int]:
    """CheXpert labels of one report: observation -> 1 / 0 / -1; unmentioned ones absent.

    >>> label_report("No focal consolidation, effusion or pneumothorax. The heart is enlarged.")
    {'Cardiomegaly': 1, 'Consolidation': 0, 'Pneumothorax': 0, 'Pleural Effusion': 0}
    """
    text = (text or "")[:MAX_REPORT_CHARS].lower()
    bounds: list[int] | None = None  # statement boundaries, found on the first mention that needs cues
    found: dict[str, int] = {}
    stops = [m.start() for m in _STOP_RE.finditer(text)]
    windows: dict[str, tuple[int, int] | None] = {}
    for name, triggers, pattern, base in _compiled():
        if name not in windows:  # an observation's mention and normal patterns share its triggers
            windows[name] = _window(text, stops, triggers)
        window = windows[name]
        if window is None:
            continue
        for m in pattern.finditer(text, *window):
            if base == NEGATIVE:
                status = NEGATIVE
            else:
                if bounds is None:
                    bounds = _boundaries(text)
                status = _classify(text, m, bounds)
            found[name] = _combine(found.get(name), status)
    findings = (v for k, v in found.items() if k != SUPPORT_DEVICES)
    if not any(v in (POSITIVE, UNCERTAIN) for v in findings):
        found[NO_FINDING] = POSITIVE
    return {k: found[k] for k in CHEXPERT_LABELS if k in found}


def label_reports(texts: Sequence[str]) -> list[dict[str, int]]:
    """``label_report`` for each text; repeated texts (a GRPO group's reference) are labelled once."""
    cache: dict[str, dict[str, int]] = {}
    out = []
    for text in texts:
        text = text or ""
        if text not in cache:
            cache[text] = label_report(text)
        out.append(cache[text])
    return out


def _window(text: str, stops: list[int], triggers: tuple[str, ...]) -> tuple[int, int] | None:
    r"""(start, end) of the sentences holding the first and the last trigger; None when none occurs.

    Searching ``text`` from start to end finds the same matches as searching all of it,
    because no match crosses a ``_STOPS`` character, and look-behinds and ``\b`` still see
    the characters before ``start`` (``Pattern.finditer(text, pos, endpos)`` semantics; the
    end is a stop character or the end of the text, which ``\b`` and look-aheads treat alike).
    ``stops`` are the positions of the ``_STOPS`` characters in ``text``. (Plain ``str.find``
    per trigger is faster here than one alternation of all triggers.)
    """
    first = last = -1
    for t in triggers:
        i = text.find(t)
        if i >= 0:
            if first < 0 or i < first:
                first = i
            j = text.rfind(t)
            last = max(last, j)
    if first < 0:
        return None
    i = bisect.bisect_left(stops, first)  # stops[:i] lie before the first trigger
    j = bisect.bisect_left(stops, last, i)  # stops[j] is the first after the last one (triggers hold no stop)
    return stops[i - 1] + 1 if i else 0, stops[j] if j < len(stops) else len(text)


def _boundaries(text: str) -> list[int]:
    """Sorted positions where a statement ends: sentence ends and clause breaks."""
    cuts = {m.end() for m in _SENTENCE_RE.finditer(text)}
    cuts.update(m.start() for m in _CLAUSE_RE.finditer(text))
    cuts.update((0, len(text)))
    return sorted(cuts)


def _classify(text: str, m: re.Match, bounds: list[int]) -> int:
    key = m.lastgroup
    k_start, k_end = m.span(key) if key else m.span()
    i = bisect.bisect_right(bounds, m.start()) - 1
    clause_start = bounds[max(i, 0)]
    j = bisect.bisect_left(bounds, k_end)
    clause_end = bounds[min(j, len(bounds) - 1)]
    status = _pre_status(text[clause_start:k_start])
    if status is not None:
        return status
    post = text[k_end:clause_end]
    if _POST_UNC.search(post):
        return UNCERTAIN
    if _POST_NEG.search(post):
        return NEGATIVE
    return POSITIVE


def _pre_status(pre: str) -> int | None:
    """Status set by the nearest cue before the mention. A weak hedge (one that qualifies a
    finding: "to suggest", "suspicious", "concerning for", "worrisome") after a negation in
    the same clause stays negative: "no opacity to suggest pneumonia", "no focal
    consolidation, suspicious opacity or pneumothorax"; on its own it is uncertain."""
    cues = list(_PRE_CUES.finditer(pre))
    if not cues:
        return None
    last = cues[-1]
    if last.lastgroup == "neg":
        return NEGATIVE
    if last.lastgroup == "unc":
        return UNCERTAIN
    return NEGATIVE if any(c.lastgroup == "neg" for c in cues[:-1]) else UNCERTAIN


_RANK = {NEGATIVE: 0, UNCERTAIN: 1, POSITIVE: 2}


def _combine(old: int | None, new: int) -> int:
    """CheXpert aggregation: positive beats uncertain beats negative."""
    return new if old is None or _RANK[new] > _RANK[old] else old


# --- metrics ------------------------------------------------------------------------


def clinical_score(ref_labels: dict[str, int], hyp_labels: dict[str, int]) -> float:
    """F1 over the (observation, status) pairs two label sets state; 1.0 when neither states any.

    Unlike CheXbert F1 it credits correct negations ("no pneumothorax" against "no
    pneumothorax") and distinguishes uncertain from positive, so a report that states
    the right normal findings scores above one that is silent. "No Finding" is one of
    the pairs, so two normal reports agree on it.

    >>> clinical_score({"Cardiomegaly": 1, "Pneumothorax": 0}, {"Cardiomegaly": 1})
    0.6666666666666666
    """
    ref = set(ref_labels.items())
    hyp = set(hyp_labels.items())
    if not ref and not hyp:
        return 1.0
    tp = len(ref & hyp)
    return 2 * tp / (len(ref) + len(hyp))


def chexpert_f1(refs: Sequence[str], hyps: Sequence[str]) -> MetricResult:
    """CheXbert-style F1 of generated reports against references, plus ``clinical``.

    Labels are binarised as RadEval / f1chexbert do for report generation: positive
    and uncertain -> 1, negative and unmentioned -> 0, over the 14 observations
    including "No Finding". Micro F1 pools counts over labels; macro F1 averages per-label
    F1, where a label with no positive on either side scores 0 (scikit-learn's
    ``zero_division`` default that ``classification_report`` uses). ``_5`` keys use the
    five common observations (``COMMON5``). Per sample: ``clinical`` (see
    ``clinical_score``; aggregate = mean) and ``chexpert_rules_sample_f1`` (F1 of the binary
    14-label vectors; 1.0 when both are all zero).

    >>> r = chexpert_f1(["Small left pleural effusion."], ["Left pleural effusion. No pneumothorax."])
    >>> r.aggregate["chexpert_rules_micro_f1_14"], r.per_sample["clinical"]
    (1.0, [0.6666666666666666])
    """
    check_aligned(refs, hyps)
    ref_labels, hyp_labels = label_reports(refs), label_reports(hyps)
    f1s, sample_f1 = label_f1(ref_labels, hyp_labels)
    agg = {f"chexpert_rules_{avg}_f1_{n}": v for (avg, n), v in f1s.items()}
    clinical = [clinical_score(r, h) for r, h in zip(ref_labels, hyp_labels)]
    agg["clinical"] = math.fsum(clinical) / len(clinical) if clinical else 0.0
    return MetricResult(
        aggregate=agg,
        per_sample={"clinical": clinical, "chexpert_rules_sample_f1": sample_f1},
        versions={"chexpert_labeler": LABELER_VERSION,
                  "chexpert_f1": f"rule labeler {LABELER_VERSION} (not CheXbert): uncertain->positive, 14 labels "
                                 "incl. No Finding and the 5 common ones; macro: empty label F1=0"},
    )


def label_f1(ref_labels: Sequence[dict[str, int]], hyp_labels: Sequence[dict[str, int]]
             ) -> tuple[dict[tuple[str, str], float], list[float]]:
    """CheXpert-label F1 as report-generation papers report CheXbert F1, from any labeler's output.

    Returns ``{("micro" | "macro", "14" | "5"): F1}`` and the per-pair example F1 (1.0 when
    both sides are all zero). Shared by the rule labeler (``chexpert_f1``) and CheXbert
    (``radrl.metrics.chexbert``) so both are computed by one piece of code.

    >>> label_f1([{"Edema": 1}], [{"Edema": -1, "Pneumothorax": 1}])[1]
    [0.6666666666666666]
    """
    ref_bin = [_binary(lab) for lab in ref_labels]
    hyp_bin = [_binary(lab) for lab in hyp_labels]
    out: dict[tuple[str, str], float] = {}
    for suffix, names in (("14", CHEXPERT_LABELS), ("5", COMMON5)):
        idx = [CHEXPERT_LABELS.index(n) for n in names]
        counts = [_counts([r[i] for r in ref_bin], [h[i] for h in hyp_bin]) for i in idx]
        tp, fp, fn = (sum(c[k] for c in counts) for k in range(3))
        out["micro", suffix] = _f1(tp, fp, fn)
        out["macro", suffix] = math.fsum(_f1(*c) for c in counts) / len(counts)
    return out, [_f1(*_counts(r, h)) if any(r) or any(h) else 1.0 for r, h in zip(ref_bin, hyp_bin)]


def per_label_f1(ref_labels: Sequence[dict[str, int]], hyp_labels: Sequence[dict[str, int]]
                 ) -> dict[str, dict[str, float]]:
    """Per CheXpert observation: F1 (binarised as in ``label_f1``), reference positives (``support``)
    and predicted positives, for per-class tables.

    >>> per_label_f1([{"Edema": 1}], [{"Edema": -1}])["Edema"]
    {'f1': 1.0, 'support': 1.0, 'predicted': 1.0}
    """
    ref_bin = [_binary(lab) for lab in ref_labels]
    hyp_bin = [_binary(lab) for lab in hyp_labels]
    out = {}
    for i, name in enumerate(CHEXPERT_LABELS):
        r, h = [x[i] for x in ref_bin], [x[i] for x in hyp_bin]
        out[name] = {"f1": _f1(*_counts(r, h)), "support": float(sum(r)), "predicted": float(sum(h))}
    return out


def _binary(labels: dict[str, int]) -> list[int]:
    return [1 if labels.get(n) in (POSITIVE, UNCERTAIN) else 0 for n in CHEXPERT_LABELS]


def _counts(ref: Sequence[int], hyp: Sequence[int]) -> tuple[int, int, int]:
    tp = sum(1 for r, h in zip(ref, hyp) if r and h)
    fp = sum(1 for r, h in zip(ref, hyp) if h and not r)
    fn = sum(1 for r, h in zip(ref, hyp) if r and not h)
    return tp, fp, fn


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0
