"""Rewards: thin TRL adapters from completions to metric values.

A reward is a callable ``f(completions, **columns) -> list[float | None]``. TRL's
``GRPOTrainer`` passes every dataset column as a keyword list aligned with
``completions``; ours are ``task`` ("report" | "grounding"), ``solution`` (the reference
answer text) and ``thinking`` (whether the prompt asked for ``<think>``; False when the
column is absent). ``None`` means "not my task": TRL skips it when summing rewards, so
one run can mix report and grounding prompts.

Each reward parses with ``radrl.parsing.parse`` and scores with a function from
``radrl.metrics``, never with code of its own, so the number optimised is the number
that evaluation reports. Rewards are small classes with a fixed ``__name__`` (TRL's log
key) so that they pickle into dataloader and reward workers.

>>> reward = GroundingSoftF1()
>>> reward(["Cardiomegaly at [0.38, 0.47, 0.76, 0.62]", "No finding."],
...        task=["grounding", "report"], solution=["Cardiomegaly at [0.38, 0.47, 0.76, 0.62]", "..."],
...        thinking=[False, False])
[1.0, None]
"""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

from radrl.parsing import Parsed, parse

__all__ = ["MIN_ANSWER_CHARS", "REWARDS", "GroundingSoftF1", "ReportClinical", "ReportRougeL", "build_rewards",
           "completion_text"]

# The paper floors report rewards when the answer has 5 characters or fewer: such
# answers say nothing, and a lexical or label metric must not pay for them.
MIN_ANSWER_CHARS = 5


def completion_text(completion: Any) -> str:
    """The text of one completion, plain (``"..."``) or conversational
    (``[{"role": "assistant", "content": "..." or [{"type": "text", "text": "..."}]}]``)."""
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
    return "".join(parts)


class _TaskReward:
    """Shared plumbing: pick this reward's rows, parse them, score them, None elsewhere."""

    __name__ = "task_reward"
    task = ""

    def __call__(self, completions: Sequence[Any], **columns: Any) -> list[float | None]:
        n = len(completions)
        tasks = _column(columns, "task", n, self.__name__)
        solutions = _column(columns, "solution", n, self.__name__)
        thinking = columns.get("thinking") or [False] * n
        rows = [i for i, t in enumerate(tasks) if t == self.task]
        out: list[float | None] = [None] * n
        if not rows:
            return out
        parsed = [parse(completion_text(completions[i]), thinking=bool(thinking[i])) for i in rows]
        for i, score in zip(rows, self.score(parsed, [solutions[i] or "" for i in rows])):
            out[i] = float(score)
        return out

    def score(self, parsed: list[Parsed], solutions: list[str]) -> list[float]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class GroundingSoftF1(_TaskReward):
    """The paper's grounding reward: ``metrics.grounding.soft_f1`` of the answer's boxes
    against the boxes in ``solution``; invalid predicted boxes count as false positives;
    0 when thinking was requested and ``</think>`` is missing (no answer, no boxes).

    >>> GroundingSoftF1()(["[0.1, 0.1, 0.5, 0.5] and [0.6, 0.6, 0.9, 0.9]"], task=["grounding"],
    ...                   solution=["[0.1, 0.1, 0.5, 0.5]"])  # one hit, one extra box
    [0.6666666666666666]
    """

    __name__ = "grounding_soft_f1"
    task = "grounding"

    def score(self, parsed: list[Parsed], solutions: list[str]) -> list[float]:
        from radrl.metrics.grounding import soft_f1

        return [soft_f1(p.boxes, parse(s).boxes, extra_fp=p.invalid_boxes) if p.answer else 0.0
                for p, s in zip(parsed, solutions)]


class _ReportReward(_TaskReward):
    """Report rewards score the answer against ``solution`` with one per-sample metric;
    answers of ``MIN_ANSWER_CHARS`` or fewer (including a missing ``</think>``) get 0,
    the floor of these [0, 1] rewards (the paper's -3 is the floor of -RadCliQ)."""

    task = "report"
    metric = ""

    def score(self, parsed: list[Parsed], solutions: list[str]) -> list[float]:
        hyps = [p.answer for p in parsed]
        values = self.per_sample(solutions, hyps)
        return [v if len(h) > MIN_ANSWER_CHARS else 0.0 for v, h in zip(values, hyps)]

    def per_sample(self, refs: list[str], hyps: list[str]) -> list[float]:
        raise NotImplementedError


class ReportClinical(_ReportReward):
    """Clinical agreement: per-sample ``clinical`` from ``metrics.chexpert.chexpert_f1``,
    F1 over the (observation, status) pairs the two reports state, negations included.

    >>> ReportClinical()(["Moderate cardiomegaly. No pneumothorax."], task=["report"],
    ...                  solution=["Moderate cardiomegaly. No pneumothorax."])
    [1.0]
    """

    __name__ = "report_clinical"

    def per_sample(self, refs: list[str], hyps: list[str]) -> list[float]:
        from radrl.metrics.chexpert import chexpert_f1

        return chexpert_f1(refs, hyps).per_sample["clinical"]


class ReportRougeL(_ReportReward):
    """Lexical overlap: ``metrics.text.rouge_l``, the per-sample ``rouge_l`` of ``score_text``.

    >>> ReportRougeL()(["The heart size is normal."], task=["report"], solution=["Heart size is normal."])
    [0.888888888888889]
    """

    __name__ = "report_rouge_l"

    def per_sample(self, refs: list[str], hyps: list[str]) -> list[float]:
        from radrl.metrics.text import rouge_l

        return rouge_l(refs, hyps)


def _column(columns: dict[str, Any], name: str, n: int, reward: str) -> Sequence[Any]:
    values = columns.get(name)
    if values is None:
        raise ValueError(f"reward {reward} needs the dataset column {name!r} (got columns {sorted(columns)}); "
                         "build the GRPO dataset with radrl's task, solution and thinking columns")
    if len(values) != n:
        raise ValueError(f"reward {reward}: column {name!r} has {len(values)} values for {n} completions")
    return values


REWARDS: dict[str, Callable[..., list[float | None]]] = {
    "grounding_soft_f1": GroundingSoftF1(),
    "report_clinical": ReportClinical(),
    "report_rouge_l": ReportRougeL(),
}


def build_rewards(weights: dict[str, float]) -> tuple[list[Callable[..., list[float | None]]], list[float]]:
    """Reward callables and their weights, in the order given, for ``GRPOTrainer``'s
    ``reward_funcs`` and ``GRPOConfig.reward_weights``.

    >>> funcs, w = build_rewards({"report_clinical": 1.0, "report_rouge_l": 0.5})
    >>> [f.__name__ for f in funcs], w
    (['report_clinical', 'report_rouge_l'], [1.0, 0.5])
    """
    if not weights:
        raise ValueError(f"no rewards given; name at least one of {sorted(REWARDS)} with a weight")
    unknown = [name for name in weights if name not in REWARDS]
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; known rewards: {sorted(REWARDS)}")
    bad = {name: w for name, w in weights.items()
           if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w)}
    if bad:
        raise ValueError(f"reward weights must be finite numbers, got {bad}")
    return [REWARDS[name] for name in weights], [float(w) for w in weights.values()]
