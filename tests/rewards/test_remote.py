"""The GRPO reward that scores on reward servers: contract, floors, failure policy, spread, failover."""

import logging
import os
import pickle
import signal
import socket
import threading
import time

import httpx
import pytest

from radrl.metrics.chexpert import chexpert_f1
from radrl.rewards import REWARDS, build_rewards
from radrl.rewards.remote import (
    SERVERS_ENV,
    TOKEN_ENV,
    RemoteReportReward,
    RemoteScoringError,
    remote,
    remote_rewards,
)

REF = "Moderate cardiomegaly. No pneumothorax. Small left pleural effusion."


def dead_url() -> str:
    """A loopback port nothing listens on: connection refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def chat(text):
    return [{"role": "assistant", "content": text}]


def steps(pairs, size):
    """GRPO-like steps: (completions with a <think> block, columns) over consecutive slices of real pairs."""
    refs, hyps = pairs
    for a in range(0, len(refs), size):
        yield ([chat(f"<think>the film shows {i}</think>{h}") for i, h in enumerate(hyps[a:a + size])],
               {"task": ["report"] * len(refs[a:a + size]), "solution": refs[a:a + size],
                "thinking": [True] * len(refs[a:a + size])})


# (case, completion, task, solution, thinking, expected): rows that never reach a server
NO_REQUEST = [
    # grounding rows are not this reward's task
    ("grounding", "Cardiomegaly at [0.1, 0.1, 0.5, 0.5]", "grounding", "[0.1, 0.1, 0.5, 0.5]", False, None),
    # an empty answer gets the floor
    ("empty", "", "report", REF, False, -3.0),
    # 5 characters is still too short (the paper: 5 or fewer)
    ("five_chars", "Clear", "report", REF, False, -3.0),
    # thinking asked, no </think>: no answer, floor, though the text is long
    ("think_unclosed", "<think>" + REF, "report", REF, True, -3.0),
    # a reference of 5 characters or fewer: floor as well (paper: prediction or reference)
    ("short_reference", REF, "report", "None.", False, -3.0),
]


@pytest.mark.parametrize("case,completion,task,solution,thinking,expected", NO_REQUEST,
                         ids=[c[0] for c in NO_REQUEST])
def test_rows_scored_without_a_server(case, completion, task, solution, thinking, expected):
    reward = remote(REWARDS["report_radcliq"], servers=[dead_url()], retries=0)
    assert reward([completion], task=[task], solution=[solution], thinking=[thinking]) == [expected]
    assert reward.failed_attempts == 0  # nothing was sent


def test_name_and_pickle():
    reward = remote(REWARDS["report_clinical"], servers=dead_url(), retries=0)
    assert reward.__name__ == "report_clinical"  # the same log key as the in-process reward
    assert RemoteReportReward("neg_radcliq", "radcliq", "radcliq_v1", sign=-1.0).__name__ == "neg_radcliq"
    reward._http()  # an open client must not travel into dataloader / reward workers
    copy = pickle.loads(pickle.dumps(reward))
    assert copy.__name__ == reward.__name__ and copy._client is None and copy.servers == reward.servers


# (case, keyword arguments, words of the error)
BAD_ARGS = [
    ("negative_retries", {"retries": -1}, "retries >= 0"),  # at least one attempt
    ("zero_timeout", {"timeout": 0}, "timeout > 0"),  # a request needs time
    ("nan_fallback", {"fallback": float("nan")}, "finite"),  # NaN is a bug, never a reward
    ("fallback_out_of_range", {"fallback": -3.0}, "inside the reward's range"),  # [0, 1] reward: -3 is no score
]


@pytest.mark.parametrize("case,kwargs,words", BAD_ARGS, ids=[c[0] for c in BAD_ARGS])
def test_bad_arguments(case, kwargs, words):
    with pytest.raises(ValueError, match=words):
        remote(REWARDS["report_clinical"], **kwargs)


def test_remote_rewards_moves_only_report_metrics():
    funcs, _ = build_rewards({"report_radcliq": 1.0, "grounding_soft_f1": 1.0, "report_length_guard": 0.5})
    moved = remote_rewards(funcs, servers=["http://127.0.0.1:1"])
    # the model-based report reward goes to the servers with its floor and sign; the cheap ones stay
    assert [type(f).__name__ for f in moved] == ["RemoteReportReward", "GroundingSoftF1", "LengthGuard"]
    assert (moved[0].floor, moved[0].sign, moved[0].key) == (-3.0, -1.0, "radcliq_v1")


def test_no_server_configured(monkeypatch):
    monkeypatch.delenv(SERVERS_ENV, raising=False)
    with pytest.raises(RemoteScoringError, match=SERVERS_ENV):
        remote(REWARDS["report_clinical"])([REF], task=["report"], solution=[REF])


def test_servers_down_fail_the_step_loudly():
    reward = remote(REWARDS["report_clinical"], servers=[dead_url(), dead_url()], retries=2, backoff=0.01)
    with pytest.raises(RemoteScoringError, match="could not be scored after 3 attempts"):
        reward([REF], task=["report"], solution=[REF])
    assert reward.failed_attempts == 3


def test_servers_down_fallback_is_logged(caplog):
    reward = remote(REWARDS["report_radcliq"], servers=[dead_url()], fallback=-3.0, retries=1, backoff=0.01)
    with caplog.at_level(logging.WARNING, logger="radrl.rewards.remote"):
        out = reward([REF, REF + " Also edema.", "", "x"], task=["report", "report", "report", "grounding"],
                     solution=[REF, REF, REF, "[0.1, 0.1, 0.2, 0.2]"])
    assert out == [-3.0, -3.0, -3.0, None]
    assert reward.fallbacks == 2  # the two rows that needed a server, not the floored one
    assert "fallback reward -3.0" in caplog.text


def test_equals_in_process_reward_and_refusals(start_server, radeval_pairs, monkeypatch):
    """Same numbers as the in-process ReportClinical on real pairs (only the answer after </think> is sent);
    a wrong token or an unserved metric is refused at once, without retries."""
    server = start_server("--metrics", "chexpert", env={TOKEN_ENV: "s3cret"})
    monkeypatch.setenv(TOKEN_ENV, "s3cret")
    reward = remote(REWARDS["report_clinical"], servers=[server.url], retries=1, backoff=0.01)
    local = REWARDS["report_clinical"]
    for completions, columns in steps((radeval_pairs[0][:40], radeval_pairs[1][:40]), 20):
        assert reward(completions, **columns) == local(completions, **columns)
    assert reward.failed_attempts == 0 and reward.versions == chexpert_f1([REF], [REF]).versions
    # client cache on: the second identical step sends nothing (its only server is now a dead port)
    cached = remote(REWARDS["report_clinical"], servers=[server.url], cache_size=100, retries=0)
    completions, columns = next(steps((radeval_pairs[0][:8], radeval_pairs[1][:8]), 8))
    first = cached(completions, **columns)
    cached.servers = [dead_url()]
    assert cached(completions, **columns) == first and cached.failed_attempts == 0
    # (case, change, words): refusals are 4xx, raised on the first attempt
    for case, metric, token, words in [("unserved_metric", "radgraph", "s3cret", "not served here"),
                                       ("wrong_token", "chexpert", "nope", "HTTP 401")]:
        monkeypatch.setenv(TOKEN_ENV, token)
        refused = RemoteReportReward("clinical", metric, "clinical", servers=[server.url], retries=3)
        with pytest.raises(RemoteScoringError, match=words):
            refused([REF], task=["report"], solution=[REF + " "])
        assert refused.failed_attempts == 0, case


def test_hung_server_times_out(start_server):
    """A server slower than the reward's timeout counts as down: each attempt times out, then the step fails
    (no fallback) naming the timeout."""
    server = start_server("--scorer", "slow=scorers_for_tests:slow_chexpert", "--metrics")
    reward = RemoteReportReward("slow_clinical", "slow", "clinical", servers=[server.url], timeout=0.1, retries=1,
                                backoff=0.01)
    with pytest.raises(RemoteScoringError, match="ReadTimeout"):
        reward([REF], task=["report"], solution=[REF])
    assert reward.failed_attempts == 2


@pytest.mark.slow
def test_spread_over_servers_and_one_killed(start_server, radeval_pairs):
    """Two servers share every step; one is killed: the next steps retry onto the live one and every
    sample still gets exactly one score, equal to in-process; with both down the step fails."""
    a = start_server("--metrics", "chexpert", "--cache-size", "0")
    b = start_server("--metrics", "chexpert", "--cache-size", "0")
    reward = remote(REWARDS["report_clinical"], servers=[a.url, b.url], retries=2, backoff=0.05)
    local = REWARDS["report_clinical"]
    all_steps = list(steps((radeval_pairs[0][:120], radeval_pairs[1][:120]), 40))
    for completions, columns in all_steps[:1]:
        assert reward(completions, **columns) == local(completions, **columns)
    calls = [httpx.get(f"{s.url}/ready").json()["scorers"]["chexpert"]["calls"] for s in (a, b)]
    assert all(c >= 1 for c in calls), calls  # the step was spread over both servers
    a.stop()
    for completions, columns in all_steps[1:]:
        assert reward(completions, **columns) == local(completions, **columns)
    assert reward.failed_attempts >= 1  # the dead server was tried, then the live one answered
    b.stop()
    with pytest.raises(RemoteScoringError, match="could not be scored"):
        reward(all_steps[0][0], **all_steps[0][1])


@pytest.mark.slow
def test_worker_killed_mid_request(start_server, radeval_pairs, tmp_path):
    """A server with two worker processes; the worker scoring a request is killed while the request is in
    flight (the scorer announces itself in a marker file, then pauses): the client's retry lands on a live
    worker, all steps get exactly their own scores, equal to in-process, and a replacement worker starts."""
    marker = tmp_path / "calls.txt"
    server = start_server("--scorer", "slow=scorers_for_tests:slow_chexpert", "--metrics", "--cache-size", "0",
                          workers=2, env={"RADRL_TEST_SCORER_MARKER": str(marker)})
    marker.write_text("")  # forget the warm-up calls
    reward = RemoteReportReward("slow_clinical", "slow", "clinical", servers=[server.url], retries=3, backoff=0.05,
                                timeout=60)
    all_steps = list(steps((radeval_pairs[0][:32], radeval_pairs[1][:32]), 8))
    results: list = []
    errors: list = []

    def train():
        try:
            for completions, columns in all_steps:
                results.append(reward(completions, **columns))
        except Exception as e:  # noqa: BLE001 - reported by the assertion below
            errors.append(e)

    trainer = threading.Thread(target=train)
    trainer.start()
    deadline = time.monotonic() + 60
    while not marker.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.02)
    victim = int(marker.read_text().split()[0])  # the worker now inside its scorer call for step 1
    os.kill(victim, signal.SIGKILL)
    trainer.join(120)
    assert not errors, errors
    assert reward.failed_attempts >= 1  # the in-flight request did fail and was retried
    local = REWARDS["report_clinical"]
    assert len(results) == len(all_steps)
    for (completions, columns), got in zip(all_steps, results):
        assert got == local(completions, **columns)
    later = [int(line.split()[0]) for line in marker.read_text().splitlines()[1:]]
    assert later and victim not in later  # the retry and later steps were scored by live workers
    # uvicorn's supervisor starts a replacement worker: two live pids again, neither the victim
    live: set = set()
    while len(live) < 2 and time.monotonic() < deadline + 60:
        live.add(httpx.get(f"{server.url}/health", headers={"Connection": "close"}).json()["pid"])
        time.sleep(0.05)
    assert len(live) == 2 and victim not in live, live


def test_client_cache_is_lru():
    # a hit makes a pair recently used: the next eviction takes the least recently used one (FIFO would drop A)
    reward = RemoteReportReward("r", "text", "rouge_l", servers=["http://127.0.0.1:9"], cache_size=2)
    sent = []

    def fake_chunk(chunk, servers, start):
        sent.extend(h for _, h in chunk)
        return [float(len(h)) for _, h in chunk]

    reward._chunk = fake_chunk
    reward.values(["r", "r"], ["A", "B"])  # cache: A, B
    reward.values(["r"], ["A"])  # hit: B, A
    reward.values(["r"], ["CC"])  # evicts B: A, CC
    assert sent == ["A", "B", "CC"]
    assert reward.values(["r", "r"], ["A", "CC"]) == [1.0, 2.0] and sent == ["A", "B", "CC"]
    reward.values(["r"], ["B"])
    assert sent == ["A", "B", "CC", "B"]


class _Answer:
    """A /score answer as httpx gives it, for the version check."""

    status_code = 200

    def __init__(self, versions):
        self.body = {"results": {"chexbert": {"per_sample": {"chexbert_f1": [0.5]}, "versions": versions}}}
        self.text = str(self.body)

    def json(self):
        return self.body


# (case, second server's versions, accepted): the first server has FIRST
FIRST = {"chexbert_model": "/models/a/chexbert.pth (sha256:ab12 (9 bytes))", "torch": "2.5.1"}
VERSION_CASES = [
    # same weights, another folder: the same scorer
    ("other_folder", {"chexbert_model": "/srv/weights/chexbert.pth (sha256:ab12 (9 bytes))", "torch": "2.5.1"}, True),
    # other weights (fingerprint differs)
    ("other_weights", {"chexbert_model": "/models/a/chexbert.pth (sha256:ffff (9 bytes))", "torch": "2.5.1"}, False),
    # other package version
    ("other_torch", {"chexbert_model": "/models/a/chexbert.pth (sha256:ab12 (9 bytes))", "torch": "2.6.0"}, False),
]


@pytest.mark.parametrize("case,versions,accepted", VERSION_CASES, ids=[c[0] for c in VERSION_CASES])
def test_servers_must_agree_on_versions_but_not_on_paths(case, versions, accepted):
    reward = RemoteReportReward("r", "chexbert", "chexbert_f1", servers=["http://a", "http://b"])
    assert reward._parse(_Answer(FIRST), "http://a", 1) == [0.5]
    if accepted:
        assert reward._parse(_Answer(versions), "http://b", 1) == [0.5]
    else:
        with pytest.raises(RemoteScoringError, match="versions"):
            reward._parse(_Answer(versions), "http://b", 1)
