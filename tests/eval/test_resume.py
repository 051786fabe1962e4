"""Resumable predictions JSONL: what a rerun keeps, regenerates or refuses; and a real kill of `radrl eval`."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from radrl.eval.generate import generate_to_jsonl, read_predictions


def _row(i, task="report", request="Write the report.", solution="No effusion."):
    return {"id": f"s{i}", "task": task, "solution": solution, "images": [],
            "prompt": [{"role": "user", "content": [{"type": "text", "text": request}]}]}


class Recorder:
    """A backend that answers 'gen <id>' and remembers which rows it was asked for."""

    def __init__(self):
        self.asked = []

    def __call__(self, rows, limits, on_result):
        for i, row in enumerate(rows):
            self.asked.append(row["id"])
            on_result(i, f"gen {row['id']}")


def _line(i, completion="old", request="Write the report.", solution="No effusion."):
    return json.dumps({"id": f"s{i}", "task": "report", "request": request, "solution": solution,
                       "completion": completion})


# (case, existing file content, rows asked for, rows the backend must generate or the error it raises)
CASES = [
    ("fresh file: every row generated", None, 3, ["s0", "s1", "s2"]),
    ("two rows done: only the third generated", _line(0) + "\n" + _line(1) + "\n", 3, ["s2"]),
    ("kill mid-write: the half line is dropped and its row regenerated",
     _line(0) + "\n" + _line(1)[:20], 3, ["s1", "s2"]),
    ("all done: the backend is not called", "".join(_line(i) + "\n" for i in range(3)), 3, []),
    ("same row twice in the file: refused", _line(0) + "\n" + _line(0) + "\n", 3, "two lines for"),
    ("a line made for another request: refused", _line(0, request="Other.") + "\n", 3, "another request"),
    ("a line for a row outside this evaluation: refused", _line(7) + "\n", 3, "not in this evaluation"),
    ("a corrupt complete line: refused with the line number", _line(0) + "\n{oops\n", 3, "predictions.jsonl:2"),
]


@pytest.mark.parametrize("case,existing,n,expect", CASES, ids=[c[0] for c in CASES])
def test_generate_to_jsonl_resume_rules(tmp_path, case, existing, n, expect):
    path = tmp_path / "predictions.jsonl"
    if existing is not None:
        path.write_text(existing)
    rows = [_row(i) for i in range(n)]
    backend = Recorder()
    if isinstance(expect, str):
        with pytest.raises(ValueError, match=expect):
            generate_to_jsonl(backend, rows, path)
        assert backend.asked == []
        return
    counts = generate_to_jsonl(backend, rows, path)
    assert backend.asked == expect
    assert counts == {"resumed": n - len(expect), "generated": len(expect)}
    lines = read_predictions(path)
    assert sorted(line["id"] for line in lines) == [f"s{i}" for i in range(n)]  # each row once
    kept = {line["id"]: line["completion"] for line in lines}
    assert all(kept[i] == f"gen {i}" for i in expect)  # new rows hold the new completions
    assert all(kept[f"s{i}"] == "old" for i in range(n) if f"s{i}" not in expect)  # done rows untouched


@pytest.mark.slow
def test_killed_eval_resumes_without_recomputing_or_duplicating(tiny_model_dir, synth_data, tmp_path):
    from radrl.eval.run import evaluate

    out = tmp_path / "run"
    pred = out / "predictions.jsonl"
    args = ["--model", str(tiny_model_dir), "--data", str(synth_data["test"]), "--out", str(out), "--device", "cpu",
            "--batch-size", "1", "--max-new-tokens-report", "24", "--max-new-tokens-grounding", "24"]
    proc = subprocess.Popen([sys.executable, "-m", "radrl.cli", "eval", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "TQDM_DISABLE": "1"})
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if pred.exists() and pred.read_text().count("\n") >= 2:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"eval ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    before = read_predictions(pred)
    total = 18  # 8 report rows + 10 grounding rows in the synthetic test split
    assert 2 <= len(before) < total, "the kill must land mid-evaluation"

    # Batch size is not a decoding setting (left padding keeps greedy outputs), so the rerun may batch.
    evaluate(str(tiny_model_dir), str(synth_data["test"]), str(out), device="cpu", batch_size=8,
             max_new_tokens={"report": 24, "grounding": 24}, progress=False)
    after = read_predictions(pred)
    keys = [(p["task"], p["id"]) for p in after]
    assert len(keys) == len(set(keys)) == total  # no duplicates, nothing missing
    by_key = {(p["task"], p["id"]): p for p in after}
    assert all(by_key[(p["task"], p["id"])] == p for p in before)  # rows done before the kill were kept as they were
    run = json.loads((out / "manifest.json").read_text())["generation_runs"][-1]
    assert run["resumed"] == len(before) and run["generated"] == total - len(before)  # nothing recomputed



_MANIFEST = {"model": {"id": "m", "engine": "hf", "endpoint": None, "loader": "auto", "files": {"w": [1, "t0"]}},
             "decoding": {"temperature": 0.0}, "data": {"sha256": "abc", "tasks": ["report"], "prompt_seed": 1},
             "comparable": {"prompt_scheme": "radrl-requests-3", "precision": "float32"},
             "generation_runs": [{"generated": 3}]}

# (case, change to the new settings, expected: earlier runs kept, [] after a restart, or the error text)
RESUME_CASES = [
    ("same settings: resume, earlier runs kept", {}, [{"generated": 3}]),
    ("max_rows grows: still resumes", {"data": {**_MANIFEST["data"], "max_rows": 9}}, [{"generated": 3}]),
    ("other decoding: refused", {"decoding": {"temperature": 0.7}}, "different decoding"),
    ("other data file: refused", {"data": {**_MANIFEST["data"], "sha256": "def"}}, "different data.sha256"),
    ("other model id: refused", {"model": {**_MANIFEST["model"], "id": "n"}}, "different model.id"),
    ("other vLLM dtype: refused", {"model": {**_MANIFEST["model"], "precision": {"dtype": "float32"}}},
     "different model.precision"),
    ("same folder retrained: starts over, old predictions kept aside",
     {"model": {**_MANIFEST["model"], "files": {"w": [1, "t1"]}}}, []),
    ("nothing generated yet (a first attempt failed): any settings start", {"decoding": {"temperature": 0.7}}, None),
    # requests drawn by another rule (before prompt identity, requests depended on the other rows): not resumed
    ("another request scheme: refused", {"comparable": {"prompt_scheme": "radrl-requests-2", "precision": "float32"}},
     "requests drawn by radrl-requests-3"),
    ("another precision: refused", {"comparable": {"prompt_scheme": "radrl-requests-3", "precision": "bfloat16"}},
     "different comparable.precision"),
]


@pytest.mark.parametrize("case,change,expect", RESUME_CASES, ids=[c[0] for c in RESUME_CASES])
def test_rerun_settings_resume_refuse_or_restart(tmp_path, case, change, expect):
    from radrl.eval.run import _check_resume

    (tmp_path / "manifest.json").write_text(json.dumps(_MANIFEST))
    new = {**_MANIFEST, **change}
    (tmp_path / "predictions.jsonl").write_text(_line(0) + "\n" if expect is not None else _line(0)[:9])
    new = {**_MANIFEST, **change}
    if expect is None:
        assert _check_resume(tmp_path / "manifest.json", new) == []
        return
    if isinstance(expect, str):
        with pytest.raises(ValueError, match=expect):
            _check_resume(tmp_path / "manifest.json", new)
        return
    assert _check_resume(tmp_path / "manifest.json", new) == expect
    restarted = expect == []
    assert (tmp_path / "predictions.jsonl").exists() != restarted
    assert (tmp_path / "predictions.stale.jsonl").exists() == restarted


def test_run_from_before_prompt_identity_is_refused_with_why(tmp_path):
    from radrl.eval.run import _check_resume

    old = {k: v for k, v in _MANIFEST.items() if k != "comparable"}  # a manifest written before the contract
    (tmp_path / "manifest.json").write_text(json.dumps(old))
    (tmp_path / "predictions.jsonl").write_text(_line(0) + "\n")
    with pytest.raises(ValueError, match="an older rule, where each request depended on the other rows"):
        _check_resume(tmp_path / "manifest.json", _MANIFEST)
