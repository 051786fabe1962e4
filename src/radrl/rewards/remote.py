"""A GRPO report reward scored by ``radrl reward-server`` processes instead of in the trainer.

Why: see ``radrl.rewards.server``. The reward is ``radrl.rewards.ReportMetric`` with its ``per_sample`` step sent
to the servers, so rows, floors, signs and names are those of the in-process reward, and
it keeps the contract of ``radrl.rewards``
(``f(completions, **columns) -> list[float | None]``, None for grounding rows, a fixed
``__name__``, picklable: the HTTP client and thread pool are made on first use and never
pickled) and parses each completion with ``radrl.parsing.parse``, so only the answer text
after ``</think>`` travels, never the reasoning.

Per call (one GRPO step's completions on one rank):

1. Report rows are parsed (``ReportMetric``); answers or references of ``min_chars``
   characters or fewer (and a missing ``</think>`` when thinking was asked, which leaves
   no answer) get ``floor`` without a request, as in the paper (-3 for -RadCliQ).
2. The remaining (reference, answer) pairs are de-duplicated and split into one chunk per
   server (at most ``batch_size`` pairs each), sent in parallel; chunk k starts at server
   ``k`` (rotating every call), so the load spreads across servers.
3. A chunk that fails (connection refused or reset, timeout, HTTP 5xx or 429, a malformed
   answer) is resent to the next server after ``backoff * 2**attempt`` seconds (times a
   random factor in [0.5, 1.5), so ranks do not retry in lockstep), up to ``retries``
   retries. Scoring is idempotent and every value is put back by its row index, so a retry
   after a worker died mid-request neither loses nor duplicates a sample.
4. HTTP 4xx other than 429 (unknown metric, wrong token, text over the limit) is our
   mistake, not an outage: it raises ``RemoteScoringError`` at once with the server's message.

When every attempt of a chunk failed (the server(s) stay down), the policy is:

* ``fallback=None`` (default): raise ``RemoteScoringError``, which stops the training step
  loudly; nothing is trained on a made-up reward.
* ``fallback=<float>``: those rows get that value, the count is logged as a warning on the
  ``radrl.rewards.remote`` logger and added to ``self.fallbacks``, and under TRL each step logs
  their share as ``rewards/<name>/fallback_ratio``; choose the floor (the paper gives -3
  "when scoring fails") so an outage can only look like a bad answer.

Every server must report the same scorer versions; a server that differs (another labeler,
another BERTScore model) raises ``RemoteScoringError`` instead of mixing two rewards.

Before the trainer loads its model, ``preflight`` (``radrl.rewards.check_rewards``) asks each
server's ``GET /ready`` whether it serves the reward's metric and key, and raises when one
answers without it or failed to load it; a server not reachable yet is logged and left to the
first step.

Cache: the servers keep the (reference, answer) -> score LRU, shared by every rank that
reaches the same worker; ``cache_size`` here adds a per-process LRU (default off: sampled
completions rarely repeat across steps, and duplicates within a step are already sent once).

>>> from radrl.rewards import REWARDS
>>> reward = remote(REWARDS["report_clinical"], servers=["http://127.0.0.1:8765"])
>>> reward.__name__
'report_clinical'
>>> reward(["Moderate cardiomegaly. No pneumothorax."], task=["report"],
...        solution=["Moderate cardiomegaly. No pneumothorax."])  # doctest: +SKIP
[1.0]
"""

from __future__ import annotations

import logging
import math
import os
import random
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from radrl.parsing import Parsed
from radrl.rewards import MIN_ANSWER_CHARS, ReportMetric

__all__ = ["SERVERS_ENV", "TOKEN_ENV", "RemoteReportReward", "RemoteScoringError", "remote", "remote_rewards"]

log = logging.getLogger("radrl.rewards.remote")

SERVERS_ENV = "RADRL_REWARD_SERVERS"  # comma-separated base URLs, read when servers=None
TOKEN_ENV = "RADRL_REWARD_TOKEN"  # the bearer token, read at call time (never pickled)


class RemoteScoringError(RuntimeError):
    """The reward servers could not give a trustworthy score; the message says which server and the fix."""


class _Retryable(Exception):
    """One attempt failed in a way another attempt (or server) may not."""


