"""The vLLM offline engine: what radrl hands to ``vllm.LLM`` (a stand-in module records it, everywhere), and,
where the vllm package is installed, a real engine on the tiny Qwen3-VL checked against transformers' greedy
decoding. vLLM's CPU attention needs a head size it has kernels for, so that model has head_dim 32."""

import importlib.util
import json
import sys
import types
from typing import ClassVar

import pytest

from radrl.eval.generate import make_backend

HAS_VLLM = importlib.util.find_spec("vllm") is not None


class RecordingLLM:
    """Stands in for ``vllm.LLM``: keeps its arguments and answers every chat request with a fixed text."""

    calls: ClassVar[list[dict]] = []

    def __init__(self, **kwargs):
        RecordingLLM.calls.append(kwargs)

    def chat(self, conversations, params, use_tqdm=False):
        out = types.SimpleNamespace(text=f" {params.max_tokens} tokens ")
        return [types.SimpleNamespace(outputs=[out]) for _ in conversations]


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = RecordingLLM
    module.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)
    monkeypatch.setitem(sys.modules, "vllm", module)
    RecordingLLM.calls = []
    return RecordingLLM


def test_engine_gets_one_image_no_video_the_pixel_budget_and_user_arguments(fake_vllm):
    make_backend("/models/qwen3-vl", engine="vllm", min_pixels=1024, max_pixels=451584,
                 engine_args={"tensor_parallel_size": 4, "gpu_memory_utilization": 0.8})
    assert fake_vllm.calls == [{"model": "/models/qwen3-vl", "limit_mm_per_prompt": {"image": 1, "video": 0},
                                "mm_processor_kwargs": {"min_pixels": 1024, "max_pixels": 451584},
                                "tensor_parallel_size": 4, "gpu_memory_utilization": 0.8}]


def test_user_engine_arguments_win_over_radrl_defaults(fake_vllm):
    make_backend("m", engine="vllm", engine_args={"limit_mm_per_prompt": {"image": 2}})
    assert fake_vllm.calls[0]["limit_mm_per_prompt"] == {"image": 2}
    assert "mm_processor_kwargs" not in fake_vllm.calls[0]  # no budget given: the checkpoint's processor decides


@pytest.mark.parametrize("kwargs", [{"engine": "hf"}, {"engine": "openai", "endpoint": "http://127.0.0.1:9/v1"}])
def test_engine_arguments_for_another_engine_are_refused(kwargs):
    with pytest.raises(ValueError, match="are for --engine vllm"):
        make_backend("m", engine_args={"dtype": "float32"}, **kwargs)


def test_cli_reads_engine_arguments_as_yaml_and_records_them(fake_vllm, synth_data, tmp_path):
    from radrl.cli import main

    out = tmp_path / "eval"
    main(["eval", "--model", str(tmp_path), "--data", str(synth_data["test"]), "--out", str(out), "--engine", "vllm",
          "--tasks", "report", "--max-rows", "2", "--engine-arg", "tensor_parallel_size=2",
          "--engine-arg", "dtype=float32", "--engine-arg", "enforce_eager=true"])
    call = fake_vllm.calls[0]
    assert (call["tensor_parallel_size"], call["dtype"], call["enforce_eager"]) == (2, "float32", True)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["model"]["precision"] == {"dtype": "float32"}  # compared when the evaluation is resumed
    run = manifest["generation_runs"][-1]
    assert run["engine"] == "vllm"
    assert run["engine_args"] == {"tensor_parallel_size": 2, "dtype": "float32", "enforce_eager": True}
    texts = [json.loads(line)["completion"] for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert texts == ["1024 tokens", "1024 tokens"]  # the report limit reached vLLM; the text was stripped


@pytest.mark.parametrize("arg,message", [("tensor_parallel_size", "--engine-arg expects KEY=VALUE"),
                                         ("hf_overrides={a: [", "the value is not YAML")])
def test_cli_refuses_a_malformed_engine_argument(arg, message, synth_data, tmp_path, capsys):
    from radrl.cli import main

    with pytest.raises(SystemExit):
        main(["eval", "--model", str(tmp_path), "--data", str(synth_data["test"]), "--out", str(tmp_path / "e"),
              "--engine", "vllm", "--engine-arg", arg])
    assert message in capsys.readouterr().err


def test_cli_engine_argument_keys_may_use_dashes(fake_vllm, synth_data, tmp_path):
    from radrl.cli import main

    main(["eval", "--model", str(tmp_path), "--data", str(synth_data["test"]), "--out", str(tmp_path / "e"),
          "--engine", "vllm", "--tasks", "report", "--max-rows", "1", "--engine-arg", "tensor-parallel-size=2"])
    assert fake_vllm.calls[0]["tensor_parallel_size"] == 2


@pytest.mark.skipif(not HAS_VLLM, reason="needs the vllm package (GPU machines; on CPU its CPU build)")
def test_real_vllm_engine_gives_the_same_greedy_text_as_transformers(vllm_tiny_model_dir, synth_data, tmp_path,
                                                                     monkeypatch):
    """The whole evaluation through vLLM, then through transformers, on one checkpoint in float32, at a pixel
    budget below the checkpoint's own: the same predictions, row for row (the fixture's model has wide logit
    gaps, so rounding flips no near tie; on the trained demo model the texts agree as they are)."""
    from radrl.eval.run import evaluate

    model = vllm_tiny_model_dir
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on a CPU build; a GPU ignores it
    runs = {}
    for engine, args in (("vllm", {"dtype": "float32", "gpu_memory_utilization": 0.2, "enforce_eager": True}),
                         ("hf", None)):
        evaluate(str(model), str(synth_data["test"]), str(tmp_path / engine), tasks=("report", "grounding"),
                 engine=engine, engine_args=args, max_new_tokens={"report": 64, "grounding": 64}, progress=False,
                 max_pixels=64 * 64)
        lines = (tmp_path / engine / "predictions.jsonl").read_text().splitlines()
        runs[engine] = {(r["task"], r["id"]): r["completion"] for r in map(json.loads, lines)}
    assert len(runs["hf"]) >= 8
    # vLLM's incremental detokenizer holds back the bytes of a character cut off by the token limit, where
    # transformers prints U+FFFD for them: only such a tail may differ.
    tail = "\ufffd \n\r\t"
    assert {k: v.rstrip(tail) for k, v in runs["vllm"].items()} == {k: v.rstrip(tail) for k, v in runs["hf"].items()}
