"""The reward protocol's shared plumbing: pick a reward's rows, parse them, score them, log rates.

``TaskReward`` is the base of radrl's rewards and of your own (docs/extending.md): a subclass
names itself (``__name__``, TRL's log key), says which rows it scores (``task`` or ``applies``)
and implements ``score(parsed, solutions)``; everything else (columns, parsing, None for other
rows, options, logged rates) is here, so every reward routes and parses rows the same way.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from statistics import fmean
from typing import Any

from radrl.parsing import Parsed, parse

__all__ = ["MIN_ANSWER_CHARS", "TaskReward", "completion_text"]

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


class TaskReward:
    """Shared plumbing: pick this reward's rows, parse them, score them, None elsewhere.

    ``task``: the rows it scores ("" with ``applies`` overridden: rows chosen otherwise, e.g. by thinking);
    ``bounds``: the documented range of the values (the property tests hold every reward to it);
    ``options``: the attributes a recipe may set (``reward_options``, via ``configure``);
    ``extra_columns``: optional dataset columns that ``score`` takes as keywords (the values of this
    reward's rows, or None when the dataset lacks the column).

    Under TRL's ``GRPOTrainer`` a call also logs ``rates`` through the ``log_metric`` keyword the trainer
    passes to every reward: ``rewards/<name>/<rate>`` beside TRL's ``rewards/<name>/mean``, averaged over
    the logging steps and ranks as TRL averages its own metrics.
    """

    __name__ = "task_reward"
    task = ""
    bounds: tuple[float, float] = (0.0, 1.0)
    options: tuple[str, ...] = ()
    extra_columns: tuple[str, ...] = ()

    def __call__(self, completions: Sequence[Any], log_metric: Callable[[str, float], None] | None = None,
                 **columns: Any) -> list[float | None]:
        n = len(completions)
        tasks = _column(columns, "task", n, self.__name__)
        solutions = _column(columns, "solution", n, self.__name__)
        thinking = (_column(columns, "thinking", n, self.__name__) if columns.get("thinking") is not None
                    else [False] * n)
        rows = [i for i in range(n) if self.applies(tasks[i], bool(thinking[i]))]
        out: list[float | None] = [None] * n
        if not rows:
            return out
        parsed = [parse(completion_text(completions[i]), thinking=bool(thinking[i])) for i in rows]
        refs = [solutions[i] if isinstance(solutions[i], str) else "" for i in rows]
        extra = {}
        for name in self.extra_columns:
            values = _column(columns, name, n, self.__name__) if columns.get(name) is not None else None
            extra[name] = None if values is None else [values[i] for i in rows]
        scores = self.score(parsed, refs, **extra)
        for i, value in zip(rows, scores, strict=True):
            out[i] = float(value)
        if log_metric is not None:
            for key, value in self.rates(parsed, refs, [bool(thinking[i]) for i in rows]).items():
                log_metric(f"rewards/{self.__name__}/{key}", value)
        return out

    def applies(self, task: Any, thinking: bool) -> bool:
        return task == self.task

    def score(self, parsed: list[Parsed], solutions: list[str]) -> list[float]:
        raise NotImplementedError

    def rates(self, parsed: list[Parsed], solutions: list[str], thinking: list[bool]) -> dict[str, float]:
        """Shares of this call's rows that a run should watch, logged under ``rewards/<name>/``. Here
        ``think_missing_ratio``: rows that asked for thinking and never closed ``</think>`` (no answer, so they
        score the floor), among the rows that asked; absent when none asked."""
        asked = [p for p, t in zip(parsed, thinking, strict=True) if t]
        return {"think_missing_ratio": fmean("think_missing" in p.issues for p in asked)} if asked else {}

    def configure(self, **options: Any) -> TaskReward:
        """A copy with some ``options`` changed (from the recipe's ``reward_options``).

        >>> from radrl.rewards import LengthGuard
        >>> LengthGuard().configure(min_ratio=0.8).min_ratio
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

    def preflight(self) -> None:
        """Cheap checks that this reward can score here (weights on disk, a judge set; no model loads), run
        before a training run loads its model (``check_rewards``); raise with the fix. Nothing to check here."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.options)
        return f"{type(self).__name__}({fields})"


def _column(columns: dict[str, Any], name: str, n: int, reward: str) -> Sequence[Any]:
    values = columns.get(name)
    if values is None:
        raise ValueError(f"reward {reward} needs the dataset column {name!r} (got columns {sorted(columns)}); "
                         "build the GRPO dataset with radrl's task, solution and thinking columns")
    if len(values) != n:
        raise ValueError(f"reward {reward}: column {name!r} has {len(values)} values for {n} completions")
    return values
