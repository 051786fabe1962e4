"""GRPO with clinically grounded rewards (TRL GRPOTrainer).

    radrl grpo --config recipes/demo/grpo_grounding.yaml [--learning_rate 5e-5 ...]

Reads top to bottom: config -> rewards (checked first) -> data -> model -> trainer -> train -> save.
Each reward sees every dataset column (``task``, ``solution``, ``thinking``), returns
None for rows of another task, and is the same metric code evaluation reports. Rows
of tasks no reward scores (imported conversations, classification, ...) are dropped
before training, counted (``grpo_dataset``).
"""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import ClassVar

from trl import GRPOConfig, GRPOTrainer

from radrl.data.images import fit_pixels
from radrl.rewards import REWARDS, build_rewards, check_rewards
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

log = logging.getLogger(__name__)


@dataclass
class RadrlGRPOConfig(RadrlArgs, GRPOConfig):
    """TRL's GRPOConfig plus radrl's data/model fields and the rewards to optimise."""

    # list[str] for the command line; a YAML recipe may also hold mappings (inline rewards) here
    rewards: list[str] = field(
        default_factory=lambda: ["grounding_soft_f1", "report_clinical"],
        metadata={"help": "Rewards, routed by task (each returns None for other tasks): names "
                          f"({sorted(REWARDS)}), import paths package.module:reward, or inline report rewards "
                          "{metric: ..., key: ..., floor: ..., name: ...} (JSON on the command line); "
                          "see docs/rewards.md."})
    reward_options: dict | str | None = field(
        default=None, metadata={"help": "Options per reward by name, e.g. {report_length_guard: {min_ratio: 0.6}} in "
                                        "YAML (JSON on the command line); see docs/rewards.md."})
    reward_servers: list[str] | None = field(
        default=None, metadata={"help": "URLs of `radrl reward-server` processes; report-metric rewards are scored "
                                        "there instead of in every training process (docs/reward-server.md)."})
    reward_server_fallback: float | None = field(
        default=None, metadata={"help": "Reward for rows the servers could not score after retries (logged and "
                                        "counted); None (default) fails the step instead of training on it."})
    reward_server_timeout: float = field(default=60.0, metadata={"help": "Seconds per reward-server request."})
    group_min_reward_std: float = field(
        default=0.0, metadata={"help": "Leave out of the loss every rollout group (the num_generations completions "
                                      "of one prompt) whose summed weighted reward has a standard deviation below "
                                      "this (DAPO's dynamic sampling without resampling): no weight, and with "
                                      "loss_type dapo, bnpo, cispo or vespo not counted in the token normaliser. "
                                      "0 (default) keeps every group; 1e-6 leaves out only groups whose rollouts "
                                      "all scored the same. The kept share is logged as groups/kept_ratio. Not "
                                      "with multi_objective_aggregation normalize_then_sum."})

    _VALID_DICT_FIELDS: ClassVar[list[str]] = [*GRPOConfig._VALID_DICT_FIELDS, "reward_options"]

    def __post_init__(self):
        super().__post_init__()
        self.check_radrl_fields()
        if self.reward_weights is not None and len(self.reward_weights) != len(self.rewards):
            raise ValueError(f"reward_weights has {len(self.reward_weights)} values for {len(self.rewards)} rewards "
                             f"{self.rewards}; give one weight per reward, in the same order")
        if not 0 <= self.group_min_reward_std < math.inf:  # NaN fails too
            raise ValueError(f"group_min_reward_std must be a finite number >= 0, got {self.group_min_reward_std}; "
                             "0 keeps every rollout group, 1e-6 leaves out the groups whose rollouts all scored the "
                             "same, larger values also the nearly uniform ones")
        if self.group_min_reward_std and getattr(self, "multi_objective_aggregation", "") == "normalize_then_sum":
            raise ValueError("group_min_reward_std judges a group by its summed reward, but "
                             "multi_objective_aggregation normalize_then_sum normalises each reward over the batch, "
                             "so a group with a uniform sum can still have advantages: use sum_then_normalize "
                             "(TRL's default) or group_min_reward_std 0")
        if self.group_min_reward_std and self.loss_type not in _TOKEN_NORMALISED:
            log.warning("group_min_reward_std with loss_type %r: left-out groups get no weight, but this loss "
                        "averages over every sequence of the batch, so they still dilute the kept ones (the step "
                        "shrinks by the kept share). loss_type dapo, bnpo, cispo or vespo divides by the kept "
                        "tokens only",
                        self.loss_type)
        if self.task_mix:
            raise ValueError("task_mix is for SFT: its classification, detection and conversation rows have no GRPO "
                             "reward. For GRPO pick tasks (report, grounding) and a reward for each")
        # unknown rewards (with the closest name), bad import paths, unknown options and a reward-server fallback
        # outside a reward's range fail here, at parse time, not mid-run
        funcs, _ = reward_funcs(self)
        uncovered = sorted(set(self.tasks) - scored_tasks(funcs, self.tasks))
        if uncovered:
            raise ValueError(f"no reward scores task(s) {uncovered} (rewards: {self.rewards}); every one of their "
                             "rollouts would get reward 0. Add a reward for them or drop them from tasks")
        self.remove_unused_columns = False  # rewards read task / solution / thinking
        self.model_init_kwargs = reference_init_kwargs(self)


