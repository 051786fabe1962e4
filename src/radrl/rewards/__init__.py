"""Rewards: thin TRL adapters from completions to metric values.

A reward is a callable ``f(completions, **columns) -> list[float | None]``. TRL's
``GRPOTrainer`` passes every dataset column as a keyword list aligned with
``completions``; ours are ``task`` ("report" | "grounding"), ``solution`` (the reference
answer text), ``thinking`` (whether the prompt asked for ``<think>``; False when the
column is absent) and, for grounding, ``ref_boxes`` (the reference boxes at the dataset's
full precision; without the column, or where a row's value is None, the boxes of
``solution`` are used, as evaluation does). ``None`` means "not my task": TRL skips it when summing rewards, so
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
on noise without anyone noticing. A missing scorer is found before that: ``check_rewards``
runs each reward's cheap ``preflight`` before ``radrl grpo`` loads its model, and a call
that floors every row (so never reaches the scorer) runs it too.

Modules: ``base`` (``TaskReward``, the plumbing every reward shares, and the rates it logs through
TRL's ``log_metric``), ``builtin`` (the rewards and ``REWARDS``), ``build`` (recipe entries -> callables:
a name, an import path ``package.module:attribute`` or an inline ``{metric, key, ...}`` spec),
``remote`` and ``server`` (scoring on reward servers).

>>> reward = GroundingSoftF1()
>>> reward(["Cardiomegaly at [0.38, 0.47, 0.76, 0.62]", "No finding."],
...        task=["grounding", "report"], solution=["Cardiomegaly at [0.38, 0.47, 0.76, 0.62]", "..."],
...        thinking=[False, False])
[1.0, None]
"""

from radrl.metrics import named_error  # re-exported: rewards name the failing reward with it
from radrl.rewards.base import MIN_ANSWER_CHARS, TaskReward, completion_text
from radrl.rewards.build import build_rewards, check_rewards, inline_reward, make_reward
from radrl.rewards.builtin import (
    REWARDS,
    GroundingSoftF1,
    GroundingSoftF1Centre,
    LengthGuard,
    ReportMetric,
    ThinkFormat,
)

__all__ = ["MIN_ANSWER_CHARS", "REWARDS", "GroundingSoftF1", "GroundingSoftF1Centre", "LengthGuard", "ReportMetric",
           "TaskReward", "ThinkFormat", "build_rewards", "check_rewards", "completion_text", "inline_reward",
           "make_reward", "named_error"]
