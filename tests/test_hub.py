"""Every download hint names a command the installed huggingface_hub has (``radrl.hub.HF_DOWNLOAD``).

huggingface_hub 1.x ships only the ``hf`` script, not the older one; a hint that names the old one sends
a user to a command that is not there. The hints are built from one constant, and no file spells the old
command.
"""

from importlib.metadata import distribution
from pathlib import Path

from radrl.hub import HF_DOWNLOAD

REPO = Path(__file__).resolve().parents[1]
OLD = "huggingface" + "-cli"   # spelt in two parts so that this file passes its own check


def test_the_download_command_is_a_script_of_the_installed_huggingface_hub():
    scripts = {e.name for e in distribution("huggingface_hub").entry_points if e.group == "console_scripts"}
    program, verb = HF_DOWNLOAD.split()
    assert program in scripts and verb == "download", f"huggingface_hub's scripts are {sorted(scripts)}"


def test_no_hint_names_the_removed_command():
    # hub.py's docstring names the old command to say why; every other hint uses HF_DOWNLOAD or its text
    files = [REPO / "README.md", *(REPO / "docs").rglob("*.md")]
    files += [p for folder in ("src/radrl", "tests", "bench") for p in (REPO / folder).rglob("*")
              if p.suffix in (".py", ".md", ".sh", ".yaml", ".txt") and p.name != "hub.py"]
    stale = [str(p.relative_to(REPO)) for p in files if p.is_file() and OLD in p.read_text(encoding="utf-8")]
    assert not stale, f"{stale} name {OLD}; build the hint from radrl.hub.HF_DOWNLOAD ({HF_DOWNLOAD!r})"
