"""Recipe entries -> reward callables: a registered name, an import path, or an inline report-metric spec.

    rewards:
      - report_clinical                     # a name in radrl.rewards.REWARDS
      - my_rewards:brevity                  # package.module:attribute, your own reward (docs/extending.md)
      - {metric: bertscore, key: bertscore, floor: -1, name: my_bertscore}   # any metric's per-sample key

Why here and at parse time: a user adds a reward without editing radrl, and a typo, a module that
does not import or an unknown metric stops ``radrl grpo`` before its model loads, with the fix.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from radrl.lookup import did_you_mean, import_object, resolve
from radrl.rewards.base import MIN_ANSWER_CHARS
from radrl.rewards.builtin import REWARDS, ReportMetric

__all__ = ["INLINE_FIELDS", "build_rewards", "check_rewards", "inline_reward", "make_reward"]

RewardEntry = str | dict[str, Any]
Reward = Callable[..., list[float | None]]  # f(completions, **columns) -> one value or None per completion

# The fields of an inline reward: ReportMetric's arguments.
INLINE_FIELDS = {
    "metric": "a name in radrl.metrics.METRICS (required)",
    "key": "which of the metric's per-sample values (required)",
    "name": "the log key and reward_options key (default: report_<key>)",
    "sign": "1, or -1 for lower-is-better metrics (default 1)",
    "floor": "the value of too-short answers (default 0)",
    "min_chars": "answers or references this short or shorter get the floor (default 5)",
    "bounds": "[low, high] of the values, for checking floor and fallback (default: unbounded)",
}
_OTHERS = "an import path package.module:reward, or an inline report reward {metric: ..., key: ...}"
_FORMS = f"a name in radrl.rewards.REWARDS, {_OTHERS}"


def make_reward(entry: RewardEntry) -> Reward:
    """One ``rewards:`` entry -> a reward callable with a ``__name__`` (TRL's log key).

    A string that starts with ``{`` is an inline spec in JSON (the command line's form of a YAML mapping).

    >>> make_reward("report_clinical").__name__, make_reward({"metric": "text", "key": "bleu4"}).__name__
    ('report_clinical', 'report_bleu4')
    >>> make_reward("report_clinicl")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: unknown reward 'report_clinicl' (did you mean 'report_clinical'?); known rewards: [...]; or give ...
    """
    if isinstance(entry, str) and entry.lstrip().startswith("{"):
        try:
            entry = json.loads(entry)
        except ValueError as e:
            raise ValueError(f"reward {entry!r} is neither a name nor valid JSON ({e}); write an inline reward as "
                             '\'{"metric": "bertscore", "key": "bertscore"}\'') from e
    if isinstance(entry, dict):
        return inline_reward(entry)
    if not isinstance(entry, str):
        raise ValueError(f"reward {entry!r} is a {type(entry).__name__}; give {_FORMS}")  # noqa: TRY004 (a recipe error)
    if entry in REWARDS or not any(c in entry for c in ":."):
        return resolve(entry, REWARDS, "reward", fix=f"or give {_OTHERS}")
    try:
        return imported_reward(entry)
    except ValueError as e:  # "report.clinical" is more likely a typo than a module
        raise ValueError(f"{e}{did_you_mean(entry, REWARDS)}") from e


def imported_reward(path: str) -> Reward:
    """The reward at ``package.module:attribute``: a function ``f(completions, **columns)``, a reward instance, or a
    class built without arguments (a ``TaskReward`` subclass: ``reward_options`` then configure it). One without
    ``__name__`` (or with ``TaskReward``'s placeholder) is given the attribute's name, which TRL logs it under."""
    reward = import_object(path, "reward")
    attr = path.rpartition(":")[2] if ":" in path else path.rpartition(".")[2]
    if isinstance(reward, type):
        try:
            reward = reward()
        except TypeError as e:
            raise ValueError(f"reward {path!r}: class {attr} cannot be built without arguments ({e}); point the "
                             "recipe at an instance instead (my_reward = MyReward(...) in your module)") from e
    if not callable(reward):
        raise ValueError(f"reward {path!r} is a {type(reward).__name__}, not a callable "  # noqa: TRY004
                         "f(completions, **columns) -> list[float | None]")
    if getattr(reward, "__name__", None) in (None, "task_reward"):  # none, or TaskReward's placeholder
        reward.__name__ = attr
    return reward


def inline_reward(spec: Mapping[str, Any]) -> ReportMetric:
    """A ``ReportMetric`` from an inline spec (``INLINE_FIELDS``): ``sign * METRICS[metric](...).per_sample[key]``,
    ``floor`` for too-short answers. The metric name is checked here, and the key against the keys the metric's
    module declares (its ``SPECS``; a metric without them is checked on the first call, which names its keys),
    so a typo stops the recipe at parse time, not after the model loaded and the first rollouts ran.

    >>> inline_reward({"metric": "bertscore", "key": "bertscore", "sign": 1, "floor": -1, "name": "my_bertscore"})
    ReportMetric('my_bertscore', metric='bertscore', key='bertscore', sign=1.0, floor=-1.0, min_chars=5)
    """
    from radrl.metrics import METRICS, scorer_specs

    for field in spec:
        resolve(field, INLINE_FIELDS, "inline reward field")
    missing = [f for f in ("metric", "key") if not isinstance(spec.get(f), str)]
    if missing:
        raise ValueError(f"inline reward {dict(spec)} needs {missing} as strings, e.g. {{metric: bertscore, "
                         "key: bertscore, floor: -1, name: my_bertscore}")
    scorer = resolve(spec["metric"], METRICS, "metric", fix="an inline reward scores one of these")
    declared = [spec.key for spec in scorer_specs(scorer)]
    if declared and spec["key"] not in declared:
        resolve(spec["key"], dict.fromkeys(declared), f"key of metric {spec['metric']!r}",
                fix="an inline reward scores one of its per-sample keys")
    name = spec.get("name", f"report_{spec['key']}")
    for field in ("sign", "floor", "min_chars"):
        value = spec.get(field, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"inline reward {name}: {field} must be a finite number, got {value!r}")
    bounds = spec.get("bounds", (-math.inf, math.inf))
    if not (isinstance(bounds, (list, tuple)) and len(bounds) == 2 and bounds[0] < bounds[1]):
        raise ValueError(f"inline reward {name}: bounds must be [low, high] with low < high, got {bounds!r}")
    return ReportMetric(str(name), spec["metric"], spec["key"], sign=spec.get("sign", 1.0),
                        floor=spec.get("floor", 0.0), bounds=(float(bounds[0]), float(bounds[1])),
                        min_chars=spec.get("min_chars", MIN_ANSWER_CHARS))


def build_rewards(rewards: Sequence[RewardEntry] | Mapping[str, float],
                  options: Mapping[str, Mapping[str, Any]] | None = None,
                  weights: Sequence[float] | None = None) -> tuple[list[Reward], list[float]]:
    """Reward callables and their weights, in the order given, for ``GRPOTrainer``'s ``reward_funcs`` and
    ``GRPOConfig.reward_weights``. ``rewards``: entries (``make_reward``) with ``weights`` (1 each by default),
    or ``{name or path: weight}``. ``options``: keyed by a reward's name (its log key), handed to its
    ``configure`` (e.g. the length guard's ``min_ratio``, a report reward's ``floor``).

    >>> funcs, w = build_rewards({"report_clinical": 1.0, "report_length_guard": 0.5},
    ...                          {"report_length_guard": {"min_ratio": 0.7}})
    >>> [f.__name__ for f in funcs], w, funcs[1].min_ratio
    (['report_clinical', 'report_length_guard'], [1.0, 0.5], 0.7)
    """
    if isinstance(rewards, Mapping):
        rewards, weights = list(rewards), list(rewards.values())
    if not rewards:
        raise ValueError(f"no rewards given; give at least one: {_FORMS}")
    weights = [1.0] * len(rewards) if weights is None else list(weights)
    if len(weights) != len(rewards):
        raise ValueError(f"{len(weights)} weights for {len(rewards)} rewards; give one weight per reward, in order")
    bad = [w for w in weights if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w)]
    if bad:
        raise ValueError(f"reward weights must be finite numbers, got {bad}")
    funcs = [make_reward(entry) for entry in rewards]
    names = [f.__name__ for f in funcs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"rewards lists {twice} twice (names are TRL's log keys); give each reward once and set "
                         "its weight with reward_weights, or give an inline reward its own name")
    options = options or {}
    for key in options:
        if key not in names:
            raise ValueError(f"reward options given for {key!r}{did_you_mean(key, names)}, which is not among the "
                             f"rewards {names}; key reward_options by a reward's name (its log key)")
    funcs = [_configure(f, options[f.__name__]) if options.get(f.__name__) else f for f in funcs]
    return funcs, [float(w) for w in weights]


def _configure(reward: Any, options: Mapping[str, Any]) -> Any:
    if not hasattr(reward, "configure"):
        raise ValueError(f"reward {reward.__name__} takes no reward_options (it has no configure()); subclass "
                         "radrl.rewards.TaskReward and list the option names in its options, or set them in your code")
    return reward.configure(**options)


def check_rewards(funcs: Sequence[Callable[..., Any]]) -> None:
    """Run each reward's ``preflight`` (a plain function reward has none) before loading a model: a missing
    scorer then stops the run in seconds with the download instructions, instead of after the model load, or
    never (a step whose answers are all too short to score pays the floor without calling the scorer).

    >>> check_rewards(build_rewards({"report_clinical": 1.0, "grounding_soft_f1": 1.0})[0])  # offline: nothing
    """
    for f in funcs:
        preflight = getattr(f, "preflight", None)
        if preflight is not None:
            preflight()