class RemoteReportReward(ReportMetric):
    """``ReportMetric`` (same rows, floor, sign, numbers) with the metric scored on reward servers.

    Build one from the in-process reward with ``remote(REWARDS["report_radcliq"])``, or
    directly with ``ReportMetric``'s arguments plus: ``servers``: base URLs (default:
    ``$RADRL_REWARD_SERVERS``, comma-separated, read at call time); ``timeout``: seconds
    per request; ``retries``: further attempts per chunk; ``backoff``: first pause in
    seconds; ``fallback``: see the module docstring; ``batch_size``: pairs per request;
    ``cache_size``: client-side LRU entries (0: off).
    """

    def __init__(self, name: str, metric: str, key: str, sign: float = 1.0, floor: float = 0.0,
                 bounds: tuple[float, float] = (0.0, 1.0), min_chars: int = MIN_ANSWER_CHARS, *,
                 servers: Sequence[str] | str | None = None, timeout: float = 60.0, retries: int = 3,
                 backoff: float = 0.5, fallback: float | None = None, batch_size: int = 1024,
                 cache_size: int = 0) -> None:
        self.servers = [servers] if isinstance(servers, str) else (list(servers) if servers is not None else None)
        self.timeout, self.retries, self.backoff, self.fallback = timeout, retries, backoff, fallback
        self.batch_size, self.cache_size = batch_size, cache_size
        self.fallbacks = 0  # rows given the fallback value so far (in this process)
        self.failed_attempts = 0  # requests that failed and were retried or fell back (an outage shows here first)
        self.versions: dict[str, str] | None = None  # the scorer versions every server reported
        self._cache: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._turn = 0
        self._client: Any = None
        self._pool: ThreadPoolExecutor | None = None
        super().__init__(name, metric, key, sign=sign, floor=floor, bounds=bounds, min_chars=min_chars)

    def check(self) -> None:
        super().check()
        if self.retries < 0 or self.timeout <= 0 or self.backoff < 0 or self.batch_size < 1 or self.cache_size < 0:
            raise ValueError(f"reward {self.__name__}: need retries >= 0, timeout > 0, backoff >= 0, batch_size >= 1, "
                             f"cache_size >= 0; got {self.retries}, {self.timeout}, {self.backoff}, "
                             f"{self.batch_size}, {self.cache_size}")
        if self.fallback is not None and not (math.isfinite(self.fallback)
                                              and self.bounds[0] <= self.fallback <= self.bounds[1]):
            raise ValueError(f"reward {self.__name__}: fallback must be None or a finite number inside the reward's "
                             f"range {self.bounds}, got {self.fallback}; the floor ({self.floor}) is the usual choice")

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_client"] = state["_pool"] = None  # open sockets and threads do not pickle
        return state

    def __repr__(self) -> str:
        return (f"RemoteReportReward({self.__name__!r}, {self.metric!r}, {self.key!r}, sign={self.sign}, "
                f"floor={self.floor}, servers={self.servers}, fallback={self.fallback})")

    def preflight(self) -> None:
        """The scorer and its weights live on the servers, not here: ask each server's ``/ready`` (open, no
        token) whether it serves ``metric`` with the per-sample ``key``. A server that answers without it, or
        that failed to load its scorers, raises ``RemoteScoringError`` with the fix; one that cannot be reached
        (not started yet) is logged and left to the first step's retries and ``fallback`` policy."""
        import httpx

        for url in self._servers():
            try:
                r = httpx.get(f"{url}/ready", timeout=min(5.0, self.timeout))
                body = r.json()
            except (httpx.HTTPError, ValueError) as e:
                log.warning("%s: could not ask reward server %s whether it serves %s (%s: %s; not reachable or "
                            "not started yet); the first step will tell", self.__name__, url, self.metric,
                            type(e).__name__, e)
                continue
            if r.status_code == 503 and isinstance(body, dict) and body.get("error"):
                raise RemoteScoringError(f"{self.__name__}: reward server {url} could not load its scorers "
                                         f"({body['error']}); fix what it names and restart the server")
            scorers = body.get("scorers") if r.status_code == 200 and isinstance(body, dict) else None
            if not isinstance(scorers, dict):
                continue  # not a radrl reward server's /ready: /score will tell
            if self.key not in (scorers.get(self.metric) or {}).get("keys", ()):
                serves = {name: s.get("keys") for name, s in scorers.items()}
                raise RemoteScoringError(f"{self.__name__}: reward server {url} does not serve metric "
                                         f"{self.metric!r} with per-sample {self.key!r} (it serves {serves}); "
                                         f"restart it with `radrl reward-server --metrics {self.metric} ...`")

    def __call__(self, completions: Sequence[Any], log_metric: Callable[[str, float], None] | None = None,
                 **columns: Any) -> list[float | None]:
        """``ReportMetric``'s call; under TRL it also logs ``rewards/<name>/fallback_ratio``, the share of this
        call's report rows that got the fallback value (0 while the servers answer)."""
        before = self.fallbacks
        out = super().__call__(completions, log_metric=log_metric, **columns)
        rows = sum(v is not None for v in out)
        if log_metric is not None and rows:
            log_metric(f"rewards/{self.__name__}/fallback_ratio", (self.fallbacks - before) / rows)
        return out

    def score(self, parsed: list[Parsed], solutions: list[str]) -> list[float]:
        # per_sample gives NaN where the fallback applies; NaN never leaves this method
        values = super().score(parsed, solutions)
        self.fallbacks += sum(map(math.isnan, values))
        return [self.fallback if math.isnan(v) else v for v in values]  # type: ignore[misc]

    def per_sample(self, refs: list[str], hyps: list[str]) -> list[float]:
        return [math.nan if v is None else v for v in self.values(refs, hyps)]

    def values(self, refs: list[str], hyps: list[str]) -> list[float | None]:
        """``per_sample[key]`` for each pair from the servers; None where the fallback applies."""
        pairs = list(zip(refs, hyps))
        known = {}
        for p in pairs:
            if p in self._cache:
                known[p] = self._cache[p]
                self._cache.move_to_end(p)  # LRU: a hit is recently used
        todo = list(dict.fromkeys(p for p in pairs if p not in known))  # unique, in order
        if todo:
            servers = self._servers()
            per = -(-len(todo) // len(servers))  # ceil: one chunk per server when it fits
            size = min(self.batch_size, per)
            chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
            start, self._turn = self._turn, self._turn + 1
            self._http()  # made here, once, not by racing pool threads
            pool = self._pool or ThreadPoolExecutor(max(2, len(servers)), thread_name_prefix=self.__name__)
            self._pool = pool
            futures = [pool.submit(self._chunk, c, servers, start + k) for k, c in enumerate(chunks)]
            failed = 0
            for chunk, future in zip(chunks, futures):
                got = future.result()  # RemoteScoringError propagates: the step fails loudly
                if got is None:
                    failed += len(chunk)
                    continue
                for pair, value in zip(chunk, got):
                    known[pair] = value
                    if self.cache_size:
                        self._cache[pair] = value
                        if len(self._cache) > self.cache_size:
                            self._cache.popitem(last=False)
            if failed:
                log.warning("%s: reward servers %s down for %d unique pairs after %d retries; they get the "
                            "fallback reward %s (%d rows before this call in this process)", self.__name__, servers,
                            failed, self.retries, self.fallback, self.fallbacks)
        return [known.get(p) for p in pairs]

    def _servers(self) -> list[str]:
        servers = self.servers if self.servers is not None else [
            s.strip() for s in os.environ.get(SERVERS_ENV, "").split(",") if s.strip()]
        if not servers:
            raise RemoteScoringError(f"{self.__name__}: no reward server given; pass servers=[...] or set "
                                     f"{SERVERS_ENV}=http://host:8765[,http://host2:8765] (start them with "
                                     f"`radrl reward-server --metrics {self.metric}`)")
        return [s.rstrip("/") for s in servers]

    def _http(self):
        if self._client is None:
            import httpx

            self._client = httpx.Client(timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout)))
        return self._client

    def _chunk(self, chunk: list[tuple[str, str]], servers: list[str], start: int) -> list[float] | None:
        """Values for one chunk, trying servers in turn from ``start``; None when all attempts failed
        and a fallback is configured."""
        import httpx

        token = os.environ.get(TOKEN_ENV)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"metrics": [self.metric], "references": [r for r, _ in chunk], "predictions": [h for _, h in chunk]}
        errors = []
        for attempt in range(self.retries + 1):
            url = servers[(start + attempt) % len(servers)]
            try:
                try:
                    response = self._http().post(f"{url}/score", json=body, headers=headers)
                except httpx.TransportError as e:  # refused, reset mid-request, timed out
                    raise _Retryable(f"{type(e).__name__}: {e}") from e
                return self._parse(response, url, len(chunk))
            except _Retryable as e:
                self.failed_attempts += 1
                errors.append(f"{url}: {e}")
                if attempt < self.retries:
                    time.sleep(self.backoff * 2**attempt * random.uniform(0.5, 1.5))
        if self.fallback is None:
            raise RemoteScoringError(f"{self.__name__}: {len(chunk)} pairs could not be scored after "
                                     f"{self.retries + 1} attempts ({'; '.join(errors)}). Start or fix the reward "
                                     f"server(s) ({SERVERS_ENV}), or set fallback= to train on through outages "
                                     "with a logged fallback reward.")
        log.warning("%s: chunk of %d pairs failed on every attempt: %s", self.__name__, len(chunk), "; ".join(errors))
        return None

    def _parse(self, response, url: str, n: int) -> list[float]:
        if response.status_code == 429 or response.status_code >= 500:
            raise _Retryable(f"HTTP {response.status_code}: {response.text[:300]}")
        if response.status_code != 200:
            raise RemoteScoringError(f"{self.__name__}: {url}/score answered HTTP {response.status_code}: "
                                     f"{response.text[:500]} (a request the server refuses: check the metric name, "
                                     f"{TOKEN_ENV} and the server's limits)")
        try:
            result = response.json()["results"][self.metric]
            values = [float(v) for v in result["per_sample"][self.key]]
            versions = dict(result["versions"])
        except (ValueError, KeyError, TypeError) as e:
            raise _Retryable(f"malformed answer without per_sample[{self.key!r}] of {self.metric!r}: "
                             f"{type(e).__name__}: {e}; body starts {response.text[:200]!r}") from e
        if len(values) != n or not all(math.isfinite(v) for v in values):
            raise _Retryable(f"answer has {len(values)} values for {n} pairs or a non-finite value")
        if self.versions is None:
            self.versions = versions
        elif _without_paths(versions) != _without_paths(self.versions):
            raise RemoteScoringError(f"{self.__name__}: {url} scores {self.metric} with versions {versions}, another "
                                     f"server with {self.versions}; run the same scorers everywhere")
        return values


