"""The OpenAI-compatible client against real HTTP servers on loopback: a flaky stub for retries and timeouts,
and the loopback server serving the tiny Qwen3-VL (evaluated end to end through `evaluate`)."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from radrl.models.endpoint import (
    ChatClient,
    EndpointError,
    image_data_url,
    to_openai_messages,
)

OK = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "fine"}}]}


class Stub:
    """A stdlib HTTP server on 127.0.0.1 that answers from a script: [(status, body, delay_s), ...], last repeats."""

    def __init__(self, script):
        self.script, self.bodies = script, []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                stub.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                status, body, delay = stub.script[min(len(stub.bodies), len(stub.script)) - 1]
                time.sleep(delay)
                payload = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# (case, server script, client timeout, expected answer or error text, requests the server must see)
CASES = [
    ("answers at once", [(200, OK, 0)], 5.0, "fine", 1),
    ("503 twice, then answers: retried with backoff", [(503, {}, 0), (503, {}, 0), (200, OK, 0)], 5.0, "fine", 3),
    ("429 rate limit, then answers", [(429, {}, 0), (200, OK, 0)], 5.0, "fine", 2),
    ("400 bad request: no retry, the server's message shown", [(400, {"error": "bad model"}, 0)], 5.0,
     "bad model", 1),
    ("always 500: gives up after max_retries + 1 attempts", [(500, {}, 0)], 5.0, "after 3 attempts", 3),
    ("slower than the timeout: retried, then an error", [(200, OK, 1.0)], 0.2, "ReadTimeout", 3),
    ("200 without choices: a clear error", [(200, {"oops": 1}, 0)], 5.0, "no choices", 1),
]


@pytest.mark.parametrize("case,script,timeout,expect,n_requests", CASES, ids=[c[0] for c in CASES])
def test_client_retries_backoff_and_timeouts(case, script, timeout, expect, n_requests):
    stub = Stub(script)
    try:
        client = ChatClient(stub.url, "m", api_key="k", timeout=timeout, max_retries=2, backoff=0.01)
        messages = [{"role": "user", "content": "hi"}]
        if expect == "fine":
            assert client.complete(messages, max_tokens=4) == "fine"
        else:
            with pytest.raises(EndpointError, match=expect):
                client.complete(messages, max_tokens=4)
        assert len(stub.bodies) == n_requests
        assert stub.bodies[0]["model"] == "m" and stub.bodies[0]["max_tokens"] == 4
    finally:
        stub.close()


def test_images_travel_as_png_data_urls_and_results_keep_input_order():
    img = Image.new("RGB", (3, 2), (10, 20, 30))
    msgs = to_openai_messages([{"role": "user", "content": [{"type": "image", "image": img},
                                                           {"type": "text", "text": "q"}]}])
    url = msgs[0]["content"][0]["image_url"]["url"]
    assert url == image_data_url(img) and url.startswith("data:image/png;base64,")
    from radrl.models.endpoint import _decode_image

    assert _decode_image(url).getpixel((2, 1)) == (10, 20, 30)  # lossless round trip
    stub = Stub([(200, OK, 0.05)])
    try:
        seen = []
        client = ChatClient(stub.url, "m", concurrency=4, backoff=0.01)
        out = client.complete_many([[{"role": "user", "content": str(i)}] for i in range(6)], max_tokens=2,
                                   on_result=lambda i, t: seen.append(i))
        assert out == ["fine"] * 6 and sorted(seen) == list(range(6))
    finally:
        stub.close()


def test_a_failing_request_stops_the_rest_and_keeps_finished_results():
    # first reply 400 (a caller error, not retried), the rest slow OKs: queued requests are cancelled instead of
    # sent and paid for, finished ones reached on_result, and the error surfaces
    stub = Stub([(400, {"error": "image too large"}, 0.3)] + [(200, OK, 0.3)] * 19)
    try:
        client = ChatClient(stub.url, "m", api_key="k", max_retries=0, concurrency=2)
        done = []
        with pytest.raises(EndpointError, match="image too large"):
            client.complete_many([[{"role": "user", "content": str(i)}] for i in range(20)], max_tokens=2,
                                 on_result=lambda i, text: done.append(i))
        time.sleep(0.5)  # let the requests already in flight finish
        assert len(stub.bodies) <= 4 and len(done) <= 1
    finally:
        stub.close()


def test_conversations_may_be_built_lazily():
    # a callable is called in the worker, when its request goes out (images decoded then, not all up front)
    stub = Stub([(200, OK, 0)])
    try:
        built = []

        def make(i):
            def build():
                built.append(i)
                return [{"role": "user", "content": str(i)}]
            return build

        client = ChatClient(stub.url, "m", api_key="k", concurrency=2)
        conversations = [make(i) for i in range(5)]
        assert built == []
        assert client.complete_many(conversations, max_tokens=2) == ["fine"] * 5
        assert sorted(built) == list(range(5)) and sorted(b["messages"][0]["content"] for b in stub.bodies) == [
            "0", "1", "2", "3", "4"]
    finally:
        stub.close()


def test_bad_url_is_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"http://127.0.0.1:8000/v1"):
        ChatClient("localhost:8000", "m")


@pytest.mark.slow
def test_loopback_server_matches_local_generation_and_evaluates(tiny_model_dir, synth_data, tmp_path):
    """The tiny model served over HTTP gives the same greedy text as local generation, and `evaluate`
    through the endpoint gives the same metrics as `evaluate` on the checkpoint."""
    from radrl.data.instructions import build_conversations
    from radrl.data.schema import read_jsonl
    from radrl.eval.generate import generate, load_any, messages_with_images
    from radrl.eval.run import evaluate
    from radrl.models.endpoint import LocalServer

    rows = build_conversations(read_jsonl(synth_data["test"]), seed=1)[:6]
    model, processor = load_any(str(tiny_model_dir), device="cpu", loader="generic")  # the generic HF VLM path
    assert type(model).__name__ == "Qwen3VLForConditionalGeneration"
    local = generate(model, processor, rows, batch_size=6, max_new_tokens=12, progress=False)
    with LocalServer(str(tiny_model_dir), served_name="tiny") as server:
        client = ChatClient(server.base_url, "tiny", concurrency=3)
        assert client.models() == ["tiny"]
        assert client.complete_many([messages_with_images(r) for r in rows], max_tokens=12) == local
        with pytest.raises(EndpointError, match="400"):  # a broken image is the caller's error, not retried
            image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,xx"}}
            client._request("POST", "/chat/completions",
                            {"model": "tiny", "messages": [{"role": "user", "content": [image]}]})
        # The budget the server's processor applies (the checkpoint's 64 x 64): through an endpoint radrl can
        # only shrink images before sending them, so the run's budget must not exceed the server's.
        via_http = evaluate("tiny", str(synth_data["test"]), str(tmp_path / "http"), endpoint=server.base_url,
                            max_new_tokens={"report": 12, "grounding": 12}, max_rows=6, concurrency=3, progress=False,
                            max_pixels=64 * 64)
    direct = evaluate(str(tiny_model_dir), str(synth_data["test"]), str(tmp_path / "hf"), device="cpu",
                      max_new_tokens={"report": 12, "grounding": 12}, max_rows=6, progress=False, max_pixels=64 * 64)
    assert via_http == direct
    manifest = json.loads((tmp_path / "http" / "manifest.json").read_text())
    assert manifest["model"]["engine"] == "openai" and manifest["model"]["endpoint"] == server.base_url
    # through an endpoint radrl only shrinks images; the manifest says so, and radrl compare tells it apart
    assert manifest["comparable"]["pixels"]["applied_by"].startswith("client")
    assert manifest["comparable"]["tasks"]["report"]["mean_image_tokens"] is None


def test_a_200_that_is_not_json_is_a_clear_error():
    """A web server that is not an API (an HTML page with status 200)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", "6")
            self.end_headers()
            self.wfile.write(b"<html>")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        client = ChatClient(f"http://127.0.0.1:{server.server_address[1]}/v1", "m", backoff=0.01)
        with pytest.raises(EndpointError, match="not JSON"):
            client.complete([{"role": "user", "content": "x"}])
    finally:
        server.shutdown()
        server.server_close()


