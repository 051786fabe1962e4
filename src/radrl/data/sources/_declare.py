"""What a source module declares (``SourceInfo``) and yields besides samples (``Skip``), and where the
declarations are found: ``declared()`` and ``load_source(name)`` look through every module of
``radrl.data.sources`` and ``GENERATED``.

Everything here is re-exported by ``radrl.data.sources``, which is where adapters import it from
(``from radrl.data.sources import Skip, SourceInfo``). The leading ``_`` keeps this module out of
the sources it finds, as it does ``_files``.
"""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass, field
from functools import cache
from importlib import import_module
from types import ModuleType

__all__ = ["GENERATED", "Skip", "SourceInfo", "declared", "load_source"]

_PACKAGE = __name__.rpartition(".")[0]   # radrl.data.sources, whose modules are the adapters


@dataclass(frozen=True)
class Skip:
    """A row or file a source could not use: ``where`` names the file (and row), ``reason``
    is a short fixed phrase (counted in the summary), ``detail`` says what was wrong."""

    where: str
    reason: str
    detail: str = ""


@dataclass(frozen=True)
class SourceInfo:
    """What a source module declares about itself, as its module constant ``SOURCE``.

    ``name`` is the ``Sample.source`` value the module writes and the name ``radrl prepare``
    takes; ``expects`` the files and folders it reads under ``--root`` (a few lines, printed by
    ``radrl prepare --list`` and with a missing-file error); ``tasks`` the task names
    (``radrl.data.instructions.TASKS``) its samples feed in the paper's instruction mix, ``()``
    for a source of ready-made conversations; ``repeats`` how often each of those tasks is
    repeated (paper.md's "pairs x repeats"), 1 where not given; ``class_names`` how each class name
    the source writes on its boxes reads inside a request sentence ("ActiveTuberculosis" -> "active
    tuberculosis", "ILD" -> "interstitial lung disease"), where the generic rule of
    ``radrl.data.instructions.finding_phrase`` would not read well. The boxes and answers keep the
    dataset's own class name: it is the label scorers and per-class tables match on.

    >>> SourceInfo("x", "x.csv", tasks=("report",), repeats={"grounding": 2})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: source 'x': repeats name ['grounding'], which are not among its tasks ('report',); ...
    """

    name: str
    expects: str
    tasks: tuple[str, ...] = ()
    repeats: dict[str, int] = field(default_factory=dict)
    class_names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"SourceInfo.name must be the Sample.source value the module writes, got {self.name!r}")
        object.__setattr__(self, "tasks", tuple(self.tasks))
        extra = sorted(set(self.repeats) - set(self.tasks))
        if extra:
            raise ValueError(f"source {self.name!r}: repeats name {extra}, which are not among its tasks {self.tasks}; "
                             "add them to tasks or drop them from repeats")
        bad = {t: n for t, n in self.repeats.items() if type(n) is not int or n < 1}
        if bad:
            raise ValueError(f"source {self.name!r}: repeats must be whole numbers >= 1, got {bad}")
        blank = [k for k, v in self.class_names.items() if not isinstance(v, str) or not v.strip()]
        if blank:
            raise ValueError(f"source {self.name!r}: class_names {blank} need readable text, e.g. "
                             "{'ILD': 'interstitial lung disease'}")


# Modules outside this package that declare a source: the synthetic generator makes its samples
# (``radrl synth-data``) instead of reading a download, so it is no adapter of this package.
GENERATED = ("radrl.data.synthetic",)


@cache
def _modules() -> dict[str, str]:
    """Source name -> module path: every module of this package (names without a leading ``_``)
    and of ``GENERATED`` that declares ``SOURCE``. Importing the adapters is cheap: heavy
    dependencies (pydicom) are imported inside the functions that need them."""
    package = import_module(_PACKAGE)
    paths = [f"{_PACKAGE}.{m.name}" for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")]
    found: dict[str, str] = {}
    for path in [*paths, *GENERATED]:
        info = getattr(import_module(path), "SOURCE", None)
        if info is None:
            continue   # not a source (tests/data/sources/test_contract.py fails for such a module here)
        if not isinstance(info, SourceInfo):
            raise TypeError(f"{path}.SOURCE must be a radrl.data.sources.SourceInfo, got {type(info).__name__}")
        if info.name in found:
            raise ValueError(f"{path} and {found[info.name]} both declare source {info.name!r}; rename one")
        found[info.name] = path
    return found


def declared() -> dict[str, SourceInfo]:
    """Every declared source: name -> its ``SourceInfo`` (module file order).

    >>> declared()["vindr-cxr"].repeats
    {'grounding': 3, 'detection': 2}
    """
    return {name: import_module(path).SOURCE for name, path in _modules().items()}


def load_source(name: str) -> ModuleType:
    """The module that declares source ``name``; an unknown name lists the known ones."""
    modules = _modules()
    if name not in modules:
        raise ValueError(f"unknown source {name!r}; choose one of: {', '.join(modules)} (radrl prepare --list)")
    return import_module(modules[name])
