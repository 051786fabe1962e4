"""Load test of ``radrl reward-server`` against in-process scoring of the same batches.

Starts a server on loopback (``--workers`` processes serving ``--metric``), then:

1. **in-process**: scores every request's batch with ``radrl.metrics.METRICS[metric]`` in
   this process, one after another (what a trainer does without a server);
2. **server, 1 client**: the same requests one at a time over HTTP (the per-request overhead:
   HTTP, JSON, the batching window);
3. **server, N clients**: ``--clients`` threads, each sending its share of the same
   requests at once (what several trainer ranks do), each with its own keep-alive connection;
4. with ``--reward-key``: the GRPO reward (``ReportMetric`` over that per-sample key) on the
   same batches as completions, in-process and through the server (``remote``), one client:
   the overhead a trainer sees, parsing included.

A request is ``--batch`` (reference, prediction) pairs cut from the real RadEval impression
pairs (``reports/radeval_{refs,preds}_chexpert_impression.txt``), ``--requests`` requests in
all. The server's cache is off (``--cache-size 0``) unless asked for, so every pair is
scored; every answer is checked against the in-process values (``mismatches``, answers off by
more than ``--atol``, must be 0).
Throughput is pairs/s and requests/s over the wall time of the phase; latency percentiles
are per request. The machine's load average before and after is recorded: on a shared
machine the numbers move with the neighbours' work.

    .venv/bin/python bench/reward_server.py [--metric chexpert] [--workers 2] [--clients 8] \\
        [--requests 400] [--batch 32] [--reward-key clinical] [--scorer NAME=module:function]

Writes ``bench/results/reward_server_<metric>_<workers>w_<clients>c.json`` and prints a summary table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from importlib import import_module
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import benchlib


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in [0, 100]) of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def summary(latencies: list[float], wall: float, pairs: int) -> dict:
    return {"requests": len(latencies), "pairs": pairs, "wall_s": round(wall, 3),
            "requests_per_s": round(len(latencies) / wall, 2), "pairs_per_s": round(pairs / wall, 1),
            "latency_ms": {f"p{q}": round(1000 * percentile(latencies, q), 2) for q in (50, 95, 99)}
            | {"mean": round(1000 * sum(latencies) / len(latencies), 2), "max": round(1000 * max(latencies), 2)}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args, port: int) -> subprocess.Popen:
    import httpx

    scorer = ["--scorer", args.scorer] if args.scorer else []
    metrics = [] if args.scorer else [args.metric]
    proc = subprocess.Popen([sys.executable, "-m", "radrl.cli", "reward-server", "--port", str(port),
                             "--workers", str(args.workers), "--metrics", *metrics, *scorer,
                             "--cache-size", str(args.cache_size), "--batch-window-ms", str(args.batch_window_ms),
                             "--log-level", "warning"], start_new_session=True)
    deadline, seen = time.monotonic() + 600, set()
    while len(seen) < args.workers:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"reward server did not get ready (exit code {proc.poll()})")
        try:
            r = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=5, headers={"Connection": "close"})
            if r.status_code == 200:
                seen.add(r.json()["pid"])
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    return proc


def run_clients(url: str, metric: str, batches: list, expected: list, clients: int,
                atol: float) -> tuple[list[float], float, int]:
    """``clients`` threads, each with its own keep-alive connection, send requests k, k + clients, ...;
    per-request latencies, the wall time, and how many answers differ from ``expected`` by more than ``atol``."""
    import httpx

    latencies = [0.0] * len(batches)
    wrong = [0] * clients

    def client(k: int) -> None:
        with httpx.Client(timeout=600) as http:
            for i in range(k, len(batches), clients):
                r, h = batches[i]
                t = time.perf_counter()
                answer = http.post(url, json={"metrics": [metric], "references": r, "predictions": h})
                latencies[i] = time.perf_counter() - t
                answer.raise_for_status()
                got = answer.json()["results"][metric]["per_sample"]
                diff = max(abs(x - y) for key in got for x, y in zip(got[key], expected[i][key], strict=True))
                wrong[k] += diff > atol

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, time.perf_counter() - start, sum(wrong)


def reward_phases(args, batches: list, server: str) -> dict:
    """The trainer's view: the GRPO reward over ``per_sample[reward_key]`` in-process (``ReportMetric``)
    and through the server (``remote`` of it), one call per request's batch of completions, one client."""
    from radrl.rewards import ReportMetric
    from radrl.rewards.remote import remote

    local = ReportMetric("bench_reward", args.metric, args.reward_key)
    far = remote(local, servers=[server])
    out, answers = {}, {}
    for name, reward in (("reward_in_process", local), ("reward_remote_1_client", far)):
        latencies, got = [], []
        start = time.perf_counter()
        for r, h in batches:
            completions = [[{"role": "assistant", "content": text}] for text in h]
            t = time.perf_counter()
            got.append(reward(completions, task=["report"] * len(h), solution=r))
            latencies.append(time.perf_counter() - t)
        out[name] = summary(latencies, time.perf_counter() - start, len(batches) * args.batch)
        answers[name] = got
    out["reward_mismatches"] = sum(
        max(abs(x - y) for x, y in zip(a, b, strict=True)) > args.atol
        for a, b in zip(answers["reward_in_process"], answers["reward_remote_1_client"], strict=True))
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--metric", default="chexpert", help="a radrl.metrics.METRICS name (or the --scorer NAME)")
    ap.add_argument("--scorer", help="serve NAME=module:function instead (the module must import here and in "
                    "the server: put its folder on PYTHONPATH)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=400, help="requests in all, per phase")
    ap.add_argument("--batch", type=int, default=32, help="pairs per request")
    ap.add_argument("--cache-size", type=int, default=0)
    ap.add_argument("--reward-key", help="also time the GRPO reward over this per-sample key (e.g. clinical) "
                                         "in-process and through the server")
    ap.add_argument("--atol", type=float, default=0.0,
                    help="allowed difference from in-process values (0: exact; model scorers batched with other "
                         "requests differ by float rounding, e.g. 1e-5 for BERTScore)")
    ap.add_argument("--batch-window-ms", type=float, default=0.0)
    ap.add_argument("--data", help="shared/data/cxr folder (default: $RADRL_CXR_DATA or <repo>/../shared/data/cxr)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    args = ap.parse_args(argv)

    import httpx

    folder = benchlib.data_dir(args.data, "reports/radeval_refs_chexpert_impression.txt",
                               "reports/radeval_preds_chexpert_impression.txt") / "reports"
    refs = (folder / "radeval_refs_chexpert_impression.txt").read_text().splitlines()
    hyps = (folder / "radeval_preds_chexpert_impression.txt").read_text().splitlines()
    n = len(refs)
    batches = [([refs[(i * args.batch + j) % n] for j in range(args.batch)],
                [hyps[(i * args.batch + j) % n] for j in range(args.batch)]) for i in range(args.requests)]
    if args.scorer:
        name, _, target = args.scorer.partition("=")
        module, _, function = target.partition(":")
        scorer, args.metric = getattr(import_module(module), function), name
    else:
        from radrl.metrics import METRICS

        scorer = METRICS[args.metric]
    load_before = os.getloadavg()

    # 1. in-process, sequential (after one warm-up call that loads whatever the scorer loads)
    scorer(*batches[0])
    expected, latencies = [], []
    start = time.perf_counter()
    for r, h in batches:
        t = time.perf_counter()
        expected.append(scorer(r, h).per_sample)
        latencies.append(time.perf_counter() - t)
    phases = {"in_process": summary(latencies, time.perf_counter() - start, args.requests * args.batch)}

    port = free_port()
    proc = start_server(args, port)
    url = f"http://127.0.0.1:{port}/score"
    mismatches = 0
    try:
        for clients in (1, args.clients):
            latencies, wall, wrong = run_clients(url, args.metric, batches, expected, clients, args.atol)
            phases[f"server_{clients}_clients"] = summary(latencies, wall, args.requests * args.batch)
            mismatches += wrong
        if args.reward_key:
            phases.update(reward_phases(args, batches, f"http://127.0.0.1:{port}"))
            mismatches += phases.pop("reward_mismatches")
        stats = httpx.get(f"http://127.0.0.1:{port}/ready").json()["scorers"][args.metric]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)

    base = phases["in_process"]
    result = {
        "command": "bench/reward_server.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "metric": args.metric, "workers": args.workers, "clients": args.clients, "requests": args.requests,
        "batch": args.batch, "server_cache_size": args.cache_size, "batch_window_ms": args.batch_window_ms,
        "phases": phases, "mismatches": mismatches, "atol": args.atol,
        "overhead_1_client_p50_ms": round(phases["server_1_clients"]["latency_ms"]["p50"]
                                          - base["latency_ms"]["p50"], 2),
        "speedup_n_clients_vs_in_process": round(phases[f"server_{args.clients}_clients"]["pairs_per_s"]
                                                 / base["pairs_per_s"], 2),
        "server_scorer_calls_one_worker": stats["calls"], "server_pairs_one_worker": stats["pairs"],
        "machine": {"cpu": benchlib.cpu_model(), "cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
                    "python": platform.python_version(),
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cache = "_cache" if args.cache_size else ""
    path = out / f"reward_server_{args.metric}_{args.workers}w_{args.clients}c{cache}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print("| phase | requests/s | pairs/s | p50 ms | p95 ms | p99 ms |\n| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, p in phases.items():
        lat = p["latency_ms"]
        print(f"| {name} | {p['requests_per_s']} | {p['pairs_per_s']} | {lat['p50']} | {lat['p95']} | {lat['p99']} |")
    print(f"mismatches {mismatches}; overhead p50 {result['overhead_1_client_p50_ms']} ms; "
          f"load {result['machine']['loadavg_before']} -> {result['machine']['loadavg_after']}")
    if mismatches:
        raise SystemExit(f"{mismatches} requests got values different from in-process scoring")
    return result


if __name__ == "__main__":
    main()