# TRL loss types whose normaliser counts the loss mask's tokens (dapo, cispo, vespo: the generation batch's,
# via num_items_in_batch; bnpo: the micro-batch's), so rows masked out do not count in it
_TOKEN_NORMALISED = ("dapo", "bnpo", "cispo", "vespo")


class RadrlGRPOTrainer(GRPOTrainer):
    """TRL's ``GRPOTrainer`` plus low-variance group filtering (``group_min_reward_std``); with it at 0
    (the default) it is ``GRPOTrainer`` unchanged.

    Why: a group whose rollouts all score (nearly) the same has advantages of (nearly) 0 and teaches
    nothing, yet under ``loss_type: dapo`` its tokens count in the normaliser (``num_items_in_batch``,
    the generation batch's active completion tokens) and dilute the groups that do teach; with a tiny
    but non-zero std, TRL's division by ``std + 1e-4`` even blows small reward noise up to full-size
    advantages. DAPO's dynamic sampling drops such groups and resamples; this drops them without
    resampling (CheXOne's low-variance filtering), so a step trains on fewer groups, never on more
    rollouts.

    How: TRL computes rewards, advantages and everything else as usual; afterwards the rows of
    groups whose summed weighted reward (the ``reward`` TRL logs, NaN for rows no reward scored) has
    a standard deviation (TRL's ``nanstd``, over the group's scored rows) below the threshold get
    advantage 0 and are taken out of the loss mask (through TRL's ``tool_mask``, which only the loss
    reads; ``completion_mask`` stays, as it is also the attention mask the log-probs were computed
    with), and ``num_items_in_batch`` is recounted from the remaining loss mask. The masking happens
    on the whole generation batch before TRL splits it into ``steps_per_generation`` micro-batches,
    so gradient accumulation and ``num_iterations`` reuse see the same kept rows; groups are judged
    on every process's rewards, as TRL gathers them. Training only: evaluation loss keeps every group.

    Logged per generation batch: ``groups/kept_ratio`` (kept groups / groups) and
    ``groups/all_filtered`` (1 when no group was kept: that batch's loss is 0, no NaN, and the
    optimizer step moves the weights only by momentum and weight decay; a warning says so)."""

    _radrl_rewards_per_func = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # keep TRL's gathered (all processes) reward matrix for _generate_and_score_completions
        self._radrl_rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._radrl_rewards_per_func

    def _generate_and_score_completions(self, inputs):
        import torch

        output = super()._generate_and_score_completions(inputs)
        min_std = getattr(self.args, "group_min_reward_std", 0.0)
        if not min_std or not self.model.training:
            return output
        keep = kept_rollouts(self._radrl_rewards_per_func, self.reward_weights, self.num_generations, min_std)
        n = output["completion_ids"].size(0)  # this process's rows: a slice of the gathered ones, as in TRL
        local = keep[self.accelerator.process_index * n:(self.accelerator.process_index + 1) * n]
        # the loss mask only: completion_mask is also the attention mask of the loss forward, and TRL computed the
        # old and reference log-probs with it, so zeroing it would score these rows without their context (and
        # exp(ref - logp) of such a row may overflow to inf, and inf * 0 is NaN); TRL multiplies tool_mask into
        # the loss mask and uses it nowhere else
        completion_mask = output["completion_mask"]
        tool_mask = output.get("tool_mask", torch.ones_like(completion_mask))
        output["tool_mask"] = tool_mask * local.unsqueeze(1).to(tool_mask.dtype)
        advantages = output["advantages"]
        output["advantages"] = advantages * local.view(-1, *[1] * (advantages.dim() - 1)).to(advantages.dtype)
        output["num_items_in_batch"] = self.accelerator.gather((completion_mask * output["tool_mask"]).sum()).sum()
        groups = keep.view(-1, self.num_generations)[:, 0]
        kept = groups.float().mean().item()
        self._metrics["train"]["groups/kept_ratio"].append(kept)
        self._metrics["train"]["groups/all_filtered"].append(float(kept == 0))
        if kept == 0 and self.accelerator.is_main_process:
            log.warning("step %d: all %d rollout groups have a reward std below group_min_reward_std=%g, so this "
                        "generation batch adds nothing to the loss (loss 0). If this repeats, lower "
                        "group_min_reward_std or raise num_generations / temperature", self.state.global_step,
                        len(groups), min_std)
        return output


