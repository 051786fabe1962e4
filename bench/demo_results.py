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
BLOCK = re.compile(r"(<!-- demo-results:start -->\n).*?(\n<!-- demo-results:end -->)", re.S)
# README block name -> the multi-seed results files (bench/demo_seeds.py) it summarises, one table row per task
SEEDS_BLOCKS = {
    "demo-seeds": ["demo_seeds.json"],
    # from the 40-epoch SFT (bench/recipes/sft_strong.yaml), the demo's GRPO recipes: GRPO and the control on the
    # SFT's own 600 training images, then on 600 images the SFT never saw (the same generator's next 600), then
    # two grounding variants on those
    "demo-seeds-strong": ["demo_seeds_strong-sft-report.json", "demo_seeds_strong-sft-grounding.json",
                          "demo_seeds_strong-sft-new-images-report.json",
                          "demo_seeds_strong-sft-new-images-grounding.json",
                          # grounding variants on the new images (bench/recipes/grpo_grounding_{shaped,lr2e-4}.yaml)
                          "demo_seeds_strong-sft-new-images-grounding-shaped.json",
                          "demo_seeds_strong-sft-new-images-grounding-lr2e-4.json"],
}


def seeds_pattern(name: str) -> re.Pattern:
    """The README block ``name``: groups start marker, contents, end marker."""
    return re.compile(rf"(<!-- {name}:start -->\n)(.*?)(\n<!-- {name}:end -->)", re.S)


def seeds_files(name: str) -> list[dict]:
    return [json.loads((RESULTS.parent / f).read_text()) for f in SEEDS_BLOCKS[name]]


def seeds_block(files: dict | list[dict]) -> str:
    """The README's multi-seed summary of one or more ``bench/demo_seeds.py`` results files: the command and
    machine of each, then per file and task, how many GRPO seeds beat SFT and the compute-matched SFT control on
    the targeted metric (paired, p < 0.05), the spread of the gain, and the control's own gain."""
    files = [files] if isinstance(files, dict) else files
    def machine(d: dict) -> dict:  # the threads every measured command ran with (--threads), not the driver's
        return {**d["machine"], "threads": d.get("settings", {}).get("threads") or d["machine"].get("threads")}

    lines = [f"- `{d['command']}` on {machine_line(machine(d), d.get('torch'))}, {d['date']}, commit {d['commit']}"
             + (" plus uncommitted changes" if d.get("worktree_dirty") else "") for d in files]
    header = ("task", "from SFT", "GRPO and control train on", "GRPO recipe", "targeted metric",
              "GRPO seeds beating SFT", "GRPO - SFT, mean [min, max]", "seeds beating the compute-matched SFT control",
              "control - SFT [95% CI]", "seeds with a significant loss elsewhere")
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for d in files:
        for task, t in d["tasks"].items():
            v, control = t["verdict"], t["models"]["control"][t["verdict"]["target"]]
            # the last three parts (recipes/demo/x.yaml, bench/recipes/x.yaml): the same in any clone
            recipe = "/".join(Path(t["grpo_recipe"]).parts[-3:]) if t.get("grpo_recipe") else "not recorded"
            st = d.get("settings", {})
            lines.append(f"| {task} | {st.get('sft', 'not recorded')} | {st.get('train', 'not recorded')} | {recipe} | "
                         f"{v['target']} | {v['seeds_beating_sft']} of {v['seeds']} | "
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
    for name in SEEDS_BLOCKS:
        if not seeds_pattern(name).search(text):
            sys.exit(f"{README} has no <!-- {name}:start --> ... <!-- {name}:end --> block to fill")
        text = seeds_pattern(name).sub(lambda m, name=name: m.group(1) + seeds_block(seeds_files(name)) + m.group(3),
                                       text)
    README.write_text(text)
    print(f"{RESULTS} and the README's demo section updated from {path}; multi-seed blocks from "
          f"{sorted({f for files in SEEDS_BLOCKS.values() for f in files})}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/demo/results.json")
