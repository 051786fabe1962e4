"""Issue 13: the demo's numbers are reproducible. results.json records what CPU numbers depend on (CPU model,
the instruction set torch uses, torch threads, torch version, OS and architecture), and the same machine at the
same thread count gives the same numbers: two fresh ``radrl demo --smoke --threads 1`` processes agree on every
model number, every trained weight and every generated answer."""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from radrl.demo import machine_line, readme_block

# What differs between two identical runs by design: wall times, the date, and the command (it names --out).
VOLATILE = ("times_s", "total_s", "date", "command")
MODELS = ("tiny-model", "sft", "grpo-report", "grpo-grounding")
EVALS = ("eval-sft", "eval-grpo-report", "eval-grpo-grounding")


def numbers(out: Path) -> dict:
    results = json.loads((out / "results.json").read_text())
    return {k: v for k, v in results.items() if k not in VOLATILE}


def answers(path: Path) -> list[dict]:
    """The predictions without the image path (it is under --out)."""
    return [{k: v for k, v in json.loads(line).items() if k != "image"} for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_same_machine_and_threads_give_the_same_numbers():
    # a private folder: pytest's own temporary folders are pruned by concurrent pytest runs on a shared machine.
    # The two runs are separate processes, as two users' runs are, and run side by side (one thread each).
    with tempfile.TemporaryDirectory(prefix="radrl-demo-repro-") as tmp:
        outs = [Path(tmp) / name for name in ("a", "b")]
        procs = [subprocess.Popen([sys.executable, "-m", "radrl.cli", "demo", "--smoke", "--threads", "1",
                                   "--out", str(out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env={**os.environ, "RADRL_DEBUG": "1"}) for out in outs]
        logs = [p.communicate(timeout=600)[0] for p in procs]
        for p, log in zip(procs, logs):
            assert p.returncode == 0, log[-3000:]
        a, b = (numbers(out) for out in outs)

        # the machine is recorded, with the thread count asked for
        m = a["machine"]
        assert m["cpu"] and m["isa"] and m["torch"] and m["os"] and m["arch"] and m["platform"]
        assert m["threads"] == 1 and a["settings"]["threads"] == 1
        assert "1 torch thread" in (outs[0] / "report.md").read_text()
        assert machine_line(m) in readme_block(json.loads((outs[0] / "results.json").read_text()))

        # every model number (results, paired tests, settings, machine) is identical, not merely close
        assert a["results"]["SFT"]["report"]["avg_chars"] > 0  # the runs generated text: there is something to match
        assert a == b
        # and so is what they come from: each checkpoint's weights, bit for bit, and each generated answer
        for model in MODELS:
            assert (outs[0] / model / "model.safetensors").read_bytes() == \
                (outs[1] / model / "model.safetensors").read_bytes(), f"{model} weights differ between the runs"
        for folder in EVALS:
            assert answers(outs[0] / folder / "predictions.jsonl") == answers(outs[1] / folder / "predictions.jsonl")


def test_the_machine_line_says_what_an_older_results_file_did_not_record():
    # bench/results/demo.json predates the torch/os/arch fields: they read "not recorded" or come from what it has
    old = {"cpu": "AMD EPYC", "isa": "AVX2", "cores": 2, "threads": 2, "gpus": [],
           "platform": "Linux-6.18-x86_64-with-glibc2.36"}
    assert machine_line(old) == "AMD EPYC (AVX2, 2 torch threads), torch not recorded, Linux-6.18-x86_64-with-glibc2.36"
    assert machine_line(old, "2.13.0+cpu").endswith("torch 2.13.0+cpu, Linux-6.18-x86_64-with-glibc2.36")
    assert machine_line({}) == ("CPU not recorded (instruction set not recorded, threads not recorded), "
                                "torch not recorded, OS not recorded")
