"""The project's one OpenAI-compatible chat-completions client, and a loopback server for local checkpoints.

Why both in one module: evaluation of models served elsewhere (vLLM, SGLang, TGI, a hosted
API) and the cold-start teacher both speak the OpenAI ``/v1/chat/completions`` protocol;
the loopback server serves one of our local Hugging Face checkpoints over the same
protocol, so the client is tested end to end against a real HTTP server with no network.

Stable API (other modules rely on these names and signatures):

* ``ChatClient(base_url, model, api_key=None, timeout=120.0, max_retries=4, backoff=1.0,
  concurrency=8)``: ``base_url`` ends in ``/v1`` (``http://127.0.0.1:8000/v1``);
  ``api_key`` defaults to ``$OPENAI_API_KEY`` when set.

  * ``client.complete(messages, max_tokens=1024, temperature=0.0, **extra) -> str``: one
    chat completion. ``extra`` goes into the request body (``top_p``, ``seed``, ``stop``...).
  * ``client.complete_many(conversations, max_tokens=1024, temperature=0.0, on_result=None,
    **extra) -> list[str]``: many conversations, ``concurrency`` requests in flight, results
    in input order; ``on_result(i, text)`` is called as each one finishes (in completion
    order), e.g. to append it to a JSONL. A conversation may be a zero-argument callable that
    builds it, so images are decoded only when their request is sent (thousands of full-size
    radiographs do not fit in memory at once). The first request that fails for good stops
    the others (queued ones are cancelled) and raises; finished ones have reached ``on_result``.
  * ``client.models() -> list[str]``: the ids ``GET /v1/models`` lists.

  Retries: connection errors, timeouts, HTTP 408/409/429 and 5xx are retried up to
  ``max_retries`` times with exponential backoff (``backoff * 2**attempt`` seconds, plus up
  to 25 % jitter, or the server's ``Retry-After``); other HTTP errors (400, 401, 404...)
  raise ``EndpointError`` at once with the server's message, because retrying cannot fix
  them.

* Messages: the chat format used everywhere in radrl (and by TRL / transformers)::

      [{"role": "user", "content": [{"type": "image", "image": <PIL.Image | path>},
                                    {"type": "text", "text": "Describe the X-ray."}]}]

  ``to_openai_messages`` turns ``image`` parts into ``image_url`` parts holding a base64
  PNG data URL (``data:image/png;base64,...``); parts already in OpenAI form
  (``image_url``, ``text``) and plain-string contents pass through unchanged.

* ``LocalServer(model_path, host="127.0.0.1", port=0, device="cpu", max_batch=8)``: a FastAPI
  app on uvicorn in a background thread; ``port=0`` takes a free port. Use as a context
  manager (``with LocalServer(path) as server: server.base_url``) or ``start()`` /
  ``stop()``. It serves ``GET /v1/models`` and ``POST /v1/chat/completions`` (``n=1``,
  ``max_tokens`` or ``max_completion_tokens``, ``temperature``, ``top_p``, ``seed``;
  greedy when ``temperature`` is 0). Requests that arrive together are generated as one
  left-padded batch (up to ``max_batch``), so concurrency pays off on the server too.
  Command line: ``python -m radrl.cli.endpoint --model runs/demo/sft --port 8000``.

>>> to_openai_messages([{"role": "user", "content": "hi"}])
[{'role': 'user', 'content': 'hi'}]
"""

from __future__ import annotations

import base64
import io
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Self

from PIL import Image

__all__ = ["ChatClient", "EndpointError", "LocalServer", "image_data_url", "to_openai_messages"]

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class EndpointError(ConnectionError):
    """A request the endpoint refused, or that still failed after every retry. A ``ConnectionError`` (an
    ``OSError``), so ``radrl <verb>`` reports it as its usual one-line error."""


def image_data_url(image: Image.Image | str | os.PathLike) -> str:
    """A PNG data URL for an image (PIL image or file path); PNG keeps X-ray pixels lossless.

    >>> image_data_url(Image.new("L", (1, 1)))[:22]
    'data:image/png;base64,'
    """
    if not isinstance(image, Image.Image):
        from radrl.data.images import load_image  # PNG, JPEG and DICOM alike

        try:
            image = load_image(image)
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read image {image} ({e}); fix the path") from None
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def to_openai_messages(messages: list[dict]) -> list[dict]:
    """radrl / transformers chat messages -> OpenAI chat messages (images as data URLs)."""
    out = []
    for msg in messages:
        content = msg["content"]
        if isinstance(content, str):
            out.append({"role": msg["role"], "content": content})
            continue
        parts = []
        for part in content:
            if part.get("type") == "image":
                if part.get("image") is None:
                    raise ValueError("an image part has no 'image' (PIL image or path); fill the prompt's image "
                                     "slots before sending it")
                parts.append({"type": "image_url", "image_url": {"url": image_data_url(part["image"])}})
            else:
                parts.append(part)
        out.append({"role": msg["role"], "content": parts})
    return out