def kept_rollouts(rewards_per_func, weights, num_generations: int, min_std: float):
    """Per rollout (TRL's gathered rows, groups of ``num_generations`` in a row): whether its group's summed
    weighted reward has a standard deviation of at least ``min_std``. Rows that no reward scored (all NaN)
    are left out of their group's std, as TRL leaves them out of its baseline; a group with fewer than two
    scored rows has no std and is not kept.

    >>> import torch
    >>> rewards = torch.tensor([[1.0], [0.95], [0.2], [0.8]])  # one reward, two groups of two: std 0.035, 0.42
    >>> kept_rollouts(rewards, torch.tensor([1.0]), num_generations=2, min_std=0.1)
    tensor([False, False,  True,  True])
    """
    import torch
    from trl.trainer.utils import nanstd

    rewards = (rewards_per_func * weights.to(rewards_per_func.device).unsqueeze(0)).nansum(dim=1)
    rewards[torch.isnan(rewards_per_func).all(dim=1)] = torch.nan
    std = nanstd(rewards.view(-1, num_generations), dim=1)
    return (std >= min_std).repeat_interleave(num_generations)  # NaN std: not kept


def reference_init_kwargs(cfg: RadrlGRPOConfig) -> dict | None:
    """``model_init_kwargs`` that build TRL's KL reference model in the training dtype.

    With full fine-tuning and ``beta > 0``, TRL 1.16 builds the reference as a second full model in the dtype
    of the policy it is handed, which radrl loads in fp32 (the Trainer keeps fp32 master weights): about 35 GB
    per process for the 8B, before any sharding. The reference never trains, so bf16 (``bf16: true``) loses
    nothing and halves it; DeepSpeed ZeRO-3 and FSDP then shard it like the policy (TRL's
    ``prepare_deepspeed`` / ``prepare_fsdp``), ZeRO-3 with ``offload_param`` offloads it, ZeRO-2 keeps a
    whole copy per GPU (``radrl plan`` counts each case). A dtype the recipe sets itself is kept; LoRA has
    no reference model (the adapter is switched off instead)."""
    kwargs = cfg.model_init_kwargs
    if isinstance(kwargs, str):
        kwargs = json.loads(kwargs)
    if not cfg.beta or cfg.use_lora or not (cfg.bf16 or cfg.fp16):
        return kwargs
    return {**(kwargs or {}), "dtype": (kwargs or {}).get("dtype", "bfloat16" if cfg.bf16 else "float16")}


