"""Reward preflights: a missing scorer stops a run, never becomes a floor value."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from radrl.metrics.bertscore import BertScoreModelMissing
from radrl.metrics.radgraph import RadGraphModelMissing
from radrl.rewards import REWARDS, build_rewards, check_rewards
from radrl.rewards.remote import RemoteScoringError, remote

REF = "Moderate cardiomegaly. No pneumothorax. Small left pleural effusion."


@pytest.fixture
def no_weights(monkeypatch):
    for var in ("RADRL_BERTSCORE_MODEL", "RADRL_RADGRAPH_MODEL", "RADRL_RADGRAPH_ENCODER", "RADRL_CHEXBERT_MODEL"):
        monkeypatch.delenv(var, raising=False)


def test_all_floored_rows_still_need_the_scorer(no_weights):
    # every answer is too short to score, so the scorer is never called; before the preflight this paid -3
    # to every rollout and training went on without RadCliQ's weights
    with pytest.raises(RadGraphModelMissing, match=r"reward report_radcliq \(metric 'radcliq'\): .*hf download"):
        REWARDS["report_radcliq"](["", "Clear", "<think>never closed"], task=["report"] * 3,
                                  solution=[REF] * 3, thinking=[False, False, True])


def test_check_rewards_names_the_reward(no_weights):
    funcs, _ = build_rewards({"grounding_soft_f1": 1.0, "report_bertscore": 1.0})
    with pytest.raises(BertScoreModelMissing, match=r"reward report_bertscore .* RADRL_BERTSCORE_MODEL unset"):
        check_rewards(funcs)
    check_rewards([*build_rewards({"report_clinical": 1.0})[0], lambda completions, **kw: [None]])  # offline


class _Ready(BaseHTTPRequestHandler):
    """A reward server's GET /ready, answering what the test put in ``server.reply``."""

    def do_GET(self):
        status, body = self.server.reply
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def ready_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ready)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


# (case, /ready status, /ready body, words of the error or None)
READY = [
    # serves the metric with the reward's key: fine, whatever the local weights
    ("serves_it", 200, {"ready": True, "scorers": {"radcliq": {"keys": ["bertscore", "radcliq_v1"]}}}, None),
    # started with other metrics: refused before training, with the command that fixes it
    ("other_metric", 200, {"ready": True, "scorers": {"chexpert": {"keys": ["clinical"]}}},
     "does not serve metric 'radcliq' with per-sample 'radcliq_v1'.*--metrics radcliq"),
    # its scorer failed to load (e.g. the weights are missing on the server): its error is passed on
    ("load_failed", 503, {"ready": False, "error": "RadGraphModelMissing: no RadGraph-XL folder given"},
     "could not load its scorers .RadGraphModelMissing"),
    # something else answers /ready (a proxy's 404): left to the first step
    ("not_ours", 404, {"detail": "Not Found"}, None),
]


@pytest.mark.parametrize("case,status,body,words", READY, ids=[r[0] for r in READY])
def test_remote_preflight_asks_the_servers(no_weights, ready_server, case, status, body, words):
    ready_server.reply = (status, body)
    reward = remote(REWARDS["report_radcliq"], servers=[f"http://127.0.0.1:{ready_server.server_port}"])
    if words is None:
        reward.preflight()  # no local weights needed: the servers score
    else:
        with pytest.raises(RemoteScoringError, match=words):
            reward.preflight()


def test_remote_preflight_leaves_an_unreachable_server_to_the_first_step(caplog):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    remote(REWARDS["report_radcliq"], servers=[dead]).preflight()  # may still be starting
    assert "not reachable or not started yet" in caplog.text
