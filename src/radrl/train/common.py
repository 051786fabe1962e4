"""What SFT and GRPO share: the fields both recipes add to TRL's configs, data loading, which parts train
(freezing, LoRA), resume and saving."""

from __future__ import annotations

import ctypes
import json
import logging
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from radrl.data.instructions import build_conversations, build_task_mix, to_dataset
from radrl.data.schema import read_jsonl
from radrl.lookup import did_you_mean
from radrl.models import load
from radrl.package import version

log = logging.getLogger(__name__)


@dataclass
class RadrlArgs:
    """Fields radrl adds to TRL's SFTConfig / GRPOConfig (mixed in; TRL's own fields keep their meaning)."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Qwen3-VL checkpoint folder (a hub id only with RADRL_ALLOW_DOWNLOAD=1)."})
    train_data: str | None = field(
        default=None, metadata={"help": "Samples JSONL (radrl.data.schema rows), a JSONL of conversation rows "
                                         "(radrl coldstart output), or RadVLM / LLaVA instruction JSON."})
    tasks: list[str] = field(
        default_factory=lambda: ["report", "grounding"],
        metadata={"help": "Tasks to train: report, grounding (rows of other tasks in conversation files: "
                          "SFT keeps them, GRPO drops them)."})
    task_mix: bool = field(
        default=False, metadata={"help": "SFT on the paper's instruction mix: each sample feeds its source's tasks "
                                         "(report, classification, anatomy/abnormality/phrase grounding, detection, "
                                         "conversation) with the paper's repeats (radrl.data.instructions."
                                         "build_task_mix); `tasks` is then ignored."})
    thinking: bool = field(default=False, metadata={"help": "Append ' /think' to every request."})
    box_format: str = field(
        default="paper", metadata={"help": "Box text in answers: 'paper' (0-1) or 'qwen' (0-1000 JSON)."})
    min_pixels: int | None = field(default=None, metadata={"help": "Image pixel budget, lower bound."})
    max_pixels: int | None = field(default=None, metadata={"help": "Image pixel budget, upper bound."})
    box_instruction: bool = field(
        default=False, metadata={"help": "Spell out the expected box format in grounding requests (for base models)."})
    max_train_rows: int | None = field(default=None, metadata={"help": "Use only the first N conversation rows."})
    data_seed_prompts: int = field(default=0, metadata={"help": "Seed for drawing request phrasings."})
    freeze_vision_tower: bool = field(
        default=False,
        metadata={"help": "Do not train the ViT blocks and patch embedding (model.visual minus mergers)."})
    freeze_projector: bool = field(
        default=False, metadata={"help": "Do not train the vision-language mergers (model.visual.merger, deepstack)."})
    freeze_language_model: bool = field(
        default=False, metadata={"help": "Do not train the language model (model.language_model and lm_head)."})
    use_lora: bool = field(
        default=False, metadata={"help": "Train LoRA adapters (peft) instead of the weights; they go on the linear "
                                         "layers of the parts not frozen, unless lora_target_modules is set."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA input."})
    lora_target_modules: str | None = field(
        default=None, metadata={"help": "A regex fullmatched against module names, overriding the part flags, "
                                         "e.g. 'model[.]language_model[.].*[.](q|v)_proj'."})
    peak_tflops: float | None = field(
        default=None, metadata={"help": "Peak dense FLOP/s of one device in TFLOP/s, for the MFU logged as perf/mfu "
                                        "(default: the device's published bf16 peak, radrl.models.flops; none on a "
                                        "CPU)."})
    lora_merge: bool = field(
        default=True, metadata={"help": "Also write the merged full model to output_dir (the adapter always goes to "
                                        "output_dir/adapter); eval and vLLM load the merged folder."})

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
        if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available() and not self.use_cpu:
            raise ValueError("several processes were launched on a machine without a GPU but use_cpu is false: each "
                             "process would train alone on all the data. Add --use_cpu true to join them over gloo")
        if self.freeze_vision_tower and self.freeze_projector and self.freeze_language_model:
            raise ValueError("freeze_vision_tower, freeze_projector and freeze_language_model are all true: nothing "
                             "would train; unfreeze at least one part")
        if self.use_lora and self.lora_r < 1:
            raise ValueError(f"lora_r must be >= 1 with use_lora, got {self.lora_r}")


def conversation_dataset(args: RadrlArgs):
    """Training data -> conversation rows -> a datasets.Dataset with images decoded on access.

    ``train_data`` is one of (``train_data_kind``): a samples JSONL (rows are built here from the
    task templates), a JSONL of conversation rows already built (e.g. ``radrl coldstart``'s
    ``coldstart.jsonl``), or the RadVLM / LLaVA instruction JSON (a ``.json`` file, a JSONL of
    ``conversations`` entries, or a folder of them; read by ``radrl.data.sources.radvlm_json``,
    bad entries skipped and counted). ``tasks`` selects among report and grounding rows; rows of
    other tasks (imported RadVLM conversations) are kept here (SFT trains on them; GRPO drops them,
    ``radrl.train.grpo.grpo_dataset``). Image paths are checked here,
    before training starts, so that a missing file is reported with its row instead of failing
    mid-epoch inside a dataloader worker."""
    kind = train_data_kind(args.train_data)
    samples = rows = None
    if kind == "samples":
        samples = list(read_jsonl(args.train_data))
        images = [(s.id, s.image) for s in samples]
    else:
        rows = read_conversations(args.train_data) if kind == "conversations" else _read_llava(args.train_data)
        rows = [r for r in rows if r["task"] not in ("report", "grounding") or r["task"] in args.tasks]
        images = [(r["id"], p) for r in rows for p in r["images"]]
    check_images(args.train_data, images)
    if samples is not None and args.task_mix:
        rows = list(build_task_mix(samples, seed=args.data_seed_prompts, thinking=args.thinking,
                                   box_format=args.box_format, box_instruction=args.box_instruction))
    elif samples is not None:
        rows = build_conversations(samples, tasks=args.tasks, seed=args.data_seed_prompts, thinking=args.thinking,
                                   box_format=args.box_format, box_instruction=args.box_instruction)
    if args.max_train_rows:
        rows = rows[: args.max_train_rows]
    return to_dataset(rows)


def check_images(source: str, images: list[tuple[str, str]]) -> None:
    """Fail before any work starts if an image of ``images`` (row id, path) is not a file, naming ``source``
    (the data file) and the first rows, so that a missing file is not found mid-epoch in a dataloader worker."""
    missing = [(i, p) for i, p in images if not Path(p).is_file()]
    if missing:
        shown = "; ".join(f"{i}: {p}" for i, p in missing[:5])
        raise FileNotFoundError(f"{source}: {len(missing)} rows point to missing "
                                f"images ({shown}{' ...' if len(missing) > 5 else ''}); fix the paths or drop the rows")


CONVERSATION_KEYS = ("id", "prompt", "completion", "images", "task", "solution", "thinking")


def train_data_kind(path: str) -> str:
    """'samples', 'conversations' (radrl rows with prompt/completion) or 'llava' (RadVLM / LLaVA JSON).

    >>> train_data_kind("runs/demo/data/train.jsonl")  # doctest: +SKIP
    'samples'
    """
    if Path(path).is_dir() or Path(path).suffix == ".json":
        return "llava"
    with open(path) as f:
        first = next((line for line in f if line.strip()), "{}")
    try:
        keys = json.loads(first)
    except json.JSONDecodeError:
        return "samples"  # the samples reader reports the bad line with its number
    return "conversations" if "prompt" in keys else "llava" if "conversations" in keys else "samples"


def _read_llava(path: str) -> list[dict]:
    from radrl.data.sources.radvlm_json import read_conversations as read_llava

    rows, skipped = [], []
    for r in read_llava(path):
        (rows if isinstance(r, dict) else skipped).append(r)
    if skipped:
        log.warning("%s: skipped %d unusable entries (first: %s: %s, %s)", path, len(skipped), skipped[0].where,
                    skipped[0].reason, skipped[0].detail)
    return rows


def read_conversations(path: str) -> list[dict]:
    """Conversation rows (radrl.data.instructions format), each checked for every column training uses."""
    rows = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path} line {n}: not JSON ({e}); fix or delete the line") from None
            lacking = [k for k in CONVERSATION_KEYS if k not in row]
            if lacking:
                raise ValueError(f"{path} line {n}: conversation row lacks {lacking}; "
                                 f"rows need {list(CONVERSATION_KEYS)} "
                                 "(write them with radrl.data.instructions or `radrl coldstart`)")
            rows.append(row)
    return rows


def load_for_training(args: RadrlArgs):
    """Model in fp32 on the CPU (the Trainer places it and autocasts to bf16 when ``bf16: true``,
    keeping fp32 master weights), frozen parts switched off, and the image-only processor with the
    recipe's pixel budget. Training on the CPU, freed activations are handed back to the system
    (``return_freed_memory``)."""
    if getattr(args, "use_cpu", False) or not torch.cuda.is_available():
        return_freed_memory()
    model, processor = load(args.model_name_or_path, dtype=torch.float32, device="cpu", min_pixels=args.min_pixels,
                            max_pixels=args.max_pixels)
    if not args.use_lora:  # with LoRA, peft freezes every base weight and the part flags place the adapters
        frozen = frozen_parts(args)
        for name, param in model.named_parameters():
            if model_part(name) in frozen:
                param.requires_grad_(False)
    return model, processor


# Allocations from this size up get their own mmap, which free() returns to the system at once (glibc's
# M_MMAP_THRESHOLD); 1 MiB keeps the many small tensors on the heap, where they are cheap.
CPU_MMAP_THRESHOLD = 1 << 20
M_MMAP_THRESHOLD = -3  # glibc's <malloc.h> constant for mallopt


def return_freed_memory(threshold: int = CPU_MMAP_THRESHOLD) -> bool:
    """Make glibc give freed tensor memory back to the system, so that training on the CPU stays near the
    memory it uses (True when set; glibc on Linux only).

    Why: PyTorch's CPU tensors come from glibc malloc, whose mmap threshold rises to the size of each large
    block freed (up to 32 MiB). After the first activations of a step are freed, every tensor up to that
    size (a ViT block's activations at Qwen3-VL's 451,584-pixel budget are 14-29 MB) goes on the heap,
    where freed blocks between live ones are kept, not returned. A GRPO step on Qwen3-VL-2B's architecture
    (fp32, LoRA, two 672 x 672 images) then grew to 19.6 GiB of resident memory and was OOM-killed on a
    24 GiB machine; with 4 decoder layers the heap held 4.1 GiB freed of 5.0 GiB after the loss forward
    and the step peaked at 9.9 GiB, with this setting 5.8 GiB (the rest is the weights; bench/README.md,
    "realsize_cpu.sh"). A fixed threshold turns that adaptation off
    (``mallopt(M_MMAP_THRESHOLD)``, as the ``MALLOC_MMAP_THRESHOLD_`` environment variable does, which
    takes precedence when set). The price is page faults on the fresh pages of large blocks: on one thread of a
    shared machine that step's forward took 82-89 s with it against 79 s, its backward 172-190 s against 164 s."""
    if "MALLOC_MMAP_THRESHOLD_" in os.environ or platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        ok = bool(libc.mallopt(M_MMAP_THRESHOLD, int(threshold)))
    except (OSError, AttributeError):
        return False
    if ok:
        log.info("glibc mmap threshold set to %d bytes: freed tensors go back to the system", threshold)
    return ok


