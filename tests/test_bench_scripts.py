"""Benchmark scripts that cannot run at full size here keep working: their code path on the CPU.

Timings are not asserted (benchmarks record them; tests do not time): only that the script runs and
writes every field its results table needs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["tiny", "config"])
def test_gpu_train_speed_runs_on_cpu(how, tmp_path, tiny_model_dir, cxr_data):
    # --tiny: the built-in test architecture; --config: the architecture read from a checkpoint's config.json,
    # as on the GPU machine with Qwen3-VL-2B's (here the tiny model's folder)
    arch = ["--tiny"] if how == "tiny" else ["--config", str(tiny_model_dir), "--image", "4096", "--seq", "64",
                                             "--batch", "2", "--prompts", "2", "--generations", "2",
                                             "--prompt-tokens", "32", "--new-tokens", "4"]
    out = tmp_path / "result.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_train_speed.py"), *arch, "--device", "cpu",
                           "--steps", "1", "--warmup", "0", "--out", str(out)], check=False, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "RADRL_CXR_DATA": str(cxr_data)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["sft"]["tokens_per_s"] > 0 and result["sft"]["image_tokens_per_sample"] > 0
    assert {"generation_s", "reward_s", "update_s", "step_s"} <= set(result["grpo"])
    assert result["grpo"]["rollouts"] == 4 and result["command"].startswith("python bench/gpu_train_speed.py")


@pytest.mark.slow
def test_eval_batching_takes_an_architecture(tmp_path, tiny_model_dir):
    # the GPU run builds its random model from a real config.json's sizes (here the tiny model's); on the CPU
    # this checks the path and the results file, with every batch size giving the same greedy outputs
    sys.path.insert(0, str(REPO / "bench"))
    import eval_batching

    out = tmp_path / "eval_batching.json"
    eval_batching.main(["--rows", "4", "--max-new-tokens", "4", "--batch-sizes", "1", "4", "--concurrency", "2",
                        "--repeats", "1", "--architecture", str(tiny_model_dir), "--out", str(out)])
    result = json.loads(out.read_text())
    assert result["architecture"] == str(tiny_model_dir)
    assert all(r["same_outputs_as_first"] for r in result["results"].values())
    assert set(result["results"]) == {"hf batch 1", "hf batch 4", "endpoint concurrency 2"}


def test_architecture_sizes_read_the_config(tiny_model_dir):
    # every dimension that sets the compute comes from the config, the vocabulary included
    sys.path.insert(0, str(REPO / "bench"))
    import eval_batching

    config = json.loads((tiny_model_dir / "config.json").read_text())
    sizes = eval_batching.architecture_sizes(str(tiny_model_dir))
    text, vision = config["text_config"], config["vision_config"]
    assert (sizes["hidden"], sizes["layers"], sizes["vocab"], sizes["head_dim"]) == (
        text["hidden_size"], text["num_hidden_layers"], text["vocab_size"], text["head_dim"])
    assert (sizes["vision_layers"], sizes["vision_hidden"]) == (vision["depth"], vision["hidden_size"])


def _gpu_train_speed():
    sys.path.insert(0, str(REPO / "bench"))
    import gpu_train_speed

    return gpu_train_speed


@pytest.mark.parametrize("config, name", [
    ("/models/Qwen3-VL-2B-Instruct/config.json", "Qwen3-VL-2B-Instruct"),  # the file: its folder's name
    ("/models/Qwen3-VL-8B-Instruct", "Qwen3-VL-8B-Instruct"),              # the folder itself
])
def test_gpu_train_speed_results_file_is_named_after_the_model(config, name):
    import argparse

    args = argparse.Namespace(name=None, tiny=False, config=config)
    assert _gpu_train_speed().results_name(args) == name


def test_gpu_train_speed_flops_leave_out_lookups(tiny_model_dir):
    # 6 x (LM matmul params x tokens + ViT params x patches + merger params x merged tokens): the embedding
    # table and the ViT position table are lookups and add nothing however long the sequence
    from transformers import Qwen3VLForConditionalGeneration

    from radrl.models.tiny import count_parameters

    model = Qwen3VLForConditionalGeneration.from_pretrained(str(tiny_model_dir))
    lm, visual = model.model.language_model, model.model.visual
    lm_matmul = count_parameters(lm) - lm.embed_tokens.weight.numel() + model.lm_head.weight.numel()
    mergers = count_parameters(visual.merger) + count_parameters(visual.deepstack_merger_list)
    per_patch = count_parameters(visual) - count_parameters(visual.pos_embed) - mergers
    flops = _gpu_train_speed().train_flops(model, batch=2, seq=64, patches=16, merged=4)
    assert flops == 6 * 2 * (lm_matmul * 64 + per_patch * 16 + mergers * 4)
    text_only = _gpu_train_speed().train_flops(model, batch=1, seq=10, patches=0, merged=0)
    assert text_only == 6 * 10 * lm_matmul < 6 * 10 * count_parameters(model)


def _scorers_speed():
    sys.path.insert(0, str(REPO / "bench"))
    import scorers_speed

    return scorers_speed


def test_scorers_speed_groups_like_grpo(cxr_data):
    # each step: prompts x 8 rollouts, a prompt's 8 rollouts share its reference; the next step has new prompts;
    # text is prepared as RadCliQ prepares it (lower-cased)
    steps = _scorers_speed().grpo_steps(cxr_data, prompts=2, steps=2)
    assert [len(r) for r, _ in steps] == [16, 16] and [len(h) for _, h in steps] == [16, 16]
    for refs, hyps in steps:
        assert len(set(refs[:8])) == 1 and len(set(refs[8:])) == 1 and refs[0] != refs[8]
        assert len(set(hyps)) > 8 and all(t == t.lower() for t in refs + hyps)
    assert not set(steps[0][0]) & set(steps[1][0])


def test_scorers_speed_reference_formula_is_radrls(cxr_data):
    # the bench's restatement of RadEval's entity/relation F1 mean gives radrl's radgraph_er on the same annotations
    from radrl.metrics.radgraph import f1_scores

    ref = {"entities": {"1": {"tokens": "effusion", "label": "OBS", "relations": [["located_at", "2"]]},
                        "2": {"tokens": "left", "label": "ANAT", "relations": []}}}
    hyp = {"entities": {"1": {"tokens": "effusion", "label": "OBS", "relations": []},
                        "2": {"tokens": "left", "label": "ANAT", "relations": []}}}
    for a, b in ((ref, hyp), (ref, ref), (hyp, {"entities": {}})):
        assert _scorers_speed()._entity_relation_mean(a, b) == f1_scores(a, b)[3]


def test_scorers_speed_markdown_has_every_row(tmp_path):
    # the results table lists every thread count, scorer and side, with ratios and value differences
    side = {"pairs_per_s": 2.0, "pairs_per_s_median": 1.9, "ms_per_pair": 500.0, "cpu_ms_per_pair": 450.0}
    sides = {"reference": side, "plain": side | {"speedup_vs_reference": 1.0, "cpu_speedup_vs_reference": 1.0,
                                                 "max_abs_diff_vs_reference": 1e-7}}
    record = {"date": "2026-12-06", "command": "python bench/scorers_speed.py", "load_average": {"before": [1],
              "after": [2]}, "machine": {"cpu": "x", "isa": "AVX2", "cores": 2, "platform": "linux", "gpus": []},
              "data": {"steps": 1, "prompts": 2, "pairs": 16, "distinct_refs": 2, "distinct_hyps": 16},
              "results": {"1": {"radcliq": sides}, "2": {"radcliq": sides}},
              "server": [{"workers": 2, "clients": 4, "pairs_per_s": 3.0, "latency_ms": {"p50": 100.0},
                          "reference_in_process_pairs_per_s": 1.0, "speedup_vs_reference": 3.0,
                          "mismatches_over_1e-5": 0}]}
    _scorers_speed().write_markdown(record, tmp_path / "r.md")
    rows = [line for line in (tmp_path / "r.md").read_text().splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + 4 + 2 and any("| 2 | radcliq | plain |" in r for r in rows)
