"""Generation for evaluation: one interface over local Hugging Face models, vLLM and OpenAI endpoints,
and a predictions JSONL that is appended as rows finish, so a killed evaluation resumes.

Backends (``make_backend``), each a callable ``backend(rows, limits, on_result)`` that calls
``on_result(i, completion)`` for every row ``i`` as soon as it is generated:

* ``hf``: a local checkpoint. Qwen3-VL checkpoints load through ``radrl.models.load`` (the
  image-only processor); any other vision-language model with a chat template through
  ``AutoModelForImageTextToText`` + ``AutoProcessor`` (``loader="generic"`` forces that path).
  Rows are batched within a task (per-task token limits), left-padded, greedy by default.
* ``vllm``: the vLLM offline engine (``LLM.chat``), when the package is installed.
* ``openai``: any OpenAI-compatible server via ``radrl.models.endpoint.ChatClient``
  (images as base64 PNG data URLs, ``concurrency`` requests in flight, retries with backoff).

``generate_to_jsonl`` skips rows whose ``(task, id)`` already has a line in the file (after
checking that the line was made for the same request), drops a half-written last line left by
a kill, and appends each new completion with a flush, so a rerun neither recomputes nor
duplicates rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

from PIL import Image
from tqdm.auto import tqdm

# re-exported: loading and batch generation live in radrl.models (the loopback server uses them too)
from radrl.models.generation import generate_messages, load_any

# Token limits per task (paper: reports 1,024 new tokens, 4,096 when thinking; grounding 4,096).
DEFAULT_MAX_NEW_TOKENS = {"report": 1024, "grounding": 4096}
THINKING_MAX_NEW_TOKENS = {"report": 4096, "grounding": 4096}

OnResult = Callable[[int, str], None]


def _open(image, row_id, max_pixels: int | None = None) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    from radrl.data.images import load_image  # PNG, JPEG and DICOM alike

    try:
        return load_image(image, max_pixels=max_pixels)
    except (OSError, ValueError) as e:
        raise ValueError(f"row {row_id}: cannot read image {image} ({e}); fix the path in the samples file "
                         "or remove the row") from None


def messages_with_images(row: dict, max_pixels: int | None = None) -> list[dict]:
    """Fill the prompt's image placeholders with the row's images (PIL or paths), as PIL images;
    ``max_pixels`` shrinks them first with Qwen3-VL's rule (what an endpoint is sent).

    >>> messages_with_images({"id": "a", "images": [], "prompt": [{"role": "user", "content": "hi"}]})
    [{'role': 'user', 'content': 'hi'}]
    """
    images = [_open(img, row.get("id"), max_pixels) for img in (row.get("images") or [])]
    messages, k = [], 0
    for msg in row["prompt"]:
        content = msg["content"]
        if isinstance(content, str):
            messages.append(msg)
            continue
        parts = []
        for part in content:
            if part.get("type") == "image":
                if k >= len(images):
                    raise ValueError(f"row {row.get('id')}: the prompt has more image slots than images")
                parts.append({"type": "image", "image": images[k]})
                k += 1
            else:
                parts.append(part)
        messages.append({"role": msg["role"], "content": parts})
    return messages


def task_limits(max_new_tokens: dict[str, int] | int | None, thinking: bool = False) -> dict[str, int]:
    """Per-task new-token limits: the paper's defaults (longer reports when thinking), overridden per
    task (dict; ``None`` values keep the default) or everywhere (int).

    Detection rows (images without findings, answered "No abnormalities." or with boxes) share the
    grounding limit unless given their own.

    >>> task_limits({"report": 64, "grounding": 96}), task_limits(None, thinking=True)["report"]
    ({'report': 64, 'grounding': 96, 'detection': 96}, 4096)
    """
    defaults = THINKING_MAX_NEW_TOKENS if thinking else DEFAULT_MAX_NEW_TOKENS
    if isinstance(max_new_tokens, int):
        return dict.fromkeys((*defaults, "detection"), max_new_tokens)
    limits = {**defaults, **{k: v for k, v in (max_new_tokens or {}).items() if v is not None}}
    limits.setdefault("detection", limits["grounding"])
    return limits


class HFBackend:
    """Local checkpoint, batches of ``batch_size`` within a task, left padding."""

    name = "hf"

    def __init__(self, model, processor, batch_size: int = 8, do_sample: bool = False, temperature: float = 1.0,
                 top_p: float | None = None, progress: bool = True):
        self.model, self.processor, self.batch_size = model, processor, batch_size
        self.do_sample, self.temperature, self.top_p, self.progress = do_sample, temperature, top_p, progress

    def __call__(self, rows: list[dict], limits: dict[str, int], on_result: OnResult) -> None:
        bar = tqdm(total=len(rows), desc="generate", disable=not self.progress, leave=False)
        for task, idx in rows_by_task(rows).items():
            for j in range(0, len(idx), self.batch_size):
                batch = idx[j:j + self.batch_size]
                texts = generate_messages(self.model, self.processor, [messages_with_images(rows[i]) for i in batch],
                                          max_new_tokens=limits.get(task, 1024), do_sample=self.do_sample,
                                          temperature=self.temperature, top_p=self.top_p)
                for i, text in zip(batch, texts):
                    on_result(i, text)
                bar.update(len(batch))
        bar.close()


class EndpointBackend:
    """Any OpenAI-compatible server; ``concurrency`` requests in flight, results appended as they arrive."""

    name = "openai"

    def __init__(self, client, temperature: float = 0.0, top_p: float | None = None, max_pixels: int | None = None):
        self.client, self.temperature, self.top_p, self.max_pixels = client, temperature, top_p, max_pixels

    def __call__(self, rows: list[dict], limits: dict[str, int], on_result: OnResult) -> None:
        extra = {"top_p": self.top_p} if self.top_p is not None else {}
        for task, idx in rows_by_task(rows).items():
            # built per request: images are decoded when sent, not all of a split at once
            self.client.complete_many([partial(messages_with_images, rows[i], self.max_pixels) for i in idx],
                                      max_tokens=limits.get(task, 1024), temperature=self.temperature,
                                      on_result=lambda k, t, idx=idx: on_result(idx[k], t),
                                      **extra)


class VLLMBackend:
    """vLLM offline engine (``LLM.chat``); rows go in chunks so finished chunks are written before the next.

    One image per prompt and no video (so vLLM neither profiles nor reserves memory for video
    inputs). ``min_pixels``/``max_pixels`` reach vLLM's Qwen-VL processor as
    ``mm_processor_kwargs``; ``engine_args`` go to ``vllm.LLM`` unchanged (``tensor_parallel_size``,
    ``gpu_memory_utilization``, ``max_model_len``, ``dtype``...) and win over the defaults here.
    vLLM starts its engine in a spawned process: a script that calls this must guard its entry
    point with ``if __name__ == "__main__":`` (the ``radrl`` command does)."""

    name = "vllm"

    def __init__(self, path: str, temperature: float = 0.0, top_p: float | None = None, chunk: int = 256,
                 min_pixels: int | None = None, max_pixels: int | None = None, engine_args: dict | None = None,
                 progress: bool = True):
        try:
            from vllm import LLM, SamplingParams
        except ImportError:
            raise ImportError("--engine vllm needs the vllm package (pip install vllm on a CUDA machine); "
                              "or use --engine hf") from None
        pixels = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
        kwargs = {"limit_mm_per_prompt": {"image": 1, "video": 0},
                  **({"mm_processor_kwargs": pixels} if pixels else {}), **(engine_args or {})}
        self.llm = LLM(model=path, **kwargs)
        self.sampling = SamplingParams
        self.temperature, self.top_p, self.chunk, self.progress = temperature, top_p, chunk, progress

    def __call__(self, rows: list[dict], limits: dict[str, int], on_result: OnResult) -> None:
        from radrl.models.endpoint import to_openai_messages

        bar = tqdm(total=len(rows), desc="generate (vllm)", disable=not self.progress, leave=False)
        for task, idx in rows_by_task(rows).items():
            params = self.sampling(max_tokens=limits.get(task, 1024), temperature=self.temperature,
                                   top_p=self.top_p or 1.0)
            for j in range(0, len(idx), self.chunk):
                batch = idx[j:j + self.chunk]
                outs = self.llm.chat([to_openai_messages(messages_with_images(rows[i])) for i in batch], params,
                                     use_tqdm=False)
                for i, out in zip(batch, outs):
                    on_result(i, out.outputs[0].text.strip())
                bar.update(len(batch))
        bar.close()


def rows_by_task(rows: list[dict]) -> dict[str, list[int]]:
    """Row indices per task, in row order: each task is generated with its own token limit.

    >>> rows_by_task([{"task": "report"}, {"task": "grounding"}, {"task": "report"}])
    {'report': [0, 2], 'grounding': [1]}
    """
    out: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        out.setdefault(row.get("task", "report"), []).append(i)
    return out


def resolve_engine(engine: str, endpoint: str | None, engine_args: dict | None = None) -> str:
    """The engine that will run: an ``endpoint`` means ``openai``; conflicting choices are refused.

    >>> resolve_engine("hf", "http://127.0.0.1:8000/v1")
    'openai'
    """
    if engine not in ("hf", "vllm", "openai"):
        raise ValueError(f"engine={engine!r}; choose hf, vllm or openai")
    if endpoint and engine == "vllm":
        raise ValueError("--engine vllm runs the model in this process; --endpoint evaluates a served one. Give "
                         "one of them (for a vLLM server, pass its URL with --endpoint)")
    if engine == "openai" and not endpoint:
        raise ValueError("--engine openai needs --endpoint URL (e.g. http://127.0.0.1:8000/v1)")
    engine = "openai" if endpoint else engine
    if "mm_processor_kwargs" in (engine_args or {}):
        raise ValueError("--engine-arg mm_processor_kwargs would replace the run's pixel budget behind the manifest's "
                         "back; set the budget with --min-pixels/--max-pixels (they reach vLLM's processor)")
    if engine_args and engine != "vllm":
        raise ValueError(f"engine arguments {sorted(engine_args)} are for --engine vllm; the {engine} engine takes "
                         "none (drop --engine-arg, or add --engine vllm)")
    return engine


def make_backend(model: str, engine: str = "hf", endpoint: str | None = None, batch_size: int = 8,
                 temperature: float = 0.0, top_p: float | None = None, device: str | None = None,
                 loader: str = "auto", min_pixels: int | None = None, max_pixels: int | None = None,
                 concurrency: int = 8, timeout: float = 600.0, max_retries: int = 4, api_key: str | None = None,
                 progress: bool = True, engine_args: dict | None = None, dtype: str | None = None):
    """The backend for ``engine``: ``hf`` (local checkpoint), ``vllm`` or ``openai`` (``endpoint`` URL,
    ``model`` is the served model id). ``temperature`` 0 is greedy decoding. ``engine_args`` are
    keyword arguments of ``vllm.LLM`` (vllm engine only). ``dtype`` (``bf16``, ``fp16``, ``fp32``) is the
    precision of the weights (hf, vllm); the default is bf16 on a GPU that has it, else fp32."""
    engine = resolve_engine(engine, endpoint, engine_args)
    if dtype is not None:
        from radrl.models.load import DTYPES

        if dtype not in DTYPES:
            raise ValueError(f"dtype {dtype!r}: choose one of {sorted(DTYPES)}")
        if engine == "openai":
            raise ValueError("--dtype sets the precision of a model loaded here; a served model's precision is the "
                             "server's (drop --dtype, or set it where the server starts)")
        if engine == "vllm":
            engine_args = {**(engine_args or {}), "dtype": str(DTYPES[dtype]).removeprefix("torch.")}
    if engine == "openai":
        from radrl.models.endpoint import ChatClient

        client = ChatClient(endpoint, model, api_key=api_key, timeout=timeout, max_retries=max_retries,
                            concurrency=concurrency)
        client.ping()   # a server that is down: one line now, not a traceback after every retry
        return EndpointBackend(client, temperature=temperature, top_p=top_p, max_pixels=max_pixels)
    if engine == "vllm":
        return VLLMBackend(model, temperature=temperature, top_p=top_p, min_pixels=min_pixels, max_pixels=max_pixels,
                           engine_args=engine_args, progress=progress)
    from radrl.models.load import DTYPES

    m, processor = load_any(model, device=device, loader=loader, min_pixels=min_pixels, max_pixels=max_pixels,
                            dtype=DTYPES[dtype] if dtype else None)
    return HFBackend(m, processor, batch_size=batch_size, do_sample=temperature > 0, temperature=temperature or 1.0,
                     top_p=top_p, progress=progress)


def generate(model, processor, rows: list[dict], batch_size: int = 8,
             max_new_tokens: dict[str, int] | int | None = None, do_sample: bool = False,
             temperature: float = 1.0, progress: bool = True) -> list[str]:
    """One completion per row, in row order (in memory; ``generate_to_jsonl`` is the resumable form)."""
    out: list[str | None] = [None] * len(rows)
    HFBackend(model, processor, batch_size, do_sample, temperature, progress=progress)(
        rows, task_limits(max_new_tokens), lambda i, text: out.__setitem__(i, text))
    return out  # type: ignore[return-value]


def _request(row: dict) -> str:
    return next(p["text"] for p in row["prompt"][-1]["content"] if p.get("type") == "text")


def prediction_line(row: dict, completion: str) -> dict:
    """One predictions.jsonl record; ``kind`` (grounding sub-task) and the image path are kept when present."""
    line = {"id": row["id"], "task": row["task"], "request": _request(row), "solution": row["solution"],
            "completion": completion, "thinking": row.get("thinking", False)}
    if row.get("kind"):
        line["kind"] = row["kind"]
    if row.get("sample_id"):
        line["sample_id"] = row["sample_id"]
    images = row.get("images") or []
    if images and isinstance(images[0], (str, os.PathLike)):
        line["image"] = str(images[0])
    return line


def read_predictions(path: str | Path, repair: bool = False) -> list[dict]:
    """Lines of a predictions JSONL. A last line without its newline (a kill mid-write) is dropped,
    and with ``repair=True`` cut from the file so that appending continues cleanly."""
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    complete = data[:data.rfind(b"\n") + 1]
    if repair and len(complete) != len(data):
        with path.open("r+b") as f:
            f.truncate(len(complete))
    lines = []
    for n, raw in enumerate(complete.decode("utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        try:
            lines.append(json.loads(raw))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n} is not valid JSON ({e}); delete that line (it will be regenerated) "
                             "or start a fresh --out folder") from None
    return lines


def generate_to_jsonl(backend, rows: list[dict], path: str | Path, max_new_tokens: dict[str, int] | int | None = None
                      ) -> dict[str, int]:
    """Generate every row not yet in ``path`` and append it there; returns ``{"resumed", "generated"}``.

    A line found for ``(task, id)`` must carry the same request and reference as the row,
    otherwise the file belongs to another data split or prompt seed and the call stops with
    an error instead of mixing them. Duplicate lines in the file are an error too."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    done: dict[tuple[str, str], dict] = {}
    for line in read_predictions(path, repair=True):
        key = (line["task"], line["id"])
        if key in done:
            raise ValueError(f"{path} has two lines for {key}; delete one of them, then rerun")
        done[key] = line
    wanted = {(r["task"], r["id"]) for r in rows}
    for row in rows:
        line = done.get((row["task"], row["id"]))
        if line is not None and (line["request"] != _request(row) or line["solution"] != row["solution"]):
            raise ValueError(f"{path}: the line for {row['task']} {row['id']} was generated for another request or "
                             "reference (different data, seed or --thinking/--box-instruction); use a new --out folder")
    if extra := sorted(set(done) - wanted)[:3]:
        raise ValueError(f"{path} has predictions for rows not in this evaluation (e.g. {extra}); it belongs to "
                         "another data split or task list; use a new --out folder")
    todo = [r for r in rows if (r["task"], r["id"]) not in done]
    if todo:
        with path.open("a") as f:
            def write(i: int, text: str) -> None:
                f.write(json.dumps(prediction_line(todo[i], text)) + "\n")
                f.flush()  # a kill loses at most the row being written

            backend(todo, task_limits(max_new_tokens), write)
    return {"resumed": len(rows) - len(todo), "generated": len(todo)}


def completions_in_row_order(rows: list[dict], path: str | Path) -> list[str]:
    """The completions of ``path`` in the order of ``rows`` (every row must have one). The file itself is
    rewritten in row order (atomically) when generation appended it in another order, so finished runs
    diff cleanly and line up with ``per_sample.jsonl``."""
    path = Path(path)
    lines = read_predictions(path)
    by_key = {(line["task"], line["id"]): line for line in lines}
    missing = [(r["task"], r["id"]) for r in rows if (r["task"], r["id"]) not in by_key]
    if missing:
        raise ValueError(f"{path} lacks {len(missing)} rows (e.g. {missing[:3]}); rerun the evaluation to finish them")
    ordered = [by_key[(r["task"], r["id"])] for r in rows]
    if ordered != lines:
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(line) + "\n" for line in ordered))
        tmp.replace(path)
    return [line["completion"] for line in ordered]


def write_predictions(rows: Iterable[dict], completions: list[str], path: str | Path) -> Path:
    """Predictions JSONL written in one go: id, task, request, reference and completion per row."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for row, completion in zip(rows, completions):
            f.write(json.dumps(prediction_line(row, completion)) + "\n")
    return path