# Qwen3-VL's three parts, by parameter/module name prefix (transformers 5 layout; the 8B and the tiny model
# share it). The mergers (the main one and the DeepStack ones that feed ViT features into early LM layers)
# are the projector; everything else under model.visual is the vision tower.
PARTS = (("projector", ("model.visual.merger.", "model.visual.deepstack_merger_list.")),
         ("vision_tower", ("model.visual.",)),
         ("language_model", ("model.language_model.", "lm_head.")))

# LoRA goes on these linear layers of each part (the ViT's fused qkv/proj and MLP, the mergers' MLP,
# the LM's attention and MLP projections), never on embeddings or lm_head.
LORA_TARGETS = {
    "vision_tower": r"model\.visual\.blocks\.\d+\.(attn\.(qkv|proj)|mlp\.linear_fc[12])",
    "projector": r"model\.visual\.(merger|deepstack_merger_list\.\d+)\.linear_fc[12]",
    "language_model": r"model\.language_model\.layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj)",
}


def model_part(name: str) -> str:
    """Which part of Qwen3-VL a parameter belongs to.

    >>> model_part("model.visual.blocks.0.attn.qkv.weight"), model_part("model.visual.merger.linear_fc1.weight")
    ('vision_tower', 'projector')
    >>> model_part("lm_head.weight")
    'language_model'
    """
    for part, prefixes in PARTS:
        if name.startswith(prefixes):
            return part
    raise ValueError(f"parameter {name} is in no known Qwen3-VL part ({[p for p, _ in PARTS]}); radrl's part "
                     "flags expect the transformers 5 Qwen3-VL layout")


