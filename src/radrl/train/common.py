"""What SFT and GRPO share: the fields both recipes add to TRL's configs, data loading, resume."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers.trainer_utils import get_last_checkpoint

from radrl.data.instructions import build_conversations, to_dataset
from radrl.data.schema import read_jsonl
from radrl.models import load


@dataclass
class RadrlArgs:
    """Fields radrl adds to TRL's SFTConfig / GRPOConfig (mixed in; TRL's own fields keep their meaning)."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Qwen3-VL checkpoint folder (or hub id where you have access)."})
    train_data: str | None = field(
        default=None, metadata={"help": "Samples JSONL (radrl.data.schema rows) to build conversations from."})
    tasks: list[str] = field(
        default_factory=lambda: ["report", "grounding"], metadata={"help": "Tasks to train: report, grounding."})
    thinking: bool = field(default=False, metadata={"help": "Append ' /think' to every request."})
    box_format: str = field(default="paper", metadata={"help": "Box text in answers: 'paper' (0-1) or 'qwen' (0-1000 JSON)."})
    min_pixels: int | None = field(default=None, metadata={"help": "Image pixel budget, lower bound."})
    max_pixels: int | None = field(default=None, metadata={"help": "Image pixel budget, upper bound."})
    box_instruction: bool = field(
        default=False, metadata={"help": "Spell out the expected box format in grounding requests (for base models)."})
    max_train_rows: int | None = field(default=None, metadata={"help": "Use only the first N conversation rows."})
    data_seed_prompts: int = field(default=0, metadata={"help": "Seed for drawing request phrasings."})

    def check_radrl_fields(self) -> None:
        if not self.model_name_or_path:
            raise ValueError("set model_name_or_path (in the recipe or --model_name_or_path PATH)")
        if not self.train_data:
            raise ValueError("set train_data to a samples JSONL (e.g. from `radrl synth-data OUT`)")
        if not Path(self.train_data).exists():
            raise FileNotFoundError(f"train_data {self.train_data} does not exist; write it with `radrl synth-data` "
                                    "or point to a prepared samples JSONL")
        if self.box_format not in ("paper", "qwen"):
            raise ValueError(f"box_format must be 'paper' or 'qwen', got {self.box_format!r}")


def conversation_dataset(args: RadrlArgs):
    """Samples JSONL -> conversation rows -> a datasets.Dataset with images decoded on access.

    Image paths are checked here, before training starts, so that a missing file is reported
    with its row instead of failing mid-epoch inside a dataloader worker."""
    samples = list(read_jsonl(args.train_data))
    missing = [(s.id, s.image) for s in samples if not Path(s.image).is_file()]
    if missing:
        shown = "; ".join(f"{i}: {p}" for i, p in missing[:5])
        raise FileNotFoundError(f"{args.train_data}: {len(missing)} of {len(samples)} samples point to missing "
                                f"images ({shown}{' ...' if len(missing) > 5 else ''}); fix the paths or drop the rows")
    rows = build_conversations(samples, tasks=args.tasks, seed=args.data_seed_prompts, thinking=args.thinking,
                               box_format=args.box_format, box_instruction=args.box_instruction)
    if args.max_train_rows:
        rows = rows[: args.max_train_rows]
    return to_dataset(rows)


def load_for_training(args: RadrlArgs):
    """Model in fp32 on the CPU (the Trainer places it and autocasts to bf16 when ``bf16: true``,
    keeping fp32 master weights) and the image-only processor with the recipe's pixel budget."""
    return load(args.model_name_or_path, dtype=torch.float32, device="cpu", min_pixels=args.min_pixels,
                max_pixels=args.max_pixels)


def resume_checkpoint(value: str | None, output_dir: str) -> str | None:
    """``resume_from_checkpoint``: a path, or 'last' for the newest checkpoint in output_dir (None if there is none)."""
    if value in (None, "", "false", "False"):
        return None
    if value in ("last", "true", "True"):
        return get_last_checkpoint(output_dir) if Path(output_dir).is_dir() else None
    if not Path(value).is_dir():
        raise FileNotFoundError(f"resume_from_checkpoint {value} is not a checkpoint folder; use 'last' to pick "
                                f"the newest one in {output_dir}")
    return value


def save_outputs(trainer, processor, output_dir: str) -> str:
    """Final model, processor and log history (the curves reports plot), written once (main process)."""
    trainer.save_model(output_dir)
    if trainer.is_world_process_zero():
        processor.save_pretrained(output_dir)
        (Path(output_dir) / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    return output_dir
