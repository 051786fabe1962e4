"""``radrl reward-server``: the clinical scorers as an HTTP service, outside the trainer.

Why: a model-based reward (RadCliQ needs RadGraph, CheXbert and BERTScore models) loaded
inside every GRPO training process costs GPU memory and load time once per rank and stalls
the step while it scores. The paper ran its RadCliQ reward on a separate node of reward
workers; this is that node. Each worker process loads the configured scorers once, at
start-up, and serves ``POST /score``; the trainer's reward (``radrl.rewards.remote``)
sends the parsed answers there.

    radrl reward-server --metrics chexpert text --workers 4 --port 8765
    RADRL_REWARD_TOKEN=s3cret radrl reward-server --metrics radcliq --host 0.0.0.0 --workers 2

Endpoints:

* ``GET /health``: liveness, ``{"status": "ok", "pid": 1234}``; open without the token, as is /ready.
* ``GET /ready``: 200 with the loaded scorers, their per-sample keys and versions; 503 when
  loading failed (the body says which scorer and why). A worker accepts connections only
  after every scorer has loaded and scored a warm-up pair, so a restarted worker never
  answers a request it cannot score yet.
* ``POST /score``: ``{"metrics": ["chexpert"], "references": [...], "predictions": [...]}`` ->
  ``{"n": 2, "results": {"chexpert": {"per_sample": {"clinical": [1.0, 0.5], ...},
  "versions": {...}}}, "pid": 1234, "cached": 0}``. Values are ``radrl.metrics.METRICS``'
  per-sample values, the same numbers evaluation reports.

Batching: inside a worker, one metric's scorer runs one call at a time; the requests that
queue up while it is busy (from any client) are scored together in its next call, up to
``--max-batch`` pairs, so under load a GPU scorer sees batches from many trainer ranks at
once, and an idle server adds no wait. ``--batch-window-ms`` (default 0) makes the first
request of a batch wait that long for company: worth a few ms for GPU scorers whose clients
arrive staggered, a pure latency cost otherwise (docs/reward-server.md). Batching is only
valid for per-sample values that depend on the pair alone, so keys that depend on the other
samples of a call are not served (``BATCH_DEPENDENT``: CIDEr-D's IDF is computed over the
scored references).

Cache: each worker keeps an LRU of ``(metric, reference, prediction) -> per-sample values``
(``--cache-size`` entries, default 20,000; 0 disables it), so pairs repeated across GRPO steps and
ranks (short identical answers are common) are scored once per worker.

Limits: ``--max-items`` pairs per request (413), ``--max-chars`` per text (413), a body of
at most ``--max-body-mb`` (413); malformed JSON or fields are 400 / 422 with the row named;
an unknown or unloaded metric is 400. Binds 127.0.0.1 by default; any other ``--host`` needs
a bearer token (``--token`` or, better, ``$RADRL_REWARD_TOKEN``) and refuses to start without.

Scorers: any name in ``radrl.metrics.METRICS`` (``--metrics``), and your own scorers
``(refs, hyps) -> MetricResult`` as ``--scorer NAME=package.module:function``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from radrl.lookup import import_object, resolve
from radrl.rewards.remote import TOKEN_ENV  # one name for the token variable, client and server

__all__ = ["BATCH_DEPENDENT", "CONFIG_ENV", "TOKEN_ENV", "ServerConfig", "check_config", "create_app", "serve"]

log = logging.getLogger("uvicorn.error")  # uvicorn configures this logger in every worker process

CONFIG_ENV = "RADRL_REWARD_SERVER_CONFIG"  # JSON ServerConfig, how uvicorn's worker processes get the settings
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Per-sample keys whose value for one pair depends on the other pairs scored with it: never
# batched across requests, cached or served (a reward must not depend on who else was scored).
BATCH_DEPENDENT: dict[str, tuple[str, ...]] = {"text": ("cider",)}
WARMUP = (["No pleural effusion. Heart size is normal."], ["Heart size is normal. No effusion."])


@dataclass
class ServerConfig:
    """What every worker process needs; travels to uvicorn's workers as JSON in ``$RADRL_REWARD_SERVER_CONFIG``."""

    metrics: list[str] = field(default_factory=lambda: ["chexpert"])
    scorers: dict[str, str] = field(default_factory=dict)  # extra NAME -> "module:function"
    token: str | None = None
    max_items: int = 4096
    max_chars: int = 20_000
    max_body_bytes: int = 64 * 2**20
    max_batch: int = 512
    batch_window_ms: float = 0.0
    cache_size: int = 20_000
    threads: int | None = None  # torch CPU threads per worker (None: torch's default, one per core)