def frozen_parts(args: RadrlArgs) -> set[str]:
    return {part for part, flag in (("vision_tower", args.freeze_vision_tower), ("projector", args.freeze_projector),
                                    ("language_model", args.freeze_language_model)) if flag}


def lora_config(args: RadrlArgs):
    """The peft ``LoraConfig`` TRL's trainers take as ``peft_config`` (None for full fine-tuning).

    Adapters go on the linear layers of the parts that are not frozen, so the same three flags say
    what trains in both modes: ``use_lora: true, freeze_vision_tower: true, freeze_projector: true``
    puts adapters on the language model only (a regex over module names, peft's fullmatch)."""
    if not args.use_lora:
        return None
    from peft import LoraConfig

    target = args.lora_target_modules or "|".join(
        f"({regex})" for part, regex in LORA_TARGETS.items() if part not in frozen_parts(args))
    return LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                      target_modules=target, task_type="CAUSAL_LM")


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


def save_outputs(trainer, processor, args: RadrlArgs) -> str:
    """Final model, processor, log history (the curves reports plot) and ``radrl.json`` (the radrl version and
    the run's inputs), written once (main process).

    With LoRA the adapter goes to ``output_dir/adapter``; with ``lora_merge`` the main process then
    loads the base checkpoint on the CPU, merges the adapter into it and writes a complete checkpoint
    to ``output_dir``. Merging from the saved files, not from the live model, works the same under
    DeepSpeed ZeRO-3 and FSDP, where no single process holds the full weights."""
    output_dir = args.output_dir
    if args.use_lora:
        trainer.save_model(str(Path(output_dir) / "adapter"))
    else:
        trainer.save_model(output_dir)
    if trainer.is_world_process_zero():
        if args.use_lora and args.lora_merge:
            merge_lora(args.model_name_or_path, Path(output_dir) / "adapter", output_dir)
        processor.save_pretrained(output_dir)
        (Path(output_dir) / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
        write_run_info(output_dir, trainer, args)
    return output_dir


def write_run_info(folder: str | Path, trainer, args: RadrlArgs) -> None:
    """``folder/radrl.json``: which radrl made this checkpoint, from what. Why: a model folder outlives the
    command that trained it, and an intermediate ``checkpoint-N`` is often the one evaluated or shared."""
    (Path(folder) / "radrl.json").write_text(json.dumps({
        "radrl_version": version(), "trainer": type(trainer).__name__, "base_model": args.model_name_or_path,
        "train_data": args.train_data, "tasks": list(args.tasks), "lora": bool(args.use_lora),
        "global_step": trainer.state.global_step}, indent=1))


class RunInfoOnSave(TrainerCallback):
    """Writes ``radrl.json`` into every ``checkpoint-N`` folder the trainer saves (main process)."""

    def __init__(self, trainer, args: RadrlArgs) -> None:
        self.trainer, self.args = trainer, args

    def on_save(self, args, state, control, **kwargs):
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.is_world_process_zero and folder.is_dir():
            write_run_info(folder, self.trainer, self.args)


def merge_lora(base: str, adapter: str | Path, out: str | Path) -> Path:
    """Base checkpoint + LoRA adapter folder -> merged full checkpoint in ``out`` (weights in the base's dtype).

    >>> merge_lora("/models/Qwen3-VL-8B-Instruct", "runs/sft-lora/adapter", "runs/sft-lora")  # doctest: +SKIP
    """
    from peft import PeftModel
    from transformers import Qwen3VLForConditionalGeneration
    from transformers.integrations import unset_hf_deepspeed_config

    # Training is over: a ZeRO-3 config still registered would make from_pretrained refuse device_map (and
    # partition the weights); the merge is a plain single-process CPU load.
    unset_hf_deepspeed_config()
    model = Qwen3VLForConditionalGeneration.from_pretrained(base, dtype="auto", device_map="cpu")
    merged = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))
    return Path(out)


