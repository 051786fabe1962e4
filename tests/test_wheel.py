"""The wheel carries everything the installed commands read: a file missing from it fails here, not on a user's
cluster. The wheel is built the way a user's ``pip install`` builds it (sdist, then the wheel from the sdist, in an
isolated environment); ``.ci/wheel_check.sh`` then installs it outside the clone and runs the commands."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from radrl.package import copy_recipes, packaged_recipe, recipe_files, recipe_sets

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "radrl"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)], capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, f"python -m build failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    (path,) = out.glob("radrl-*.whl")
    return zipfile.ZipFile(path)


def package_files() -> list[str]:
    """Every file of src/radrl that an installed radrl may read: modules and package data (not caches)."""
    return sorted(p.relative_to(PACKAGE.parent).as_posix() for p in PACKAGE.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")


@pytest.mark.slow
def test_the_wheel_holds_every_file_of_the_package(wheel):
    # A new recipe, config or data file under src/radrl that pyproject's package-data globs miss fails here.
    names = set(wheel.namelist())
    missing = [f for f in package_files() if f not in names]
    assert not missing, (f"the wheel lacks {missing}; add their pattern to [tool.setuptools.package-data] in "
                         "pyproject.toml")


@pytest.mark.slow
def test_the_wheel_holds_what_the_code_reads_through_importlib_resources(wheel):
    names = set(wheel.namelist())
    # every packaged recipe and launch config (`radrl recipes list/copy`, the demo's defaults)
    assert {f"radrl/recipes/{f}" for f in recipe_files()} <= names
    # every literal packaged_recipe("...") in the code names something the wheel has (a file or a folder of files)
    for path in PACKAGE.rglob("*.py"):
        for ref in re.findall(r'packaged_recipe\(\s*"([^"]+)"', path.read_text()):
            prefix = f"radrl/recipes/{ref}"
            assert any(n == prefix or n.startswith(prefix + "/") for n in names), f"{path.name}: {ref}"


@pytest.mark.slow
def test_the_wheel_has_the_licence_and_version(wheel):
    names = wheel.namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert any(n.endswith(".dist-info/licenses/NOTICE") for n in names)
    metadata = wheel.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    import radrl

    assert f"\nVersion: {radrl.__version__}\n" in metadata and "\nLicense-Expression: Apache-2.0\n" in metadata


def test_the_licence_is_the_apache_2_0_text():
    # pyproject declares Apache-2.0; LICENSE must be its text, unmodified (the appendix's placeholders included)
    text = (REPO / "LICENSE").read_text()
    assert text.split()[:5] == ["Apache", "License", "Version", "2.0,", "January"]
    assert "END OF TERMS AND CONDITIONS" in text and "Copyright [yyyy] [name of copyright owner]" in text


def test_every_recipe_the_docs_name_is_packaged():
    # README, docs and recipe headers name recipes as recipes/<set>/<file>: each is a file the package ships
    known = set(recipe_files())
    pattern = re.compile(rf"(?<![\w./-])recipes/((?:{'|'.join(map(re.escape, recipe_sets()))})/[\w.-]+\.yaml)")
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted(PACKAGE.rglob("*.yaml"))]:
        for ref in pattern.findall(path.read_text()):
            assert ref in known, f"{path.relative_to(REPO)} names recipes/{ref}, which the package does not ship"


def test_the_repository_recipes_folder_is_the_packaged_one():
    # `recipes` at the repository root is a link to src/radrl/recipes, so paths in docs and tests keep working
    assert (REPO / "recipes").resolve() == packaged_recipe().resolve()


def test_copy_keeps_the_layout_and_rewrites_names_for_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # into ./recipes (the default): byte for byte the packaged files
    written = copy_recipes("demo")
    assert [p.as_posix() for p in written] == [f"recipes/demo/{f}" for f in recipe_sets()["demo"]]
    assert all(p.read_text() == packaged_recipe(p.relative_to("recipes").as_posix()).read_text() for p in written)
    # into another folder: the four-way experiment's GRPO recipe and accelerate config come along, renamed
    written = copy_recipes("qwen3vl-8b/four_way_report.yaml", "mine")
    raw = yaml.safe_load((tmp_path / "mine/qwen3vl-8b/four_way_report.yaml").read_text())
    launch_config = raw["launcher"][raw["launcher"].index("--config_file") + 1]
    assert raw["grpo_recipe"] == "mine/qwen3vl-8b/grpo_report.yaml" and launch_config.startswith("mine/accelerate/")
    assert {p.as_posix() for p in written} == {"mine/qwen3vl-8b/four_way_report.yaml",
                                              "mine/qwen3vl-8b/grpo_report.yaml", launch_config}
    text = (tmp_path / "mine/qwen3vl-8b/four_way_report.yaml").read_text()
    assert "recipes/" not in text.replace("mine/", "")
    # an edited copy is never overwritten silently; an unchanged one is simply kept
    (tmp_path / "recipes/demo/sft.yaml").write_text("# mine\n")
    assert copy_recipes("demo/grpo_report.yaml") == []
    with pytest.raises(FileExistsError, match="--overwrite"):
        copy_recipes("demo/sft.yaml")
    assert copy_recipes("demo/sft.yaml", overwrite=True) == [Path("recipes/demo/sft.yaml")]
    with pytest.raises(FileNotFoundError, match="choose one of"):
        copy_recipes("qwen3vl-7b")


def test_copy_takes_the_destination_as_text(tmp_path, monkeypatch):
    # the destination is a folder name, never a regex replacement: `\r` stays two characters, `\1` is no group
    monkeypatch.chdir(tmp_path)
    for dest in ("my\\recipes", "x\\1"):
        copy_recipes("qwen3vl-8b/four_way_report.yaml", dest)
        raw = yaml.safe_load((tmp_path / dest / "qwen3vl-8b/four_way_report.yaml").read_text())
        assert raw["grpo_recipe"] == f"{dest}/qwen3vl-8b/grpo_report.yaml"


def test_path_stays_inside_the_packaged_recipes(capsys):
    from radrl.cli import main

    assert packaged_recipe("demo/../demo/sft.yaml").name == "sft.yaml"
    for name in ("../package.py", "..", "demo/../../package.py"):
        with pytest.raises(FileNotFoundError, match=r"outside the packaged recipes.*radrl recipes list"):
            packaged_recipe(name)
    with pytest.raises(SystemExit) as e:
        main(["recipes", "path", "../package.py"])
    out = capsys.readouterr()
    assert e.value.code == 1 and "package.py" not in out.out and "outside the packaged recipes" in out.err


def test_the_readme_gives_the_pip_route_beside_the_make_commands():
    # users with their own torch install with pip: that route must be on the first screen, the very next code
    # block after `make demo` / `make test`, not below the app section
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```\w*\n(.*?)```", text, flags=re.S)
    make = next(i for i, b in enumerate(blocks) if b.startswith("make demo"))
    assert "make test" in blocks[make] and blocks[make + 1].startswith("pip install 'radrl")
    pip_at = text.index("pip install 'radrl @")
    assert pip_at < text.index("radrl app") and text[:pip_at].count("\n") < 30


def test_version_is_the_installed_distribution(capsys):
    from importlib.metadata import version

    import radrl
    from radrl.cli import main

    main(["--version"])
    assert capsys.readouterr().out == f"radrl {version('radrl')}\n"
    assert version("radrl") == radrl.__version__  # pyproject reads the version from radrl.__version__
