"""The argument parser every ``radrl <verb>`` builds: one spelling convention, the other accepted.

Why: verbs grew apart (``radrl eval --max-rows`` but ``radrl coldstart --max_rows``; ``radrl score
--metrics a,b`` but ``radrl eval --metrics a b``), so a flag that worked for one verb failed on the
next. The convention is dashes in flag names and lists separated by spaces; where it is
unambiguous the other spelling is accepted too:

* ``--max_rows 5`` is read as ``--max-rows 5`` when the parser has ``--max-rows`` and no
  ``--max_rows`` (and the reverse, so a flag defined with underscores still takes dashes);
* a list of names (an option with ``nargs`` ``+``/``*`` and ``choices``, or declared with
  ``names=True``) also takes commas: ``--tasks report,grounding`` is ``--tasks report grounding``.
  Lists of paths or ``KEY=VALUE`` pairs are never split: a comma may be part of a path.

``radrl sft`` and ``radrl grpo`` read TRL's and transformers' fields through HfArgumentParser,
whose flags are the field names with underscores and which registers the dashed spelling too.

>>> p = ArgumentParser(prog="radrl x")
>>> _ = p.add_argument("--max-rows", type=int)
>>> _ = p.add_argument("--metrics", nargs="+", names=True)
>>> vars(p.parse_args(["--max_rows", "3", "--metrics", "bleu,rouge_l", "meteor"]))
{'max_rows': 3, 'metrics': ['bleu', 'rouge_l', 'meteor']}
"""

from __future__ import annotations

import argparse
import re
import sys

__all__ = ["ArgumentParser"]

_NUMBER = re.compile(r"^-\d|^-\.\d")


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` that accepts the other flag spelling and comma-separated name lists
    (module docstring); ``add_argument(..., names=True)`` marks a list of names that may take commas."""

    def add_argument(self, *args, names: bool = False, **kwargs):
        action = super().add_argument(*args, **kwargs)
        action.radrl_names = names or (action.choices is not None and action.nargs in ("+", "*"))
        return action

    def parse_known_args(self, args=None, namespace=None):
        args = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(self.normalize(args), namespace)

    def normalize(self, args: list[str]) -> list[str]:
        """``args`` in this parser's spelling: each long flag as the parser defines it (dashes or
        underscores, where only one of them is defined), name lists split at commas."""
        options = {s: a for a in self._actions for s in a.option_strings}
        out: list[str] = []
        names = None   # the name-list option whose values follow, if any
        for i, tok in enumerate(args):
            if tok == "--":
                return out + args[i:]
            if tok.startswith("--"):
                flag, eq, value = tok.partition("=")
                flag = _spelling(flag, options)
                action = options.get(flag)
                names = action if action is not None and getattr(action, "radrl_names", False) else None
                if names is not None and eq:
                    out += [flag, *_split(value)]
                else:
                    out.append(flag + eq + value)
            elif tok.startswith("-") and not _NUMBER.match(tok):
                names = None
                out.append(tok)
            elif names is not None:
                out += _split(tok)
            else:
                out.append(tok)
        return out


def _spelling(flag: str, options: dict) -> str:
    """``flag`` as the parser defines it: the same name with ``_`` for ``-`` or the reverse, when only that
    one exists."""
    if flag in options:
        return flag
    candidates = {flag[:2] + flag[2:].replace("_", "-"), flag[:2] + flag[2:].replace("-", "_")} & set(options)
    return candidates.pop() if len(candidates) == 1 else flag


def _split(value: str) -> list[str]:
    return [v for v in value.split(",") if v] or [value]