def parse_recipe(config_cls, argv: list[str] | None, verb: str):
    """The recipe (``--config YAML``) with command-line overrides, read by TRL's ``TrlParser`` into
    ``config_cls``, after checking the recipe itself.

    Why not TrlParser alone: without ``--config`` it builds the config from TRL's defaults and fails
    on bf16 or a GPU the machine lacks; a misspelt recipe field came back without the file or a
    suggestion; a value of the wrong type came back as an argparse ``usage:`` error that does not
    name the YAML file. Here each of those is one line naming the recipe, the field and the closest
    valid name (``ValueError``). Without ``--config`` the command line must carry the recipe itself
    (at least ``--model_name_or_path`` and ``--train_data``). Command-line flags take dashes or
    underscores (``--learning-rate`` or ``--learning_rate``: transformers' parser registers both)."""
    import sys

    import yaml
    from trl import TrlParser

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = TrlParser((config_cls,))
    if "-h" in argv or "--help" in argv:
        return parser.parse_args_and_config(argv)[0]   # argparse prints the fields and exits
    argv = [part for a in argv for part in (a.split("=", 1) if a.startswith("--config=") else [a])]
    if "--config" not in argv or argv.index("--config") + 1 >= len(argv):
        given = {a.split("=", 1)[0][2:].replace("-", "_") for a in argv if a.startswith("--")}
        if not {"model_name_or_path", "train_data"} <= given:   # the whole recipe on the command line is fine too
            raise ValueError(f"radrl {verb} needs a recipe: --config RECIPE.yaml (e.g. recipes/demo/{verb}.yaml on a "
                             "CPU, recipes/qwen3vl-8b/ for the paper's runs); command-line fields then override it")
        return _parse_command_line(parser, argv, verb)
    path = Path(argv[argv.index("--config") + 1])
    if not path.is_file():
        raise FileNotFoundError(f"recipe {path} not found; pass a YAML file from recipes/ or your own copy of one")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path} is not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path} must be a YAML mapping of field: value (radrl {verb} --help lists the fields)")  # noqa: TRY004 (bad data)
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    problems = []
    for key, value in config.items():
        if key == "env":
            continue
        if key not in actions:
            problems.append(f"unknown field {key!r}{did_you_mean(str(key), actions)}")
        elif (problem := _value_problem(actions[key], value)) is not None:
            problems.append(f"field {key!r}: {problem}")
    if problems:
        raise ValueError(f"{path}: {'; '.join(problems)} (radrl {verb} --help lists every field)")
    return _parse_command_line(parser, argv, verb)


