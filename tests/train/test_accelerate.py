"""recipes/accelerate/*.yaml: each is an accelerate config whose launch maps to the intended backend, the
multi-node overrides in its header work, and the CPU one really runs two processes that share the data.

DeepSpeed cannot be used without CUDA here, so the DeepSpeed and FSDP configs are checked up to the
environment accelerate hands to the training processes (what Trainer/Accelerator read to pick the backend)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import (
    DistributedType,
    prepare_deepspeed_cmd_env,
    prepare_multi_gpu_env,
)

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted((REPO / "recipes" / "accelerate").glob("*.yaml"))


def _launch_env(config: Path, *overrides: str):
    """The launch arguments and environment `accelerate launch --config_file CONFIG ... -m radrl.cli sft` would use."""
    args = launch_command_parser().parse_args(["--config_file", str(config), *overrides, "-m", "radrl.cli", "sft"])
    args, defaults, mp_from_config = _validate_launch_command(args)
    if args.use_deepspeed:  # as accelerate's launch_command does before deepspeed_launcher
        fields = list(defaults.deepspeed_config) + (["mixed_precision"] if mp_from_config else [])
        args.deepspeed_fields_from_accelerate_config = ",".join(fields)
        return args, prepare_deepspeed_cmd_env(args)[1]
    return args, prepare_multi_gpu_env(args)


def test_the_configs_are_there():
    assert {p.stem for p in CONFIGS} == {"cpu", "deepspeed_zero2", "deepspeed_zero3", "fsdp"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_header_gives_the_launch_command(path):
    header = "\n".join(line for line in path.read_text().splitlines() if line.startswith("#"))
    assert path.read_text().startswith("#")
    assert f"accelerate launch --config_file recipes/accelerate/{path.name}" in header
    for recipe in re.findall(r"--config (recipes/\S+\.yaml)", header):
        assert (REPO / recipe).exists(), f"{path.name} header names {recipe}, which does not exist"


@pytest.mark.parametrize("stem, backend, env", [
    # ZeRO-2: DeepSpeed, stage 2, no ZeRO-3 init; bf16 autocast
    ("deepspeed_zero2", DistributedType.DEEPSPEED,
     {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "2",
      "ACCELERATE_DEEPSPEED_ZERO3_INIT": "false", "ACCELERATE_MIXED_PRECISION": "bf16"}),
    # ZeRO-3: sharded init, and the 16-bit gathered save that makes the output folder a plain checkpoint
    ("deepspeed_zero3", DistributedType.DEEPSPEED,
     {"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3",
      "ACCELERATE_DEEPSPEED_ZERO3_INIT": "true", "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL": "true"}),
    # FSDP2 wrapping Qwen3-VL's decoder layers and ViT blocks, with FSDP's activation checkpointing
    ("fsdp", DistributedType.FSDP,
     {"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": "2", "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
      "FSDP_TRANSFORMER_CLS_TO_WRAP": "Qwen3VLTextDecoderLayer,Qwen3VLVisionBlock",
      "FSDP_ACTIVATION_CHECKPOINTING": "true", "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT"}),
    # CPU: plain torchrun processes, no mixed precision, no sharding backend
    ("cpu", DistributedType.MULTI_GPU, {"ACCELERATE_MIXED_PRECISION": "no"}),
])
def test_config_maps_to_the_backend(stem, backend, env):
    path = REPO / "recipes" / "accelerate" / f"{stem}.yaml"
    assert load_config_from_file(str(path)).distributed_type == backend
    _, launched = _launch_env(path)
    assert {k: launched.get(k) for k in env} == env
    if stem == "cpu":
        assert "ACCELERATE_USE_DEEPSPEED" not in launched and "ACCELERATE_USE_FSDP" not in launched


def test_fsdp_wraps_classes_the_model_has():
    """A misspelled class in fsdp_transformer_layer_cls_to_wrap fails only at wrap time on GPUs; catch it here."""
    from transformers import Qwen3VLForConditionalGeneration

    cfg = load_config_from_file(str(REPO / "recipes" / "accelerate" / "fsdp.yaml"))
    wrapped = cfg.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(",")
    assert set(wrapped) == set(Qwen3VLForConditionalGeneration._no_split_modules)


@pytest.mark.parametrize("stem", ["deepspeed_zero2", "deepspeed_zero3"])
def test_multi_node_overrides_reach_the_launcher(stem):
    """The header's N-node command: node rank, node count and world size reach torch's launcher."""
    args, _ = _launch_env(REPO / "recipes" / "accelerate" / f"{stem}.yaml", "--num_machines", "4",
                          "--num_processes", "32", "--machine_rank", "1", "--main_process_ip", "10.0.0.1",
                          "--main_process_port", "29500")
    # the 'standard' multi-node launcher hands these to torch.distributed.run on every node
    got = {k: str(getattr(args, k)) for k in ("nnodes", "node_rank", "nproc_per_node", "rdzv_endpoint")}
    assert got == {"nnodes": "4", "node_rank": "1", "nproc_per_node": "8", "rdzv_endpoint": "10.0.0.1:29500"}


@pytest.mark.parametrize("stem", ["deepspeed_zero2", "deepspeed_zero3", "fsdp"])
def test_gpu_configs_agree_with_the_8b_recipes_on_bf16(stem):
    """accelerate refuses mixed precision that disagrees with the Trainer's bf16 flag."""
    import yaml

    assert load_config_from_file(str(REPO / "recipes" / "accelerate" / f"{stem}.yaml")).mixed_precision == "bf16"
    for recipe in (REPO / "recipes" / "qwen3vl-8b").glob("*.yaml"):
        raw = yaml.safe_load(recipe.read_text())
        if "bf16" in raw:
            assert raw["bf16"] is True, recipe.name


def test_cpu_multiprocess_without_use_cpu_is_refused(tiny_model_dir, synth_data, tmp_path, monkeypatch):
    from radrl.train.sft import RadrlSFTConfig

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="--use_cpu true"):
        RadrlSFTConfig(output_dir=str(tmp_path), model_name_or_path=str(tiny_model_dir),
                       train_data=str(synth_data["train"]), bf16=False)


@pytest.mark.slow
def test_cpu_config_launches_two_processes_that_share_the_data(tiny_model_dir, synth_data, tmp_path):
    """`accelerate launch --config_file recipes/accelerate/cpu.yaml`: one optimizer step consumes
    2 rows on each of 2 processes, so the epoch after step 1 is 4 / rows (1 process would give 2 / rows)."""
    from radrl.data.instructions import build_conversations
    from radrl.data.schema import read_jsonl

    out = tmp_path / "sft"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO / "recipes" / "accelerate" / "cpu.yaml"), "--main_process_port", "0", "-m", "radrl.cli", "sft",
           "--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
           "--output_dir", str(out), "--max_steps", "1", "--per_device_train_batch_size", "2", "--use_cpu", "true",
           "--bf16", "false", "--report_to", "none", "--activation_checkpointing", "false", "--max_pixels", "4096",
           "--logging_steps", "1", "--save_strategy", "no"]
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = len(build_conversations(read_jsonl(synth_data["train"])))
    history = json.loads((out / "log_history.json").read_text())
    first = next(h for h in history if h.get("step") == 1 and "loss" in h)
    assert first["epoch"] == pytest.approx(2 * 2 / rows)
