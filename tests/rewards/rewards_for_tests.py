"""Rewards the tests name by import path (``rewards_for_tests:brevity``); this folder is on sys.path (conftest.py).

``brevity``: a plain function reward. ``BoxCount``: a ``TaskReward`` subclass with an option. ``unnamed``: a
callable instance without ``__name__``. ``NOT_A_REWARD``: something that is not callable.
"""

import math

from radrl.rewards import TaskReward, completion_text


def brevity(completions, task, **columns) -> list[float | None]:
    """1 for report answers of at most 40 characters, else 0; None for other rows."""
    return [float(len(completion_text(c)) <= 40) if t == "report" else None for c, t in zip(completions, task)]


class BoxCount(TaskReward):
    """Minus the distance between the number of boxes in the answer and ``target``."""

    __name__ = "box_count"
    task = "grounding"
    bounds = (-math.inf, 0.0)
    options = ("target",)

    def __init__(self, target: float = 1.0) -> None:
        self.target = float(target)

    def score(self, parsed, solutions) -> list[float]:
        return [-abs(len(p.boxes) - self.target) for p in parsed]


class _Unnamed:
    def __call__(self, completions, **columns):
        return [0.0] * len(completions)


unnamed = _Unnamed()
NOT_A_REWARD = 3
