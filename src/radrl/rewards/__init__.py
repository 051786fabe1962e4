"""Rewards: thin TRL adapters from completions to metric values.

A reward is a callable ``f(completions, **columns) -> list[float | None]``. TRL's
``GRPOTrainer`` passes every dataset column as a keyword list aligned with
``completions``; ours are ``task`` ("report" | "grounding"), ``solution`` (the reference
answer text) and ``thinking`` (whether the prompt asked for ``<think>``; False when the
column is absent). ``None`` means "not my task": TRL skips it when summing rewards, so
one run can mix report and grounding prompts.

Each reward parses with ``radrl.parsing.parse`` and scores the parsed answer with a
scorer from ``radrl.metrics``, never with code of its own, so the number optimised is
the number that evaluation reports. Rewards are small classes with a fixed
``__name__`` (TRL's log key) that pickle into dataloader and reward workers; report
rewards look their scorer up in ``METRICS`` at call time, so a heavy model loads only
when its reward is first used (once per process, cached by the metric module) and never
travels in the pickle.

Which rows get the floor (paper: "-3 when prediction or reference has 5 characters or
fewer, or (thinking models) when no ``</think>`` is present"): a report answer or
reference of ``MIN_ANSWER_CHARS`` or fewer characters, which includes the empty answer
of a thinking completion without ``</think>``. The floor is the paper's value, not a
guaranteed minimum: -3 for ``report_radcliq`` as in the paper, -1 for rescaled BERTScore,
0 for the [0, 1] metrics. For the [0, 1] metrics no scored answer falls below it, but
rescaled BERTScore F1 is unbounded below and -RadCliQ can be below -3, so a very bad
scored answer can earn less than an empty one there; values are not clamped (the paper
does not clamp either). A scorer that raises
(missing weights, a bug) stops training with the reward's name in the message instead
of paying the floor to every rollout: the paper's "-3 when scoring fails" would train
on noise without anyone noticing.

>>> reward = GroundingSoftF1()
>>> reward(["Cardiomegaly at [0.38, 0.47, 0.76, 0.62]", "No finding."],
...        task=["grounding", "report"], solution=["Cardiomegaly at [0.38, 0.47, 0.76, 0.62]", "..."],
...        thinking=[False, False])
[1.0, None]
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from typing import Any

from radrl.metrics import named_error  # re-exported: rewards name the failing reward with it
from radrl.parsing import Parsed, parse

__all__ = ["MIN_ANSWER_CHARS", "REWARDS", "GroundingSoftF1", "LengthGuard", "ReportMetric", "ThinkFormat",
           "build_rewards", "completion_text", "named_error"]

# The paper floors report rewards when the answer or the reference has 5 characters or
# fewer: such answers say nothing, and a lexical or label metric must not pay for them.
MIN_ANSWER_CHARS = 5


def completion_text(completion: Any) -> str:
    """The text of one completion, plain (``"..."``) or conversational
    (``[{"role": "assistant", "content": "..." or [{"type": "text", "text": "..."}]}]``).

    >>> completion_text([{"role": "assistant", "content": [{"type": "text", "text": "No effusion."}]}])
    'No effusion.'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, dict):
        completion = [completion]
    parts = []
    for message in completion or []:
        content = message.get("content") if isinstance(message, dict) else message
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text") or "" for p in content
                         if isinstance(p, dict) and p.get("type", "text") == "text")
    return "".join(p if isinstance(p, str) else str(p) for p in parts)


