"""Check a demo run's results into the repository and render the README's demo section from them.

    radrl demo --out runs/demo
    python bench/demo_results.py runs/demo/results.json

Copies the file to ``bench/results/demo.json`` and rewrites the README between the
``demo-results`` markers with ``radrl.demo.readme_block``; ``tests/test_readme_results.py``
renders it again and fails when the README and the checked-in file disagree.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

from radrl.demo import readme_block

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "demo.json"
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- demo-results:start -->\n).*?(\n<!-- demo-results:end -->)", re.S)


def main(path: str) -> None:
    results = json.loads(Path(path).read_text())
    missing = [k for k in ("command", "machine", "commit", "results", "paired") if k not in results]
    if missing:
        sys.exit(f"{path} lacks {missing}: it was not written by this radrl's demo; rerun `radrl demo`")
    shutil.copyfile(path, RESULTS)
    text = README.read_text()
    if not BLOCK.search(text):
        sys.exit(f"{README} has no <!-- demo-results:start --> ... <!-- demo-results:end --> block to fill")
    README.write_text(BLOCK.sub(lambda m: m.group(1) + readme_block(results) + m.group(2), text))
    print(f"{RESULTS} and the README's demo section updated from {path}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/demo/results.json")