def _parse_command_line(parser, argv: list[str], verb: str):
    """TrlParser's result; an unknown flag is one line with the closest known one."""
    cfg, *rest = parser.parse_args_and_config(argv, return_remaining_strings=True)
    unknown = [a for a in (rest[0] if rest else []) if a.startswith("-")]
    if unknown:
        options = [o for a in parser._actions for o in a.option_strings]
        flag = unknown[0].split("=", 1)[0]
        raise ValueError(f"radrl {verb}: unknown option {flag}{did_you_mean(flag, options)} "
                         f"(radrl {verb} --help lists every field)")
    return cfg


def _value_problem(action, value) -> str | None:
    """Why a recipe value does not fit the field's command-line type, or None. Only the types argparse would
    convert (numbers, booleans, choices) are checked; dicts and free text pass as TRL reads them."""
    if value is None:
        return None
    values = value if isinstance(value, list) and action.nargs in ("+", "*") else [value]
    for v in values:
        if action.choices is not None:
            names = [str(c) for c in action.choices]
            if str(v) not in names:
                return f"{v!r} is not one of {names}{did_you_mean(str(v), names)}"
        elif action.type in (int, float):
            what = "a whole number" if action.type is int else "a number"
            try:
                ok = not isinstance(v, (bool, list, dict)) and action.type(str(v)) is not None
            except ValueError:
                ok = False
            if not ok:
                return f"{v!r} is not {what}"
        elif getattr(action.type, "__name__", "") == "string_to_bool":   # transformers' and TRL's own copy
            try:
                action.type(v if isinstance(v, bool) else str(v))
            except Exception:  # noqa: BLE001 (argparse's own error type for any non-boolean text)
                return f"{v!r} is not true or false"
    return None
