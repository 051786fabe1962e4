"""radrl's rewards: grounding soft F1, the report-metric rewards, the think format, the length guard.

``REWARDS`` maps each recipe name to one of them (docs/rewards.md has the table); the module docstring
of ``radrl.rewards`` says what every reward shares (rows, floors, failing scorers).
"""

from __future__ import annotations

import math
from statistics import fmean
from typing import Any

from radrl.data.boxes import Box
from radrl.lookup import resolve
from radrl.metrics import named_error
from radrl.parsing import Parsed, reference_boxes
from radrl.rewards.base import MIN_ANSWER_CHARS, TaskReward

__all__ = ["REWARDS", "GroundingSoftF1", "GroundingSoftF1Centre", "LengthGuard", "ReportMetric", "ThinkFormat"]


class GroundingSoftF1(TaskReward):
    """The paper's grounding reward: ``metrics.grounding.soft_f1`` of the answer's boxes
    against the row's reference boxes: its ``ref_boxes`` column (full precision) when the
    dataset has one, else the boxes in ``solution`` (``radrl.parsing.reference_boxes``, as
    evaluation reads them); invalid predicted boxes count as false positives;
    0 when thinking was requested and ``</think>`` is missing (no answer, no boxes).
    Range [0, 1].

    >>> GroundingSoftF1()(["[0.1, 0.1, 0.5, 0.5] and [0.6, 0.6, 0.9, 0.9]"], task=["grounding"],
    ...                   solution=["[0.1, 0.1, 0.5, 0.5]"])  # one hit, one extra box
    [0.6666666666666666]
    """

    __name__ = "grounding_soft_f1"
    task = "grounding"
    extra_columns = ("ref_boxes",)

    def score(self, parsed: list[Parsed], solutions: list[str],
              ref_boxes: list[Any] | None = None) -> list[float]:
        refs: dict[Any, list[Box]] = {}  # a GRPO group shares one reference: read it once
        out = []
        for i, (p, s) in enumerate(zip(parsed, solutions, strict=True)):
            given = None if ref_boxes is None else ref_boxes[i]
            try:
                key = s if given is None else (s, *map(tuple, given))
            except TypeError:  # not a list of [x1, y1, x2, y2]: reference_boxes raises with the fix
                key = (s, i)
            if key not in refs:
                refs[key] = reference_boxes(s, given, where=f"reward {self.__name__}: row {i} of this reward's batch")
            out.append(self.value(p.boxes, refs[key], p.invalid_boxes) if p.answer else 0.0)
        return out

    def value(self, boxes: list[Box], ref: list[Box], invalid: int) -> float:
        """One answer's value from its valid boxes, the reference and its invalid-box count."""
        from radrl.metrics.grounding import soft_f1

        return soft_f1(boxes, ref, extra_fp=invalid)

    def rates(self, parsed: list[Parsed], solutions: list[str], thinking: list[bool]) -> dict[str, float]:
        """Also ``invalid_boxes_ratio``: answers with a box the parser dropped as invalid (each one a false
        positive), so a policy that drifts from the box format shows before its reward falls."""
        return {**super().rates(parsed, solutions, thinking),
                "invalid_boxes_ratio": fmean(p.invalid_boxes > 0 for p in parsed)}


class GroundingSoftF1Centre(GroundingSoftF1):
    """``grounding_soft_f1`` with credit for centre distance: ``metrics.grounding.soft_f1_centre``,
    each matched pair scoring ``(1 - centre_weight) * IoU + centre_weight * (1 - d / sqrt(2))``
    (``d``: distance of the box centres, 0-1 coordinates). Same rows, reference boxes, invalid
    boxes and ``</think>`` rule as ``grounding_soft_f1``. Range [0, 1].

    Why: under IoU alone a group whose rollouts all miss a small lesion scores 0 throughout and
    teaches nothing; here the nearer miss (and the right side of the chest) scores more, so the
    group has an advantage to follow. Option ``centre_weight`` (default 0.5; 0 is plain soft F1).
    It is a separate name so that ``rewards/grounding_soft_f1/mean`` always means the paper's
    reward; evaluation reports plain ``soft_f1`` either way.

    >>> r = GroundingSoftF1Centre()
    >>> [round(v, 3) for v in r(["[0.46, 0.40, 0.51, 0.45]", "[0.80, 0.40, 0.85, 0.45]"], task=["grounding"] * 2,
    ...                         solution=["[0.40, 0.40, 0.45, 0.45]"] * 2)]  # two misses: the near one scores more
    [0.648, 0.528]
    """

    __name__ = "grounding_soft_f1_centre"
    options = ("centre_weight",)

    def __init__(self, centre_weight: float = 0.5) -> None:
        self.centre_weight = float(centre_weight)
        self.check()

    def check(self) -> None:
        if not 0 <= self.centre_weight <= 1:
            raise ValueError(f"reward {self.__name__}: centre_weight must be in [0, 1], got {self.centre_weight}; "
                             "0 is plain soft F1, 0.5 weighs IoU and centre distance equally")

    def value(self, boxes: list[Box], ref: list[Box], invalid: int) -> float:
        from radrl.metrics.grounding import soft_f1_centre

        return soft_f1_centre(boxes, ref, extra_fp=invalid, centre_weight=self.centre_weight)


