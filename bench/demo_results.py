"""Check a demo run's results into the repository and render the README's demo sections from them.

    radrl demo --out runs/demo
    python bench/demo_results.py runs/demo/results.json

Copies the file to ``bench/results/demo.json`` and rewrites the README between the
``demo-results`` markers with ``radrl.demo.readme_block``, and between the ``demo-seeds``
markers with ``seeds_block`` of ``bench/results/demo_seeds.json`` (``bench/demo_seeds.py``'s
multi-seed result); ``tests/test_readme_results.py`` renders both again and fails when the
README and the checked-in files disagree.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from radrl.demo import machine_line, readme_block

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "demo.json"
README = ROOT / "README.md"
SEEDS = ROOT / "bench" / "results" / "demo_seeds.json"
BLOCK = re.compile(r"(<!-- demo-results:start -->\n).*?(\n<!-- demo-results:end -->)", re.S)
SEEDS_BLOCK = re.compile(r"(<!-- demo-seeds:start -->\n).*?(\n<!-- demo-seeds:end -->)", re.S)


def seeds_block(d: dict) -> str:
    """The README's multi-seed summary: per task, how many GRPO seeds beat SFT and the compute-matched SFT
    control on the targeted metric (paired, p < 0.05), the spread of the gain, and the control's own gain."""
    m = d["machine"]
    lines = [f"`{d['command']}` on {machine_line(m, d.get('torch'))}, {d['date']}, commit {d['commit']}"
             + (" plus uncommitted changes" if d.get("worktree_dirty") else "") + ":", "",
             ("| task | targeted metric | GRPO seeds beating SFT | GRPO - SFT, mean [min, max] | seeds beating the "
              "compute-matched SFT control | control - SFT [95% CI] | seeds with a significant loss elsewhere |"),
             "|---|---|---|---|---|---|---|"]
    for task, t in d["tasks"].items():
        v, control = t["verdict"], t["models"]["control"][t["verdict"]["target"]]
        lines.append(f"| {task} | {v['target']} | {v['seeds_beating_sft']} of {v['seeds']} | "
                     f"{100 * v['target_delta_mean']:+.1f} [{100 * v['target_delta_min']:+.1f}, "
                     f"{100 * v['target_delta_max']:+.1f}] | {v['seeds_beating_control']} of {v['seeds']} | "
                     f"{100 * control['delta']:+.1f} [{100 * control['low']:+.1f}, {100 * control['high']:+.1f}] | "
                     f"{v['seeds_with_untargeted_loss']} of {v['seeds']} |")
    return "\n".join(lines)


def main(path: str) -> None:
    results = json.loads(Path(path).read_text())
    missing = [k for k in ("command", "machine", "commit", "results", "paired") if k not in results]
    if missing:
        sys.exit(f"{path} lacks {missing}: it was not written by this radrl's demo; rerun `radrl demo`")
    shutil.copyfile(path, RESULTS)
    text = README.read_text()
    if not BLOCK.search(text):
        sys.exit(f"{README} has no <!-- demo-results:start --> ... <!-- demo-results:end --> block to fill")
    text = BLOCK.sub(lambda m: m.group(1) + readme_block(results) + m.group(2), text)
    seeds = json.loads(SEEDS.read_text())
    README.write_text(SEEDS_BLOCK.sub(lambda m: m.group(1) + seeds_block(seeds) + m.group(2), text))
    print(f"{RESULTS} and the README's demo section updated from {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/demo/results.json")
