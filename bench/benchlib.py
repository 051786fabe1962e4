"""What every benchmark script needs: the real data folder and a description of the machine (``cpu_model``,
``machine_info``: re-exported from ``radrl.machine``, which the demo and every evaluation manifest use too)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from radrl.machine import cpu_model, machine_info  # one definition of "which machine", shared with radrl

__all__ = ["REPO", "cpu_model", "data_dir", "machine_info"]

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


