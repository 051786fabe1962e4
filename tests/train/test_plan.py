"""`radrl plan` (issue 16): DeepSpeed's estimator reimplemented and held to DeepSpeed's numbers, parameter
counts and resident memory measured on the CPU, and the verdicts and suggestions of the command."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from radrl.train.plan import (
    Engine,
    deepspeed_zero2_estimate,
    deepspeed_zero3_estimate,
    engine_from_launch_config,
    estimate,
    read_architecture,
    read_recipe,
)

REPO = Path(__file__).resolve().parents[2]
ARCH_8B = REPO / "bench" / "configs" / "qwen3vl-8b"
GRPO_REPORT = REPO / "recipes" / "qwen3vl-8b" / "grpo_report.yaml"
GRPO_GROUNDING = REPO / "recipes" / "qwen3vl-8b" / "grpo_grounding.yaml"


def gb(n):  # DeepSpeed prints bytes / 2**30 with two decimals and calls it GB
    return round(n / 2**30, 2)


# DeepSpeed's memory docs (docs/code-docs/source/memory.rst), "estimate_zero3_model_states_mem_needs_all_cold
# (total_params=2851e6, largest_layer_params=32e6, num_gpus_per_node=8, num_nodes=1)": per CPU, per GPU
@pytest.mark.parametrize("offload_opt, offload_param, zero_init, cpu, gpu", [
    (True, True, True, 71.69, 0.12),
    (True, True, False, 127.45, 0.12),
    (True, False, True, 63.72, 0.78),
    (True, False, False, 127.45, 0.78),
    (False, False, True, 1.43, 6.09),
    (False, False, False, 127.45, 6.09),
])
def test_zero3_estimate_matches_the_deepspeed_docs(offload_opt, offload_param, zero_init, cpu, gpu):
    c, g, _ = deepspeed_zero3_estimate(2851e6, 32e6, 8, 1, cpu_offload=offload_opt, cpu_offload_params=offload_param,
                                       zero_init=zero_init)
    assert (gb(c), gb(g)) == (cpu, gpu)


def test_zero2_estimate_matches_deepspeed():
    # the docs' ZeRO-2 example (2851e6 parameters, 8 GPUs): offload_optimizer=cpu -> 127.45 GB CPU, 5.31 GB GPU
    assert tuple(gb(x) for x in deepspeed_zero2_estimate(2851e6, 8, 1, cpu_offload=True)) == (127.45, 5.31)
    # offload none: the docs print 15.93 GB (4 P + 16 P / N), DeepSpeed 0.18.0's code computes 2 P + 18 P / N
    # (gradients sharded too); these bytes are what deepspeed==0.18.0 itself returned (pip install, CPU):
    assert deepspeed_zero2_estimate(2851e6, 8, 1, cpu_offload=False) == (136848000000, 12116750000)
    assert deepspeed_zero2_estimate(8767123696, 8, 4, cpu_offload=False) == (420821937408, 22465754471)
    assert deepspeed_zero2_estimate(8767123696, 8, 4, cpu_offload=True) == (1683287749632, 17534247392)
    assert deepspeed_zero3_estimate(8767123696, 622329856, 8, 4, cpu_offload=False, cpu_offload_params=False) == (
        29871833088, 7420826503, 2489319424)


def test_against_deepspeed_itself_where_installed():
    ds2 = pytest.importorskip("deepspeed.runtime.zero.stage_1_and_2")
    ds3 = pytest.importorskip("deepspeed.runtime.zero.stage3")
    for total, largest, per_node, nodes in ((2851e6, 32e6, 8, 1), (8.767e9, 6.2e8, 8, 4), (1e9, 1e7, 1, 1)):
        for off in (True, False):
            assert deepspeed_zero2_estimate(total, per_node, nodes, off) == \
                ds2.estimate_zero2_model_states_mem_needs(total, per_node, nodes, off)
            for off_p in (True, False):
                for init in (True, False):
                    assert deepspeed_zero3_estimate(total, largest, per_node, nodes, off, off_p, init) == \
                        ds3.estimate_zero3_model_states_mem_needs(total, largest, per_node, nodes, off, off_p, init)


@pytest.fixture(scope="module")
def arch_8b():
    return read_architecture(ARCH_8B)


@pytest.mark.parametrize("kind, offload_opt, offload_param", [
    ("zero2", False, False), ("zero2", True, False),
    ("zero3", False, False), ("zero3", True, False), ("zero3", True, True),
])
def test_plan_model_states_are_deepspeeds_estimate(arch_8b, kind, offload_opt, offload_param):
    # full fine-tuning (every parameter trains): the plan's weights + gradients + optimizer (+ ZeRO-3's gather
    # buffer) per GPU is DeepSpeed's own GPU estimate for the same model on 32 GPUs
    recipe = read_recipe(GRPO_REPORT)
    est = estimate(arch_8b, recipe, Engine(kind, offload_opt, offload_param), 32)
    states = sum(est.components[k][0] for k in ("weights", "gradients", "optimizer", "gather buffer")
                 if k in est.components)
    if kind == "zero2":
        expected = deepspeed_zero2_estimate(arch_8b.total, 8, 4, cpu_offload=offload_opt)[1]
    else:
        expected = deepspeed_zero3_estimate(arch_8b.total, arch_8b.largest_layer, 8, 4, cpu_offload=offload_opt,
                                            cpu_offload_params=offload_param)[1]
    assert states == pytest.approx(expected, abs=2)


def test_parameter_counts_are_those_of_the_built_model(tiny_model_dir):
    # counted on the meta device; the same config built with real (random) weights on the CPU has exactly these
    import torch
    from transformers import Qwen3VLForConditionalGeneration

    from radrl.train.common import model_part

    arch = read_architecture(tiny_model_dir)
    model = Qwen3VLForConditionalGeneration.from_pretrained(str(tiny_model_dir))
    assert arch.total == sum(p.numel() for p in model.parameters())
    parts = {"vision_tower": 0, "projector": 0, "language_model": 0}
    for name, p in model.named_parameters():
        parts[model_part(name)] += p.numel()
    assert arch.parts == parts
    # DeepSpeed's largest layer (its model_to_params): the most parameters one module holds itself
    assert arch.largest_layer == max(sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules())
    # LoRA adapters: what peft adds with the recipe's targets
    from peft import LoraConfig, get_peft_model

    from radrl.train.common import LORA_TARGETS

    lora = get_peft_model(model, LoraConfig(r=4, target_modules="|".join(f"({r})" for r in LORA_TARGETS.values())))
    assert arch.lora_params(4, set(LORA_TARGETS)) == sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert torch.float32 == model.dtype


RSS_PROBE = """
import gc, json, sys, torch
from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration
torch.set_num_threads(1)
def rss():
    gc.collect()
    return int(open('/proc/self/statm').read().split()[1]) * 4096
