"""``radrl predict``: a checkpoint's report and boxes for one or many images, as JSON lines (``radrl.app``).

    radrl predict ../shared/data/cxr/dicom/CR-MONO1-10-chest.dcm --model runs/demo/sft
    radrl predict 'scans/**/*.dcm' scans/extra --model CKPT --ground Cardiomegaly --draw runs/drawn --out preds.jsonl

One line per image and task: ``image``, ``task`` (report, detection, grounding), ``target`` (what grounding
looked for), ``request`` (the exact request), ``text`` (the answer), ``thinking``, ``boxes`` (``label``, ``box``
in 0-1, ``pixels`` in the image as given), ``image_size``, ``issues`` (the parser's), ``completion`` (raw), and on
every line what the answer came from: ``model`` (the checkpoint as given), ``settings`` (``Predictor.settings``:
pixel budget, decoding, thinking, token limits, seed, box format, device, dtype) and ``radrl_version``. An
image that cannot be read gets a line with ``error`` (and the same three fields) and the rest go on; the exit
status is then 1.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

from radrl.cli.args import ArgumentParser

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".dic")


def expand(inputs: list[str]) -> list[Path]:
    """Files, folders (every PNG, JPEG and DICOM under them, sorted) and globs (``**`` recurses) -> files, each
    once, in the order given."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not files:
                raise FileNotFoundError(f"{item}: no PNG, JPEG or DICOM files in this folder")
        elif path.is_file():
            files = [path]
        elif glob.has_magic(item):
            files = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not files:
                raise FileNotFoundError(f"{item}: the pattern matches no file (quote it so the shell leaves ** alone)")
        else:
            raise FileNotFoundError(f"{item}: no such file or folder")
        found += files
    return list(dict.fromkeys(found))


def _drawn_name(path: Path, taken: set[str]) -> str:
    name, n = f"{path.stem}.png", 1
    while name in taken:
        n += 1
        name = f"{path.stem}-{n}.png"
    taken.add(name)
    return name


def add_model_args(p: ArgumentParser, thinking_help: str) -> None:
    """The checkpoint's generation options, shared by ``radrl predict`` and ``radrl app`` (defaults: eval's)."""
    p.add_argument("--thinking", action="store_true", help=thinking_help)
    p.add_argument("--max-new-tokens", type=int, default=None,
                   help="per answer (default eval's: 1024 for reports, 4096 for boxes and when thinking)")
    p.add_argument("--min-pixels", type=int, default=None, help="pixel budget, min (default eval's 1,024)")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="pixel budget, max (default eval's 451,584; the demo's checkpoints were trained at 16,384)")
    p.add_argument("--seed", type=int, default=0, help="picks the requests' phrasing, as in radrl eval")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None, help="bf16, fp16 or fp32 (default: bf16 on a GPU, fp32 on a CPU)")


def load_predictor(a: argparse.Namespace):
    """The ``Predictor`` for ``add_model_args``' options, at eval's pixel budget unless one is given."""
    from radrl.app.predict import Predictor
    from radrl.eval.run import EVAL_PIXELS

    return Predictor(a.model, device=a.device, dtype=a.dtype, thinking=a.thinking,
                     max_new_tokens=a.max_new_tokens, seed=a.seed,
                     min_pixels=EVAL_PIXELS[0] if a.min_pixels is None else a.min_pixels,
                     max_pixels=EVAL_PIXELS[1] if a.max_pixels is None else a.max_pixels)


def main(argv: list[str] | None = None) -> int:
    p = ArgumentParser(prog="radrl predict", description=__doc__.split(": ", 1)[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Requests, pixel budget, generation and parsing are radrl eval's.")
    p.add_argument("images", nargs="+", help="image files (PNG, JPEG, DICOM), folders, or quoted globs")
    p.add_argument("--model", required=True, help="checkpoint folder (radrl tiny-model OUT makes a test one)")
    p.add_argument("--tasks", nargs="+", default=["report", "detection"], choices=["report", "detection"],
                   help="questions asked of every image (default: report and detection, i.e. a report with boxes)")
    p.add_argument("--ground", action="append", default=[], metavar="FINDING_OR_PHRASE",
                   help="also ask for the boxes of this finding (e.g. Cardiomegaly) or phrase; repeatable")
    p.add_argument("--out", default="-", help="JSON lines file (default: standard output)")
    p.add_argument("--draw", default=None, metavar="DIR",
                   help="write each image with its boxes and their labels here, at the image's own resolution")
    p.add_argument("--window", nargs=2, type=float, default=None, metavar=("CENTRE", "WIDTH"),
                   help="DICOM window in modality units instead of the file's own")
    add_model_args(p, "append ' /think'; the answer is read after </think>")
    a = p.parse_args(argv)

    files = expand(a.images)  # a typo stops here, before the model loads
    from radrl import __version__
    from radrl.app.draw import draw_boxes
    from radrl.app.predict import read_radiograph
    from radrl.data.images import ImageError

    predictor = load_predictor(a)
    window = tuple(a.window) if a.window else None
    draw_dir = Path(a.draw) if a.draw else None
    if draw_dir:
        draw_dir.mkdir(parents=True, exist_ok=True)
    # On every line, not in a header line: a JSONL reader that filters, shuffles or concatenates lines keeps them.
    provenance = {"model": predictor.checkpoint, "settings": predictor.settings, "radrl_version": __version__}
    out = sys.stdout if a.out == "-" else open(a.out, "w")  # noqa: SIM115 - closed below unless it is stdout
    failed, taken = 0, set()
    try:
        for n, path in enumerate(files, 1):
            try:
                radiograph = read_radiograph(path, window)
                results = [*([predictor.report(radiograph)] if "report" in a.tasks else []),
                           *([predictor.detect(radiograph)] if "detection" in a.tasks else []),
                           *(predictor.ground(radiograph, target) for target in a.ground)]
            except (ImageError, OSError) as e:
                failed += 1
                out.write(json.dumps({"image": str(path), "error": str(e), **provenance}) + "\n")
                print(f"radrl predict: skipped {path}: {e}", file=sys.stderr)
                continue
            for r in results:
                out.write(json.dumps({**r.to_dict(), **provenance}) + "\n")
            out.flush()
            if draw_dir:
                boxes = [b.box for r in results for b in r.boxes]
                draw_boxes(radiograph.image, boxes).save(draw_dir / _drawn_name(path, taken))
            print(f"[{n}/{len(files)}] {path}: {sum(len(r.boxes) for r in results)} boxes", file=sys.stderr)
    finally:
        if out is not sys.stdout:
            out.close()
    where = "" if a.out == "-" else f" -> {a.out}"
    drawn = f", drawn in {draw_dir}" if draw_dir else ""
    print(f"radrl predict: {len(files) - failed} of {len(files)} images answered{where}{drawn}"
          + (f"; {failed} unreadable (their lines carry the error)" if failed else ""), file=sys.stderr)
    if failed:
        sys.exit(1)
    return len(files)
