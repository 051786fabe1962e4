"""What trains: part freezing, LoRA (adapters only, merged save), gradient checkpointing, packing refusal.

Each test trains the tiny model for a step or two and compares every parameter before and after,
so a flag that silently does nothing fails here."""

import json

import pytest
import torch
from trl import TrlParser

from radrl.train.common import model_part

COMMON = ["--bf16", "false", "--report_to", "none", "--activation_checkpointing", "false", "--max_pixels", "4096",
          "--logging_steps", "1", "--seed", "0", "--per_device_train_batch_size", "4", "--learning_rate", "1e-2",
          "--save_strategy", "no"]


def _trainer(tiny_model_dir, synth_data, out, *extra):
    from radrl.train.sft import RadrlSFTConfig, build_trainer

    (cfg,) = TrlParser((RadrlSFTConfig,)).parse_args_and_config(
        ["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
         "--output_dir", str(out), *COMMON, *extra])
    trainer, processor = build_trainer(cfg)
    return cfg, trainer, processor


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def _changed(before, model) -> dict[str, bool]:
    return {n: not torch.equal(before[n], p.detach()) for n, p in model.named_parameters()}


@pytest.mark.slow
@pytest.mark.parametrize("flags, frozen", [
    # the common "LM only" recipe: ViT and mergers stay as pretrained
    (["--freeze_vision_tower", "true", "--freeze_projector", "true"], {"vision_tower", "projector"}),
    # LLaVA stage-1 style: only the projector learns
    (["--freeze_vision_tower", "true", "--freeze_language_model", "true"], {"vision_tower", "language_model"}),
    # vision side only: gradients flow through the frozen LM into the ViT
    (["--freeze_language_model", "true"], {"language_model"}),
])
def test_frozen_parts_do_not_change_and_the_rest_does(tiny_model_dir, synth_data, tmp_path, flags, frozen):
    _, trainer, _ = _trainer(tiny_model_dir, synth_data, tmp_path, "--max_steps", "1", *flags)
    before = _snapshot(trainer.model)
    trainer.train()
    changed = _changed(before, trainer.model)
    for name, did in changed.items():
        part = model_part(name)
        if part in frozen:
            assert not did, f"{name} ({part}) is frozen but changed"
            assert not dict(trainer.model.named_parameters())[name].requires_grad
    # every linear weight of a trained part moved (embedding rows of unseen tokens may legitimately stay)
    trained_linear = [n for n in changed if model_part(n) not in frozen and n.endswith(".weight")
                      and dict(trainer.model.named_parameters())[n].dim() == 2 and "embed" not in n]
    assert trained_linear and all(changed[n] for n in trained_linear), [n for n in trained_linear if not changed[n]]


def test_freezing_everything_is_refused(tiny_model_dir, synth_data, tmp_path):
    from radrl.train.sft import RadrlSFTConfig

    with pytest.raises(ValueError, match="nothing would train"):
        RadrlSFTConfig(output_dir=str(tmp_path), model_name_or_path=str(tiny_model_dir),
                       train_data=str(synth_data["train"]), bf16=False, freeze_vision_tower=True,
                       freeze_projector=True, freeze_language_model=True)


@pytest.mark.parametrize("flags, parts", [
    # nothing frozen: adapters on ViT, mergers and LM linear layers
    ([], {"vision_tower", "projector", "language_model"}),
    # the usual LoRA recipe: language model only
    (["--freeze_vision_tower", "true", "--freeze_projector", "true"], {"language_model"}),
    # an explicit regex overrides the part flags
    (["--lora_target_modules", r"model\.language_model\.layers\.\d+\.self_attn\.q_proj"], {"language_model"}),
])
def test_lora_adapters_go_on_the_unfrozen_parts(tiny_model_dir, synth_data, tmp_path, flags, parts):
    _, trainer, _ = _trainer(tiny_model_dir, synth_data, tmp_path, "--use_lora", "true", *flags)
    adapted = {n.removeprefix("base_model.model.").split(".lora_A")[0] for n, _ in trainer.model.named_parameters()
               if ".lora_A." in n}
    assert {model_part(n) for n in adapted} == parts
    assert not any("lm_head" in n or "embed" in n for n in adapted)
    if "--lora_target_modules" in flags:
        assert all(n.endswith("q_proj") for n in adapted)


