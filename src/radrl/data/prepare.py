"""``radrl prepare SOURCE --root DIR --out DIR``: a dataset in its published layout -> samples on disk.

Why a separate step: adapters read eleven different layouts; everything after them (SFT,
GRPO, eval) reads one thing, the samples JSONL, so preparing once turns each dataset into
files the rest of the pipeline already understands. What it writes under ``--out``::

    samples.jsonl            every sample (``radrl.data.schema.write_jsonl`` rows; image paths absolute)
    <split>.jsonl            the same rows per split (train.jsonl, valid.jsonl, test.jsonl, all.jsonl)
                             -> ``radrl sft`` / ``radrl eval --data OUT/test.jsonl`` read these directly
    dataset/                 a Hugging Face DatasetDict (``--format hf``, the default; images by path), or
    parquet/<split>.parquet  (``--format parquet``); nothing more with ``--format jsonl``
    images/<id>.png          with ``--dicom-to-png``: each DICOM decoded once (see ``prepare``)
    skipped.jsonl            one line per skipped row or file: where, reason, detail
    summary.json             rows written (per split), rows skipped by reason, the first skips

Sources that ship conversations (``radvlm-json``) write ``conversations.jsonl`` instead of
``samples.jsonl``, with the same per-split files, dataset, skips and summary. ``reports_only``
(``--reports-only``; sources with ``read_reports``: ``folder``, ``iu-xray``) writes ``reports.jsonl``,
report text without images, for ``radrl score`` and ``radrl label`` (JSONL only: no dataset).

Nothing is dropped silently: each row an adapter cannot use (malformed row, missing image,
unreadable file, duplicate id, a sample that fails the schema check) is counted by reason,
listed in ``skipped.jsonl`` and summarised at the end; ``--strict`` stops at the first one
instead. Memory stays bounded: adapters stream, rows are written as they arrive, and the
dataset is built from the JSONL files in batches (``Dataset.from_generator``).

    $ radrl prepare tbx11k --root ../shared/data/cxr/tbx11k --out data/tbx11k
    written 3 (train 3); skipped 0
"""

from __future__ import annotations

import inspect
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from radrl.data.images import ImageError, is_dicom, load_image
from radrl.data.schema import Sample
from radrl.data.sources import Skip, declared, load_source
from radrl.package import version

FORMATS = ("hf", "parquet", "jsonl")
SHOWN_SKIPS = 20   # skips listed in summary.json and on screen; all of them are in skipped.jsonl


class PrepareError(RuntimeError):
    """A fatal problem (``--strict`` skip, unknown option, missing dataset files); the message says the fix."""


