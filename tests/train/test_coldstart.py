"""radrl coldstart: trace validation, reward filter, mixing, a real loopback HTTP teacher with canned
replies (retries, resume after a cut-off line), the tiny model as a local teacher, and SFT on the result."""

import json
import re
import socket
import threading
import time
from contextlib import contextmanager

import pytest

from radrl.data.instructions import THINK_SUFFIX
from radrl.train.coldstart import build_coldstart, read_traces, validate_trace

GOOD_THINK = "Technical quality is adequate. No devices. The cardiac silhouette is enlarged."


@pytest.mark.parametrize("text, reason", [
    (f"<think>{GOOD_THINK}</think>Cardiomegaly.", ""),                      # the expected shape
    (f"  <think>\n{GOOD_THINK}\n</think>\n\nCardiomegaly.  ", ""),           # whitespace around is fine
    ("Cardiomegaly.", "no_think"),                                           # no reasoning at all
    (f"<think>{GOOD_THINK}", "no_think"),                                    # never closed
    (f"<think>{GOOD_THINK}</think><think>more</think>Cardiomegaly.", "several_think"),
    (f"Sure! <think>{GOOD_THINK}</think>Cardiomegaly.", "text_outside_think"),  # chatter before the block
    ("<think>ok</think>Cardiomegaly.", "short_think"),                      # a token gesture of reasoning
    (f"<think>{GOOD_THINK}</think>   ", "empty_answer"),                     # reasoning, then nothing
    (f"<think>The ground truth says cardiomegaly. {GOOD_THINK}</think>Cardiomegaly.", "leak"),
    (f"<think>{GOOD_THINK} The reference says so.</think>Cardiomegaly.", "leak"),
    (f"<think>{GOOD_THINK} This matches the provided answer.</think>Cardiomegaly.", "leak"),
    (f"<think>{GOOD_THINK} As given, the heart is big.</think>Cardiomegaly.", "leak"),
    (f"<think>{GOOD_THINK}</think>Cardiomegaly, consistent with the ground-truth.", "leak"),  # leak in the answer
    (f"<think>{GOOD_THINK} I was told it is cardiomegaly.</think>Cardiomegaly.", "leak"),
    (f"<think>{GOOD_THINK} Reference lines: none.</think>Cardiomegaly.", ""),  # 'reference' alone is not a leak
])
def test_validate_trace(text, reason):
    assert validate_trace(text).reason == reason


def _rows():
    """Two report rows and one grounding row in radrl's conversation format."""
    def row(i, task, solution):
        return {"id": f"s{i}-{task}", "task": task, "solution": solution, "thinking": False, "images": ["/x.png"],
                "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": f"Req {i}."}]}],
                "completion": [{"role": "assistant", "content": [{"type": "text", "text": solution}]}]}
    return [row(0, "report", "Moderate cardiomegaly. No pneumothorax."), row(1, "report", "No acute findings."),
            row(2, "grounding", "Cardiomegaly at [0.38, 0.47, 0.76, 0.62]")]


def test_build_coldstart_mixes_suffixes_and_filters():
    rows = _rows()
    traces = {
        "s0-report": {"trace": f"<think>{GOOD_THINK}</think>Moderate cardiomegaly. No pneumothorax."},
        "s1-report": {"trace": "No acute findings."},  # no think block: rejected
        "s2-grounding": {"trace": f"<think>{GOOD_THINK}</think>Cardiomegaly at [0.0, 0.0, 0.05, 0.05]"},  # wrong box
        "gone-report": {"trace": "..."},  # a row no longer in the data
    }
    mixed, summary = build_coldstart(rows, traces, direct_ratio=1.0)
    assert summary["accepted"] == 2 and summary["rejected"] == {"no_think": 1, "not_in_data": 1}
    thinking = [r for r in mixed if r["thinking"]]
    direct = [r for r in mixed if not r["thinking"]]
    assert len(thinking) == 2 and len(direct) == 2  # one direct row per accepted trace
    for r in thinking:
        assert r["id"].endswith("-think") and r["prompt"][0]["content"][1]["text"].endswith(THINK_SUFFIX)
        assert re.fullmatch(r"<think>\n.+\n</think>\n\n.+", r["completion"][0]["content"][0]["text"], re.DOTALL)
    for r in direct:  # the direct rows are the plain request and the reference answer, untouched
        assert not r["prompt"][0]["content"][1]["text"].endswith(THINK_SUFFIX)
        assert r["completion"][0]["content"][0]["text"] == r["solution"]
    # with the reward filter, the grounding trace whose box misses is dropped; the correct report stays
    _, filtered = build_coldstart(rows, traces, direct_ratio=0.0, min_reward=0.5)
    assert filtered["accepted"] == 1 and filtered["rejected"]["low_reward"] == 1 and filtered["direct"] == 0


