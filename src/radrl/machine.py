"""What machine produced a number: CPU model, the instruction set torch runs on, threads, GPUs.

CPU results differ in the last bits across thread counts and instruction sets (AVX2 vs
AVX-512), and a tiny model's greedy output amplifies that into different answers; so every
evaluation manifest and the demo's results record this, and ``radrl compare`` shows it.
"""

from __future__ import annotations

import os
import platform


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("model name", "Model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict:
    """``{"cpu", "isa", "cores", "threads", "gpus", "torch", "os", "arch", "platform"}``; ``isa`` is the vector
    instruction set torch's CPU kernels use (``torch.backends.cpu.get_cpu_capability()``: AVX512, AVX2, ...),
    ``threads`` torch's intra-op thread count now (``torch.get_num_threads()``), ``torch`` its version.

    >>> sorted(machine_info())
    ['arch', 'cores', 'cpu', 'gpus', 'isa', 'os', 'platform', 'threads', 'torch']
    """
    info = {"cpu": cpu_model(), "isa": None, "cores": os.cpu_count(), "threads": None, "gpus": [], "torch": None,
            "os": platform.system(), "arch": platform.machine(), "platform": platform.platform()}
    try:
        import torch

        info["isa"] = torch.backends.cpu.get_cpu_capability()
        info["threads"] = torch.get_num_threads()
        info["torch"] = torch.__version__
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return info