class ChatClient:
    """OpenAI-compatible chat-completions client with concurrency, retries, backoff and timeouts.

    >>> client = ChatClient("http://127.0.0.1:8000/v1", model="radrl-sft")   # doctest: +SKIP
    >>> client.complete([{"role": "user", "content": "Say hi"}], max_tokens=8)  # doctest: +SKIP
    'hi'
    """

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 120.0,
                 max_retries: int = 4, backoff: float = 1.0, concurrency: int = 8):
        import httpx

        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"endpoint {base_url!r} is not an http(s) URL; pass e.g. http://127.0.0.1:8000/v1")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.max_retries, self.backoff, self.concurrency = max_retries, backoff, max(1, concurrency)
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers,
                                  limits=httpx.Limits(max_connections=self.concurrency))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def ping(self, timeout: float = 30.0) -> None:
        """One ``GET /models``, no retries: a server that is not there is an error now, naming the URL and how
        to start one, instead of a traceback after every retry of the first request. A server that answers
        at all passes (some proxies answer 404 here and still serve chat completions)."""
        import httpx

        try:
            self._http.get(self.base_url + "/models", timeout=timeout)
        except (httpx.TransportError, httpx.TimeoutException) as e:
            raise EndpointError(f"no server answers at {self.base_url} ({type(e).__name__}: {e}); start it (e.g. "
                                "`vllm serve MODEL --port 8000`, or `python -m radrl.cli.endpoint --model CKPT "
                                "--port 8000`) or fix --endpoint") from None

    def models(self) -> list[str]:
        return [m["id"] for m in self._request("GET", "/models")["data"]]

    def complete(self, messages: list[dict], max_tokens: int = 1024, temperature: float = 0.0, **extra) -> str:
        body = {"model": self.model, "messages": to_openai_messages(messages), "max_tokens": max_tokens,
                "temperature": temperature, **extra}
        reply = self._request("POST", "/chat/completions", body)
        try:
            return reply["choices"][0]["message"]["content"] or ""
        except (KeyError, IndexError, TypeError):
            raise EndpointError(f"{self.base_url}/chat/completions returned no choices[0].message.content: "
                                f"{str(reply)[:300]}") from None

    def complete_many(self, conversations: list[list[dict]], max_tokens: int = 1024, temperature: float = 0.0,
                      on_result: Callable[[int, str], None] | None = None, **extra) -> list[str]:
        out: list[str | None] = [None] * len(conversations)

        def one(conv) -> str:
            return self.complete(conv() if callable(conv) else conv, max_tokens, temperature, **extra)

        pool = ThreadPoolExecutor(self.concurrency)
        try:
            futures = {pool.submit(one, conv): i for i, conv in enumerate(conversations)}
            for fut in as_completed(futures):
                i = futures[fut]
                out[i] = fut.result()
                if on_result is not None:
                    on_result(i, out[i])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # do not send (and pay for) what can no longer be written
            raise
        pool.shutdown()
        return out  # type: ignore[return-value]

    def _request(self, method: str, path: str, body: dict | None = None) -> Any:
        import httpx

        url = self.base_url + path
        for attempt in range(self.max_retries + 1):
            wait = self.backoff * 2 ** attempt * (1 + 0.25 * random.random())
            try:
                r = self._http.request(method, url, json=body)
            except (httpx.TransportError, httpx.TimeoutException) as e:
                problem = f"{type(e).__name__}: {e}"
            else:
                if r.status_code < 400:
                    try:
                        return r.json()
                    except ValueError:
                        raise EndpointError(f"{method} {url} answered HTTP {r.status_code} with a body that is not "
                                            f"JSON: {r.text[:200]!r}; is the URL an OpenAI-compatible /v1 "
                                            "base?") from None
                problem = f"HTTP {r.status_code}: {r.text[:300]}"
                if r.status_code not in RETRY_STATUS:
                    raise EndpointError(f"{method} {url} failed with {problem}; check the model name, the API key "
                                        "and the request")
                retry_after = r.headers.get("retry-after", "")
                if retry_after.replace(".", "", 1).isdigit():
                    wait = float(retry_after)
            if attempt < self.max_retries:
                time.sleep(wait)
        raise EndpointError(f"{method} {url} still failing after {self.max_retries + 1} attempts ({problem}); "
                            "is the server up, and is the timeout long enough for max_tokens?")


def _decode_image(url: str) -> Image.Image:
    if not url.startswith("data:"):
        raise ValueError("only data: URLs are accepted (the server has no network); send the image as "
                         "data:image/png;base64,...")
    try:
        payload = base64.b64decode(url.split(",", 1)[1])
        with Image.open(io.BytesIO(payload)) as img:
            return img.convert("RGB")
    except (IndexError, ValueError, OSError) as e:
        raise ValueError(f"cannot decode the image data URL ({e})") from None


