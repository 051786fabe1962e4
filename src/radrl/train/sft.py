"""Supervised fine-tuning on chest X-ray instructions (TRL SFTTrainer).

    radrl sft --config recipes/demo/sft.yaml [--learning_rate 1e-4 ...]

Reads top to bottom: config -> data -> model -> trainer -> train -> save. Loss is on
the assistant turn only (prompt-completion rows make TRL mask the prompt).
"""

from __future__ import annotations

from dataclasses import dataclass

from trl import SFTConfig, SFTTrainer, TrlParser

from radrl.models import load
from radrl.train.common import RadrlArgs, conversation_dataset, resume_checkpoint, save_log_history


@dataclass
class RadrlSFTConfig(RadrlArgs, SFTConfig):
    """TRL's SFTConfig plus radrl's data and model fields (see RadrlArgs)."""

    def __post_init__(self):
        super().__post_init__()
        self.check_radrl_fields()
        # Images are decoded by the collator; TRL must not drop our columns or pre-tokenize.
        self.remove_unused_columns = False
        self.dataset_kwargs = {**(self.dataset_kwargs or {}), "skip_prepare_dataset": True}


def main(argv: list[str] | None = None) -> str:
    (cfg,) = TrlParser((RadrlSFTConfig,)).parse_args_and_config(argv)
    return train(cfg)


def train(cfg: RadrlSFTConfig) -> str:
    dataset = conversation_dataset(cfg)
    model, processor = load(cfg.model_name_or_path, dtype="bf16" if cfg.bf16 else "fp32", device="cpu",
                            min_pixels=cfg.min_pixels, max_pixels=cfg.max_pixels)
    trainer = SFTTrainer(model=model, args=cfg, train_dataset=dataset, processing_class=processor)
    trainer.train(resume_from_checkpoint=resume_checkpoint(cfg.resume_from_checkpoint, cfg.output_dir))
    trainer.save_model(cfg.output_dir)
    processor.save_pretrained(cfg.output_dir)
    save_log_history(trainer, cfg.output_dir)
    return cfg.output_dir
