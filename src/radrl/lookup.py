"""Names and import paths to objects, with the fix in the error.

One lookup for every place a user names something radrl must find: rewards in a recipe,
metrics in ``radrl eval`` / ``radrl score``, the reward server's ``--metrics`` and
``--scorer``. It imports nothing of radrl, so metrics and rewards can both use it.

>>> resolve("rouge-l", {"rouge_l": 1, "text": 2}, "metric")
Traceback (most recent call last):
ValueError: unknown metric 'rouge-l' (did you mean 'rouge_l'?); known metrics: ['rouge_l', 'text']
>>> import_object("math:sqrt", "scorer")(4.0)
2.0
"""

from __future__ import annotations

import difflib
import os
import sys
from collections.abc import Iterable, Mapping
from importlib import import_module
from typing import Any, TypeVar

__all__ = ["did_you_mean", "import_object", "resolve"]

V = TypeVar("V")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest known name, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def resolve(name: str, table: Mapping[str, V], what: str, fix: str = "") -> V:
    """``table[name]``; an unknown name raises ``ValueError`` with the closest known name, all known
    names and ``fix`` (what else the caller accepts)."""
    if name in table:
        return table[name]
    raise ValueError(f"unknown {what} {name!r}{did_you_mean(name, table)}; known {what}s: {sorted(table)}"
                     + (f"; {fix}" if fix else ""))


def import_object(path: str, what: str) -> Any:
    """The object at ``package.module:attribute`` (TRL's dotted ``package.module.attribute`` works too).

    The current folder is searched after the installed packages, as TRL's GRPO script does, so a
    module next to the recipe (``my_rewards.py``) can be named without installing it."""
    module, colon, attr = path.partition(":")
    if not colon:
        module, _, attr = path.rpartition(".")
    if not module or not attr:
        raise ValueError(f"{what} {path!r} is not an import path; write package.module:attribute")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        loaded = import_module(module)
    except ImportError as e:
        raise ValueError(f"{what} {path!r} cannot be imported: {type(e).__name__}: {e}; install the package "
                         "that holds it or run from the folder that holds the module") from e
    if not hasattr(loaded, attr):
        public = [n for n in dir(loaded) if not n.startswith("_")]
        raise ValueError(f"{what} {path!r}: module {module!r} has no {attr!r}{did_you_mean(attr, public)}")
    return getattr(loaded, attr)