@pytest.mark.slow
def test_lora_trains_only_adapters_and_saves_adapter_and_merged(tiny_model_dir, synth_data, tmp_path):
    """Two steps (LoRA B starts at zero, so A first gets a gradient on step 2), with gradient
    checkpointing on (TRL must make the frozen embeddings' outputs require grad for this to train)."""
    from radrl.models import load
    from radrl.train.common import save_outputs

    cfg, trainer, processor = _trainer(tiny_model_dir, synth_data, tmp_path / "lora", "--max_steps", "2",
                                       "--use_lora", "true", "--lora_r", "4", "--freeze_vision_tower", "true",
                                       "--freeze_projector", "true", "--activation_checkpointing", "true")
    before = _snapshot(trainer.model)
    trainer.train()
    changed = _changed(before, trainer.model)
    lora = [n for n in changed if ".lora_" in n]
    assert lora and all(changed[n] for n in lora), [n for n in lora if not changed[n]]
    assert not any(did for n, did in changed.items() if ".lora_" not in n), "a base weight changed under LoRA"
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    assert 0 < trainable < 0.2 * sum(p.numel() for p in trainer.model.parameters())

    save_outputs(trainer, processor, cfg)
    out = tmp_path / "lora"
    assert (out / "adapter" / "adapter_config.json").exists()
    assert (out / "adapter" / "adapter_model.safetensors").exists()
    merged, _ = load(str(out), device="cpu")
    base, _ = load(str(tiny_model_dir), device="cpu")
    m, b = dict(merged.named_parameters()), dict(base.named_parameters())
    assert set(m) == set(b)  # a plain checkpoint: no lora_ or base_layer names left
    q = "model.language_model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(m[q], b[q])  # the adapter was merged into the LM
    assert all(torch.equal(m[n], b[n]) for n in m if model_part(n) != "language_model")