def _to_hf_messages(messages: list[dict]) -> list[dict]:
    """OpenAI messages -> transformers chat messages with PIL images."""
    out = []
    for msg in messages:
        content = msg.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        parts = []
        for part in content or []:
            if part.get("type") == "image_url":
                url = part["image_url"]["url"] if isinstance(part["image_url"], dict) else part["image_url"]
                parts.append({"type": "image", "image": _decode_image(url)})
            elif part.get("type") == "text":
                parts.append({"type": "text", "text": part["text"]})
            else:
                raise ValueError(f"unsupported content part type {part.get('type')!r}; send 'text' or 'image_url'")
        out.append({"role": msg["role"], "content": parts})
    return out


class LocalServer:
    """Serve a local checkpoint over the OpenAI chat-completions protocol on loopback (see module docstring)."""

    def __init__(self, model_path: str, host: str = "127.0.0.1", port: int = 0, device: str = "cpu",
                 max_batch: int = 8, served_name: str | None = None, loader: str = "auto"):
        self.model_path, self.host, self.port, self.device = str(model_path), host, port, device
        self.max_batch = max_batch
        self.served_name = served_name or Path(self.model_path).name
        self.loader = loader
        self._server = None
        self._thread: threading.Thread | None = None
        self._queue: list[tuple[dict, threading.Event, dict]] = []
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._stopping = False

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def app(self):
        from fastapi import FastAPI, HTTPException

        app = FastAPI(title="radrl loopback chat-completions server")

        @app.get("/v1/models")
        def models() -> dict:
            return {"object": "list", "data": [{"id": self.served_name, "object": "model", "owned_by": "radrl"}]}

        @app.post("/v1/chat/completions")
        def chat(body: dict) -> dict:
            if body.get("n", 1) != 1:
                raise HTTPException(400, "n must be 1 (send several requests instead)")
            if body.get("stream"):
                raise HTTPException(400, "stream is not supported by the loopback server")
            try:
                messages = _to_hf_messages(body.get("messages") or [])
            except (ValueError, KeyError, TypeError) as e:
                raise HTTPException(400, f"bad messages: {e}") from None
            if not messages:
                raise HTTPException(400, "messages is empty")
            job = {"messages": messages,
                   "max_tokens": int(body.get("max_completion_tokens") or body.get("max_tokens") or 1024),
                   "temperature": float(body.get("temperature", 1.0) or 0.0),
                   "top_p": body.get("top_p"), "seed": body.get("seed")}
            done, result = threading.Event(), {}
            with self._cond:
                self._queue.append((job, done, result))
                self._cond.notify()
            done.wait()
            if "error" in result:
                raise HTTPException(500, result["error"])
            return {"id": f"chatcmpl-{time.time_ns()}", "object": "chat.completion", "created": int(time.time()),
                    "model": self.served_name,
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": result["text"]},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": result["prompt_tokens"], "completion_tokens": result["new_tokens"],
                              "total_tokens": result["prompt_tokens"] + result["new_tokens"]}}

        return app

    def _work(self) -> None:
        """One thread owns the model: it takes every queued request with the same decoding settings as one batch."""
        from radrl.models.generation import generate_messages, load_any

        try:
            model, processor = load_any(self.model_path, device=self.device, loader=self.loader)
        except Exception as e:  # noqa: BLE001 - handed to start(), which re-raises it in the caller's thread
            self._load_error = e
            return
        self._ready.set()
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                first = self._queue[0][0]
                key = (first["temperature"], first["top_p"], first["seed"])
                batch = [q for q in self._queue
                         if (q[0]["temperature"], q[0]["top_p"], q[0]["seed"]) == key][:self.max_batch]
                for q in batch:
                    self._queue.remove(q)
            try:
                if key[2] is not None:
                    import torch

                    torch.manual_seed(int(key[2]))
                stats: dict = {}
                texts = generate_messages(model, processor, [q[0]["messages"] for q in batch],
                                          max_new_tokens=max(q[0]["max_tokens"] for q in batch),
                                          do_sample=key[0] > 0, temperature=key[0] or 1.0, top_p=key[1],
                                          stats=stats, per_row_max_new_tokens=[q[0]["max_tokens"] for q in batch])
                for (_, done, result), text, p, n in zip(batch, texts, stats["prompt_tokens"], stats["new_tokens"]):
                    result.update(text=text, prompt_tokens=p, new_tokens=n)
                    done.set()
            except Exception as e:  # noqa: BLE001 - handed to every waiting request as a 500 instead of hanging it
                for _, done, result in batch:
                    result["error"] = f"{type(e).__name__}: {e}"
                    done.set()

    def start(self) -> LocalServer:
        import socket

        import uvicorn

        self._ready = threading.Event()
        self._load_error: BaseException | None = None
        self._worker = threading.Thread(target=self._work, daemon=True, name="radrl-endpoint-model")
        self._worker.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True,
                                        name="radrl-endpoint-http")
        self._thread.start()
        deadline = time.time() + 300
        while not (self._server.started and self._ready.is_set()):
            if time.time() > deadline or not self._worker.is_alive():
                self.stop()
                # the loader's own error (e.g. a missing checkpoint), not a generic one
                if self._load_error is not None:
                    raise self._load_error
                raise RuntimeError(f"the loopback server for {self.model_path} did not start; check that the "
                                   "checkpoint loads with radrl.models.load")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
