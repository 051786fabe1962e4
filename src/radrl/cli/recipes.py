"""``radrl recipes``: the recipes and launch configs that ship inside radrl, listed, located or copied out to edit.

    radrl recipes list                           sets, files and each recipe's first header line
    radrl recipes copy qwen3vl-8b                -> ./recipes/qwen3vl-8b/ (headers' commands run as written)
    radrl recipes copy qwen3vl-8b ./my-recipes   -> ./my-recipes/qwen3vl-8b/ (recipe names rewritten to match)
    radrl recipes copy demo/sft.yaml             one file
    radrl recipes path accelerate/fsdp.yaml      the packaged file (for `accelerate launch --config_file`)

A pip-installed radrl has no clone to read recipes from (``radrl.package``); data and output paths inside
a recipe (``runs/...``) are relative to the folder you run it from.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from radrl.cli.args import ArgumentParser
from radrl.package import RECIPES_DIR, copy_recipes, packaged_recipe, recipe_sets


def _header(path: Path) -> str:
    """A recipe's first comment line: what it is."""
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def main(argv: list[str] | None = None) -> object:
    p = ArgumentParser(prog="radrl recipes", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="the packaged recipe sets and files")
    c = sub.add_parser("copy", help="copy a set (or one file of it) to DEST/<set>/ to edit")
    c.add_argument("name", help="a set (demo, qwen3vl-8b, accelerate) or one file of it (demo/sft.yaml)")
    c.add_argument("dest", nargs="?", default=RECIPES_DIR,
                   help=f"folder the set goes into as DEST/<set>/ (default ./{RECIPES_DIR}, the name the recipes' "
                        "headers use)")
    c.add_argument("--overwrite", action="store_true", help="replace files that differ (your edits are lost)")
    w = sub.add_parser("path", help="print where a packaged recipe or set is on disk")
    w.add_argument("name", nargs="?", default="", help="<set>/<file> or <set>; nothing for the recipes folder")
    a = p.parse_args(argv)

    if a.action == "list":
        sets = recipe_sets()
        for name, files in sets.items():
            print(f"{name}/")
            for f in files:
                print(f"  {f:<24} {_header(packaged_recipe(f'{name}/{f}'))}")
        print("\ncopy a set to edit it: radrl recipes copy qwen3vl-8b [DEST]")
        return sets
    if a.action == "path":
        path = packaged_recipe(a.name)
        print(path)
        return path
    try:
        written = copy_recipes(a.name, a.dest, overwrite=a.overwrite)
    except FileExistsError as e:
        print(f"radrl recipes: error: {e}", file=sys.stderr)
        sys.exit(1)
    for path in written:
        print(path)
    print(f"{len(written)} file(s) written under {Path(a.dest)}; the data and output paths in them (runs/...) are "
          "relative to the folder you run them from", file=sys.stderr)
    return written