def resolve_scorers(config: ServerConfig) -> dict[str, Callable]:
    """Name -> scorer for every configured metric; unknown names and bad import paths fail before anything loads,
    with the closest known name (``radrl.lookup``, as recipes and ``check_metrics`` do)."""
    from radrl.metrics import METRICS

    out: dict[str, Callable] = {}
    for name in config.metrics:
        out[name] = resolve(name, METRICS, "metric", fix="or serve your own with --scorer NAME=package.module:function")
    for name, target in config.scorers.items():
        out[name] = import_object(target, f"scorer {name}")
    if not out:
        raise ValueError("no scorer configured; pass --metrics NAME ... or --scorer")
    return out


class _Batcher:
    """One metric in one worker: takes the queued requests (waiting up to ``window`` seconds
    for more, up to ``max_batch`` pairs), scores them in one call on the metric's own thread,
    hands each request its rows.
    Scorer calls of one metric never overlap (models are not assumed thread-safe); the event
    loop stays free for ``/health`` and for collecting the next batch meanwhile."""

    def __init__(self, name: str, scorer: Callable, window: float, max_batch: int, cache_size: int) -> None:
        self.name, self.scorer, self.window, self.max_batch = name, scorer, window, max_batch
        self.queue: asyncio.Queue = asyncio.Queue()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"score-{name}")
        self.cache: OrderedDict[tuple[str, str], dict[str, float]] = OrderedDict()
        self.cache_size = cache_size
        self.keys: list[str] = []
        self.versions: dict[str, str] = {}
        self.task: asyncio.Task | None = None
        self.calls = self.pairs = 0  # scorer calls and pairs scored since start (warm-up excluded): batching shows here

    def score_now(self, refs: list[str], hyps: list[str]) -> dict[str, list[float]]:
        """Score on the calling thread (warm-up), recording the served keys and versions."""
        result = self.scorer(refs, hyps)
        dropped = BATCH_DEPENDENT.get(self.name, ())
        per = {k: v for k, v in result.per_sample.items() if k not in dropped}
        bad = [k for k, v in per.items() if len(v) != len(refs)]
        if bad or not per:
            raise RuntimeError(f"scorer {self.name!r} returned per-sample values {list(result.per_sample)} "
                               f"with lengths {[len(v) for v in result.per_sample.values()]} for {len(refs)} pairs; "
                               "a served scorer must give one value per pair")
        self.keys, self.versions = sorted(per), dict(result.versions)
        return per

    async def score(self, refs: list[str], hyps: list[str]) -> tuple[dict[str, list[float]], int]:
        """Per-sample values for the pairs, from the cache or the next batch; and how many were cached."""
        rows: list[dict[str, float] | None] = [None] * len(refs)
        missing: dict[tuple[str, str], list[int]] = {}
        for i, pair in enumerate(zip(refs, hyps)):
            hit = self.cache.get(pair)
            if hit is not None:
                self.cache.move_to_end(pair)
                rows[i] = hit
            else:
                missing.setdefault(pair, []).append(i)  # a pair repeated in the request is scored once
        cached = len(refs) - sum(len(v) for v in missing.values())
        if missing:
            pairs = list(missing)
            future = asyncio.get_running_loop().create_future()
            await self.queue.put((pairs, future))
            if self.task is None:
                self.task = asyncio.create_task(self._run())
            for pair, values in zip(pairs, await future):
                for i in missing[pair]:
                    rows[i] = values
                if self.cache_size:
                    self.cache[pair] = values
                    if len(self.cache) > self.cache_size:
                        self.cache.popitem(last=False)
        return {k: [row[k] for row in rows] for k in self.keys}, cached  # type: ignore[index]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            n = len(batch[0][0])
            deadline = loop.time() + self.window
            while n < self.max_batch:
                if not self.queue.empty():  # whatever queued while the last batch was scored
                    item = self.queue.get_nowait()
                elif self.window <= 0 or loop.time() >= deadline:
                    break
                else:
                    try:
                        item = await asyncio.wait_for(self.queue.get(), deadline - loop.time())
                    except asyncio.TimeoutError:
                        break
                batch.append(item)
                n += len(item[0])
            pairs = [p for item, _ in batch for p in item]
            try:
                per = await loop.run_in_executor(self.executor, self._score_pairs, pairs)
            except Exception as e:  # noqa: BLE001 - handed to every waiting request as a 500
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            start = 0
            for item, future in batch:
                rows = [{k: per[k][start + j] for k in self.keys} for j in range(len(item))]
                start += len(item)
                if not future.done():
                    future.set_result(rows)

    def _score_pairs(self, pairs: list[tuple[str, str]]) -> dict[str, list[float]]:
        result = self.scorer([r for r, _ in pairs], [h for _, h in pairs])
        missing = [k for k in self.keys if len(result.per_sample.get(k, ())) != len(pairs)]
        if missing:
            raise RuntimeError(f"scorer {self.name!r} gave no per-sample {missing} for {len(pairs)} pairs")
        self.calls, self.pairs = self.calls + 1, self.pairs + len(pairs)
        values = {k: [float(x) for x in result.per_sample[k]] for k in self.keys}
        if not all(math.isfinite(x) for v in values.values() for x in v):
            raise RuntimeError(f"scorer {self.name!r} returned a non-finite value; that is a scorer bug")
        self.versions = dict(result.versions)
        return values


