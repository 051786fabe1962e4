"""``radrl reward-server``: the clinical scorers as an HTTP service for GRPO trainers (``radrl.rewards.server``)."""

from __future__ import annotations

import os
import sys

from radrl.cli.args import ArgumentParser
from radrl.rewards import server
from radrl.rewards.server import TOKEN_ENV, ServerConfig, check_config, serve


def default_threads(workers: int) -> int:
    """The cores this process may use, divided among the workers, at least 1.

    >>> default_threads(10**6)
    1
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, workers))


def main(argv: list[str] | None = None) -> None:
    p = ArgumentParser(prog="radrl reward-server", description=server.__doc__.split("\n\n")[0])
    p.add_argument("--metrics", nargs="*", default=["chexpert"], names=True,
                   help="names in radrl.metrics.METRICS to serve")
    p.add_argument("--scorer", action="append", default=[], metavar="NAME=MODULE:FUNCTION",
                   help="also serve your own scorer (refs, hyps) -> MetricResult under NAME (repeatable)")
    p.add_argument("--host", default="127.0.0.1", help="bind address; anything but loopback needs a token")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--workers", type=int, default=1, help="worker processes, each loading every scorer once")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads per worker (default: the cores divided among the workers, at least 1). "
                        "Each worker is its own process with torch's default of one thread per core, so N workers "
                        "would otherwise run N x cores threads and slow each other down (docs/reward-server.md)")
    p.add_argument("--token", default=None, help=f"bearer token (prefer ${TOKEN_ENV}: command lines are visible)")
    p.add_argument("--max-items", type=int, default=4096, help="pairs per request")
    p.add_argument("--max-chars", type=int, default=20_000, help="characters per reference or prediction")
    p.add_argument("--max-body-mb", type=float, default=64.0, help="request body size")
    p.add_argument("--max-batch", type=int, default=512,
                   help="a batch takes no more requests once it holds this many pairs (one request may hold more)")
    p.add_argument("--batch-window-ms", type=float, default=0.0,
                   help="how long the first request of a batch waits for more (0: score what is queued at once)")
    p.add_argument("--cache-size", type=int, default=20_000,
                   help="LRU entries per metric and worker; 0: off")
    p.add_argument("--log-level", default="info")
    p.add_argument("--metric-device", default=None,
                   help="device of the model-based scorers in every worker: cpu, cuda, cuda:1 (default: the GPU when "
                        "there is one; also $RADRL_METRIC_DEVICE)")
    a = p.parse_args(argv)
    if a.metric_device:   # the workers inherit it
        from radrl.metrics import DEVICE_ENV, metric_device

        os.environ[DEVICE_ENV] = metric_device(a.metric_device)

    token = a.token or os.environ.get(TOKEN_ENV) or None
    scorers = {}
    for spec in a.scorer:
        name, eq, target = spec.partition("=")
        if not eq or not name or not target:
            raise ValueError(f"--scorer {spec!r}: write NAME=package.module:function")
        scorers[name] = target
    config = ServerConfig(metrics=list(a.metrics), scorers=scorers, token=token, max_items=a.max_items,
                          max_chars=a.max_chars, max_body_bytes=int(a.max_body_mb * 2**20), max_batch=a.max_batch,
                          batch_window_ms=a.batch_window_ms, cache_size=a.cache_size,
                          threads=a.threads if a.threads is not None else default_threads(a.workers))
    check_config(config, a.host, a.workers)
    print(f"radrl reward-server: {a.workers} worker(s) of {config.threads} torch thread(s) serving "
          f"{config.metrics + list(scorers)} on "
          f"http://{a.host}:{a.port} ({'token required' if token else 'no token'})", file=sys.stderr, flush=True)
    serve(config, a.host, a.port, a.workers, a.log_level)