class _ReferenceKwargsNote(logging.Filter):
    """Drops TRL's "model_init_kwargs will be ignored" warning: with an instantiated policy TRL still builds
    the reference model from them (``reference_init_kwargs``), so the warning would mislead."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "model_init_kwargs" not in record.getMessage()


def scored_tasks(funcs: list, tasks: list[str]) -> set[str]:
    """The ``tasks`` some reward scores: its ``task``; ``think_format`` and the like (task "") score thinking
    rows of any task, so they cover none; a reward without ``task`` (a plain function) may score any."""
    out: set[str] = set()
    for f in funcs:
        task = getattr(f, "task", None)
        out |= set(tasks) if task is None else {task} - {""}
    return out & set(tasks)


def parse_config(argv: list[str] | None = None) -> RadrlGRPOConfig:
    """The recipe (``--config YAML``) with command-line overrides, read by TRL's ``TrlParser``
    (``radrl grpo`` is ``train(parse_config(argv))``)."""
    return parse_recipe(RadrlGRPOConfig, argv, "grpo")


def train(cfg: RadrlGRPOConfig) -> str:
    funcs, cfg.reward_weights = reward_funcs(cfg)
    check_rewards(funcs)  # a missing scorer (weights, judge, server) stops the run here, before the model loads
    dataset = grpo_dataset(cfg, funcs)
    model, processor = load_for_training(cfg)
    # GRPO re-processes prompts for the loss with the tokenizer's own padding side; it must be the left
    # padding the rollouts used, or Qwen3-VL's multimodal positions misalign (TRL sets this only when it
    # loads the processor itself).
    processor.tokenizer.padding_side = processor.tokenizer.truncation_side = "left"
    trl_log = logging.getLogger("trl.trainer.grpo_trainer")
    trl_log.addFilter(note := _ReferenceKwargsNote())
    try:
        trainer = RadrlGRPOTrainer(model=model, reward_funcs=funcs, args=cfg, train_dataset=dataset,
                                   processing_class=processor, peft_config=lora_config(cfg))
    finally:
        trl_log.removeFilter(note)
    if cfg.use_vllm and cfg.vllm_mode == "colocate":
        fix_colocated_vllm_images(trainer.vllm_generation, processor)
    throughput.attach(trainer, cfg.peak_tflops)  # perf/ tokens/s, MFU, generation / reward / update time
    trainer.add_callback(RunInfoOnSave(trainer, cfg))  # radrl.json in every checkpoint-N
    trainer.train(resume_from_checkpoint=resume_checkpoint(cfg.resume_from_checkpoint, cfg.output_dir))
    return save_outputs(trainer, processor, cfg)


def fix_colocated_vllm_images(generation, processor) -> None:
    """Make TRL 1.16's colocated vLLM rollouts see the prompt the trainer scores, and never emit an image token.

    TRL hands vLLM the prompt ids the trainer's processor built, whose image placeholder is already
    expanded to one token per image patch, plus the image itself; vLLM expands the first of those tokens
    again, so rollouts see a prompt with the image features over part of a doubled run (huggingface/trl#6294,
    fix pending in #6718): the policy samples from a corrupted prompt and vLLM's log-probabilities disagree
    with the trainer's. Here each run of image tokens becomes one placeholder, images go at the trainer's
    pixel budget (so a checkpoint whose own processor allows more pixels, such as a released Qwen3-VL, makes
    the same patches), and vLLM's expanded prompt must equal the trainer's, token for token.

    TRL's transformers rollouts suppress the image token; its vLLM rollouts do not, and one sampled image
    token stops the step ("Image features and image tokens do not match"). A logit bias suppresses it here
    too. Server mode places image features on the expanded run itself and needs none of this. A TRL that
    already sends one placeholder per image (its pending fix) passes through unchanged and unchecked."""
    generate, image_token = generation.generate, processor.image_token_id
    budget = processor.image_processor.size
    kwargs = dict(generation.generation_kwargs)  # a copy: the recipe's generation_kwargs stay as written
    kwargs["logit_bias"] = {**(kwargs.get("logit_bias") or {}), image_token: -100.0}
    generation.generation_kwargs = kwargs

    def generate_unexpanded(prompts, images, *args, **kwargs):
        if images is None:
            return generate(prompts, images, *args, **kwargs)
        images = [[fit_pixels(im, budget["shortest_edge"], budget["longest_edge"]) for im in ims] if ims else ims
                  for ims in images]
        collapsed = [collapse_runs(ids, image_token) for ids in prompts]
        out = generate(collapsed, images, *args, **kwargs)
        for mine, short, theirs in zip(prompts, collapsed, out[0], strict=True):
            if len(short) < len(mine) and list(mine) != list(theirs):
                raise RuntimeError(
                    f"vLLM built a rollout prompt of {len(theirs)} tokens ({list(theirs).count(image_token)} image "
                    f"tokens) where the trainer has {len(mine)} ({list(mine).count(image_token)}): the two "
                    "processors disagree on the image. Give the checkpoint's preprocessor_config.json the recipe's "
                    "min_pixels/max_pixels, or train with use_vllm: false")
        return out

    generation.generate = generate_unexpanded


def collapse_runs(ids: list[int], token: int) -> list[int]:
    """``ids`` with every run of ``token`` shortened to one.

    >>> collapse_runs([1, 7, 7, 7, 2, 7, 3], 7)
    [1, 7, 2, 7, 3]
    """
    return [t for i, t in enumerate(ids) if t != token or i == 0 or ids[i - 1] != token]


def grpo_dataset(cfg: RadrlGRPOConfig, funcs: list | None = None):
    """The training rows a reward scores: rows of ``cfg.tasks`` that the recipe's rewards (``funcs``, default
    ``reward_funcs(cfg)``) cover.

    Conversation files and RadVLM / LLaVA JSON also hold rows of other tasks (``imported`` conversations,
    classification, ...). Every reward returns None for those, TRL then gives all their rollouts the same
    reward and zero advantage, and the step learns nothing from them, so they are dropped here, counted in a
    warning; a file with no scored row at all is an error."""
    dataset = conversation_dataset(cfg).remove_columns("completion")
    keep = scored_tasks(funcs if funcs is not None else reward_funcs(cfg)[0], cfg.tasks)
    dropped = Counter(t for t in dataset["task"] if t not in keep)
    if not dropped:
        return dataset
    if sum(dropped.values()) == len(dataset):
        raise ValueError(f"{cfg.train_data}: none of its {len(dataset)} rows is of a task the GRPO rewards score "
                         f"(rows by task: {dict(dropped)}; scored: {sorted(keep)}). GRPO needs report or grounding "
                         "rows with a solution: build them from a samples JSONL (`radrl prepare`, `radrl "
                         "synth-data`), or train these rows with `radrl sft`")
    log.warning("%s: GRPO drops %d of %d rows that no reward scores (%s); training on %d rows of %s", cfg.train_data,
                sum(dropped.values()), len(dataset), dict(dropped), len(dataset) - sum(dropped.values()), sorted(keep))
    return dataset.filter(lambda task: task in keep, input_columns="task")


def reward_funcs(cfg: RadrlGRPOConfig) -> tuple[list, list[float]]:
    """The recipe's reward callables and weights for GRPOTrainer: ``rewards`` (names, import paths, inline
    specs: ``radrl.rewards.make_reward``) with their ``reward_options`` and ``reward_weights`` (1 each by
    default; TRL sums the weighted rewards), report-metric rewards moved to ``reward_servers`` when some are
    given (``radrl.rewards.remote.RemoteReportReward``)."""
    funcs, weights = build_rewards(cfg.rewards, cfg.reward_options, cfg.reward_weights)
    if cfg.reward_servers:  # the same rewards, scored by `radrl reward-server` processes
        from radrl.rewards.remote import remote_rewards

        funcs = remote_rewards(funcs, servers=cfg.reward_servers, fallback=cfg.reward_server_fallback,
                               timeout=cfg.reward_server_timeout)
    return funcs, weights
