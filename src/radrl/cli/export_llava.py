"""``radrl export-llava SAMPLES... --out FILE``: samples JSONL -> the paper's task mix -> LLaVA / RadVLM JSON
(``radrl.data.sources.radvlm_json.export``)."""

from __future__ import annotations

import itertools
from pathlib import Path

from radrl.cli.args import ArgumentParser


def main(argv: list[str] | None = None) -> int:
    """Samples JSONL file(s) -> the paper's task mix -> one LLaVA JSON file.

        radrl export-llava data/mimic/samples.jsonl data/ms-cxr/samples.jsonl --out data/llava_train.json \\
            --image-root /data
    """
    from radrl.data.instructions import TASKS, build_task_mix
    from radrl.data.schema import read_jsonl
    from radrl.data.sources.radvlm_json import export

    p = ArgumentParser(prog="radrl export-llava", description=main.__doc__.splitlines()[0])
    p.add_argument("samples", nargs="+", help="samples JSONL written by `radrl prepare` (or radrl synth-data)")
    p.add_argument("--out", required=True, help="the LLaVA JSON file to write")
    p.add_argument("--image-root", help="write image paths relative to this folder (default: absolute paths)")
    p.add_argument("--tasks", nargs="*", choices=list(TASKS), help="keep only these tasks (default: the full mix)")
    p.add_argument("--seed", type=int, default=0, help="seed for request phrasings and drawn regions")
    p.add_argument("--thinking", action="store_true", help="append ' /think' to every request")
    p.add_argument("--box-format", choices=["paper", "qwen"], default="paper", help="box text in answers")
    a = p.parse_args(argv)
    for path in a.samples:
        if not Path(path).is_file():
            p.error(f"{path} does not exist; write it with `radrl prepare SOURCE --root ... --out ...`")
    samples = itertools.chain.from_iterable(read_jsonl(path) for path in a.samples)
    rows = build_task_mix(samples, seed=a.seed, thinking=a.thinking, box_format=a.box_format, tasks=a.tasks)
    n = export(rows, a.out, image_root=a.image_root)
    print(f"wrote {n} conversations to {a.out}")
    return n