def prepare(source: str, root: str | Path, out: str | Path, options: dict[str, str] | None = None,
            strict: bool = False, fmt: str = "hf", limit: int | None = None, decode: bool = False,
            dicom_to_png: bool = False, max_pixels: int | None = None, progress: bool = True,
            reports_only: bool = False) -> dict[str, Any]:
    """Run one adapter and write its rows; returns the summary (also written to ``summary.json``).

    ``decode`` opens every image fully (``load_image``), so corrupt pixel data is found now
    rather than in the middle of training; it is slow (DICOM decoding), so it is off by
    default and adapters only read image headers.

    ``dicom_to_png`` decodes each DICOM sample image once (``load_image``: windowing,
    MONOCHROME1) into ``OUT/images/<id>.png``, optionally shrunk to ``max_pixels`` with the
    Qwen3-VL rule, and points the sample at it: training then reads PNGs (Hugging Face's
    image feature cannot open DICOM, and decoding JPEG 2000 every epoch is slow). Boxes are
    fractions, so they need no change; ``width``/``height`` become the PNG's.

    ``reports_only`` reads the source's ``read_reports``: report rows (id, findings, impression,
    report) with no image needed, e.g. the IU reports without their images, for ``radrl score`` and
    ``radrl label``.

    >>> prepare("tbx11k", "../shared/data/cxr/tbx11k", "/tmp/tbx")["written"]   # doctest: +SKIP
    3
    """
    if fmt not in FORMATS:
        raise PrepareError(f"--format must be one of {FORMATS}, got {fmt!r}")
    try:
        module = load_source(source)
    except ValueError as e:
        raise PrepareError(str(e)) from None
    if not hasattr(module, "read") and not hasattr(module, "read_conversations"):
        raise PrepareError(f"radrl prepare cannot read {source} (its module has no read function):\n"
                           f"{_indent(module.SOURCE.expects)}")
    conversations = not hasattr(module, "read")
    reader = module.read_conversations if conversations else module.read
    if reports_only:
        if not hasattr(module, "read_reports"):
            have = [n for n in readable_sources() if hasattr(load_source(n), "read_reports")]
            raise PrepareError(f"{source} has no reports-only mode; sources with one: {', '.join(have)} "
                               "(drop --reports-only to read images too)")
        if decode or dicom_to_png:
            raise PrepareError("--reports-only reads no images; drop --decode / --dicom-to-png")
        reader, conversations = module.read_reports, False
    options = dict(options or {})
    _check_options(source, reader, options)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    kind = "reports" if reports_only else "conversations" if conversations else "samples"
    if max_pixels is not None and not dicom_to_png:
        raise PrepareError("--max-pixels only applies to --dicom-to-png (other images are referenced, not rewritten)")
    png_dir = out / "images" if dicom_to_png else None

    from tqdm.auto import tqdm

    written: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    shown: list[dict[str, str]] = []
    seen: set[str] = set()
    split_files: dict[str, Any] = {}
    all_file = (out / f"{kind}.jsonl").open("w")
    skip_file = (out / "skipped.jsonl").open("w")
    bar = tqdm(desc=f"prepare {source}", unit=" rows", file=sys.stderr, disable=not progress, dynamic_ncols=True)
    try:
        rows = reader(root, **options)
        for item in rows:
            bar.update(1)
            line, split = None, None
            if not isinstance(item, Skip):
                item, line, split = (_check_report(item, seen) if reports_only else
                                     _check(item, conversations, seen, decode, png_dir, max_pixels))
            if isinstance(item, Skip):
                if strict:
                    raise PrepareError(f"{item.where}: {item.reason}: {item.detail} "
                                       "(--strict stops at the first skipped row; drop --strict to skip and count)")
                reasons[item.reason] += 1
                record = {"where": item.where, "reason": item.reason, "detail": item.detail}
                skip_file.write(json.dumps(record) + "\n")
                if len(shown) < SHOWN_SKIPS:
                    shown.append(record)
                bar.set_postfix(skipped=sum(reasons.values()), refresh=False)
                continue
            all_file.write(line)
            if split not in split_files:
                split_files[split] = (out / f"{split}.jsonl").open("w")
            split_files[split].write(line)
            written[split] += 1
            if limit is not None and sum(written.values()) >= limit:
                break
    except FileNotFoundError as e:   # a whole file missing: nothing to skip to; say what the source reads
        raise PrepareError(f"{source}: {e}\n{source} reads:\n{_indent(module.SOURCE.expects)}") from None
    except ValueError as e:          # a whole file unusable, or a bad option value
        raise PrepareError(f"{source}: {e}") from None
    finally:
        bar.close()
        for f in (all_file, skip_file, *split_files.values()):
            f.close()

    files = {kind: str(out / f"{kind}.jsonl"), "skipped": str(out / "skipped.jsonl")}
    files.update({split: str(out / f"{split}.jsonl") for split in sorted(written)})
    if fmt != "jsonl" and written and not reports_only:   # report rows are for score/label, not a dataset
        files.update(_write_dataset(out, sorted(written), fmt, conversations, progress))
    summary = {"radrl_version": version(), "source": source, "root": str(root), "options": options, "kind": kind,
               "written": sum(written.values()), "written_by_split": dict(sorted(written.items())),
               "skipped": sum(reasons.values()), "skipped_by_reason": dict(reasons.most_common()),
               "skipped_examples": shown, "files": files}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _check(item: Any, conversations: bool, seen: set[str], decode: bool, png_dir: Path | None = None,
           max_pixels: int | None = None) -> tuple[Any, str | None, str | None]:
    """A row from an adapter -> (row or Skip, its JSON line, its split)."""
    if conversations:
        if not isinstance(item, dict):
            got = type(item).__name__
            return Skip("adapter", "invalid row", f"expected a conversation dict, got {got}"), None, None
        key, split = str(item.get("id", "")), str(item.get("split") or "train")
        where = f"conversation {key or '?'}"
    else:
        where = f"sample {getattr(item, 'id', '?')}"
        try:
            row = item.to_row()
            item = Sample.from_row(row, where=where)   # the same checks every reader of the JSONL applies
        except (ValueError, AttributeError, TypeError) as e:
            return Skip(where, "invalid sample", str(e)), None, None
        key, split = item.id, item.split
    if key:
        if key in seen:
            return Skip(where, "duplicate id", f"id {key!r} was already written; the first one is kept"), None, None
        seen.add(key)
    images = [img for img in item.get("images") or [] if isinstance(img, str)] if conversations else [item.image]
    if conversations:   # sample adapters check their images; conversation sources may not
        missing = [img for img in images if not Path(img).is_file()]
        if missing:
            return Skip(where, "missing image", f"{missing[0]} does not exist"), None, None
    if png_dir is not None and not conversations and is_dicom(item.image):
        try:
            item = _to_png(item, png_dir, max_pixels)
            row = item.to_row()   # new image path and size
        except ImageError as e:
            return Skip(where, "unreadable image", str(e)), None, None
    elif decode:
        try:
            for img in images:
                load_image(img)
        except ImageError as e:
            return Skip(where, "unreadable image", str(e)), None, None
    if conversations:
        return item, json.dumps(item) + "\n", split
    row["labels"] = item.labels   # as write_jsonl writes it
    return item, json.dumps(row) + "\n", split


