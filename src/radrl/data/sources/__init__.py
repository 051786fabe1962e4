"""Dataset adapters: each public or credentialed chest X-ray dataset, read as it is distributed.

One module per source. Each module defines

* ``NAME``: the name ``radrl prepare`` takes (``SOURCES`` below maps it to the module);
* ``EXPECTS``: the files and folders it reads under ``--root``, as the dataset ships them
  (``radrl prepare --list`` prints this);
* ``read(root, **options) -> Iterator[Sample | Skip]``: one ``Sample`` per usable image (or
  study), and one ``Skip`` for each row or file it could not use, so that nothing is
  dropped silently; ``radrl prepare`` counts skips by reason and ``--strict`` makes the
  first one fatal. Sources that ship conversations rather than samples (the RadVLM
  instruction JSON) define ``read_conversations`` instead.

Adapters stream: they yield as they read, so preparing MIMIC-CXR never holds the whole
dataset in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from types import ModuleType

__all__ = ["SOURCES", "Skip", "load_source"]


@dataclass(frozen=True)
class Skip:
    """A row or file a source could not use: ``where`` names the file (and row), ``reason``
    is a short fixed phrase (counted in the summary), ``detail`` says what was wrong."""

    where: str
    reason: str
    detail: str = ""


# name -> module under radrl.data.sources (imported on first use).
SOURCES: dict[str, str] = {
    "mimic-cxr": "mimic_cxr",
    "chexpert-plus": "chexpert_plus",
    "chest-imagenome": "chest_imagenome",
    "vindr-cxr": "vindr",
    "ms-cxr": "ms_cxr",
    "padchest-gr": "padchest_gr",
    "nih": "nih",
    "rsna": "rsna",
    "iu-xray": "iu_xray",
    "tbx11k": "tbx11k",
    "radvlm-json": "radvlm_json",
}


def load_source(name: str) -> ModuleType:
    """The adapter module for ``name``; an unknown name lists the known ones."""
    if name not in SOURCES:
        raise ValueError(f"unknown source {name!r}; choose one of: {', '.join(SOURCES)} (radrl prepare --list)")
    return import_module(f"radrl.data.sources.{SOURCES[name]}")