class _State:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.batchers: dict[str, _Batcher] = {}
        self.ready = False
        self.error: str | None = None
        self.load_seconds: dict[str, float] = {}


def _load(state: _State) -> None:
    """Import every scorer and score the warm-up pair, so models are in memory before /ready says 200."""
    config = state.config
    try:
        if config.threads is not None:  # before any scorer runs, in each worker process (torch sets it per process)
            import torch

            torch.set_num_threads(config.threads)
        for name, scorer in resolve_scorers(config).items():
            start = time.perf_counter()
            b = _Batcher(name, scorer, config.batch_window_ms / 1000, config.max_batch, config.cache_size)
            b.score_now(*WARMUP)
            state.batchers[name] = b
            state.load_seconds[name] = round(time.perf_counter() - start, 3)
            log.info("worker %d: scorer %s loaded in %.1f s (keys %s)", os.getpid(), name, state.load_seconds[name],
                     b.keys)
        state.ready = True
    except BaseException as e:  # noqa: BLE001 - reported by /ready, and the log says which scorer
        state.error = f"{type(e).__name__}: {e}"
        log.error("worker %d: loading scorers failed: %s", os.getpid(), state.error)


def create_app(config: ServerConfig | None = None):
    """The FastAPI app of one worker (``config`` default: ``$RADRL_REWARD_SERVER_CONFIG``).

    >>> app = create_app(ServerConfig(metrics=["chexpert"]))  # doctest: +SKIP
    """
    from contextlib import asynccontextmanager

    if config is None:
        config = ServerConfig(**json.loads(os.environ.get(CONFIG_ENV, "{}")))
    state = _State(config)

    @asynccontextmanager
    async def lifespan(app):
        # before the first connection is accepted: a worker that answers can score
        await asyncio.get_running_loop().run_in_executor(None, _load, state)
        yield

    app = FastAPI(title="radrl reward server", lifespan=lifespan)
    app.state.radrl = state

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def authorised(request: Request) -> bool:
        if not config.token:
            return True
        given = request.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {config.token}".encode())

    @app.get("/health")
    async def health():
        return {"status": "ok", "pid": os.getpid()}

    @app.get("/ready")
    async def ready():
        # open like /health (probes and load balancers send no token); it tells names, versions, limits, counts
        body = {"ready": state.ready, "pid": os.getpid(), "error": state.error, "load_seconds": state.load_seconds,
                "scorers": {n: {"keys": b.keys, "versions": b.versions, "calls": b.calls, "pairs": b.pairs,
                            "cached_entries": len(b.cache)} for n, b in state.batchers.items()},
                "limits": {"max_items": config.max_items, "max_chars": config.max_chars,
                           "max_body_bytes": config.max_body_bytes}}
        return JSONResponse(body, status_code=200 if state.ready else 503)

    @app.post("/score")
    async def score(request: Request):
        if not authorised(request):
            return error(401, "missing or wrong bearer token: send 'Authorization: Bearer <token>'")
        if not state.ready:
            return error(503, f"scorers not loaded yet{': ' + state.error if state.error else ''}; retry later")
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > config.max_body_bytes:
            return error(413, f"request body of {length} bytes exceeds {config.max_body_bytes}; "
                              "send fewer pairs per request")
        raw = bytearray()
        async for chunk in request.stream():  # a chunked body without a length is cut off at the limit too
            raw += chunk
            if len(raw) > config.max_body_bytes:
                return error(413, f"request body exceeds {config.max_body_bytes} bytes; send fewer pairs per request")
        try:
            body = json.loads(raw)
        except ValueError as e:
            return error(400, f"request body is not JSON: {e}")
        problem = _check(body, config, state.batchers)
        if problem:
            return error(*problem)
        refs, hyps = body["references"], body["predictions"]
        names = list(dict.fromkeys(body["metrics"]))
        try:  # each metric has its own scorer thread: score them at the same time
            answers = await asyncio.gather(*(state.batchers[name].score(refs, hyps) for name in names))
        except Exception as e:  # a scorer failure is the server's fault: 500, the client may retry
            log.exception("scoring failed")
            return error(500, f"scorer failed: {type(e).__name__}: {e}")
        results = {name: {"per_sample": per, "versions": state.batchers[name].versions}
                   for name, (per, _) in zip(names, answers)}
        return {"n": len(refs), "results": results, "pid": os.getpid(), "cached": sum(hits for _, hits in answers)}

    return app