def _check_report(item: Any, seen: set[str]) -> tuple[Any, str | None, str | None]:
    """A report row from ``read_reports`` -> (row or Skip, its JSON line, its split): an id and report text."""
    if not isinstance(item, dict) or not isinstance(item.get("report"), str) or not item.get("id"):
        return Skip("adapter", "invalid row", f"expected a report row with id and report text, got {item!r}"[:300]), \
            None, None
    key, split = str(item["id"]), str(item.get("split") or "all")
    if key in seen:
        return Skip(f"report {key}", "duplicate id", f"id {key!r} was already written; the first one is kept"), \
            None, None
    seen.add(key)
    return item, json.dumps(item, ensure_ascii=False) + "\n", split


def _to_png(sample: Sample, png_dir: Path, max_pixels: int | None) -> Sample:
    """Decode the sample's DICOM once into ``png_dir/<id>.png`` (8-bit gray unless the DICOM is colour)."""
    import numpy as np

    img = load_image(sample.image, max_pixels=max_pixels)
    a = np.asarray(img)
    if (a[..., 0] == a[..., 1]).all() and (a[..., 1] == a[..., 2]).all():
        img = img.convert("L")
    png_dir.mkdir(parents=True, exist_ok=True)
    dest = png_dir / (sample.id.replace("/", "_").replace("\\", "_") + ".png")
    img.save(dest)
    sample.image, sample.width, sample.height = str(dest.resolve()), img.width, img.height
    return sample


def _check_options(source: str, reader, options: dict[str, str]) -> None:
    params = [p for p in inspect.signature(reader).parameters.values() if p.kind == p.KEYWORD_ONLY
              or (p.kind == p.POSITIONAL_OR_KEYWORD and p.name != "root")]
    names = [p.name for p in params]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise PrepareError(f"{source} has no option(s) {unknown}; it accepts {names or 'none'} (radrl prepare --list)")


def _jsonl_rows(path: str, conversations: bool):
    """Generator for ``Dataset.from_generator``: JSONL lines -> dataset rows (labels as JSON text, as
    ``Sample.to_row`` gives them). The lines were validated by ``_check`` when written: not again here."""
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if not conversations:
                row["labels"] = json.dumps(row["labels"], sort_keys=True)
            yield row


def _write_dataset(out: Path, splits: list[str], fmt: str, conversations: bool, progress: bool) -> dict[str, str]:
    from datasets.utils import logging as ds_logging

    from radrl.data.schema import hf_features

    cache = out / ".hf_cache"
    shutil.rmtree(cache, ignore_errors=True)   # a crashed earlier run must not hand back its cached rows
    features = None if conversations else hf_features()
    shown = ds_logging.is_progress_bar_enabled()
    if not progress:
        ds_logging.disable_progress_bar()
    try:
        return _build(out, splits, fmt, conversations, features, cache)
    finally:
        if shown:
            ds_logging.enable_progress_bar()
        shutil.rmtree(cache, ignore_errors=True)


def _build(out: Path, splits: list[str], fmt: str, conversations: bool, features, cache: Path) -> dict[str, str]:
    from datasets import Dataset, DatasetDict

    parts = {split: Dataset.from_generator(_jsonl_rows, features=features, cache_dir=str(cache),
                                           gen_kwargs={"path": str(out / f"{split}.jsonl"),
                                                       "conversations": conversations})
             for split in splits}
    files: dict[str, str] = {}
    if fmt == "hf":
        DatasetDict(parts).save_to_disk(str(out / "dataset"))
        files["dataset"] = str(out / "dataset")
    else:
        (out / "parquet").mkdir(exist_ok=True)
        for split, ds in parts.items():
            ds.to_parquet(str(out / "parquet" / f"{split}.parquet"))
            files[f"parquet_{split}"] = str(out / "parquet" / f"{split}.parquet")
    return files


def format_summary(summary: dict[str, Any]) -> str:
    """The end-of-run text: rows written per split, skips by reason, the first skips."""
    splits = ", ".join(f"{k} {v:,}" for k, v in summary["written_by_split"].items())
    lines = [f"written {summary['written']:,} {summary['kind']}" + (f" ({splits})" if splits else ""),
             f"skipped {summary['skipped']:,}"]
    lines += [f"  {n:>8,}  {reason}" for reason, n in summary["skipped_by_reason"].items()]
    if summary["skipped_examples"]:
        lines.append("first skipped rows (all in skipped.jsonl):")
        lines += [f"  {s['where']}: {s['reason']}: {s['detail']}" for s in summary["skipped_examples"][:10]]
    lines += [f"{k}: {v}" for k, v in summary["files"].items()]
    return "\n".join(lines)


def readable_sources() -> list[str]:
    """The declared sources ``radrl prepare`` can read: those whose module has ``read`` or ``read_conversations``."""
    return [name for name in declared() if any(hasattr(load_source(name), f) for f in ("read", "read_conversations"))]


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.strip().splitlines())


def list_sources() -> str:
    """Every readable source with the files it expects and its tasks in the paper's mix (``radrl prepare --list``)."""
    parts = []
    for name in readable_sources():
        info = declared()[name]
        tasks = ", ".join(t + (f" x{info.repeats[t]}" if info.repeats.get(t, 1) > 1 else "") for t in info.tasks)
        parts.append(f"{name}\n{_indent(info.expects)}\n    task mix: {tasks or 'none (ready-made conversations)'}")
    return "\n\n".join(parts)
