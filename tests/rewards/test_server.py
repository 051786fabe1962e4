"""radrl reward-server: request checks, token, cache, and scores equal to in-process scoring."""

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.testclient import TestClient

from radrl.cli import main as radrl_main
from radrl.metrics import METRICS
from radrl.rewards.server import TOKEN_ENV, ServerConfig, create_app

OK = {"metrics": ["chexpert"], "references": ["No effusion."], "predictions": ["Small effusion."]}


@pytest.fixture(scope="module")
def client():
    """One in-process worker (lifespan run: scorers loaded) with small limits, so limit cases stay small."""
    config = ServerConfig(metrics=["chexpert", "text"], max_items=4, max_chars=1000, max_body_bytes=20_000)
    with TestClient(create_app(config)) as c:
        yield c


# (case, body as sent, expected status, words the message must contain)
BAD = [
    # not JSON at all
    ("not_json", b"{metrics:", 400, "not JSON"),
    # JSON, but a list instead of an object
    ("not_object", json.dumps([1, 2]), 422, "JSON object"),
    # a required field missing
    ("missing_predictions", json.dumps({"metrics": ["chexpert"], "references": []}), 422, "predictions"),
    # metrics empty
    ("no_metrics", json.dumps({**OK, "metrics": []}), 422, "non-empty list"),
    # a metric this server did not load (radgraph exists in the project, not here)
    ("unknown_metric", json.dumps({**OK, "metrics": ["radgraph"]}), 400, "not served here"),
    # a reference that is not a string: the row is named
    ("non_string_row", json.dumps({**OK, "references": [None]}), 422, "'references'[0] is NoneType"),
    # one reference per prediction
    ("misaligned", json.dumps({**OK, "references": ["a", "b"]}), 422, "2 references and 1 predictions"),
    # more pairs than max_items=4
    ("too_many", json.dumps({**OK, "references": ["a"] * 5, "predictions": ["a"] * 5}), 413, "limit of 4"),
    # a text over max_chars=1000: the row is named
    ("too_long", json.dumps({**OK, "predictions": ["x" * 1001]}), 413, "'predictions'[0] has 1001 characters"),
    # a body over max_body_bytes=20000 (rejected before parsing)
    ("body_too_big", json.dumps({**OK, "pad": "x" * 30_000}), 413, "exceeds 20000"),
    # the same sent in chunks without a Content-Length: cut off while reading
    ("chunked_too_big", iter([json.dumps({**OK, "pad": "x" * 30_000}).encode()[i:i + 4096]
                              for i in range(0, 30_100, 4096)]), 413, "exceeds 20000 bytes"),
]


@pytest.mark.parametrize("case,body,status,words", BAD, ids=[c[0] for c in BAD])
def test_bad_requests_get_4xx_with_the_reason(client, case, body, status, words):
    r = client.post("/score", content=body)
    assert r.status_code == status, r.text
    assert words in r.json()["error"]


def test_scores_equal_in_process_and_cache(client, radeval_pairs):
    refs, hyps = (x[:4] for x in radeval_pairs)
    r = client.post("/score", json={"metrics": ["chexpert", "text"], "references": refs, "predictions": hyps})
    assert r.status_code == 200, r.text
    body = r.json()
    for name in ("chexpert", "text"):
        local = METRICS[name](refs, hyps)
        served = body["results"][name]
        # every pairwise per-sample key, exactly; CIDEr-D (IDF over the batch) is not served
        expected = {k: v for k, v in local.per_sample.items() if k != "cider"}
        assert served["per_sample"] == expected
        assert served["versions"] == local.versions
    assert body["cached"] == 0
    # the same pairs again: all from the cache (2 metrics x 4 pairs), same values
    again = client.post("/score", json={"metrics": ["chexpert", "text"], "references": refs, "predictions": hyps})
    assert again.json()["cached"] == 8 and again.json()["results"] == body["results"]


def test_ready_lists_scorers_and_keys(client):
    r = client.get("/ready").json()
    assert r["ready"] and set(r["scorers"]) == {"chexpert", "text"}
    assert "clinical" in r["scorers"]["chexpert"]["keys"] and "cider" not in r["scorers"]["text"]["keys"]
    assert client.get("/health").json()["status"] == "ok"


def test_bearer_token():
    with TestClient(create_app(ServerConfig(metrics=["chexpert"], token="s3cret"))) as c:
        # (headers, expected status): none, wrong, right
        for headers, status in [({}, 401), ({"Authorization": "Bearer nope"}, 401),
                                ({"Authorization": "Bearer s3cret"}, 200)]:
            assert c.post("/score", json=OK, headers=headers).status_code == status
        # liveness and readiness stay open for probes and load balancers
        assert c.get("/health").status_code == 200 and c.get("/ready").status_code == 200


def test_scorer_that_cannot_load_is_reported():
    # a scorer whose weights are missing: /ready and /score say 503 with the scorer's own message
    with TestClient(create_app(ServerConfig(metrics=[], scorers={"x": "scorers_for_tests:missing_weights"}))) as c:
        for r in (c.get("/ready"), c.post("/score", json={**OK, "metrics": ["x"]})):
            assert r.status_code == 503 and "download x to /models/x" in r.text


