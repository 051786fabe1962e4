"""Throughput in every run: tokens per second per device, model FLOPs utilisation and, for GRPO, where a
step's time goes (generation, reward, update), logged at each logging step beside the loss.

TRL logs none of this, and a run that leaves its GPUs idle during generation, or spends its step in the
reward, looks the same as a healthy one in the loss curve. The numbers go into the Trainer's ``logs``
(so TensorBoard, W&B, the console and ``log_history.json`` all get them) under ``perf/``:

    perf/tokens_per_s_per_device  non-padding tokens this process trained on / step time
    perf/mfu                      training FLOPs of those tokens (radrl.models.flops) / step time / peak
    perf/step_s                   step time: on_step_begin to on_step_end (every micro-batch, the optimizer,
                                  and for GRPO its generation and rewards; not data loading or saving)
    perf/generation_s, perf/reward_s, perf/update_s    (GRPO) the step's time in TRL's ``_generate``,
                                  in ``_calculate_rewards``, and the rest (log-probabilities of the old and
                                  reference policies, loss, backward, optimizer)
    perf/max_memory_allocated_gib (CUDA) the peak of ``torch.cuda.max_memory_allocated`` so far

Each is the mean per optimizer step over the steps since the previous log. The peak FLOP/s is the
recipe's ``peak_tflops``, else the device's published dense bf16 peak (``radrl.models.flops``); without
either (a CPU) MFU is not logged. GRPO's MFU counts the update's forward and backward only (as verl's
``perf/mfu/actor``); generation and the no-gradient log-probability passes are in the step time but not
in the FLOPs, so a step that waits on generation shows it as a low MFU.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

import torch
from transformers import TrainerCallback

from radrl.models.flops import FlopsModel, device_peak_tflops

log = logging.getLogger(__name__)


def batch_counts(inputs: dict) -> tuple[int, int]:
    """(non-padding tokens, ViT patches) of one micro-batch as the trainer's loss sees it: GRPO's
    ``prompt_mask`` + ``completion_mask``, else SFT's ``attention_mask`` (else every ``input_ids`` position);
    patches from ``image_grid_thw`` (t x h x w per image).

    >>> batch_counts({"attention_mask": torch.tensor([[1, 1, 0], [1, 1, 1]]),
    ...               "image_grid_thw": torch.tensor([[1, 4, 4]])})
    (5, 16)
    """
    if "completion_mask" in inputs:
        tokens = int(inputs["completion_mask"].sum()) + int(inputs["prompt_mask"].sum())
    elif inputs.get("attention_mask") is not None:
        tokens = int(inputs["attention_mask"].sum())
    else:
        tokens = int(inputs["input_ids"].numel())
    grid = inputs.get("image_grid_thw")
    patches = int(grid.prod(dim=-1).sum()) if grid is not None else 0
    return tokens, patches


class Throughput(TrainerCallback):
    """Accumulates a logging window's tokens, patches and times (``attach`` feeds it) and turns them into
    the ``perf/`` values (``pop_metrics``)."""

    def __init__(self, flops: FlopsModel | None, peak_tflops: float | None, split: bool,
                 clock: Callable[[], float] = time.perf_counter, cuda: bool = False):
        self.flops, self.peak_tflops, self.split, self.clock, self.cuda = flops, peak_tflops, split, clock, cuda
        self._reset()
        self._step_start: float | None = None

    def _reset(self) -> None:
        self.tokens = self.patches = self.steps = 0
        self.step_s = self.generation_s = self.reward_s = self.train_flops = 0.0

    def count(self, inputs: dict) -> None:
        tokens, patches = batch_counts(inputs)
        self.tokens += tokens
        self.patches += patches
        if self.flops is not None:
            self.train_flops += self.flops.train_flops(tokens, patches)

    def timed(self, fn: Callable, field: str) -> Callable:
        """``fn`` with its wall time added to ``field`` (generation_s, reward_s)."""

        @functools.wraps(fn)
        def run(*args, **kwargs):
            start = self.clock()
            try:
                return fn(*args, **kwargs)
            finally:
                setattr(self, field, getattr(self, field) + self.clock() - start)

        return run

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def on_step_begin(self, args, state, control, **kwargs):
        self._sync()
        self._step_start = self.clock()

    def on_step_end(self, args, state, control, **kwargs):
        if self._step_start is not None:
            self._sync()
            self.step_s += self.clock() - self._step_start
            self.steps += 1
            self._step_start = None

    def pop_metrics(self) -> dict[str, float]:
        """The window's ``perf/`` values (module docstring), then a fresh window; {} when no step ended."""
        if not self.steps or self.step_s <= 0:
            return {}
        n = self.steps
        out = {"perf/tokens_per_s_per_device": self.tokens / self.step_s, "perf/step_s": self.step_s / n}
        if self.flops is not None and self.peak_tflops:
            out["perf/mfu"] = self.train_flops / self.step_s / (self.peak_tflops * 1e12)
        if self.split:
            out["perf/generation_s"] = self.generation_s / n
            out["perf/reward_s"] = self.reward_s / n
            out["perf/update_s"] = (self.step_s - self.generation_s - self.reward_s) / n
        if self.cuda:
            out["perf/max_memory_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        self._reset()
        return out


def peak_for(given: float | None) -> float | None:
    """``given`` (the recipe's peak_tflops), else the CUDA device's published dense bf16 peak, else None."""
    if given:
        return given
    return device_peak_tflops(torch.cuda.get_device_name()) if torch.cuda.is_available() else None


def attach(trainer, peak_tflops: float | None = None) -> Throughput:
    """Log ``perf/`` values (module docstring) at every logging step of ``trainer`` (an SFTTrainer or a
    GRPOTrainer, built; call before ``train``).

    Uses the Trainer's own extension points: a callback for the step boundaries, and ``compute_loss``,
    ``log`` and (GRPO) TRL's ``_generate`` and ``_calculate_rewards`` wrapped on this instance to count
    tokens and time the parts. A TRL without those two methods still gets tokens/s and MFU."""
    split = hasattr(trainer, "_generate") and hasattr(trainer, "_calculate_rewards")
    peak = peak_for(peak_tflops)
    cuda = trainer.args.device.type == "cuda"
    meter = Throughput(FlopsModel.of(trainer.model), peak, split=split, cuda=cuda)
    if peak is None:
        log.info("throughput: MFU not logged (no peak FLOP/s known for %s); set peak_tflops in the recipe to log "
                 "it", trainer.args.device)
    trainer.add_callback(meter)
    if split:
        trainer._generate = meter.timed(trainer._generate, "generation_s")
        trainer._calculate_rewards = meter.timed(trainer._calculate_rewards, "reward_s")
    compute_loss, trainer_log = trainer.compute_loss, trainer.log

    @functools.wraps(compute_loss)
    def counted(model, inputs, *args, **kwargs):
        if model.training:
            meter.count(inputs)
        return compute_loss(model, inputs, *args, **kwargs)

    @functools.wraps(trainer_log)
    def with_perf(logs, *args, **kwargs):
        if not any(k.startswith("eval_") for k in logs):
            perf = meter.pop_metrics()
            logs.update(perf)
            if perf and trainer.is_world_process_zero():
                log.info("step %d: %s", trainer.state.global_step, describe(perf))
        return trainer_log(logs, *args, **kwargs)

    trainer.compute_loss, trainer.log = counted, with_perf
    return meter


def describe(perf: dict[str, float]) -> str:
    """One console line of ``perf/`` values.

    >>> describe({"perf/tokens_per_s_per_device": 1234.5, "perf/step_s": 2.0, "perf/mfu": 0.41,
    ...           "perf/generation_s": 1.5, "perf/reward_s": 0.1, "perf/update_s": 0.4})
    '1,234 tokens/s/device, MFU 41.0%, step 2.00 s (generation 1.50 s, reward 0.10 s, update 0.40 s)'
    """
    parts = [f"{perf['perf/tokens_per_s_per_device']:,.0f} tokens/s/device"]
    if "perf/mfu" in perf:
        parts.append(f"MFU {perf['perf/mfu']:.1%}")
    step = f"step {perf['perf/step_s']:.2f} s"
    if "perf/generation_s" in perf:
        step += (f" (generation {perf['perf/generation_s']:.2f} s, reward {perf['perf/reward_s']:.2f} s, "
                 f"update {perf['perf/update_s']:.2f} s)")
    parts.append(step)
    if "perf/max_memory_allocated_gib" in perf:
        parts.append(f"peak memory {perf['perf/max_memory_allocated_gib']:.1f} GiB")
    return ", ".join(parts)