class _TaskReward:
    """Shared plumbing: pick this reward's rows, parse them, score them, None elsewhere.

    ``bounds`` is the documented range of the values (the property tests hold every
    reward to it); ``options`` names the attributes a recipe may set (``build_rewards``).
    """

    __name__ = "task_reward"
    task = ""
    bounds: tuple[float, float] = (0.0, 1.0)
    options: tuple[str, ...] = ()

    def __call__(self, completions: Sequence[Any], **columns: Any) -> list[float | None]:
        n = len(completions)
        tasks = _column(columns, "task", n, self.__name__)
        solutions = _column(columns, "solution", n, self.__name__)
        thinking = _column(columns, "thinking", n, self.__name__) if columns.get("thinking") is not None else [False] * n
        rows = [i for i in range(n) if self.applies(tasks[i], bool(thinking[i]))]
        out: list[float | None] = [None] * n
        if not rows:
            return out
        parsed = [parse(completion_text(completions[i]), thinking=bool(thinking[i])) for i in rows]
        scores = self.score(parsed, [solutions[i] if isinstance(solutions[i], str) else "" for i in rows])
        for i, value in zip(rows, scores, strict=True):
            out[i] = float(value)
        return out

    def applies(self, task: Any, thinking: bool) -> bool:
        return task == self.task

    def score(self, parsed: list[Parsed], solutions: list[str]) -> list[float]:
        raise NotImplementedError

    def configure(self, **options: Any) -> _TaskReward:
        """A copy with some ``options`` changed (from the recipe's ``reward_options``).

        >>> REWARDS["report_length_guard"].configure(min_ratio=0.8).min_ratio
        0.8
        """
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            raise ValueError(f"reward {self.__name__} has no option(s) {unknown}; its options are "
                             f"{list(self.options) or 'none'}")
        clone = copy.copy(self)
        for key, value in options.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"reward {self.__name__} option {key} must be a finite number, got {value!r}")
            setattr(clone, key, type(getattr(self, key))(value))
        clone.check()
        return clone

    def check(self) -> None:
        """Cross-option checks; raise with the fix."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.options)
        return f"{type(self).__name__}({fields})"


class GroundingSoftF1(_TaskReward):
    """The paper's grounding reward: ``metrics.grounding.soft_f1`` of the answer's boxes
    against the boxes in ``solution``; invalid predicted boxes count as false positives;
    0 when thinking was requested and ``</think>`` is missing (no answer, no boxes).
    Range [0, 1].

    >>> GroundingSoftF1()(["[0.1, 0.1, 0.5, 0.5] and [0.6, 0.6, 0.9, 0.9]"], task=["grounding"],
    ...                   solution=["[0.1, 0.1, 0.5, 0.5]"])  # one hit, one extra box
    [0.6666666666666666]
    """

    __name__ = "grounding_soft_f1"
    task = "grounding"

    def score(self, parsed: list[Parsed], solutions: list[str]) -> list[float]:
        from radrl.metrics.grounding import soft_f1

        refs: dict[str, Parsed] = {}  # a GRPO group shares one reference: parse it once
        out = []
        for p, s in zip(parsed, solutions, strict=True):
            if s not in refs:
                refs[s] = parse(s)
            out.append(soft_f1(p.boxes, refs[s].boxes, extra_fp=p.invalid_boxes) if p.answer else 0.0)
        return out


class ReportMetric(_TaskReward):
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

    def score(self, parsed: list[Parsed], solutions: list[str]) -> list[float]:
        hyps = [p.answer for p in parsed]
        keep = [i for i, (h, r) in enumerate(zip(hyps, solutions, strict=True))
                if len(h) > self.min_chars and len(r.strip()) > self.min_chars]
        out = [self.floor] * len(hyps)
        if keep:
            values = self.per_sample([solutions[i].strip() for i in keep], [hyps[i] for i in keep])
            for i, v in zip(keep, values, strict=True):
                out[i] = self.sign * v
        return out

    def per_sample(self, refs: list[str], hyps: list[str]) -> list[float]:
        from radrl.metrics import METRICS

        if self.metric not in METRICS:
            raise ValueError(f"reward {self.__name__} needs the metric {self.metric!r}, which radrl.metrics.METRICS "
                             f"does not have (it has {sorted(METRICS)}); use a reward whose metric is installed")
        try:
            result = METRICS[self.metric](refs, hyps)
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


class ThinkFormat(_TaskReward):
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


class LengthGuard(_TaskReward):
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


def _column(columns: dict[str, Any], name: str, n: int, reward: str) -> Sequence[Any]:
    values = columns.get(name)
    if values is None:
        raise ValueError(f"reward {reward} needs the dataset column {name!r} (got columns {sorted(columns)}); "
                         "build the GRPO dataset with radrl's task, solution and thinking columns")
    if len(values) != n:
        raise ValueError(f"reward {reward}: column {name!r} has {len(values)} values for {n} completions")
    return values


# Name -> reward. The report rewards differ only in (metric, per-sample key, sign, floor);
# the model-based ones need their weights in a local folder (see each metric's module).
REWARDS: dict[str, _TaskReward] = {
    "grounding_soft_f1": GroundingSoftF1(),
    # the paper's report reward: -RadCliQ-v1 (RadGraph, BERTScore, CheXbert, BLEU); about [-3.5, 1.45]
    "report_radcliq": ReportMetric("report_radcliq", "radcliq", "radcliq_v1", sign=-1.0, floor=-3.0,
                                   bounds=(-math.inf, math.inf)),
    # the paper's single-metric alternatives
    "report_bertscore": ReportMetric("report_bertscore", "bertscore", "bertscore", floor=-1.0,
                                     bounds=(-math.inf, 1.0)),
    "report_radgraph": ReportMetric("report_radgraph", "radgraph", "radgraph_complete"),
    "report_gleu": ReportMetric("report_gleu", "gleu", "gleu"),
    # CheXpert labels: our rule labeler (offline) and CheXbert (needs its weights)
    "report_clinical": ReportMetric("report_clinical", "chexpert", "clinical"),
    "report_chexpert_f1": ReportMetric("report_chexpert_f1", "chexpert", "chexpert_sample_f1"),
    "report_chexbert_f1": ReportMetric("report_chexbert_f1", "chexbert", "chexbert_f1"),
    "report_rouge_l": ReportMetric("report_rouge_l", "rouge_l", "rouge_l"),
    "report_green": ReportMetric("report_green", "green", "green"),
    "think_format": ThinkFormat(),
    "report_length_guard": LengthGuard(),
}


def build_rewards(weights: dict[str, float], options: dict[str, dict[str, float]] | None = None
                  ) -> tuple[list[Callable[..., list[float | None]]], list[float]]:
    """Reward callables and their weights, in the order given, for ``GRPOTrainer``'s
    ``reward_funcs`` and ``GRPOConfig.reward_weights``; ``options`` sets a reward's
    options by name (e.g. the length guard's ``min_ratio``, a report reward's ``floor``).

    >>> funcs, w = build_rewards({"report_clinical": 1.0, "report_length_guard": 0.5},
    ...                          {"report_length_guard": {"min_ratio": 0.7}})
    >>> [f.__name__ for f in funcs], w, funcs[1].min_ratio
    (['report_clinical', 'report_length_guard'], [1.0, 0.5], 0.7)
    """
    if not weights:
        raise ValueError(f"no rewards given; name at least one of {sorted(REWARDS)} with a weight")
    options = options or {}
    unknown = [name for name in [*weights, *options] if name not in REWARDS]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; known rewards: {sorted(REWARDS)}")
    unused = sorted(set(options) - set(weights))
    if unused:
        raise ValueError(f"reward options given for {unused}, which are not among the rewards {list(weights)}")
    bad = {name: w for name, w in weights.items()
           if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w)}
    if bad:
        raise ValueError(f"reward weights must be finite numbers, got {bad}")
    funcs = [REWARDS[name].configure(**options[name]) if options.get(name) else REWARDS[name] for name in weights]
    return funcs, [float(w) for w in weights.values()]
