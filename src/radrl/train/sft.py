"""Supervised fine-tuning on chest X-ray instructions (TRL SFTTrainer).

    radrl sft --config recipes/demo/sft.yaml [--learning_rate 1e-4 ...]

Reads top to bottom: config -> data -> model -> trainer -> train -> save. Loss is on
the assistant turn only (prompt-completion rows make TRL mask the prompt).
"""

from __future__ import annotations

from dataclasses import dataclass

from trl import SFTConfig, SFTTrainer

from radrl.train import throughput
from radrl.train.common import (
    RadrlArgs,
    RunInfoOnSave,
    conversation_dataset,
    load_for_training,
    lora_config,
    parse_recipe,
    resume_checkpoint,
    save_outputs,
)


@dataclass
class RadrlSFTConfig(RadrlArgs, SFTConfig):
    """TRL's SFTConfig plus radrl's data and model fields (see RadrlArgs)."""

    def __post_init__(self):
        super().__post_init__()
        self.check_radrl_fields()
        if self.thinking:
            raise ValueError("thinking: true needs reasoning traces in the SFT targets, which the cold-start stage "
                             "builds; train this SFT without thinking (the targets here are direct answers)")
        # Images are decoded by the collator; TRL must not drop our columns or pre-tokenize.
        self.remove_unused_columns = False
        self.dataset_kwargs = {**(self.dataset_kwargs or {}), "skip_prepare_dataset": True}


def parse_config(argv: list[str] | None = None) -> RadrlSFTConfig:
    """The recipe (``--config YAML``) with command-line overrides, read by TRL's ``TrlParser``
    (``radrl sft`` is ``train(parse_config(argv))``)."""
    return parse_recipe(RadrlSFTConfig, argv, "sft")


def build_trainer(cfg: RadrlSFTConfig) -> tuple[SFTTrainer, object]:
    dataset = conversation_dataset(cfg)
    model, processor = load_for_training(cfg)
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=dataset, processing_class=processor,
                         peft_config=lora_config(cfg))
    throughput.attach(trainer, cfg.peak_tflops)  # perf/ tokens/s per device and MFU at every logging step
    trainer.add_callback(RunInfoOnSave(trainer, cfg))  # radrl.json in every checkpoint-N
    return trainer, processor


def train(cfg: RadrlSFTConfig) -> str:
    trainer, processor = build_trainer(cfg)
    trainer.train(resume_from_checkpoint=resume_checkpoint(cfg.resume_from_checkpoint, cfg.output_dir))
    return save_outputs(trainer, processor, cfg)