config = Qwen3VLConfig.from_pretrained(sys.argv[1])
with torch.device("meta"):  # once without memory, so the modules the constructor imports lazily are paid before
    Qwen3VLForConditionalGeneration(config)
before = rss()
model = Qwen3VLForConditionalGeneration(config)  # fp32, as radrl loads a policy for training
weights = rss() - before
ids = torch.randint(0, 100, (1, 8))
model(input_ids=ids, labels=ids).loss.backward()  # once, so that the allocator's one-time growth is paid
model.zero_grad(set_to_none=True)
settled = rss()
model(input_ids=ids, labels=ids).loss.backward()
grads = rss() - settled
opt = torch.optim.AdamW(model.parameters(), foreach=False)
opt.step()
optimizer = rss() - settled - grads
print(json.dumps({"weights": weights, "gradients": grads, "optimizer": optimizer}))
"""


def test_resident_memory_measured_on_the_cpu(tmp_path, tiny_model_dir):
    # a model of ~40 M parameters (the real 151,936-token vocabulary on a tiny body) built in a fresh process:
    # its weights, gradients and Adam state, measured as resident memory, are what the plan counts for one
    # device without DeepSpeed (4 + 4 + 8 bytes per parameter)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["text_config"]["vocab_size"] = 151936
    (tmp_path / "config.json").write_text(json.dumps(config))
    # glibc serves large blocks from mmap (returned to the system when freed) only below a threshold it raises as
    # blocks are freed; pinning it makes freed activations leave the resident set, as on a GPU they leave the
    # allocator's live bytes
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", RSS_PROBE, str(tmp_path)], capture_output=True, text=True, timeout=300,
                         check=True, env=env)
    measured = json.loads(out.stdout.strip().splitlines()[-1])
    arch = read_architecture(tmp_path)
    recipe = read_recipe(REPO / "recipes" / "qwen3vl-8b" / "sft.yaml")
    est = estimate(arch, recipe.replace(bf16=False), Engine("ddp"), 1)
    for part in ("weights", "gradients", "optimizer"):
        assert measured[part] == pytest.approx(est.components[part][0], rel=0.1), (part, measured, arch.total)


@pytest.mark.parametrize("stem, engine", [
    ("deepspeed_zero2", Engine("zero2")),
    ("deepspeed_zero3", Engine("zero3")),
    ("fsdp", Engine("fsdp")),
    ("cpu", Engine("ddp")),
])
def test_engine_from_the_launch_configs(stem, engine):
    assert engine_from_launch_config(REPO / "recipes" / "accelerate" / f"{stem}.yaml") == engine


def test_reference_model_by_engine(arch_8b):
    # bf16 reference: a whole copy per GPU under ZeRO-2 (TRL's stage-0 prepare), sharded under ZeRO-3 / FSDP,
    # none with LoRA or beta 0
    recipe = read_recipe(GRPO_REPORT)
    p = arch_8b.total
    ref = {e: estimate(arch_8b, recipe, Engine(e), 32).components["reference model"][0] for e in ("zero2", "zero3",
                                                                                                  "fsdp", "ddp")}
    assert ref == {"zero2": 2 * p, "zero3": 2 * p / 32, "fsdp": 2 * p / 32, "ddp": 2 * p}
    assert estimate(arch_8b, recipe, Engine("zero3", True, True), 32).components["reference model"][0] == 0
    assert estimate(arch_8b, recipe.replace(use_lora=True), Engine("zero2"), 32).components["reference model"][0] == 0
    assert estimate(arch_8b, recipe.replace(beta=0.0), Engine("zero2"), 32).components["reference model"][0] == 0


@pytest.mark.parametrize("recipe", [GRPO_REPORT, GRPO_GROUNDING])
def test_shipped_8b_grpo_recipes_fit_32_gpus_of_80_gb(recipe, capsys):
    from radrl.cli.plan import main

    assert main(["--config", str(recipe), "--gpus", "32", "--architecture", str(ARCH_8B),
                 "--launch", str(REPO / "recipes" / "accelerate" / "deepspeed_zero2.yaml")])
    assert "fits:" in capsys.readouterr().err


def test_will_not_fit_says_what_to_try_and_the_first_try_fits(capsys):
    from radrl.cli.plan import main

    # the paper's micro-batch 8 with 4,096-token completions, padded, under ZeRO-2 on 32 GPUs
    base = ["--config", str(GRPO_GROUNDING), "--gpus", "32", "--architecture", str(ARCH_8B), "--engine", "zero2",
            "--per_device_train_batch_size", "8", "--gradient_accumulation_steps", "4"]
    with pytest.raises(SystemExit) as stop:
        main(base)
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "will not fit" in err and "try" in err
    first = err.split("try\n", 1)[1].splitlines()[0].split("(")[0].split()
    assert main(base + first)  # the suggestion, applied, fits
    # the suggested micro-batch keeps the effective batch: per_device x GPUs x accumulation = 1,024
    if "--per_device_train_batch_size" in first:
        b = int(first[first.index("--per_device_train_batch_size") + 1])
        acc = int(first[first.index("--gradient_accumulation_steps") + 1])
        assert b * 32 * acc == 1024


def test_vllm_share_too_small_for_its_weights(arch_8b):
    recipe = read_recipe(GRPO_REPORT).replace(vllm_gpu_memory_utilization=0.2)  # 16 GiB < 16.3 GiB of weights
    est = estimate(arch_8b, recipe, Engine("zero3"), 32)
    assert any("vLLM cannot start" in n for n in est.notes)


def test_json_output(capsys):
    from radrl.cli.plan import main

    main(["--config", str(GRPO_REPORT), "--gpus", "32", "--architecture", str(ARCH_8B), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["fits"] and out["batch"]["effective_batch"] == 1024
    assert out["peak_gib"] == pytest.approx(sum(v for k, v in out["components_gib"].items() if k != "activations"))


def test_recipe_without_a_pixel_budget_is_refused(tmp_path):
    (tmp_path / "r.yaml").write_text("model_name_or_path: x\nper_device_train_batch_size: 2\n")
    with pytest.raises(ValueError, match="max_pixels"):
        read_recipe(tmp_path / "r.yaml")


def test_host_ram_note_reads_well_for_one_process(arch_8b):
    # "1 processes, about 0 GiB" was printed for a single small process
    notes = estimate(arch_8b, read_recipe(GRPO_REPORT), Engine("ddp"), 1).notes
    host = next(n for n in notes if n.startswith("host RAM"))
    assert "(1 process:" in host and " about 0 GiB" not in host


REALSIZE = REPO / "bench" / "results" / "realsize_cpu.json"


def _realsize_bench():
    import importlib.util

    spec = importlib.util.spec_from_file_location("realsize_cpu", REPO / "bench" / "realsize_cpu.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_cpu_estimate_explains_the_measured_realsize_rss():
    # bench/realsize_cpu.sh measured (getrusage) the peak RSS of one `radrl sft` (LoRA) and two `radrl grpo` runs on
    # random weights in Qwen3-VL-2B's architecture on the CPU. All three peaks are the loading phase's (fp32 weights
    # built while the bf16 checkpoint is memory-mapped): `radrl plan --cpu`'s RSS peak for the same recipes and
    # overrides (recomputed here from each stage's recorded command), mapped pages included, is within 10 % of each.
    # This checks the loading phase only.
    bench = _realsize_bench()
    result = json.loads(REALSIZE.read_text())
    trained = {name: s for name, s in result["stages"].items() if name in ("sft_lora", "grpo_grounding", "grpo_report")}
    assert len(trained) == 3
    plans = {}
    for name, stage in trained.items():
        assert stage["exit_code"] == 0, (name, stage)
        plan = plans[name] = bench.planned(stage["command"], REPO / result["architecture"])
        assert plan["rss_peak_gib"] == pytest.approx(plan["phases_gib"]["loading"] + plan["mapped_gib"], abs=0.02)
        assert stage["peak_rss_gib"] == pytest.approx(plan["rss_peak_gib"], rel=0.1), (name, stage, plan)
    # The GRPO steps after loading were not measured by the script: an external sampler's VmRSS every 10 s, typed
    # into the file by hand (`step_rss_sampled_gib`). The plan's update phase is an upper end of both samples.
    sampled = result["step_rss_sampled_gib"]
    for name in ("grpo_grounding", "grpo_report"):
        update = plans[name]["phases_gib"]["update"]
        assert sampled[name] <= update <= 1.15 * sampled[name], (name, sampled[name], update)


def test_cpu_plan_phases_and_components(arch_8b):
    recipe = read_recipe(GRPO_GROUNDING, {"bf16": False, "use_lora": True, "use_vllm": False,
                                          "per_device_train_batch_size": 2, "generation_batch_size": 2,
                                          "num_generations": 2, "max_completion_length": 16})
    est = estimate(arch_8b, recipe, Engine("ddp"), 1, gpu_memory_gib=64, device="cpu")
    p = arch_8b.total
    assert "reserve" not in est.components and est.components["runtime"][0] == 0.5 * 2**30
    # loading: the fp32 weights while the bf16 checkpoint files are mapped; their pages are page cache, in the RSS
    # peak but not in what fit is judged on
    assert est.phases["loading"] == pytest.approx(0.5 * 2**30 + 4 * p)
    assert est.mapped == 2 * p
    assert est.peak == max(est.phases.values())
    assert est.rss_peak == pytest.approx(max(est.peak, 0.5 * 2**30 + 4 * p + 2 * p))
    # activations in fp32 are twice those of the same recipe in bf16
    bf16 = estimate(arch_8b, recipe.replace(bf16=True), Engine("ddp"), 1, gpu_memory_gib=64, device="cpu")
    assert est.components["activations"][0] > 1.9 * bf16.components["activations"][0]
    with pytest.raises(ValueError, match="engine ddp"):
        estimate(arch_8b, recipe, Engine("zero3"), 1, device="cpu")


def test_cpu_plan_command(capsys):
    from radrl.cli.plan import main

    assert main(["--config", str(GRPO_GROUNDING), "--cpu", "--ram", "24", "--architecture",
                 str(REPO / "bench" / "configs" / "qwen3vl-2b"), "--bf16", "false", "--use_lora", "true",
                 "--use_vllm", "false", "--generation_batch_size", "2", "--num_generations", "2",
                 "--max_completion_length", "16"])
    captured = capsys.readouterr()
    assert "1 process on the CPU, 24 GiB of RAM" in captured.out and "runtime" in captured.out
    assert "peak at the update phase" in captured.out and "mmap threshold" in captured.out
    # docs/training.md's example: fits; the RSS peak (12.4 GiB, loading with the mapped checkpoint) said apart
    assert "fits: 10.6 of 24 GiB of RAM (RSS peak 12.4 GiB" in captured.err
    assert "RSS peak" in captured.out and "page cache, reclaimable" in captured.out
    with pytest.raises(SystemExit):
        main(["--config", str(GRPO_GROUNDING), "--cpu", "--engine", "zero2"])
    with pytest.raises(SystemExit):
        main(["--config", str(GRPO_GROUNDING)])  # neither --gpus nor --cpu


ARCH_2B = REPO / "bench" / "configs" / "qwen3vl-2b"
CPU_2B_LORA = ["--config", str(GRPO_GROUNDING), "--cpu", "--architecture", str(ARCH_2B), "--bf16", "false",
               "--use_lora", "true", "--use_vllm", "false", "--generation_batch_size", "2", "--num_generations", "2",
               "--max_completion_length", "16"]


def test_cpu_fit_leaves_out_the_mapped_checkpoint_pages(capsys):
    # the 2B LoRA GRPO step: 10.6 GiB that the process holds, 12.4 GiB of RSS while loading of which 4 GiB are the
    # memory-mapped checkpoint (page cache, reclaimable): it fits 12 GiB ("will not fit (12.4 of 12 GiB)" before)
    from radrl.cli.plan import main

    assert main([*CPU_2B_LORA, "--ram", "12"])
    captured = capsys.readouterr()
    assert "fits: 10.6 of 12 GiB of RAM (RSS peak 12.4 GiB" in captured.err
    assert main([*CPU_2B_LORA, "--ram", "12", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["fits"] and out["rss_peak_gib"] == pytest.approx(out["phases_gib"]["loading"] + out["mapped_gib"])
    assert out["peak_gib"] == pytest.approx(out["phases_gib"]["update"])


def test_cpu_will_not_fit_gives_cpu_advice(capsys):
    from radrl.cli.plan import main

    with pytest.raises(SystemExit) as stop:
        main([*CPU_2B_LORA, "--ram", "4"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "will not fit" in err and "GPUs" not in err
    assert "--ram" in err and "--max_completion_length" in err and "smaller model" in err
    assert "--use_lora true" not in err  # the recipe uses LoRA already


def test_cpu_defaults_to_one_process_without_deepspeed(capsys):
    # a recipe without LoRA: the GPU default would be ZeRO-2, which the CPU refused ("not zero2") unasked
    from radrl.cli.plan import main

    try:
        main(["--config", str(GRPO_GROUNDING), "--cpu", "--ram", "512", "--architecture", str(ARCH_2B),
              "--use_vllm", "false", "--max_completion_length", "16"])
    except SystemExit as stop:
        assert stop.code == 1
    captured = capsys.readouterr()
    assert "1 process on the CPU, 512 GiB of RAM" in captured.out and "zero2" not in captured.err
    assert "whole model in the process" in captured.out
    with pytest.raises(SystemExit) as stop:  # asked for, another engine is still refused
        main(["--config", str(GRPO_GROUNDING), "--cpu", "--engine", "zero2", "--ram", "64"])
    assert stop.value.code == 2 and "--cpu plans one process" in capsys.readouterr().err


def test_cpu_refuses_vllm_rollouts(capsys, arch_8b):
    from radrl.cli.plan import main

    with pytest.raises(SystemExit) as stop:  # the shipped 8B GRPO recipes set use_vllm: true
        main(["--config", str(GRPO_REPORT), "--cpu", "--ram", "512", "--architecture", str(ARCH_8B)])
    assert stop.value.code == 2
    assert "add --use_vllm false: vLLM rollouts need a GPU" in capsys.readouterr().err
    with pytest.raises(ValueError, match="add --use_vllm false"):
        estimate(arch_8b, read_recipe(GRPO_REPORT, {"use_lora": True}), Engine("ddp"), 1, device="cpu")


def test_cpu_ram_is_given_or_read_never_guessed(capsys, monkeypatch):
    import radrl.cli.plan as cli

    for ram in ("0", "-4"):
        with pytest.raises(SystemExit) as stop:
            cli.main([*CPU_2B_LORA, "--ram", ram])
        assert stop.value.code == 2 and "positive" in capsys.readouterr().err

    def unreadable(*args, **kwargs):
        raise OSError("no /proc here")

    monkeypatch.setattr(cli, "open", unreadable, raising=False)
    assert cli._machine_ram_gib() is None  # was 16 GiB, silently
    with pytest.raises(SystemExit) as stop:
        cli.main(CPU_2B_LORA)
    assert stop.value.code == 2 and "give --ram GiB" in capsys.readouterr().err


def test_checkpoint_dtype_is_known_or_refused():
    import torch

    from radrl.train.plan import _dtype_bytes

    assert _dtype_bytes(None) == 2  # a config without a dtype: bf16, Qwen's releases' (documented)
    assert _dtype_bytes("bfloat16") == 2 and _dtype_bytes(torch.float32) == 4 and _dtype_bytes("float16") == 2
    with pytest.raises(ValueError, match=r"'float8_e4m3fn'.*--architecture"):
        _dtype_bytes("float8_e4m3fn")  # was read as 2 bytes


def test_overrides_are_read_as_the_cli_reads_them():
    from radrl.cli.plan import _overrides

    assert _overrides(["--use_lora", "--bf16", "false", "--max-pixels", "4096", "--keep"]) == {
        "use_lora": True, "bf16": False, "max_pixels": 4096, "keep": True}
    with pytest.raises(ValueError, match="--field value"):
        _overrides(["stray"])
    # bench/realsize_cpu.py reads a recorded command with the same parser: a bare flag no longer shifts the pairs
    bench = _realsize_bench()
    cmd = (f"python -m radrl.cli grpo --config {GRPO_GROUNDING} --use_lora --bf16 false --use_vllm false "
           "--num_generations 2 --generation_batch_size 2 --max_completion_length 16 --per_device_train_batch_size 2")
    bare = bench.planned(cmd, ARCH_2B)
    explicit = bench.planned(cmd.replace("--use_lora ", "--use_lora true "), ARCH_2B)
    assert bare == explicit and bare["components_gib"]["reference model"] == 0
