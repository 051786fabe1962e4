"""The README's demo numbers are the checked-in results file's, rendered by the code that renders them."""

import json
import re
from pathlib import Path

from radrl.demo import readme_block

ROOT = Path(__file__).resolve().parents[1]


def test_readme_demo_numbers_come_from_the_results_file():
    results = json.loads((ROOT / "bench" / "results" / "demo.json").read_text())
    block = re.search(r"<!-- demo-results:start -->\n(.*?)\n<!-- demo-results:end -->",
                      (ROOT / "README.md").read_text(), re.S)
    assert block, "README.md lost its demo-results block; run python bench/demo_results.py runs/demo/results.json"
    assert block.group(1) == readme_block(results), \
        "README.md's demo numbers differ from bench/results/demo.json: run python bench/demo_results.py"
    # the file records what produced it
    assert results["command"].startswith("radrl demo") and results["machine"]["cpu"] and results["commit"]
    assert set(results["paired"]) == {"report", "grounding"}


def test_readme_multi_seed_summary_comes_from_its_results_file():
    import importlib.util

    spec = importlib.util.spec_from_file_location("demo_results", ROOT / "bench" / "demo_results.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "README.md").read_text()
    for name in module.SEEDS_BLOCKS:
        block = module.seeds_pattern(name).search(text)
        assert block, f"README.md lost its {name} block; run python bench/demo_results.py"
        assert block.group(2) == module.seeds_block(module.seeds_files(name)), \
            f"README.md's {name} summary differs from {module.SEEDS_BLOCKS[name]}: run python bench/demo_results.py"
