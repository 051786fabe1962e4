"""Throughput and peak memory of the MIMIC-CXR adapter, the task mix and the RadVLM JSON import.

Builds a synthetic MIMIC-CXR-JPG tree (N studies, one PA image each, reports in the zip)
and a RadVLM JSON file (M entries) in a temporary folder, then times and traces them:

    .venv/bin/python tests/data/credentialed/bench_adapters.py --studies 20000 --entries 100000

Not a test (pytest does not collect it); docs/data.md records its output.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import conftest as trees

from radrl.data.instructions import build_task_mix
from radrl.data.schema import CHEXPERT_LABELS, Sample
from radrl.data.sources import mimic_cxr
from radrl.data.sources.radvlm_json import export, read_conversations


def mimic_tree(root: Path, n: int) -> None:
    report = "FINAL REPORT\n INDICATION: cough.\n\n FINDINGS: " + "No focal consolidation. " * 20 + \
        "\n\n IMPRESSION: Normal.\n"
    ids = [(f"{i:08x}-0000-0000-0000-000000000000", f"1{i:07d}", f"5{i:07d}") for i in range(n)]
    trees.write_gz_csv(root / "mimic-cxr-2.0.0-split.csv.gz", ["dicom_id", "study_id", "subject_id", "split"],
                       [[d, st, su, "train"] for d, su, st in ids])
    trees.write_gz_csv(root / "mimic-cxr-2.0.0-metadata.csv.gz", trees.META_HEADER,
                       [[d, su, st, "", "PA", 3056, 2544, "", "", "", "", ""] for d, su, st in ids])
    # every study a different label row: the worst case for the shared label values
    cells = ["", "1.0", "0.0", "-1.0"]
    trees.write_gz_csv(root / "mimic-cxr-2.0.0-chexpert.csv.gz", ["subject_id", "study_id", *CHEXPERT_LABELS],
                       [[su, st] + [cells[(i >> (2 * j)) % 4] for j in range(14)] for i, (_, su, st) in enumerate(ids)])
    with zipfile.ZipFile(root / "mimic-cxr-reports.zip", "w", zipfile.ZIP_DEFLATED) as z:
        for _, su, st in ids:
            z.writestr(f"files/p{su[:2]}/p{su}/s{st}.txt", report)


def radvlm_file(path: Path, n: int) -> None:
    answer = " ".join(["The lungs are clear. No pleural effusion or pneumothorax."] * 4)
    with path.open("w") as f:
        f.write("[")
        for i in range(n):
            e = {"id": f"mimic-{i}", "image": f"mimic/p{i}/x.jpg", "conversations": [
                {"from": "human", "value": "<image>\nWrite the findings of this chest X-ray."},
                {"from": "gpt", "value": answer}]}
            f.write(("," if i else "") + json.dumps(e))
        f.write("]")


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def traced(fn):
    tracemalloc.start()
    out = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, peak / 1e6


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--studies", type=int, default=20000)
    p.add_argument("--entries", type=int, default=100000)
    a = p.parse_args()
    tmp = Path(tempfile.mkdtemp())
    root = tmp / "mimic"
    root.mkdir()
    mimic_tree(root, a.studies)

    def samples():
        return (s for s in mimic_cxr.read(root) if isinstance(s, Sample))

    n, dt = timed(lambda: sum(1 for _ in samples()))
    print(f"mimic-cxr: {n} samples in {dt:.2f} s ({n / dt:.0f} samples/s)")
    n, peak = traced(lambda: sum(1 for _ in samples()))
    print(f"mimic-cxr: peak traced memory {peak:.1f} MB for {n} samples")
    n, dt = timed(lambda: sum(1 for _ in build_task_mix(samples())))
    print(f"mimic-cxr + task mix: {n} rows in {dt:.2f} s ({n / dt:.0f} rows/s)")

    path = tmp / "radvlm.json"
    radvlm_file(path, a.entries)

    def rows():
        return (r for r in read_conversations(path) if isinstance(r, dict))

    n, dt = timed(lambda: sum(1 for _ in rows()))
    print(f"radvlm-json: {n} entries ({path.stat().st_size / 1e6:.0f} MB) in {dt:.2f} s ({n / dt:.0f} entries/s)")
    n, peak = traced(lambda: sum(1 for _ in rows()))
    print(f"radvlm-json: peak traced memory {peak:.1f} MB")
    n, dt = timed(lambda: export(rows(), tmp / "back.json", image_root=tmp))
    same = json.loads((tmp / "back.json").read_text()) == json.loads(path.read_text())
    print(f"radvlm-json import + export: {n} entries in {dt:.2f} s; file identical after round trip: {same}")


if __name__ == "__main__":
    main()