@pytest.mark.slow
def test_gradient_checkpointing_is_on_and_gives_the_same_step(tiny_model_dir, synth_data, tmp_path):
    """Recomputing activations must not change the maths: same loss, same updated weights."""
    runs = {}
    for flag in ("false", "true"):
        _, trainer, _ = _trainer(tiny_model_dir, synth_data, tmp_path / flag, "--max_steps", "1",
                                 "--activation_checkpointing", flag)
        trainer.train()
        assert trainer.model.is_activation_checkpointing == (flag == "true")
        loss = next(h["loss"] for h in trainer.state.log_history if "loss" in h)
        runs[flag] = (loss, _snapshot(trainer.model))
    assert runs["true"][0] == pytest.approx(runs["false"][0], rel=1e-5)
    for name, value in runs["false"][1].items():
        torch.testing.assert_close(runs["true"][1][name], value, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("flag", ["--packing", "--padding_free"])
def test_packing_and_padding_free_are_refused_for_images(tiny_model_dir, synth_data, tmp_path, flag):
    """TRL 1.16 supports neither for vision datasets (sft_trainer.py raises); the recipes say so."""
    with pytest.raises(ValueError, match="not supported for vision"):
        _trainer(tiny_model_dir, synth_data, tmp_path, flag, "true")


def test_lora_recipe_fields_reach_peft(tiny_model_dir, synth_data, tmp_path):
    from radrl.train.common import lora_config
    from radrl.train.sft import RadrlSFTConfig

    cfg = RadrlSFTConfig(output_dir=str(tmp_path), model_name_or_path=str(tiny_model_dir),
                         train_data=str(synth_data["train"]), bf16=False, use_lora=True, lora_r=8, lora_alpha=16,
                         lora_dropout=0.0, freeze_vision_tower=True)
    peft_cfg = lora_config(cfg)
    assert (peft_cfg.r, peft_cfg.lora_alpha, peft_cfg.lora_dropout) == (8, 16, 0.0)
    assert "visual\\.blocks" not in peft_cfg.target_modules and "merger" in peft_cfg.target_modules
    assert lora_config(RadrlSFTConfig(output_dir=str(tmp_path), model_name_or_path=str(tiny_model_dir),
                                      train_data=str(synth_data["train"]), bf16=False)) is None
    json.dumps(peft_cfg.to_dict(), default=str)  # serialisable: it is written into adapter_config.json


@pytest.mark.slow
def test_tensorboard_gets_the_training_curves(tiny_model_dir, synth_data, tmp_path):
    """`report_to: [tensorboard]` (the recipes' setting) writes event files with the loss per logged step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from radrl.cli.sft import main

    out = tmp_path / "tb"
    args = [a for a in COMMON if a not in ("--report_to", "none")]
    main(["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
          "--output_dir", str(out), "--max_steps", "2", "--report_to", "tensorboard", *args])
    events = list(out.rglob("events.out.tfevents*"))
    assert events, f"no TensorBoard event file under {out}"
    acc = EventAccumulator(str(events[0].parent)).Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2]


@pytest.mark.slow
def test_wandb_gets_the_training_curves_offline(tiny_model_dir, synth_data, tmp_path, monkeypatch):
    """`--report_to wandb` (when the user asks): with WANDB_MODE=offline the run is written locally (no account,
    no network) and W&B receives the loss of every logged step."""
    from wandb.sdk import wandb_run

    from radrl.cli.sft import main

    logged = []
    original = wandb_run.Run.log

    def log(self, data, *args, **kwargs):  # records what the Trainer's W&B callback sends, then sends it
        logged.append(dict(data))
        return original(self, data, *args, **kwargs)

    monkeypatch.setattr(wandb_run.Run, "log", log)
    for var, value in (("WANDB_MODE", "offline"), ("WANDB_DIR", str(tmp_path)), ("WANDB_PROJECT", "radrl-test"),
                       ("WANDB_SILENT", "true")):
        monkeypatch.setenv(var, value)
    args = [a for a in COMMON if a not in ("--report_to", "none")]
    main(["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
          "--output_dir", str(tmp_path / "wb"), "--max_steps", "2", "--report_to", "wandb", *args])
    import wandb

    wandb.finish()
    assert len(list((tmp_path / "wandb").glob("offline-run-*/run-*.wandb"))) == 1  # the local run file
    assert [d["train/global_step"] for d in logged if "train/loss" in d] == [1, 2]


@pytest.mark.slow
def test_grpo_with_lora_saves_adapter_and_merged_model(tiny_model_dir, synth_data, tmp_path):
    """GRPO through TRL's peft_config path (KL against the adapter-disabled base): the base weights
    outside the adapted layers are the start's, and the merged folder is a plain checkpoint."""
    from safetensors.torch import load_file

    from radrl.cli.grpo import main

    out = tmp_path / "grpo-lora"
    args = [a for a in COMMON if a not in ("--per_device_train_batch_size", "4")]
    main(["--model_name_or_path", str(tiny_model_dir), "--train_data", str(synth_data["train"]),
          "--output_dir", str(out), "--max_steps", "1", "--num_generations", "4", "--per_device_train_batch_size", "8",
          "--max_completion_length", "16", "--tasks", "report", "--rewards", "report_rouge_l", "--beta", "0.01",
          "--use_lora", "true", "--lora_r", "4", "--freeze_vision_tower", "true", "--freeze_projector", "true", *args])
    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert adapter and all("lora_" in k for k in adapter)
    merged, base = load_file(out / "model.safetensors"), load_file(tiny_model_dir / "model.safetensors")
    assert merged.keys() == base.keys()
    assert all(torch.equal(merged[k], base[k]) for k in base if model_part(k) != "language_model")
    # ROUGE-L differs between the random model's rollouts (unlike 0/1 rewards), so the step has a gradient
    history = json.loads((out / "log_history.json").read_text())
    assert next(h["reward_std"] for h in history if "reward_std" in h) > 0
    assert any(not torch.equal(merged[k], base[k]) for k in base if k.endswith("q_proj.weight"))