_PATH_RE = re.compile(r"[^\s(),;]*/[^\s(),;]*")  # a word with a slash: a folder, a file, a URL


def _without_paths(versions: dict[str, str]) -> dict[str, str]:
    """Versions with path-like words blanked: servers may keep the same weights in different
    folders (``bertscore_model``, ``radgraph_model``, ``chexbert_model`` name theirs); the
    package versions, method descriptions and weight fingerprints still have to agree.

    >>> _without_paths({"chexbert_model": "/srv/a/chexbert.pth (sha256:ab12 (9 bytes))"})
    {'chexbert_model': '<path> (sha256:ab12 (9 bytes))'}
    """
    return {k: _PATH_RE.sub("<path>", str(v)) for k, v in versions.items()}


def remote(reward: ReportMetric, **kwargs: Any) -> RemoteReportReward:
    """The same report reward (name, metric, key, sign, floor, range) scored on reward servers.

    >>> from radrl.rewards import REWARDS
    >>> r = remote(REWARDS["report_radcliq"], servers=["http://127.0.0.1:8765"], fallback=-3.0)
    >>> r.__name__, r.metric, r.sign, r.floor, r.fallback
    ('report_radcliq', 'radcliq', -1.0, -3.0, -3.0)
    """
    if not isinstance(reward, ReportMetric):
        raise TypeError(f"only report rewards over radrl.metrics (ReportMetric) can be served, not {reward!r}")
    return RemoteReportReward(reward.__name__, reward.metric, reward.key, sign=reward.sign, floor=reward.floor,
                              bounds=reward.bounds, min_chars=reward.min_chars, **kwargs)


def remote_rewards(funcs: Sequence[Any], **kwargs: Any) -> list[Any]:
    """``build_rewards``' callables with every report-metric reward moved to the reward servers;
    the others (grounding, format, length guard: cheap, no model) stay in the trainer.

    >>> from radrl.rewards import build_rewards
    >>> funcs, _ = build_rewards({"report_radcliq": 1.0, "report_length_guard": 0.5})
    >>> [type(f).__name__ for f in remote_rewards(funcs, servers=["http://127.0.0.1:8765"])]
    ['RemoteReportReward', 'LengthGuard']
    """
    return [remote(f, **kwargs) if isinstance(f, ReportMetric) else f for f in funcs]