# (case, make_backend keyword arguments, error type, text of the message)
BACKEND_ERRORS = [
    ("openai engine without a URL", {"engine": "openai"}, ValueError, "needs --endpoint"),
    ("unknown engine", {"engine": "tgi"}, ValueError, "choose hf, vllm or openai"),
    ("unknown loader", {"engine": "hf", "loader": "magic"}, ValueError, "choose auto, qwen3vl or generic"),
    # an in-process engine and a served model at once: refused, not silently sent to the endpoint
    ("vllm engine with an endpoint", {"engine": "vllm", "endpoint": "http://127.0.0.1:9/v1"}, ValueError,
     "Give one of them"),
]


@pytest.mark.parametrize("case,kwargs,error,text", BACKEND_ERRORS, ids=[c[0] for c in BACKEND_ERRORS])
def test_backend_choice_errors_say_the_fix(case, kwargs, error, text):
    from radrl.eval.generate import make_backend

    with pytest.raises(error, match=text):
        make_backend("some-model", **kwargs)


def test_vllm_engine_without_vllm_says_how_to_get_it():
    import importlib.util

    from radrl.eval.generate import make_backend

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here; the import guard is for machines without it")
    with pytest.raises(ImportError, match="pip install vllm"):
        make_backend("some-model", engine="vllm")
