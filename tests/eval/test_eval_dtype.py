"""`radrl eval --dtype`: the weights' precision is an option (bf16 on a CPU halves an 8B model's memory), used for
loading and recorded as the run's precision, which comparisons and resumes check (issue 14)."""

import json

import pytest
import torch

from radrl.cli.verbs import main as radrl


def test_dtype_loads_and_is_recorded(tiny_model_dir, synth_data, tmp_path, monkeypatch):
    from radrl.eval import generate

    loaded = []
    real = generate.load_any
    monkeypatch.setattr(generate, "load_any", lambda *a, **k: loaded.append(real(*a, **k)) or loaded[-1])
    out = tmp_path / "bf16"
    radrl(["eval", "--model", str(tiny_model_dir), "--data", str(synth_data["test"]), "--out", str(out),
           "--tasks", "report", "--max-rows", "2", "--max-new-tokens-report", "4", "--device", "cpu",
           "--dtype", "bf16"])
    assert loaded[0][0].dtype == torch.bfloat16
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["comparable"]["precision"] == "bfloat16" and manifest["status"] == "complete"
    # the same folder at another precision is not resumed into: the predictions would mix two precisions
    with pytest.raises(SystemExit):
        radrl(["eval", "--model", str(tiny_model_dir), "--data", str(synth_data["test"]), "--out", str(out),
               "--tasks", "report", "--max-rows", "2", "--max-new-tokens-report", "4", "--device", "cpu",
               "--dtype", "fp32"])


def test_dtype_for_a_served_model_is_refused(synth_data, tmp_path):
    from radrl.eval.run import evaluate

    with pytest.raises(ValueError, match="a served model's precision is the server's"):
        evaluate("served", str(synth_data["test"]), str(tmp_path), endpoint="http://127.0.0.1:9/v1", dtype="bf16")