def _check(body: Any, config: ServerConfig, batchers: dict[str, _Batcher]) -> tuple[int, str] | None:
    """None, or (status, message) naming the field or row at fault."""
    if not isinstance(body, dict):
        return 422, "body must be a JSON object with 'metrics', 'references' and 'predictions'"
    missing = [k for k in ("metrics", "references", "predictions") if k not in body]
    if missing:
        return 422, f"missing field(s) {missing}; send metrics, references and predictions"
    metrics, refs, hyps = body["metrics"], body["references"], body["predictions"]
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) for m in metrics):
        return 422, "'metrics' must be a non-empty list of metric names"
    unknown = [m for m in metrics if m not in batchers]
    if unknown:
        return 400, f"metric(s) {unknown} not served here; this server loaded {sorted(batchers)}"
    for name, values in (("references", refs), ("predictions", hyps)):
        if not isinstance(values, list):
            return 422, f"'{name}' must be a list of strings"
        for i, v in enumerate(values):
            if not isinstance(v, str):
                return 422, f"'{name}'[{i}] is {type(v).__name__}, not a string"
            if len(v) > config.max_chars:
                return 413, f"'{name}'[{i}] has {len(v)} characters, over the limit of {config.max_chars}"
    if len(refs) != len(hyps):
        return 422, f"got {len(refs)} references and {len(hyps)} predictions; send one reference per prediction"
    if len(refs) > config.max_items:
        return 413, f"{len(refs)} pairs exceed the limit of {config.max_items} per request; split the request"
    return None


def check_config(config: ServerConfig, host: str = "127.0.0.1", workers: int = 1) -> None:
    """Refuse, before any worker starts, what would fail in every worker or expose the scorers: a bind address
    other than loopback without a token, limits below 1, unknown metric names or scorer paths, and missing
    weights or judges (``check_metrics``: a server that cannot score stops with the fix instead of answering
    503). Raises ``ValueError`` with the fix."""
    if host not in LOOPBACK and not config.token:
        raise ValueError(f"refusing to bind {host} without a token: anyone who can reach the port could spend the "
                         f"scorers' GPU time and fill the cache. Set {TOKEN_ENV}=<secret> (or --token) and give the "
                         "trainer the same value, or bind 127.0.0.1 and tunnel.")
    for name, value in (("--workers", workers), ("--max-items", config.max_items), ("--max-chars", config.max_chars),
                        ("--max-batch", config.max_batch),
                        ("--threads", 1 if config.threads is None else config.threads)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")
    resolve_scorers(config)  # unknown names fail here, once, not in every worker
    from radrl.metrics import check_metrics

    try:
        check_metrics(config.metrics)
    except Exception as e:  # each scorer's own error type; the message says the fix
        raise ValueError(f"{type(e).__name__}: {e}") from e


def serve(config: ServerConfig, host: str = "127.0.0.1", port: int = 8765, workers: int = 1,
          log_level: str = "info") -> None:
    """Run the server until interrupted: ``workers`` uvicorn worker processes (each loads every scorer once)
    sharing one socket on ``host:port``. Call ``check_config`` first."""
    os.environ[CONFIG_ENV] = json.dumps(asdict(config))
    import uvicorn

    uv_config = uvicorn.Config("radrl.rewards.server:create_app", factory=True, host=host, port=port,
                               workers=workers, log_level=log_level, access_log=False, timeout_graceful_shutdown=5)
    if workers == 1:
        uvicorn.Server(uv_config).run()
        return
    # the supervisor uvicorn.run uses for workers > 1; it restarts dead workers (uvicorn >= 0.30). Older
    # versions (0.37 among them) take the worker function as target=; 0.54 builds it itself.
    import inspect

    from uvicorn.supervisors import Multiprocess

    target = {"target": uvicorn.Server(uv_config).run} if "target" in inspect.signature(Multiprocess).parameters else {}
    Multiprocess(uv_config, sockets=[_listen(host, port)], **target).run()


def _listen(host: str, port: int) -> socket.socket:
    """The socket the workers share. uvicorn's own (``Config.bind_socket``) has protocol number 0, so
    asyncio does not set TCP_NODELAY on its connections, and every response then waits about 40 ms for
    the client's delayed ACK with two or more workers (one-off observation, not recorded); naming
    IPPROTO_TCP restores TCP_NODELAY (uvicorn issue Kludex/uvicorn#3149, open as of uvicorn 0.54)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        raise ValueError(f"cannot bind {host}:{port}: {e}") from e
    return sock