# ---- a canned teacher over real HTTP on loopback ----------------------------------------------------------

def _canned_reply(prompt: str) -> str:
    """What the canned teacher answers: a good trace, except a leak for reports whose answer length is
    of even length and a missed box for every grounding request (so the reward filter has work)."""
    request = re.search(r'request about the image: "(.*?)"', prompt).group(1)
    solution = re.search(r"The correct final answer is:\n(.*?)\n\nWrite", prompt, re.DOTALL).group(1)
    if " at [" in solution:
        return f"<think>{GOOD_THINK} Looking at {request}</think>{solution.split(' at [')[0]} at [0.0, 0.0, 0.02, 0.02]"
    if len(solution) % 2 == 0:
        return f"<think>The ground truth says: {solution}</think>{solution}"
    return f"<think>{GOOD_THINK}</think>{solution}"


@contextmanager
def canned_teacher():
    """An OpenAI chat-completions server (FastAPI + uvicorn on 127.0.0.1, free port) with canned replies.
    The very first request gets a 503 with Retry-After: 0, so the client's retry path runs."""
    import uvicorn
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import JSONResponse

    app, seen = FastAPI(), []

    @app.get("/v1/models")
    def models():
        return {"object": "list", "data": [{"id": "canned-teacher", "object": "model"}]}

    @app.post("/v1/chat/completions")
    def chat(body: dict):
        seen.append(body)
        if len(seen) == 1:
            return JSONResponse({"error": "warming up"}, status_code=503, headers={"Retry-After": "0"})
        parts = body["messages"][0]["content"]
        if not parts[0]["image_url"]["url"].startswith("data:image/png;base64,"):
            raise HTTPException(400, "the image must come first, as a PNG data URL")
        text = _canned_reply(parts[1]["text"])
        return {"id": "x", "object": "chat.completion", "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1", seen
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_endpoint_teacher_end_to_end_with_retry_and_resume(synth_data, tmp_path):
    from radrl.cli.coldstart import main
    from radrl.data.instructions import build_conversations
    from radrl.data.schema import read_jsonl

    n = 12
    rows = build_conversations(read_jsonl(synth_data["train"]), seed=0)[:n]
    leaks = sum(r["task"] == "report" and len(r["solution"]) % 2 == 0 for r in rows)
    grounding = sum(r["task"] == "grounding" for r in rows)
    out = tmp_path / "cs"
    with canned_teacher() as (url, seen):
        argv = ["--data", str(synth_data["train"]), "--out", str(out), "--endpoint", url, "--max_rows", str(n),
                "--concurrency", "4", "--min_reward", "0.5", "--seed", "0"]
        summary = main(argv)
        assert len(seen) == n + 1  # every row once, plus the retried 503
        assert seen[1]["model"] == "canned-teacher"  # the first model the endpoint lists
        assert seen[1]["temperature"] == 0.7
        assert summary["generated"] == n and summary["failed"] == 0
        assert summary["rejected"] == {k: v for k, v in (("leak", leaks), ("low_reward", grounding)) if v}
        assert leaks > 0 and summary["accepted"] == n - leaks - grounding > 0  # every path taken

        # a kill mid-write: two rows lost and a half-written line; the rerun asks for exactly those two
        traces = (out / "traces.jsonl").read_text().splitlines(keepends=True)
        (out / "traces.jsonl").write_text("".join(traces[:-2]) + traces[-2][:15])
        again = main(argv)
        assert len(seen) == n + 1 + 2
        assert again["resumed"] == n - 2 and again["generated"] == 2
        assert len(read_traces(out / "traces.jsonl")) == n
        assert {k: again[k] for k in ("accepted", "rejected", "coldstart_rows")} == \
               {k: summary[k] for k in ("accepted", "rejected", "coldstart_rows")}

    written = [json.loads(line) for line in (out / "coldstart.jsonl").read_text().splitlines()]
    assert len(written) == summary["coldstart_rows"] == 2 * summary["accepted"]
    assert all("ground truth" not in json.dumps(r).lower() for r in written)


@pytest.mark.slow
def test_tiny_model_as_local_teacher_then_sft_on_the_result(tiny_model_dir, synth_data, tmp_path):
    """The real local path: the tiny model is served on loopback and writes (garbage) traces, which
    validation rejects and counts; then SFT trains one step on a cold-start file with thinking rows."""
    from radrl.cli.coldstart import main
    from radrl.cli.sft import main as sft

    summary = main(["--data", str(synth_data["train"]), "--out", str(tmp_path / "local"), "--teacher",
                    str(tiny_model_dir), "--max_rows", "4", "--max_tokens", "8", "--concurrency", "4"])
    assert summary["generated"] == 4 and summary["traces"] == 4
    assert summary["accepted"] + sum(summary["rejected"].values()) == 4
    assert len(read_traces(tmp_path / "local" / "traces.jsonl")) == 4

    with canned_teacher() as (url, _):
        main(["--data", str(synth_data["train"]), "--out", str(tmp_path / "cs"), "--endpoint", url,
              "--max_rows", "8", "--concurrency", "4"])
    sft(["--model_name_or_path", str(tiny_model_dir), "--train_data", str(tmp_path / "cs" / "coldstart.jsonl"),
         "--output_dir", str(tmp_path / "sft"), "--max_steps", "1", "--per_device_train_batch_size", "4",
         "--bf16", "false", "--report_to", "none", "--activation_checkpointing", "false", "--max_pixels", "4096",
         "--save_strategy", "no", "--logging_steps", "1"])
    history = json.loads((tmp_path / "sft" / "log_history.json").read_text())
    assert any("loss" in h for h in history)


def test_thinking_rows_train_on_the_think_text(tiny_model_dir, synth_data, tmp_path):
    """Loss covers '<think>...</think>' and the answer of a cold-start row, not its ' /think' request."""
    from trl import TrlParser

    from radrl.data.instructions import build_conversations
    from radrl.data.schema import read_jsonl
    from radrl.train.sft import RadrlSFTConfig, build_trainer

    rows = build_conversations(read_jsonl(synth_data["train"]), tasks=["report"])[:4]
    traces = {r["id"]: {"trace": f"<think>{GOOD_THINK}</think>{r['solution']}"} for r in rows}
    mixed, _ = build_coldstart(rows, traces, direct_ratio=0.0)
    path = tmp_path / "cs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in mixed))
    (cfg,) = TrlParser((RadrlSFTConfig,)).parse_args_and_config(
        ["--model_name_or_path", str(tiny_model_dir), "--train_data", str(path), "--output_dir", str(tmp_path),
         "--per_device_train_batch_size", "4", "--bf16", "false", "--report_to", "none", "--max_pixels", "4096",
         "--activation_checkpointing", "false"])
    trainer, processor = build_trainer(cfg)
    batch = next(iter(trainer.get_train_dataloader()))
    tok = processor.tokenizer
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        trained, masked = tok.decode(ids[labels != -100]), tok.decode(ids[labels == -100])
        # exactly the reasoning block, the answer and the end of the turn are trained ...
        assert re.fullmatch(rf"<think>\n{GOOD_THINK}\n</think>\n\n[^<]+<\|im_end\|>\n?", trained), trained
        assert "/think<|im_end|>" in masked  # ... and the request, which ends in ' /think', is not


def test_bad_conversation_file_names_the_line(tiny_model_dir, tmp_path):
    from radrl.train.common import read_conversations

    path = tmp_path / "cs.jsonl"
    path.write_text(json.dumps({"id": "a", "prompt": [], "completion": []}) + "\n")
    with pytest.raises(ValueError, match=r"cs.jsonl line 1: conversation row lacks \['images', 'task'"):
        read_conversations(str(path))


@pytest.mark.parametrize("teachers", [
    [],                                                            # no teacher at all
    ["--teacher", "runs/demo/sft", "--endpoint", "http://x/v1"],  # two teachers
])
def test_coldstart_needs_exactly_one_teacher(synth_data, tmp_path, capsys, teachers):
    from radrl.cli.coldstart import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--data", str(synth_data["train"]), "--out", str(tmp_path), *teachers])
    assert "give exactly one teacher: --teacher PATH (local checkpoint) or --endpoint URL" in capsys.readouterr().err


def test_reward_filter_uses_the_chosen_task_reward():
    """report_rouge_l instead of the default report_clinical: a clinically equivalent but reworded answer passes
    the clinical filter and fails a strict lexical one."""
    rows = _rows()[:1]  # "Moderate cardiomegaly. No pneumothorax."
    traces = {"s0-report": {"trace": f"<think>{GOOD_THINK}</think>No pneumothorax is seen. Heart moderately "
                                     "enlarged, consistent with moderate cardiomegaly."}}
    _, clinical = build_coldstart(rows, traces, min_reward=0.9)
    _, lexical = build_coldstart(rows, traces, min_reward=0.9, filter_rewards={"report": "report_rouge_l"})
    assert clinical["accepted"] == 1 and lexical["rejected"] == {"low_reward": 1}


def test_reward_filter_scores_each_task_in_one_call(monkeypatch):
    """Report metrics are batch metrics (a model per call): the filter calls each task's reward once, with every
    valid trace of that task, not once per trace."""
    import radrl.rewards

    calls = []

    def counted(name):
        reward = radrl.rewards.REWARDS[name]

        def spy(completions, **columns):
            calls.append((name, len(completions)))
            return reward(completions, **columns)
        return spy

    for name in ("report_clinical", "grounding_soft_f1"):
        monkeypatch.setitem(radrl.rewards.REWARDS, name, counted(name))
    rows = _rows()
    traces = {r["id"]: {"trace": f"<think>{GOOD_THINK}</think>{r['solution']}"} for r in rows}
    _, summary = build_coldstart(rows, traces, direct_ratio=0.0, min_reward=0.5)
    assert sorted(calls) == [("grounding_soft_f1", 1), ("report_clinical", 2)]
    assert summary["accepted"] == 3


@pytest.mark.parametrize("names, message", [
    (["nope"], "unknown reward"),                                  # a typo
    (["report_rouge_l", "report_clinical"], "one task reward per task"),  # two rewards for one task
])
def test_filter_rewards_are_checked(synth_data, tmp_path, names, message, capsys):
    from radrl.cli.coldstart import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--data", str(synth_data["train"]), "--out", str(tmp_path), "--endpoint", "http://x/v1",
                    "--filter_rewards", *names])
    assert message in capsys.readouterr().err


def test_reward_filter_scores_against_the_full_precision_boxes():
    # A small nodule: the trace gives its exact box, which overlaps the 2-decimal text box only partly (IoU 0.2);
    # the filter scores against the row's ref_boxes, as the GRPO reward and evaluation do, and keeps the trace.
    row = {"id": "n-grounding", "task": "grounding", "solution": "Nodule/Mass at [0.12, 0.30, 0.13, 0.31]",
           "ref_boxes": [[0.1249, 0.3049, 0.1301, 0.3101]], "thinking": False, "images": ["/x.png"],
           "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Locate it."}]}],
           "completion": [{"role": "assistant", "content": [{"type": "text", "text": "x"}]}]}
    traces = {"n-grounding": {"trace": f"<think>{GOOD_THINK}</think>Nodule/Mass at [0.1249, 0.3049, 0.1301, 0.3101]"}}
    _, summary = build_coldstart([row], traces, direct_ratio=0.0, min_reward=0.9)
    assert summary["accepted"] == 1
    _, rounded = build_coldstart([{**row, "ref_boxes": None}], traces, direct_ratio=0.0, min_reward=0.9)
    assert rounded["rejected"] == {"low_reward": 1}
