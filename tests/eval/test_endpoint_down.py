"""`radrl eval --endpoint` to a server that is down is the usual one-line error, at once (issue 14: a 38-line
traceback after every retry)."""

import socket
import time

import pytest

from radrl.cli.verbs import main as radrl


def _free_port() -> int:
    with socket.socket() as s:   # bound then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_eval_against_a_down_server_is_one_line(tmp_path, synth_data, capsys):
    url = f"http://127.0.0.1:{_free_port()}/v1"
    t0 = time.time()
    with pytest.raises(SystemExit) as e:
        radrl(["eval", "--model", "served", "--endpoint", url, "--data", str(synth_data["test"]),
               "--out", str(tmp_path / "ev"), "--tasks", "report", "--max-rows", "2"])
    assert e.value.code == 1 and time.time() - t0 < 20   # no retries with backoff against nothing
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith(f"radrl eval: error: no server answers at {url} (ConnectError")
    assert "vllm serve MODEL --port 8000" in err[0] and "or fix --endpoint" in err[0]
