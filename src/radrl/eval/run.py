"""``radrl eval``: generate for a held-out split, parse, score, write metrics, tables, box images and a manifest.

    radrl eval --model runs/demo/grpo --data runs/demo/data/test.jsonl --out runs/demo/eval-grpo
    radrl eval --model served-name --endpoint http://127.0.0.1:8000/v1 --data test.jsonl --out runs/eval-api

Outputs in ``--out``:

* ``predictions.jsonl``: appended as rows are generated; a rerun with the same ``--out``
  resumes (rows already there are neither regenerated nor duplicated);
* ``per_sample.jsonl``, ``metrics.json`` (aggregates with seeded 95 % bootstrap intervals,
  2,000 resamples), ``metrics.md``, ``boxes/*.png``;
* ``manifest.json``: model, data (file hash, rows per task), decoding settings, metric
  versions and scorer model files, software versions, generation time, and ``comparable``:
  everything two runs must share for their numbers to be compared (``radrl compare`` checks it):
  data hash, request scheme, the pixel budget and mean image tokens, decoding, token limits, row
  ids and requests (hashed per task), metric versions, precision, and the machine.

The pixel budget is always explicit: ``EVAL_PIXELS`` (the paper's RL budget, min 1,024 and max
451,584 pixels) unless ``min_pixels``/``max_pixels`` say otherwise, never the budget a checkpoint
happened to be trained at (training saves its recipe's budget into the checkpoint's processor, so
an SFT and a GRPO checkpoint would otherwise see different numbers of image tokens).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path

from radrl.data.images import QWEN3_VL_FACTOR, ImageError, image_header, smart_resize
from radrl.data.instructions import PROMPT_SCHEME, THINK_SUFFIX, build_conversations
from radrl.data.schema import read_jsonl
from radrl.eval.generate import (
    completions_in_row_order,
    generate_to_jsonl,
    make_backend,
    read_predictions,
    resolve_engine,
    task_limits,
)
from radrl.eval.report import (
    draw_boxes,
    markdown_table,
    write_metrics,
    write_per_sample,
)
from radrl.eval.score import DEFAULT_REPORT_METRICS, SCORED_TASKS, score, score_by_kind
from radrl.machine import machine_info
from radrl.metrics import check_metrics, metric_progress
from radrl.package import version
from radrl.parsing import parse, reference_boxes

log = logging.getLogger(__name__)

SOFTWARE = ("radrl", "torch", "transformers", "trl", "peft", "accelerate", "numpy", "pillow", "vllm", "httpx",
            "bert-score", "pycocoevalcap")
N_RESAMPLES, BOOT_SEED = 2000, 0
# Row tasks ``radrl.eval.score`` scores (SCORED_TASKS): the build tasks anatomy_grounding and phrase_grounding
# give task="grounding" rows with kind="anatomy" / "phrase", scored as grounding and per kind; "detection" rows
# are images without findings, scored for false positives.
EVAL_TASKS = ("report", "grounding", "anatomy_grounding", "phrase_grounding", "detection")
# The evaluation pixel budget (min, max) unless a run names another: the paper's RL budget (paper.md).
EVAL_PIXELS = (1024, 451_584)
# Version of the ``comparable`` block of manifest.json (radrl.eval.contract reads it).
CONTRACT_VERSION = 1
# Unreadable images listed one by one in manifest.json (all are counted).
SHOWN_UNREADABLE = 100


def evaluate(model_path: str, data: str, out: str, tasks: tuple[str, ...] = ("report", "grounding"),
             batch_size: int = 16, max_new_tokens: dict[str, int] | None = None, thinking: bool = False,
             max_rows: int | None = None, n_box_images: int = 6, device: str | None = None,
             min_pixels: int = EVAL_PIXELS[0], max_pixels: int = EVAL_PIXELS[1], seed: int = 1,
             box_instruction: bool = False, engine: str = "hf", endpoint: str | None = None, loader: str = "auto",
             temperature: float = 0.0, top_p: float | None = None, concurrency: int = 8, timeout: float = 600.0,
             api_key: str | None = None, report_metrics: tuple[str, ...] = DEFAULT_REPORT_METRICS,
             name: str | None = None, progress: bool = True, engine_args: dict | None = None,
             dtype: str | None = None) -> dict:
    """Evaluate one model on one samples JSONL; returns ``{task: aggregate metrics}``.

    ``engine``: ``hf`` (local checkpoint, any Hugging Face VLM with a chat template), ``vllm``,
    or ``openai`` (``endpoint`` URL; ``model_path`` is then the served model id); ``engine_args``
    go to ``vllm.LLM`` and are recorded with each generation run. ``temperature=0`` is greedy.
    ``min_pixels``/``max_pixels``: the image pixel budget of every model evaluated (default ``EVAL_PIXELS``).
    ``dtype`` (``bf16``, ``fp16``, ``fp32``): the weights' precision for hf and vllm (default bf16 on a GPU
    that has it, else fp32; bf16 on a CPU lets an 8B model evaluate in about 17 GiB), recorded as the run's
    precision, which comparisons and resumes check.
    Rerunning into the same ``out`` resumes generation; it refuses (with the fix) when the model, decoding
    settings or the way requests are drawn differ from the first run.

    >>> evaluate("runs/demo/sft", "runs/demo/data/test.jsonl", "runs/demo/eval-sft")  # doctest: +SKIP
    {'grounding': {'soft_f1': ...}, 'report': {'rouge_l': ...}}
    """
    if min_pixels is None or max_pixels is None or not 0 < min_pixels <= max_pixels:
        raise ValueError(f"pixel budget min_pixels={min_pixels}, max_pixels={max_pixels}: give two positive numbers, "
                         f"min <= max (default {EVAL_PIXELS}); the budget is part of what makes runs comparable")
    check_metrics(report_metrics)  # unknown names and missing scorer weights stop here, before generation
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = build_conversations(read_jsonl(data), tasks=tasks, seed=seed, thinking=thinking,
                               box_instruction=box_instruction)
    # Rows of a task no scorer reads (none of EVAL_TASKS today; a new build task before its scorer) are counted,
    # not generated.
    skipped = _count(r["task"] for r in rows if r["task"] not in SCORED_TASKS)
    rows = [r for r in rows if r["task"] in SCORED_TASKS]
    n_all = len(rows)
    # Limits of every task in the file, not only those within --max-rows: a rerun with more rows resumes.
    limits = {t: v for t, v in task_limits(max_new_tokens, thinking).items() if any(r["task"] == t for r in rows)}
    rows = first_per_task(rows, max_rows) if max_rows else rows
    rows, unreadable = drop_unreadable(rows, progress, cache=out_dir / "image_check.json")
    if not rows:
        raise ValueError(f"{data} gives no scorable rows for tasks {tasks} (skipped: {skipped or 'none'}; unreadable "
                         f"images: {unreadable.get('images', 0)}); check the file and the tasks")
    if skipped:
        log.warning("skipped rows no scorer reads: %s (recorded in manifest.json)", skipped)
    engine = resolve_engine(engine, endpoint, engine_args)
    if dtype is not None and engine == "openai":
        raise ValueError("--dtype sets the precision of a model loaded here; a served model's precision is the "
                         "server's (drop --dtype, or set it where the server starts)")
    if dtype is not None and engine == "vllm":   # vLLM's own argument, recorded with the engine arguments
        from radrl.models.load import DTYPES

        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r}: choose one of {sorted(DTYPES)}")
        engine_args = {**(engine_args or {}), "dtype": str(DTYPES[dtype]).removeprefix("torch.")}
    if engine != "openai":   # a hub id or a wrong path stops here, before any manifest is written
        from radrl.models.load import require_local

        require_local(model_path)
    model_info = _model_info(model_path, engine, endpoint, loader, engine_args)
    applied_by = _budget_applied_by(engine, loader, model_info.get("model_type"))
    comparable = {"contract": CONTRACT_VERSION, "data_sha256": _sha256(data), "prompt_scheme": PROMPT_SCHEME,
                  "pixels": {"min_pixels": min_pixels, "max_pixels": max_pixels, "applied_by": applied_by},
                  "decoding": {"temperature": temperature, "top_p": top_p, "thinking": thinking,
                               "box_instruction": box_instruction},
                  "precision": _precision(engine, device, engine_args, dtype),
                  "tasks": _task_contract(rows, limits, min_pixels if applied_by == "radrl" else None, max_pixels),
                  "machine": machine_info()}
    manifest = {
        "status": "generating",
        "radrl_version": version(),
        "name": name or Path(model_path).name,
        "model": model_info,
        "data": {"path": str(data), "sha256": _sha256(data), "tasks": list(tasks), "prompt_seed": seed,
                 "rows_available": n_all, "max_rows": max_rows,
                 "skipped_rows": {"count_per_task": skipped, "reason": "no scorer for the task"} if skipped else {},
                 "unreadable_images": unreadable},
        "decoding": {"greedy": temperature == 0, "temperature": temperature, "top_p": top_p,
                     "max_new_tokens": limits, "thinking": thinking, "box_instruction": box_instruction,
                     "min_pixels": min_pixels, "max_pixels": max_pixels},
        "comparable": comparable,
    }
    previous = _check_resume(out_dir / "manifest.json", manifest)
    _write_json(out_dir / "manifest.json", {**manifest, "generation_runs": previous})

    timing = {"load_s": 0.0}

    def backend(todo, limits, on_result):  # the model is loaded only when some row is left to generate
        t0 = time.time()
        run = make_backend(model_path, engine=engine, endpoint=endpoint, batch_size=batch_size,
                           temperature=temperature, top_p=top_p, device=device, loader=loader, min_pixels=min_pixels,
                           max_pixels=max_pixels, concurrency=concurrency, timeout=timeout, api_key=api_key,
                           progress=progress, engine_args=engine_args, dtype=dtype)
        timing["load_s"] = time.time() - t0
        run(todo, limits, on_result)

    predictions = out_dir / "predictions.jsonl"
    t1 = time.time()
    counts = generate_to_jsonl(backend, rows, predictions, limits)
    t_load, t_gen = timing["load_s"], time.time() - t1 - timing["load_s"]
    completions = completions_in_row_order(rows, predictions)

    with metric_progress(progress):   # model-based scorers show their batches (on a terminal)
        results = score(rows, completions, report_metrics)
        kinds = score_by_kind(rows, completions, report_metrics)
    write_per_sample(rows, results, out_dir / "per_sample.jsonl")
    metrics = write_metrics({**results, **kinds}, out_dir / "metrics.json", n_resamples=N_RESAMPLES, seed=BOOT_SEED,
                            extra={"model": model_path, "data": data, "rows": len(rows),
                                   "decoding": manifest["decoding"]}, clusters=_clusters(rows, [*results, *kinds]))
    aggregates = {t: r.aggregate for t, r in results.items()}
    written = json.loads(metrics.read_text())
    cis = {t: v.get("ci", {}) for t, v in written["tasks"].items()}
    boot = written["bootstrap"]
    label = manifest["name"]
    # Per-kind results ("grounding/anatomy") use the table layout of their task.
    tables = [f"## {t}\n\n" + markdown_table({label: {t.split("/")[0]: r.aggregate}}, t.split("/")[0],
                                              cis={label: {t.split("/")[0]: cis.get(t, {})}})
              + f"\n\nBrackets: {boot['level']:.0%} bootstrap interval over samples ({boot['n_resamples']:,} "
              f"resamples, seed {boot['seed']})." for t, r in {**results, **kinds}.items()]
    (out_dir / "metrics.md").write_text("\n\n".join(tables) + "\n")
    _box_images(rows, completions, out_dir / "boxes", n_box_images)

    for t, r in results.items():
        comparable["tasks"].setdefault(t, {})["metric_versions"] = r.versions
    manifest.update({
        "status": "complete",
        "data": {**manifest["data"], "rows": len(rows), "rows_per_task": _count(r["task"] for r in rows),
                 "rows_per_kind": _count(f"{r['task']}/{r['kind']}" for r in rows if r.get("kind"))},
        "generation_runs": [*previous, {
            "resumed": counts["resumed"], "generated": counts["generated"],
            "load_s": round(t_load, 3), "generate_s": round(t_gen, 3),
            "samples_per_s": round(counts["generated"] / t_gen, 3) if counts["generated"] else None,
            "engine": engine, "engine_args": engine_args or {},
            "batch_size": batch_size, "concurrency": concurrency,
            "device": device, "radrl_version": version(),  # a resumed evaluation may span two versions
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}],
        "metrics": {"report_metrics": list(report_metrics),
                    "versions": {t: r.versions for t, r in results.items()},
                    "scorer_files": _scorer_files(results),
                    "bootstrap": boot},
        "software": _software(),
        "outputs": sorted(p.name for p in out_dir.iterdir() if p.is_file() and p.name != "manifest.json"),
    })
    _write_json(out_dir / "manifest.json", manifest)
    return aggregates


# Settings that must match for a rerun into the same folder to resume (max_rows may grow).
_RESUME_KEYS = (("model", "id"), ("model", "engine"), ("model", "endpoint"), ("model", "loader"),
                ("model", "precision"), ("decoding",),
                ("data", "sha256"), ("data", "tasks"), ("data", "prompt_seed"),
                ("comparable", "prompt_scheme"), ("comparable", "precision"))


def _check_resume(path: Path, new: dict) -> list[dict]:
    """The earlier generation runs recorded in ``path``, after checking their settings match ``new``.

    Another decoding setting, data file or task list is a mistake to stop on. The same model id
    with other weights (the checkpoint folder was trained again: file sizes or modification
    times differ) makes the old predictions stale: they are moved to ``predictions.stale.jsonl``
    and generation starts over, so ``radrl demo`` can run twice into one folder."""
    predictions = path.parent / "predictions.jsonl"
    if not path.exists() or not read_predictions(predictions):
        return []  # nothing generated yet (e.g. a first attempt failed to start): any settings may start here
    old = json.loads(path.read_text())
    scheme = (old.get("comparable") or {}).get("prompt_scheme")
    if scheme != new["comparable"]["prompt_scheme"]:
        why = "" if scheme else ", where each request depended on the other rows and tasks evaluated beside it"
        raise ValueError(f"{path.parent} was generated with requests drawn by {scheme or 'an older rule'}{why}; "
                         f"this radrl writes them by {new['comparable']['prompt_scheme']} "
                         "(radrl.data.instructions.PROMPT_SCHEME says what changed), so its predictions may "
                         "answer other questions. Pass a new --out folder, or delete that folder to start over")
    for keys in _RESUME_KEYS:
        a, b = old, new
        for k in keys:
            a, b = (a or {}).get(k), (b or {}).get(k)
        if a != b:
            raise ValueError(f"{path.parent} holds an evaluation with a different {'.'.join(keys)} ({a} vs now {b}); "
                             "resuming would mix two settings in one predictions.jsonl: pass a new --out folder, "
                             "or delete that folder to start over")
    if old.get("model", {}).get("files") != new["model"].get("files"):
        predictions.replace(path.parent / "predictions.stale.jsonl")
        log.warning("%s has other weights than when %s was written: starting over (old predictions moved to "
                    "predictions.stale.jsonl)", new["model"]["id"], predictions)
        return []
    return old.get("generation_runs", [])


# vLLM engine arguments that change the numbers the model computes (the others, such as tensor_parallel_size or
# gpu_memory_utilization, only where and how fast: a rerun after running out of memory may change those).
PRECISION_ARGS = ("dtype", "quantization", "kv_cache_dtype")


def _model_info(model: str, engine: str, endpoint: str | None, loader: str, engine_args: dict | None = None) -> dict:
    info = {"id": model, "engine": engine, "endpoint": endpoint, "loader": loader if engine == "hf" else None}
    precision = {k: engine_args[k] for k in PRECISION_ARGS if k in (engine_args or {})}
    if precision:
        info["precision"] = precision
    folder = Path(model)
    if engine != "openai" and folder.is_dir():
        config = folder / "config.json"
        if config.exists():
            cfg = json.loads(config.read_text())
            info["model_type"] = cfg.get("model_type")
            info["config_sha256"] = _sha256(config)
        # Size and modification time of every file: retraining into the same folder changes them.
        info["files"] = {p.name: [p.stat().st_size, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(p.stat().st_mtime))
                                  + f".{p.stat().st_mtime_ns % 10**9:09d}Z"]
                         for p in sorted(folder.iterdir()) if p.is_file()}
    return info


def _precision(engine: str, device: str | None, engine_args: dict | None, dtype: str | None = None) -> str:
    """The numeric precision generation runs in: the hf engine's dtype (``dtype``, else what ``radrl.models.load``
    picks: bf16 on a GPU that has it, else fp32), vLLM's dtype/quantization/kv-cache arguments, or "server" for
    an endpoint."""
    if engine == "openai":
        return "server"
    if engine == "vllm":
        return ", ".join(f"{k}={(engine_args or {})[k]}" for k in PRECISION_ARGS if k in (engine_args or {})) or "auto"
    from radrl.models.load import DTYPES, default_device, default_dtype

    if dtype is not None:
        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r}: choose one of {sorted(DTYPES)}")
        return str(DTYPES[dtype]).removeprefix("torch.")
    return str(default_dtype(device or default_device())).removeprefix("torch.")


def _clusters(rows: list[dict], keys: list[str]) -> dict[str, list[str]]:
    """Per result (``task`` or ``task/kind``), the image of each of its rows in score order: intervals resample
    images, not rows (several grounding rows of one image are not independent observations)."""
    out = {}
    for key in keys:
        task, _, kind = key.partition("/")
        out[key] = [r.get("sample_id") or r["id"] for r in rows
                    if r["task"] == task and (not kind or r.get("kind") == kind)]
    return out


def _read_image_cache(cache: Path | None) -> dict:
    """The verdicts ``drop_unreadable`` saved earlier; an unreadable cache is ignored (it is only a cache)."""
    if cache is None or not cache.exists():
        return {}
    try:
        files = json.loads(cache.read_text()).get("files", {})
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return {}
    return {k: v for k, v in files.items() if isinstance(v, list) and len(v) == 3} if isinstance(files, dict) else {}


def drop_unreadable(rows: list[dict], progress: bool = False, cache: Path | None = None) -> tuple[list[dict], dict]:
    """(the rows whose images decode, a record of the others). Why: one corrupt or missing file used to abort
    a whole evaluation mid-generation; now its rows are skipped, counted per task and listed with the file
    and the error (manifest.json ``data.unreadable_images``; a warning says so). Each image is decoded once,
    the way generation decodes it (``load_image``), before generation, so both sides of a comparison skip
    the same rows and ``radrl compare`` sees any difference in the row-id hashes. Decoding a large DICOM
    test split takes minutes, so the verdicts are kept in ``cache`` (the output folder's
    ``image_check.json``) by file size and modification time, and a resumed run decodes only changed files."""
    from tqdm.auto import tqdm

    from radrl.data.images import load_image

    paths = list(dict.fromkeys(str(p) for r in rows for p in r.get("images") or [] if isinstance(p, (str, Path))))
    known = _read_image_cache(cache)
    verdicts: dict[str, list] = {}
    errors: dict[str, str] = {}
    for path in tqdm(paths, desc="check images", unit=" images", disable=not progress or len(paths) < 50,
                     leave=False):
        try:
            st = os.stat(path)
            stamp = [st.st_size, st.st_mtime_ns]
        except OSError:
            stamp = None
        hit = known.get(path)
        if stamp is not None and hit is not None and hit[:2] == stamp:
            verdicts[path] = hit
            if hit[2] is not None:
                errors[path] = hit[2]
            continue
        try:
            load_image(path)
            error = None
        except ImageError as e:
            error = errors[path] = str(e)
        if stamp is not None:
            verdicts[path] = [*stamp, error]
    if cache is not None and verdicts != {p: known[p] for p in verdicts if p in known}:
        cache.write_text(json.dumps({"about": "radrl eval: image decode verdicts by [size, mtime_ns, error]",
                                     "files": {**known, **verdicts}}))
    if not errors:
        return rows, {}
    bad = {r["id"]: r for r in rows if any(str(p) in errors for p in r.get("images") or [])}
    files = [{"image": path, "error": error, "rows": [i for i, r in bad.items() if path in map(str, r["images"])]}
             for path, error in errors.items()]
    record = {"rows": len(bad), "rows_per_task": _count(r["task"] for r in bad.values()), "images": len(errors),
              "files": files[:SHOWN_UNREADABLE], "files_not_listed": max(0, len(files) - SHOWN_UNREADABLE)}
    first = files[0]
    log.warning("skipped %d rows whose image cannot be read (%d images, e.g. %s), listed in manifest.json under "
                "data.unreadable_images", len(bad), len(errors), first["error"])
    return [r for r in rows if r["id"] not in bad], record


def first_per_task(rows: list[dict], n: int) -> list[dict]:
    """The first ``n`` rows of each task, in row order: ``--max-rows`` means the same rows of a task whichever
    other tasks a run evaluates (a prefix of the mixed list would give SFT on report + grounding other report
    rows than GRPO on report alone).

    >>> rows = [{"id": "a", "task": "r"}, {"id": "b", "task": "r"}, {"id": "c", "task": "g"}]
    >>> [r["id"] for r in first_per_task(rows, 1)]
    ['a', 'c']
    """
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        seen[r["task"]] = seen.get(r["task"], 0) + 1
        if seen[r["task"]] <= n:
            out.append(r)
    return out


def _budget_applied_by(engine: str, loader: str, model_type: str | None) -> str:
    """Who applies the pixel budget: radrl (hf with a Qwen3-VL processor, vLLM's Qwen-VL processor), or only
    partly. Through an endpoint radrl can only shrink images before sending them (the server's processor applies
    its own budget), and a non-Qwen model's own processor may ignore min/max pixels: such runs are recorded as
    such, so ``radrl compare`` does not take them for runs at the same budget."""
    if engine == "openai":
        return "client: images shrunk to max_pixels before sending; the server's processor applies its own"
    if engine == "hf" and (loader == "generic" or model_type not in ("qwen3_vl", None)):
        return f"the {model_type or 'model'}'s own processor (may ignore min/max pixels)"
    return "radrl"


def _task_contract(rows: list[dict], limits: dict[str, int], min_pixels: int | None, max_pixels: int) -> dict:
    """Per task: row count, hashes of the row ids and of (id, request, image content) lines, the token limit and
    the mean number of image tokens per row at this pixel budget (Qwen3-VL's rule: one token per 32 x 32 pixels
    after resizing; None where radrl does not apply the budget). Two runs whose hashes agree asked the same
    questions about the same image bytes (the same images under another folder match; an image re-exported in
    place with another window does not)."""
    out: dict[str, dict] = {}
    digests: dict[str, str] = {}
    for task in sorted({r["task"] for r in rows}):
        mine = sorted((r for r in rows if r["task"] == task), key=lambda r: r["id"])
        requests = "\n".join(f"{r['id']}\t{_request(r)}\t{_image_digest(r, digests)}" for r in mine)
        out[task] = {"rows": len(mine), "row_ids_sha256": _sha256_text("\n".join(r["id"] for r in mine)),
                     "requests_sha256": _sha256_text(requests), "max_new_tokens": limits.get(task),
                     "mean_image_tokens": None if min_pixels is None else _mean_image_tokens(mine, min_pixels,
                                                                                            max_pixels)}
    return out


def _image_digest(row: dict, cache: dict[str, str]) -> str:
    """SHA-256 of the row's image file (cached per path); the path itself for an image that is not a file."""
    image = (row.get("images") or [""])[0]
    if not isinstance(image, (str, Path)) or not Path(image).is_file():
        return str(image)
    if image not in cache:
        cache[image] = _sha256(image)
    return cache[image]


def _mean_image_tokens(rows: list[dict], min_pixels: int, max_pixels: int) -> float | None:
    """Mean image tokens per row from the image headers (no decoding). An unreadable image stops the run here,
    naming its row, before any model loads."""
    sizes: dict[str, int] = {}
    total = 0
    for r in rows:
        for image in r.get("images") or []:
            if not isinstance(image, (str, Path)):
                return None
            if image not in sizes:
                try:
                    w, h, _ = image_header(image)
                except ImageError as e:
                    raise ImageError(f"row {r['id']}: {e}; fix the path in the samples file or remove the row") \
                        from None
                rh, rw = smart_resize(h, w, QWEN3_VL_FACTOR, min_pixels, max_pixels)
                sizes[image] = rh * rw // QWEN3_VL_FACTOR**2
            total += sizes[image]
    return round(total / len(rows), 3) if rows else None


def _request(row: dict) -> str:
    """The request text without the " /think" suffix: ``decoding.thinking`` records that, so a thinking and a
    direct model asked the same question hash alike (``radrl compare --vary decoding.thinking``)."""
    text = next((p["text"] for p in row["prompt"][-1]["content"] if p.get("type") == "text"), "")
    return text.removesuffix(THINK_SUFFIX) if row.get("thinking") else text


def _sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _scorer_files(results: dict) -> dict:
    """Model folders behind model-based scores (e.g. BERTScore), with file names and sizes."""
    out = {}
    for r in results.values():
        for key, value in r.versions.items():
            if key.endswith("_model"):
                folder = Path(str(value).split(" (")[0])
                out[key] = {"path": str(folder),
                            "files": {p.name: p.stat().st_size for p in sorted(folder.iterdir()) if p.is_file()}
                            if folder.is_dir() else "not a local folder"}
    return out


def _software() -> dict:
    from radrl.metrics import package_version

    info = {"python": sys.version.split()[0], "platform": platform.platform(),
            "packages": {p: package_version(p) for p in SOFTWARE}}
    try:
        import torch

        info["cuda"] = torch.version.cuda
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        pass
    return info


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _count(items) -> dict[str, int]:
    out: dict[str, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, indent=2))
    tmp.replace(path)  # atomic: a kill never leaves half a manifest


def _box_images(rows: list[dict], completions: list[str], folder: Path, n: int) -> list[Path]:
    paths = []
    for row, completion in zip(rows, completions):
        if row["task"] != "grounding" or len(paths) >= n:
            continue
        pred = parse(completion, thinking=row.get("thinking", False)).boxes
        ref = reference_boxes(row["solution"], row.get("ref_boxes"), where=f"row {row['id']}")
        paths.append(draw_boxes(row["images"][0], pred, ref, folder / f"{row['id']}.png"))
    return paths