class ReportMetric(TaskReward):
    """A report reward from one per-sample value of a ``radrl.metrics.METRICS`` scorer.

    ``value = sign * METRICS[metric](refs, answers).per_sample[key]`` for each report row;
    ``floor`` for rows whose answer or reference has ``min_chars`` or fewer characters
    (which includes a thinking completion without ``</think>``, whose answer is empty).
    The scorer is looked up when the reward is called, not when it is built, so that the
    model behind it loads only in processes that score, and the reward pickles small.

    >>> rouge = ReportMetric("report_rouge_l", "text", "rouge_l")
    >>> rouge(["The heart size is normal.", "<think>hm"], task=["report", "report"],
    ...       solution=["Heart size is normal."] * 2, thinking=[False, True])
    [0.888888888888889, 0.0]
    """

    task = "report"
    options = ("floor", "min_chars")

    def __init__(self, name: str, metric: str, key: str, sign: float = 1.0, floor: float = 0.0,
                 bounds: tuple[float, float] = (0.0, 1.0), min_chars: int = MIN_ANSWER_CHARS) -> None:
        self.__name__ = name
        self.metric, self.key, self.sign = metric, key, float(sign)
        self.floor, self.bounds, self.min_chars = float(floor), bounds, int(min_chars)
        self.check()

    def check(self) -> None:
        if not self.bounds[0] <= self.floor <= self.bounds[1]:
            raise ValueError(f"reward {self.__name__}: floor {self.floor} is outside its range {self.bounds}; "
                             "pick a floor inside it (normally its lower end)")
        if self.min_chars < 0:
            raise ValueError(f"reward {self.__name__}: min_chars must be >= 0, got {self.min_chars}")

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.__name__!r}, metric={self.metric!r}, key={self.key!r}, sign={self.sign}, "
                f"floor={self.floor}, min_chars={self.min_chars})")

    def preflight(self) -> None:
        """The metric's own check (``radrl.metrics.check_metrics``: weights, judge; no model loads), with this
        reward's name before the metric's message, which says what to download and where."""
        from radrl.metrics import check_metrics

        try:
            check_metrics([self.metric])
        except Exception as e:  # name the reward: the recipe names rewards, not metrics
            raise named_error(e, f"reward {self.__name__} (metric {self.metric!r})") from e

    def scorable(self, answer: str, solution: str) -> bool:
        """Whether a row is scored, not floored: answer and reference longer than ``min_chars``."""
        return len(answer) > self.min_chars and len(solution.strip()) > self.min_chars

    def rates(self, parsed: list[Parsed], solutions: list[str], thinking: list[bool]) -> dict[str, float]:
        """Also ``floored_ratio``: rows given the floor for a too-short (or, without ``</think>``, empty) answer
        or reference; a rising share is a policy learning to say nothing."""
        return {**super().rates(parsed, solutions, thinking),
                "floored_ratio": fmean(not self.scorable(p.answer, s) for p, s in zip(parsed, solutions, strict=True))}

    def score(self, parsed: list[Parsed], solutions: list[str]) -> list[float]:
        hyps = [p.answer for p in parsed]
        keep = [i for i, (h, r) in enumerate(zip(hyps, solutions, strict=True)) if self.scorable(h, r)]
        out = [self.floor] * len(hyps)
        if not keep:  # the scorer is not called: a missing one must still fail, never hide behind the floor
            self.preflight()
        else:
            values = self.per_sample([solutions[i].strip() for i in keep], [hyps[i] for i in keep])
            for i, v in zip(keep, values, strict=True):
                out[i] = self.sign * v
        return out

    def per_sample(self, refs: list[str], hyps: list[str]) -> list[float]:
        from radrl.metrics import METRICS

        scorer = resolve(self.metric, METRICS, "metric", fix=f"reward {self.__name__} needs the metric "
                         f"{self.metric!r}: fix the name or put its scorer into radrl.metrics.METRICS")
        try:
            result = scorer(refs, hyps)
        except Exception as e:  # name the reward: the trainer's traceback does not
            raise named_error(e, f"reward {self.__name__} (metric {self.metric!r}) failed") from e
        if self.key not in result.per_sample:
            raise ValueError(f"reward {self.__name__}: metric {self.metric!r} has no per-sample {self.key!r} "
                             f"(it has {sorted(result.per_sample)})")
        values = result.per_sample[self.key]
        if len(values) != len(hyps):
            raise ValueError(f"reward {self.__name__}: metric {self.metric!r} returned {len(values)} values "
                             f"for {len(hyps)} answers")
        return values


