"""Training on the CPU hands freed tensors back to the system (radrl.train.common.return_freed_memory, issue 16):
without it glibc's heap kept 4.1 GiB of freed activations after one GRPO loss forward of a 4-layer Qwen3-VL-2B
(bench/README.md), and the real-size GRPO step was OOM-killed at 19.6 GiB."""

import json
import os
import platform
import subprocess
import sys

import pytest

# Freed blocks of a few MB in glibc's heap, between small tensors that stay alive, are kept by the process
# once glibc has raised its mmap threshold (it does on the first free of a large mmapped block): the pattern of
# a forward pass, whose large activations are freed while small ones live on.
PROBE = """
import json, sys, torch
from radrl.train.common import return_freed_memory
def rss():
    return int(open('/proc/self/statm').read().split()[1]) * 4096
if sys.argv[1] == "set":
    assert return_freed_memory()
warm = [torch.ones(2 << 20) for _ in range(4)]  # 8 MB blocks, mmapped and freed: glibc raises its threshold
del warm
before = rss()
big, small = [], []
for _ in range(64):
    big.append(torch.ones((2 << 20) - 4096))   # just under 8 MB each, 512 MB in all
    small.append(torch.ones(1024))             # a live 4 KB tensor after each
del big
print(json.dumps({"kept_mb": (rss() - before) / 2**20}))
"""


@pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_freed_activations_leave_the_resident_set():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    kept = {}
    for mode in ("default", "set"):
        out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120,
                             check=True, env=env)
        kept[mode] = json.loads(out.stdout.strip().splitlines()[-1])["kept_mb"]
    assert kept["default"] > 400, kept   # glibc's own behaviour: the freed 512 MB stay in the heap
    assert kept["set"] < 50, kept        # radrl's setting: they go back to the system


def test_a_set_malloc_variable_is_left_alone(monkeypatch):
    from radrl.train.common import return_freed_memory

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert return_freed_memory() is False
