"""What the installed radrl is and what it ships: its version, and the recipes inside the package.

A number is only reproducible with the code that made it, so every manifest and checkpoint
records ``version()``. The recipes (``demo``, ``qwen3vl-8b``) and the accelerate launch configs
(``accelerate``) are package data, read through ``importlib.resources``: a ``pip install``ed
radrl finds them without a clone, and ``radrl recipes copy`` puts them where a user edits them.
A recipe names its data and outputs relative to the folder it is run from (``runs/...``), and
the other recipes it uses as ``recipes/<set>/<file>``, the layout ``copy_recipes`` writes.

>>> sorted(recipe_sets())
['accelerate', 'demo', 'qwen3vl-8b']
>>> packaged_recipe("demo/sft.yaml").name
'sft.yaml'
"""

from __future__ import annotations

import re
from importlib import metadata, resources
from pathlib import Path

__all__ = ["copy_recipes", "packaged_recipe", "recipe_files", "recipe_sets", "version"]

DISTRIBUTION = "radrl"
# Where ``radrl recipes copy`` puts a set by default, and the prefix recipes use to name each other.
RECIPES_DIR = "recipes"


def version() -> str:
    """The installed distribution's version (``pip install`` or ``pip install -e``); "unknown" only when radrl
    runs from a source tree that was never installed, where no metadata says which code this is."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"


def _root():
    return resources.files("radrl") / "recipes"


def recipe_sets() -> dict[str, list[str]]:
    """Set name -> its files (sorted), e.g. ``{"demo": ["four_way.yaml", "grpo_grounding.yaml", ...], ...}``."""
    root = _root()
    if not root.is_dir():
        raise FileNotFoundError(f"this radrl install has no recipes folder ({root}); reinstall radrl "
                                "(pip install --force-reinstall radrl)")
    return {d.name: sorted(f.name for f in d.iterdir() if f.is_file() and f.name.endswith(".yaml"))
            for d in sorted(root.iterdir(), key=lambda d: d.name) if d.is_dir() and not d.name.startswith(("_", "."))}


def recipe_files() -> list[str]:
    """Every packaged recipe as ``<set>/<file>`` (what a wheel must carry; a test checks the wheel against it)."""
    return [f"{s}/{f}" for s, files in recipe_sets().items() for f in files]


def packaged_recipe(name: str = "") -> Path:
    """The packaged recipe ``<set>/<file>`` (``"demo/sft.yaml"``), a set's folder (``"demo"``) or, for ``""``, the
    recipes folder; a ``recipes/`` prefix is accepted. radrl is installed as files (never as a zip), so the
    resource is a path that the trainers and ``accelerate launch --config_file`` can open."""
    name = name.removeprefix(f"{RECIPES_DIR}/").strip("/")
    root = Path(str(_root()))
    path = root.joinpath(*name.split("/")) if name else root
    if not path.resolve().is_relative_to(root.resolve()):  # `../package.py` would hand out radrl's own code
        raise FileNotFoundError(f"{name!r} is outside the packaged recipes; name a set {sorted(recipe_sets())} or "
                                "one of its files as <set>/<file> (`radrl recipes list`)")
    if not (path.is_file() if "/" in name else path.is_dir()):
        raise FileNotFoundError(f"no packaged recipe {name!r}; choose a set {sorted(recipe_sets())} or one of its "
                                "files (`radrl recipes list`)")
    return path


def copy_recipes(name: str, dest: str | Path = RECIPES_DIR, overwrite: bool = False) -> list[Path]:
    """Copy a packaged set (``"qwen3vl-8b"``) or one file of it (``"demo/sft.yaml"``) to ``dest/<set>/``, with
    the packaged files their settings name (a four-way experiment's GRPO recipe and accelerate config); returns
    the files written.

    The copies keep the ``recipes/<set>/<file>`` names by which recipes refer to each other and by which their
    header comments give the launch command; into another ``dest`` those names are rewritten to
    ``<dest>/<set>/<file>``, so that the copied headers run as written from the folder ``dest`` is relative to.
    A file that differs from the packaged one is never replaced unless ``overwrite`` (an edited recipe is not lost
    to a second copy); one that is only named by another is left as it is."""
    sets = recipe_sets()
    set_name, _, file_name = name.removeprefix(f"{RECIPES_DIR}/").strip("/").partition("/")
    if set_name not in sets:
        raise FileNotFoundError(f"no packaged recipe set {set_name!r}; choose one of {sorted(sets)}")
    if file_name and file_name not in sets[set_name]:
        raise FileNotFoundError(f"no recipe {file_name!r} in set {set_name!r}; choose one of {sets[set_name]}")
    names = "|".join(map(re.escape, sets))
    # `recipes/<set>/` at the start of a path (not inside another word or path) names a packaged recipe.
    ref = re.compile(rf"(?<![\w./-]){RECIPES_DIR}/(?=(?:{names})/)")
    prefix = Path(dest).as_posix().rstrip("/")
    asked = [f"{set_name}/{f}" for f in ([file_name] if file_name else sets[set_name])]
    texts, todo = {}, list(asked)
    while todo:  # the asked files, then the packaged files their settings name, transitively
        rel = todo.pop(0)
        text = _root().joinpath(*rel.split("/")).read_text(encoding="utf-8")
        # a function, not a replacement string: `\r` or `\1` in a folder name is text, not an escape or a group
        texts[rel] = text if prefix == RECIPES_DIR else ref.sub(lambda _: f"{prefix}/", text)
        values = "\n".join(line.split(" #")[0] for line in text.splitlines() if not line.lstrip().startswith("#"))
        todo += [r for r in re.findall(rf"{ref.pattern}((?:{names})/[\w.-]+\.yaml)", values)
                 if r not in texts and r not in todo and r in recipe_files()]
    edited = [str(Path(dest) / r) for r in asked
              if (Path(dest) / r).exists() and (Path(dest) / r).read_text(encoding="utf-8") != texts[r]]
    if edited and not overwrite:
        raise FileExistsError(f"{', '.join(edited)} exist and differ from the packaged recipes; edit them in place, "
                              "copy to another folder, or pass --overwrite to replace them")
    written = []
    for rel, text in texts.items():
        target = Path(dest) / rel
        if target.exists() and (rel not in asked or target.read_text(encoding="utf-8") == text):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written
