"""What every benchmark script needs: the real data folder and a description of the machine."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def data_dir(arg: str | None, *needed: str) -> Path:
    """--data, else $RADRL_CXR_DATA, else <repo>/../shared/data/cxr; exits naming any ``needed`` file
    (relative to that folder) that is absent."""
    path = Path(arg or os.environ.get("RADRL_CXR_DATA") or REPO.parent / "shared" / "data" / "cxr")
    missing = [str(path / name) for name in needed if not (path / name).is_file()]
    if missing:
        sys.exit(f"error: data not found: {', '.join(missing)}\n"
                 "pass --data /path/to/shared/data/cxr or set RADRL_CXR_DATA to that folder")
    return path


def cpu_model() -> str:
    """The CPU's model name (Linux), else what platform reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