# (case, argv, words the refusal must contain)
REFUSED = [
    # any address but loopback without a token
    ("public_without_token", ["--host", "0.0.0.0"], TOKEN_ENV),
    # a metric name that does not exist
    ("unknown_metric", ["--metrics", "nosuch"], "unknown metric 'nosuch'"),
    # a model-based metric without its weights: exits with the download steps instead of answering 503
    ("missing_weights", ["--metrics", "chexpert", "bertscore"], "BertScoreModelMissing: no BERTScore model folder"),
    # a custom scorer that does not import
    ("bad_scorer", ["--scorer", "x=nosuch.module:f"], "cannot be imported"),
    # a custom scorer without module:function
    ("malformed_scorer", ["--scorer", "x"], "NAME=package.module:function"),
    # zero workers
    ("no_workers", ["--workers", "0"], "at least 1"),
    # zero threads per worker
    ("no_threads", ["--threads", "0"], "--threads must be at least 1"),
]


@pytest.mark.parametrize("case,argv,words", REFUSED, ids=[c[0] for c in REFUSED])
def test_refuses_to_start(monkeypatch, capsys, case, argv, words):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.delenv("RADRL_BERTSCORE_MODEL", raising=False)
    monkeypatch.delenv("RADRL_DEBUG", raising=False)
    with pytest.raises(SystemExit) as e:
        radrl_main(["reward-server", *argv])
    err = capsys.readouterr().err
    assert e.value.code == 1 and err.startswith("radrl reward-server: error: ") and words in err


@pytest.mark.slow
def test_worker_sets_its_torch_threads(start_server):
    """Each uvicorn worker is its own process with torch's default of one thread per core; the scorer runs
    with --threads, or by default with the cores divided among the workers, in every worker."""
    import os

    cores = len(os.sched_getaffinity(0))
    if cores < 2:
        pytest.skip("needs at least 2 cores to tell the settings apart")
    for workers, threads, expected in ((1, None, cores), (2, None, cores // 2), (1, 1, 1)):
        argv = ["--scorer", "t=scorers_for_tests:torch_threads"] + (["--threads", str(threads)] if threads else [])
        server = start_server(*argv, workers=workers)
        # distinct answers: no cache hit, so every request is scored by some worker
        replies = [httpx.post(f"{server.url}/score", json={**OK, "metrics": ["t"], "predictions": [f"answer {i}"]},
                              timeout=30, headers={"Connection": "close"}).json() for i in range(6)]
        seen = {r["results"]["t"]["per_sample"]["threads"][0] for r in replies}
        server.stop()
        assert seen == {float(expected)}, (workers, threads)


@pytest.mark.parametrize("argv,workers,expected", [([], 1, 8), (["--workers", "3"], 3, 2), (["--workers", "16"], 16, 1),
                                                   (["--workers", "2", "--threads", "4"], 2, 4)])
def test_cli_divides_the_cores_among_workers(monkeypatch, argv, workers, expected):
    import radrl.cli.reward_server as cli

    seen = {}
    monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    monkeypatch.setattr(cli, "serve", lambda config, host, port, workers, log_level: seen.update(c=config, w=workers))
    cli.main(["--metrics", "text", *argv])
    assert seen["w"] == workers and seen["c"].threads == expected


@pytest.mark.slow
def test_model_scorer_batches_concurrent_clients(start_server, radeval_pairs):
    """A real small BERTScore model behind the server; 4 clients at once send different slices: their rows
    are scored in fewer scorer calls than requests (batched across clients), and each client gets exactly
    its own rows, equal to in-process scoring."""
    from scorers_for_tests import bertscore_minilm

    server = start_server("--metrics", "chexpert", "--scorer", "bertscore=scorers_for_tests:bertscore_minilm",
                          "--cache-size", "0", "--batch-window-ms", "200")
    refs, hyps = (x[:12] for x in radeval_pairs)
    slices = [(i * 3, i * 3 + 3) for i in range(4)]

    def post(bounds):
        a, b = bounds
        r = httpx.post(f"{server.url}/score", timeout=300,
                       json={"metrics": ["bertscore", "chexpert"], "references": refs[a:b], "predictions": hyps[a:b]})
        assert r.status_code == 200, r.text
        return r.json()

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(post, slices))
    stats = httpx.get(f"{server.url}/ready").json()["scorers"]["bertscore"]
    assert stats["pairs"] == 12 and stats["calls"] < 4, stats
    local = bertscore_minilm(refs, hyps).per_sample["bertscore"]
    for (a, b), answer in zip(slices, answers):
        assert answer["n"] == b - a
        assert answer["results"]["chexpert"]["per_sample"] == METRICS["chexpert"](refs[a:b], hyps[a:b]).per_sample
        # scored together with other clients' rows: equal up to float rounding of another padding length
        assert answer["results"]["bertscore"]["per_sample"]["bertscore"] == pytest.approx(local[a:b], abs=1e-5)


@pytest.mark.slow
def test_several_workers_keep_tcp_nodelay(start_server):
    """With --workers 2 the shared socket must give connections TCP_NODELAY: without it every keep-alive
    response waits for the client's delayed ACK (about 40 ms on Linux; uvicorn's own socket had this)."""
    import statistics
    import time

    server = start_server("--metrics", "chexpert", workers=2)
    with httpx.Client() as http:
        times = []
        for _ in range(20):
            t = time.perf_counter()
            assert http.get(f"{server.url}/health").status_code == 200
            times.append(time.perf_counter() - t)
    assert statistics.median(times) < 0.02, times