class ThinkFormat(TaskReward):
    """1 when a completion that was asked to think is well formed, else 0; None for rows
    that did not ask for thinking (any task). Well formed: one ``</think>`` (the prompt
    may hold the ``<think>``), no unbalanced tags, a non-empty reasoning and a non-empty
    answer after it. Range [0, 1]. The paper uses no format reward (its floors already
    punish a missing ``</think>``); this one is for small models that have to learn the
    format first.

    >>> ThinkFormat()(["<think>big heart</think>Cardiomegaly.", "<think>big heart", "Cardiomegaly."],
    ...               task=["report"] * 3, solution=["x"] * 3, thinking=[True, True, False])
    [1.0, 0.0, None]
    """

    __name__ = "think_format"

    def applies(self, task: Any, thinking: bool) -> bool:
        return thinking

    def score(self, parsed: list[Parsed], solutions: list[str]) -> list[float]:
        bad = {"think_missing", "unbalanced_think", "empty_answer"}
        return [1.0 if p.think and not bad & set(p.issues) else 0.0 for p in parsed]


class LengthGuard(TaskReward):
    """A penalty for report answers much shorter than their reference, against length hacking.

    The paper saw RadGraph-F1-only training shrink answers from 207 to 93 characters while
    every other metric fell. ``value = -max(0, 1 - len(answer) / (min_ratio * len(reference)))``:
    0 for any answer at least ``min_ratio`` (default 0.5) of the reference's length,
    falling linearly to -1 for an empty answer; range [-1, 0]. Lengths are characters of
    the parsed answer and the stripped reference.

    Why a separate reward and not a factor on the metric: TRL sums weighted rewards, so
    the recipe sets its strength with ``reward_weights``, it works the same under -RadCliQ
    (negative, where a multiplier would reward shortening) as under [0, 1] metrics, and it
    is logged under its own name, so a run shows whether it is active.

    >>> LengthGuard()(["Normal.", "The heart is normal in size."], task=["report"] * 2,
    ...               solution=["The heart is normal in size, lungs clear."] * 2)
    [-0.6585365853658536, 0.0]
    """

    __name__ = "report_length_guard"
    task = "report"
    bounds = (-1.0, 0.0)
    options = ("min_ratio",)

    def __init__(self, min_ratio: float = 0.5) -> None:
        self.min_ratio = float(min_ratio)
        self.check()

    def check(self) -> None:
        if not 0 < self.min_ratio <= 10:
            raise ValueError(f"reward {self.__name__}: min_ratio must be in (0, 10], got {self.min_ratio}; "
                             "0.5 penalises answers shorter than half their reference")

    def score(self, parsed: list[Parsed], solutions: list[str]) -> list[float]:
        out = []
        for p, s in zip(parsed, solutions, strict=True):
            target = self.min_ratio * len(s.strip())
            out.append(min(0.0, len(p.answer) / target - 1.0) if target > 0 else 0.0)
        return out


# Name -> reward. The report rewards differ only in (metric, per-sample key, sign, floor);
# the model-based ones need their weights in a local folder (see each metric's module).
REWARDS: dict[str, TaskReward] = {
    "grounding_soft_f1": GroundingSoftF1(),
    # soft F1 with credit for centre distance: misses still score by how near they land
    "grounding_soft_f1_centre": GroundingSoftF1Centre(),
    # the paper's report reward: -RadCliQ-v1 (RadGraph, BERTScore, CheXbert, BLEU); about [-3.5, 1.45]
    "report_radcliq": ReportMetric("report_radcliq", "radcliq", "radcliq_v1", sign=-1.0, floor=-3.0,
                                   bounds=(-math.inf, math.inf)),
    # the paper's single-metric alternatives
    "report_bertscore": ReportMetric("report_bertscore", "bertscore", "bertscore", floor=-1.0,
                                     bounds=(-math.inf, 1.0)),
    # the paper's BERTScore-alone ablation as the authors' code scores it (distilbert-base-uncased, layer 5;
    # worker_bertscore.py gives too-short answers 0); report_bertscore keeps RadCliQ's distilroberta-base
    "report_bertscore_distilbert": ReportMetric("report_bertscore_distilbert", "bertscore_distilbert",
                                                "bertscore_distilbert", floor=0.0, bounds=(-math.inf, 1.0)),
    "report_radgraph": ReportMetric("report_radgraph", "radgraph", "radgraph_complete"),
    "report_gleu": ReportMetric("report_gleu", "gleu", "gleu"),
    # CheXpert labels: our rule labeler (offline) and CheXbert (needs its weights)
    "report_clinical": ReportMetric("report_clinical", "chexpert", "clinical"),
    "report_chexpert_f1": ReportMetric("report_chexpert_f1", "chexpert", "chexpert_rules_sample_f1"),
    "report_chexbert_f1": ReportMetric("report_chexbert_f1", "chexbert", "chexbert_f1"),
    "report_rouge_l": ReportMetric("report_rouge_l", "rouge_l", "rouge_l"),
    "report_green": ReportMetric("report_green", "green", "green"),
    "report_ratescore": ReportMetric("report_ratescore", "ratescore", "ratescore"),
    "think_format": ThinkFormat(),
    "report_length_guard": LengthGuard(),
}
