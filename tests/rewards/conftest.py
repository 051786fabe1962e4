"""Reward-server fixtures: the real RadEval report pairs and servers started on loopback."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).resolve().parent
# scorers_for_tests.py is imported by the servers (PYTHONPATH) and by the tests for in-process values;
# pytest runs with --import-mode=importlib, which does not put test folders on sys.path.
sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def radeval_pairs(cxr_data) -> tuple[list[str], list[str]]:
    """The real (reference, generated) impression pairs of RadEval, one per line in two files."""
    folder = cxr_data / "reports"
    refs = (folder / "radeval_refs_chexpert_impression.txt").read_text().splitlines()
    hyps = (folder / "radeval_preds_chexpert_impression.txt").read_text().splitlines()
    assert len(refs) == len(hyps) >= 100, f"RadEval fixture files misaligned: {len(refs)} vs {len(hyps)} lines"
    return refs, hyps


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``radrl reward-server`` in its own process group on a free loopback port."""

    def __init__(self, *args: str, workers: int = 1, timeout: float = 120.0, env: dict | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
                    **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "radrl.cli", "reward-server", "--port", str(self.port),
                                      "--workers", str(workers), "--log-level", "warning", *args],
                                     env=full_env, start_new_session=True)
        try:
            self.wait_ready(timeout, workers)
        except BaseException:
            self.stop()  # never leave a server behind when it did not come up
            raise

    def wait_ready(self, timeout: float, workers: int = 1) -> None:
        """Until /ready answers 200 (each worker loads on its own; ask until we have seen ``workers`` ready pids)."""
        deadline, seen = time.monotonic() + timeout, set()
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"reward server exited with {self.proc.returncode}")
            try:
                r = httpx.get(f"{self.url}/ready", timeout=2, headers={"Connection": "close"})
                if r.status_code == 200:
                    seen.add(r.json()["pid"])
                    if len(seen) >= workers:
                        return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"reward server on {self.url} not ready within {timeout} s (ready workers: {seen})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # our own process group: the server and its workers
            self.proc.wait(10)


@pytest.fixture
def start_server():
    started: list[Server] = []

    def start(*args: str, **kw) -> Server:
        started.append(Server(*args, **kw))
        return started[-1]

    yield start
    for s in started:
        s.stop()
