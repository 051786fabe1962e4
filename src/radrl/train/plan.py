"""Will this recipe fit? Memory per GPU of an SFT or GRPO recipe, estimated before a cluster job starts.

``radrl plan --config RECIPE --gpus N [--gpu-memory 80]`` (``radrl.cli.plan``) reads the recipe (its YAML
and the TRL defaults it leaves unset), the model's architecture (its ``config.json``; the model is built on
PyTorch's meta device, so parameters are counted exactly and nothing is allocated) and the engine, and adds
up, per GPU:

* **weights, gradients, optimizer state** of the policy, by engine (bytes per parameter; T = parameters
  that train, P = all, N = GPUs, L = the largest layer's own parameters, as DeepSpeed counts it):

  ====================  ==============  =================  ================  ==================
  engine                weights         gradients          optimizer (Adam)  gather buffer
  ====================  ==============  =================  ================  ==================
  ddp (HF Trainer)      4 P (fp32)      4 T (+4 T buckets)  8 T              -
  zero2                 2 P (bf16)      6 T / N            12 T / N          -
  zero2 + offload opt.  2 P             -                  (CPU)             -
  zero3                 2 P / N         4 T / N            12 T / N          4 L
  zero3 + offload opt.  2 P / N         (CPU)              (CPU)             4 L
  zero3 + offload all   -               -                  -                 4 L
  fsdp (FSDP2, bf16)    4 P / N         4 T / N            8 T / N           4 L (largest unit)
  ====================  ==============  =================  ================  ==================

  The ZeRO rows are DeepSpeed 0.18's own estimator (``estimate_zero2_model_states_mem_needs``,
  ``estimate_zero3_model_states_mem_needs``; ``deepspeed_zero2_estimate`` / ``deepspeed_zero3_estimate``
  below reimplement them and the tests hold them to DeepSpeed's numbers), split into their parts and
  extended to frozen parameters (which keep only their 16-bit weights). radrl loads the policy in fp32;
  without DeepSpeed the Trainer keeps it so and autocasts (hence 4 P in the ddp row).
* **KL reference model** (GRPO, ``beta > 0``, full fine-tuning): built in the training dtype
  (``radrl.train.grpo.reference_init_kwargs``); TRL 1.16 prepares it with ZeRO stage 0 under ZeRO-1/2 (a
  whole bf16 copy per GPU), shards it under ZeRO-3 (offloaded with ``offload_param``) and FSDP.
* **vLLM share** (``use_vllm`` in ``colocate`` mode): ``vllm_gpu_memory_utilization`` x the GPU's memory,
  weights and KV cache included; with ``vllm_enable_sleep_mode`` TRL releases it (sleep level 2) during the
  update, so the peak is the larger of the rollout phase and the update phase. Without vLLM, transformers
  rollouts hold a KV cache for the whole local generation batch.
* **activations** of one micro-batch at the recipe's lengths (GRPO: image tokens at ``max_pixels`` + the
  prompt's text + ``max_completion_length``, every rollout at full length; SFT: ``max_length``): the
  decoder layers' saved tensors (with activation checkpointing, each layer's input plus one layer being
  recomputed), the ViT's likewise, and the logits (GRPO: bf16 logits of the completion, their
  temperature-scaled copy and gradient; SFT: bf16 logits, the fp32 copy the loss takes, its gradient).
* a fixed **reserve** for the CUDA context, NCCL buffers and allocator fragmentation.

On the CPU (``radrl plan --cpu``, ``estimate(..., device="cpu")``) the figure is the resident memory (RSS) of
the one training process: no reserve but the imported runtime (``CPU_RUNTIME_GIB``), activations in fp32 when
the recipe does not train in bf16, and a **loading** phase (the fp32 weights built while the checkpoint's
files are memory-mapped, 4 P + 2 P for bf16 files). Fit is judged on what the process cannot give back:
the mapped files' pages are page cache (the kernel drops them under pressure), so they count in the reported
RSS peak (``Estimate.rss_peak``, the peak of a LoRA step of Qwen3-VL-2B at the paper's pixel budgets) but not
in the loading phase that ``Estimate.peak`` and ``fits`` read. vLLM rollouts (``use_vllm``) are refused: they
need a GPU. It assumes freed activations leave the process, which glibc's malloc does not do by
itself (``radrl.train.common.return_freed_memory``, set by ``radrl sft`` / ``radrl grpo`` on the CPU).
The RSS peak is checked against the peak RSS ``bench/realsize_cpu.sh`` measured (``getrusage``) for each
training stage, within 10 %; all three measured peaks are the loading phase's. The step (update phase) is
checked only against RSS samples taken by hand from outside for the two GRPO stages (``step_rss_sampled_gib``
in the results file), not by a test.

It is an estimate in the way DeepSpeed's is: the model states are exact arithmetic, the activations an
upper-end approximation (attention kernels without a sequence-squared buffer, no packing). What it is
checked against is in ``tests/train/test_plan.py``: DeepSpeed's estimator on the examples of its docs,
parameter counts of random-weight models built on the CPU, the resident memory of a model and its Adam
state measured on the CPU, and the peak RSS (the loading phase) of real-size SFT and GRPO runs on the CPU
(``bench/results/realsize_cpu.json``).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

GiB = 2**30
ENGINES = ("ddp", "zero2", "zero3", "fsdp")
# What the docs (docs/training.md, "Scale-out") launch each kind of recipe with; `--engine` or `--launch` override.
DEFAULT_ENGINE = {"grpo": "zero2", "sft": "zero3", "lora": "ddp"}


def deepspeed_zero2_estimate(total_params: float, num_gpus_per_node: int = 1, num_nodes: int = 1,
                             cpu_offload: bool = True, additional_buffer_factor: float = 1.5) -> tuple[int, int]:
    """(CPU bytes, GPU bytes) per device for the model states under ZeRO-2, exactly as DeepSpeed 0.18.0's
    ``deepspeed.runtime.zero.stage_1_and_2.estimate_zero2_model_states_mem_needs`` computes them (GPU:
    2 bytes of 16-bit weights per parameter + 18 / N: 16-bit and fp32 gradients, fp32 master weights, Adam's
    two moments). DeepSpeed's memory docs (docs/code-docs/source/memory.rst) still print the older
    ``4 P + 16 P / N`` for offload "none" (15.93 GB in their 3B example, 11.28 GB with 0.18's formula).

    >>> deepspeed_zero2_estimate(2851e6, 8, 1, cpu_offload=True)  # the docs' t5-3b: 127.45 GB / 5.31 GB
    (136848000000, 5702000000)
    """
    total_gpus = num_nodes * num_gpus_per_node
    if cpu_offload:
        gpu_mem = 2 * total_params
        cpu_mem = total_params * max(4 * total_gpus, 16) * additional_buffer_factor
    else:
        gpu_mem = 2 * total_params + int(18 * total_params / total_gpus)
        cpu_mem = total_params * 4 * num_gpus_per_node * additional_buffer_factor
    return int(cpu_mem), int(gpu_mem)


def deepspeed_zero3_estimate(total_params: float, largest_layer_params: float, num_gpus_per_node: int = 1,
                             num_nodes: int = 1, cpu_offload: bool = True, cpu_offload_params: bool = True,
                             zero_init: bool = True, additional_buffer_factor: float = 1.5) -> tuple[int, int, float]:
    """(CPU bytes, GPU bytes, largest-layer bytes) per device under ZeRO-3, exactly as DeepSpeed 0.18.0's
    ``deepspeed.runtime.zero.stage3.estimate_zero3_model_states_mem_needs`` (and its memory docs) compute
    them: the largest layer gathered in 16 bits with its 16-bit gradient (4 bytes a parameter), plus 18 / N
    (16-bit weights, fp32 weights, gradients and Adam's moments), less what is offloaded.

    >>> deepspeed_zero3_estimate(2851e6, 32e6, 8, 1, cpu_offload=False, cpu_offload_params=False)[1]  # 6.09 GB
    6542750000
    """
    total_gpus = num_nodes * num_gpus_per_node
    gpus_factor = 1 / num_nodes
    largest_layer_memory = 4 * largest_layer_params
    if cpu_offload:
        if cpu_offload_params:
            gpu_mem = largest_layer_memory
            factor = 18 * gpus_factor if zero_init else max(4 * num_gpus_per_node, 18 * gpus_factor)
        else:
            gpu_mem = largest_layer_memory + int(2 * total_params / total_gpus)
            factor = 16 * gpus_factor if zero_init else max(4 * num_gpus_per_node, 16 * gpus_factor)
        cpu_mem = total_params * factor * additional_buffer_factor
    else:
        gpu_mem = largest_layer_memory + int(18 * total_params / total_gpus)
        cpu_mem = (largest_layer_params if zero_init else total_params) * 4 * num_gpus_per_node \
            * additional_buffer_factor
    return int(cpu_mem), int(gpu_mem), largest_layer_memory


@dataclass(frozen=True)
class Architecture:
    """What the estimate needs of a Qwen3-VL: parameter counts (exact, from the model built on the meta
    device) and the dimensions activations scale with."""

    total: int                 # all parameters (a tied embedding counted once)
    parts: dict                # part -> parameters (radrl.train.common.PARTS)
    largest_layer: int         # the most parameters one module holds itself (DeepSpeed's largest layer)
    largest_unit: int          # the largest FSDP unit: a decoder layer, a ViT block, or what is left at the root
    lora_linear: dict          # part -> [(in_features, out_features)] of the linear layers LoRA adapts by default
    hidden: int
    layers: int
    intermediate: int
    q_dim: int                 # attention heads x head_dim
    kv_dim: int                # KV heads x head_dim
    vocab: int
    vision_hidden: int
    vision_layers: int
    vision_intermediate: int
    pixels_per_token: int      # (patch x merge)^2: 1,024 for Qwen3-VL
    pixels_per_patch: int      # patch^2: 256
    vision_mergers: int = 1    # the merger and the DeepStack mergers (4 in Qwen3-VL), outside activation checkpointing
    checkpoint_bytes: int = 2  # bytes per parameter in the checkpoint's files (config dtype; bf16 for Qwen's releases)

    @property
    def kv_bytes_per_token(self) -> int:
        """bf16 K and V of every decoder layer for one token (vLLM's and transformers' KV cache)."""
        return 2 * self.layers * self.kv_dim * 2

    def lora_params(self, r: int, parts: set[str]) -> int:
        return sum(r * (i + o) for p in parts for i, o in self.lora_linear[p])


def read_architecture(path: str | Path) -> Architecture:
    """The ``Architecture`` of the Qwen3-VL whose ``config.json`` is ``path`` (or in the folder ``path``)."""
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration

    from radrl.train.common import LORA_TARGETS, model_part

    path = Path(path)
    folder = path.parent if path.suffix == ".json" else path
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder} has no config.json: pass --architecture with a Qwen3-VL config.json or its "
                                "folder (the model you will train; a radrl clone also has the released 8B and 2B "
                                "ones in bench/configs/)")
    config = Qwen3VLConfig.from_pretrained(folder)
    with torch.device("meta"):
        model = Qwen3VLForConditionalGeneration(config)
    parts = {"vision_tower": 0, "projector": 0, "language_model": 0}
    for name, p in model.named_parameters():
        parts[model_part(name)] += p.numel()
    own = [sum(p.numel() for p in m.parameters(recurse=False)) for m in model.modules()]
    blocks = [model.model.language_model.layers[0], model.model.visual.blocks[0]]
    in_blocks = sum(sum(p.numel() for p in layer.parameters()) for layer in
                    [*model.model.language_model.layers, *model.model.visual.blocks])
    lora_linear: dict[str, list] = {p: [] for p in LORA_TARGETS}
    for name, module in model.named_modules():
        for part, regex in LORA_TARGETS.items():
            if isinstance(module, torch.nn.Linear) and re.fullmatch(regex, name):
                lora_linear[part].append((module.in_features, module.out_features))
    t, v = config.text_config, config.vision_config
    head_dim = getattr(t, "head_dim", None) or t.hidden_size // t.num_attention_heads
    total = sum(parts.values())
    return Architecture(
        total=total, parts=parts, largest_layer=max(own),
        largest_unit=max(*(sum(p.numel() for p in b.parameters()) for b in blocks), total - in_blocks),
        lora_linear=lora_linear, hidden=t.hidden_size, layers=t.num_hidden_layers,
        intermediate=t.intermediate_size, q_dim=t.num_attention_heads * head_dim,
        kv_dim=t.num_key_value_heads * head_dim, vocab=t.vocab_size, vision_hidden=v.hidden_size,
        vision_layers=v.depth, vision_intermediate=v.intermediate_size,
        pixels_per_token=(v.patch_size * v.spatial_merge_size) ** 2, pixels_per_patch=v.patch_size ** 2,
        vision_mergers=1 + len(getattr(v, "deepstack_visual_indexes", None) or ()),
        checkpoint_bytes=_dtype_bytes(getattr(config, "dtype", None) or getattr(t, "dtype", None)))


DTYPE_BYTES = {"float32": 4, "float": 4, "float64": 8, "double": 8, "float16": 2, "half": 2, "bfloat16": 2}


def _dtype_bytes(dtype) -> int:
    """Bytes per element of a config's ``dtype`` (a torch dtype or its name). A config without one (``None``)
    is read as bf16, the dtype of Qwen's Qwen3-VL releases and of the checkpoints radrl saves; a dtype the
    plan does not know is an error, not a guess."""
    if dtype is None:
        return 2
    name = str(dtype).removeprefix("torch.")
    if name not in DTYPE_BYTES:
        raise ValueError(f"config.json's dtype {name!r} is not one the plan knows ({', '.join(DTYPE_BYTES)}): set "
                         "\"dtype\" in the config.json passed as --architecture to the dtype of the checkpoint's "
                         "files (bfloat16 for Qwen's releases)")
    return DTYPE_BYTES[name]


@dataclass(frozen=True)
class Engine:
    """How the policy is distributed: ``kind`` in ENGINES, and what is offloaded to the CPU."""

    kind: str = "ddp"
    offload_optimizer: bool = False
    offload_params: bool = False

    def __str__(self) -> str:
        off = [w for w, on in (("optimizer", self.offload_optimizer), ("params", self.offload_params)) if on]
        return self.kind + (f" (offload {' + '.join(off)})" if off else "")


def engine_from_launch_config(path: str | Path) -> Engine:
    """The ``Engine`` an accelerate launch config (recipes/accelerate/*.yaml) sets up."""
    import yaml

    c = yaml.safe_load(Path(path).read_text()) or {}
    kind = c.get("distributed_type", "NO")
    if kind == "DEEPSPEED":
        ds = c.get("deepspeed_config") or {}
        stage = int(ds.get("zero_stage", 2))
        if stage not in (2, 3):
            raise ValueError(f"{path}: ZeRO stage {stage} is not planned; use stage 2 or 3")
        return Engine(f"zero{stage}", offload_optimizer=ds.get("offload_optimizer_device", "none") != "none",
                      offload_params=ds.get("offload_param_device", "none") != "none")
    if kind == "FSDP":
        offload = bool((c.get("fsdp_config") or {}).get("fsdp_offload_params", False))
        return Engine("fsdp", offload_optimizer=offload, offload_params=offload)
    return Engine("ddp")


@dataclass
class Recipe:
    """The recipe fields the estimate reads (YAML values over TRL's and radrl's defaults)."""

    kind: str                  # "sft" or "grpo"
    values: dict = field(default_factory=dict)

    def __getitem__(self, key):
        return self.values[key]

    def replace(self, **changes) -> Recipe:
        return Recipe(self.kind, {**self.values, **changes})


READ = ("per_device_train_batch_size", "gradient_accumulation_steps", "bf16", "fp16", "activation_checkpointing",
        "use_lora", "lora_r", "lora_target_modules", "freeze_vision_tower", "freeze_projector",
        "freeze_language_model", "max_pixels", "model_name_or_path")
READ_GRPO = ("beta", "use_vllm", "vllm_mode", "vllm_gpu_memory_utilization", "vllm_enable_sleep_mode",
             "vllm_tensor_parallel_size", "max_completion_length", "num_generations", "generation_batch_size",
             "steps_per_generation")
READ_SFT = ("max_length",)


def read_recipe(path: str | Path, overrides: dict | None = None) -> Recipe:
    """The recipe at ``path`` with ``overrides`` (field -> value) over it and the config classes' defaults
    for what neither sets. GRPO when it sets a GRPO-only field (rewards, num_generations, beta, use_vllm, ...),
    else SFT."""
    import yaml

    from radrl.train.grpo import RadrlGRPOConfig
    from radrl.train.sft import RadrlSFTConfig

    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise TypeError(f"{path}: not a recipe (a YAML mapping of config fields)")
    raw.update(overrides or {})
    grpo_only = {f.name for f in dataclasses.fields(RadrlGRPOConfig)} - {f.name for f in dataclasses.fields(
        RadrlSFTConfig)}
    kind = "grpo" if grpo_only & set(raw) else "sft"
    cls = RadrlGRPOConfig if kind == "grpo" else RadrlSFTConfig
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    names = READ + (READ_GRPO if kind == "grpo" else READ_SFT)
    values = {k: raw.get(k, defaults.get(k)) for k in names}
    if raw.get("gradient_checkpointing") is not None and "activation_checkpointing" not in raw:
        values["activation_checkpointing"] = raw["gradient_checkpointing"]
    if not values["max_pixels"]:
        raise ValueError(f"{path}: max_pixels is not set, so the image size (and the prompt length) is the "
                         "checkpoint's own; set max_pixels in the recipe or pass --max_pixels N")
    return Recipe(kind, values)


@dataclass
class Estimate:
    """Bytes per GPU by component, the phase peaks, and the notes that go with them."""

    components: dict           # name -> (bytes, how counted)
    peak: float                # bytes at the larger phase
    capacity: float            # bytes the GPU has
    notes: list[str]
    batch: dict                # micro-batch, accumulation, effective batch, sequence lengths
    phases: dict = field(default_factory=dict)  # phase (loading, rollout, update) -> bytes; peak is the largest
    # CPU: page cache in the resident set while loading (the memory-mapped checkpoint files). Counted in RSS but
    # reclaimable, so not in ``phases`` / ``peak`` (what fit is judged on), only in ``rss_peak``
    mapped: float = 0.0

    @property
    def fits(self) -> bool:
        return self.peak <= self.capacity

    @property
    def rss_peak(self) -> float:
        """Largest resident set (RSS, what ``getrusage`` reports): ``peak`` with the mapped checkpoint pages
        added to the loading phase. Equal to ``peak`` on a GPU."""
        if not self.mapped:
            return self.peak
        return max(v + (self.mapped if k == "loading" else 0) for k, v in self.phases.items())


def trainable(arch: Architecture, recipe: Recipe) -> tuple[int, int]:
    """(parameters that train, frozen parameters of the base model): LoRA adapters on the parts not frozen,
    or the parts not frozen in full fine-tuning."""
    frozen = {p for p, flag in (("vision_tower", "freeze_vision_tower"), ("projector", "freeze_projector"),
                                ("language_model", "freeze_language_model")) if recipe[flag]}
    if recipe["use_lora"]:
        return arch.lora_params(int(recipe["lora_r"]), set(arch.parts) - frozen), arch.total
    train = sum(n for p, n in arch.parts.items() if p not in frozen)
    return train, arch.total - train


def lengths(arch: Architecture, recipe: Recipe, prompt_text_tokens: int) -> dict:
    image = math.ceil(int(recipe["max_pixels"]) / arch.pixels_per_token)
    if recipe.kind == "grpo":
        completion = int(recipe["max_completion_length"])
        return {"image_tokens": image, "prompt": image + prompt_text_tokens, "completion": completion,
                "sequence": image + prompt_text_tokens + completion}
    seq = int(recipe["max_length"] or image + prompt_text_tokens + 512)
    return {"image_tokens": image, "prompt": image + prompt_text_tokens, "completion": 0, "sequence": seq}


def activation_bytes(arch: Architecture, recipe: Recipe, seq: dict) -> tuple[float, str]:
    """Activations of one micro-batch (module docstring), bytes and how they were counted: in bf16 when the
    recipe trains in bf16 / fp16, else in fp32 (twice as many bytes; a CPU run without ``bf16``)."""
    b, s = int(recipe["per_device_train_batch_size"]), seq["sequence"]
    h, i = arch.hidden, arch.intermediate
    e = 2 if recipe["bf16"] or recipe["fp16"] else 4  # bytes per activation element
    # per token and decoder layer: norm inputs kept in fp32 (2 x 4h bytes), the normed inputs (2h), q/k/v
    # before and after their norm and rotation (2 x (q + 2 kv)), attention output and o_proj input (2h),
    # the MLP's gate, up, activation and product (4i); elements of e bytes
    layer = 8 * h + e * (4 * h + 2 * (arch.q_dim + 2 * arch.kv_dim) + 4 * i)
    patches = math.ceil(int(recipe["max_pixels"]) / arch.pixels_per_patch)
    vh = arch.vision_hidden
    vlayer = e * (14 * vh + 2 * arch.vision_intermediate)
    # the merger and the DeepStack mergers run outside the checkpointed ViT blocks: per merged token (4 patches)
    # each keeps its norm's input and output, fc1's output, the activation and (LoRA) the adapters' inputs,
    # about 6 vectors of 4 x the ViT width
    mergers = b * math.ceil(patches / 4) * arch.vision_mergers * 6 * 4 * vh * e
    if recipe["activation_checkpointing"]:
        lm = b * s * (arch.layers * e * h + 2 * layer)  # saved layer inputs + one layer recomputed, and its grads
        vit = b * patches * (arch.vision_layers * e * vh + 2 * vlayer)
        how = "checkpointed: each layer's input + one layer recomputed"
    else:
        lm = b * s * arch.layers * layer
        vit = b * patches * arch.vision_layers * vlayer
        how = "every layer's saved tensors (no activation checkpointing)"
    how = f"{8 * e}-bit, {how}; ViT mergers"
    if recipe.kind == "grpo":
        c = seq["completion"] + 1
        logits = b * c * arch.vocab * 6 + c * arch.vocab * 4
        how += f"; logits of {seq['completion']} completion tokens"
    else:
        logits = b * s * arch.vocab * 10
        how += f"; logits of {s} tokens"
    return lm + vit + mergers + logits, f"micro-batch {b} x {s} tokens, {how}"


# Resident memory of a `radrl sft` / `radrl grpo` process before the model loads: Python, PyTorch,
# transformers, TRL, peft and datasets imported (0.49 GiB measured on the CPU, torch 2.13, transformers 5.25).
CPU_RUNTIME_GIB = 0.5


def estimate(arch: Architecture, recipe: Recipe, engine: Engine, gpus: int, gpu_memory_gib: float = 80.0,
             gpus_per_node: int = 8, prompt_text_tokens: int = 64, reserve_gib: float = 3.0,
             device: str = "gpu") -> Estimate:
    """Memory per GPU of ``recipe`` on ``gpus`` GPUs of ``gpu_memory_gib`` under ``engine`` (module docstring).

    ``device="cpu"``: resident memory (RSS) of each training process on the CPU, ``gpu_memory_gib`` being the
    host's RAM: no CUDA reserve but the runtime (``CPU_RUNTIME_GIB``), and a loading phase, when the fp32
    weights are built (4 P) while the checkpoint's files are memory-mapped. Their pages (the checkpoint's bytes,
    2 P for bf16 files) count in the process's RSS until it closes them, but are page cache the kernel can
    reclaim: fit is judged without them (``peak``), ``rss_peak`` includes them. The RSS peak is checked against
    the measured peak RSS of ``bench/realsize_cpu.sh`` (``tests/train/test_plan.py``). A GRPO recipe with
    ``use_vllm`` is refused on the CPU (vLLM rollouts need a GPU)."""
    if device not in ("gpu", "cpu"):
        raise ValueError(f"device must be 'gpu' or 'cpu', got {device!r}")
    cpu = device == "cpu"
    if cpu and engine.kind != "ddp":
        raise ValueError(f"on the CPU radrl trains without DeepSpeed or FSDP (engine ddp), not {engine}")
    if cpu and recipe.kind == "grpo" and recipe["use_vllm"]:
        raise ValueError("the recipe sets use_vllm: true; add --use_vllm false: vLLM rollouts need a GPU")
    n, p = gpus, arch.total
    t, _ = trainable(arch, recipe)
    bf16 = bool(recipe["bf16"] or recipe["fp16"])
    half = 2 if bf16 else 4  # the 16-bit copy DeepSpeed keeps (fp32 when training in fp32)
    lora = bool(recipe["use_lora"])
    everything = p + t if lora else p  # LoRA: the base model plus its adapters
    comps: dict[str, tuple[float, str]] = {}
    k = engine.kind
    if k == "ddp":
        comps["weights"] = (4 * everything, "fp32, whole model " + ("in the process" if cpu else "on every GPU"))
        comps["gradients"] = (4 * t * (2 if n > 1 else 1), "fp32" + (" + DDP's bucket copy" if n > 1 else ""))
        comps["optimizer"] = (8 * t, "Adam moments, fp32")
    elif k == "zero2":
        comps["weights"] = (half * everything, f"{8 * half}-bit, whole model on every GPU")
        if engine.offload_optimizer:
            comps["gradients"] = (0, "on the CPU (offload_optimizer)")
            comps["optimizer"] = (0, "on the CPU (offload_optimizer)")
        else:
            comps["gradients"] = ((half + 4) * t / n, f"16-bit + fp32, sharded over {n}")
            comps["optimizer"] = (12 * t / n, f"fp32 master + Adam moments, sharded over {n}")
    elif k == "zero3":
        comps["weights"] = (0 if engine.offload_params else half * everything / n,
                            "on the CPU (offload_param)" if engine.offload_params else f"16-bit, sharded over {n}")
        if engine.offload_optimizer:
            comps["gradients"] = (0, "on the CPU (offload_optimizer)")
            comps["optimizer"] = (0, "on the CPU (offload_optimizer)")
        else:
            comps["gradients"] = (4 * t / n, f"fp32, sharded over {n} (16-bit ones: in the gather buffer)")
            comps["optimizer"] = (12 * t / n, f"fp32 master + Adam moments, sharded over {n}")
        comps["gather buffer"] = (4 * arch.largest_layer, "largest layer gathered in 16 bits + its gradient")
    elif k == "fsdp":
        off = engine.offload_params
        comps["weights"] = (0 if off else 4 * everything / n, "on the CPU" if off else f"fp32 shards over {n}")
        comps["gradients"] = (0 if off else 4 * t / n, "on the CPU" if off else f"fp32 shards over {n}")
        comps["optimizer"] = (0 if off else 8 * t / n, "on the CPU" if off else f"Adam moments, shards over {n}")
        comps["gather buffer"] = (4 * arch.largest_unit, "largest FSDP unit unsharded in bf16 + its gradient")
    else:
        raise ValueError(f"unknown engine {k!r}; choose one of {', '.join(ENGINES)}")

    notes: list[str] = []
    seq = lengths(arch, recipe, prompt_text_tokens)
    grpo = recipe.kind == "grpo"
    ref = 0.0
    if grpo and recipe["beta"] and not lora:
        r = 2 if bf16 else 4
        if k == "zero2":
            ref, how = 2 * p if bf16 else 4 * p, "whole copy per GPU (TRL prepares it with ZeRO stage 0)"
        elif k == "zero3":
            ref, how = (0, "offloaded (offload_param)") if engine.offload_params else (r * p / n, f"sharded over {n}")
        elif k == "fsdp":
            ref, how = (0, "offloaded") if engine.offload_params else (r * p / n, f"sharded over {n}")
        else:
            ref, how = r * p, "whole copy per GPU"
        comps["reference model"] = (ref, f"{8 * r}-bit, {how}")
    elif grpo:
        comps["reference model"] = (0, "none (LoRA: the adapter is switched off)" if lora else "none (beta 0)")

    vllm_gen = vllm_update = 0.0
    capacity = gpu_memory_gib * GiB
    if grpo and recipe["use_vllm"] and recipe["vllm_mode"] == "colocate":
        util = float(recipe["vllm_gpu_memory_utilization"])
        tp = int(recipe["vllm_tensor_parallel_size"] or 1)
        vllm_gen = util * capacity
        sleep = bool(recipe["vllm_enable_sleep_mode"])
        vllm_update = 0.0 if sleep else vllm_gen
        comps["vLLM share"] = (vllm_gen, f"vllm_gpu_memory_utilization {util} x {gpu_memory_gib:g} GiB"
                               + ("; released during the update (sleep mode)" if sleep else "; held all along"))
        kv = vllm_gen - 2 * p / tp - 1.0 * GiB  # weights in bf16, about 1 GiB of vLLM's own activations
        if kv <= 0:
            notes.append(f"vLLM cannot start: its share ({vllm_gen / GiB:.1f} GiB) does not hold the bf16 weights "
                         f"({2 * p / tp / GiB:.1f} GiB) and a KV cache; raise vllm_gpu_memory_utilization above "
                         f"{(2 * p / tp + 3 * GiB) / capacity:.2f} or vllm_tensor_parallel_size")
        else:
            rows = _rows_per_generation(recipe, gpus)
            tokens = int(kv / arch.kv_bytes_per_token)
            need = rows * seq["sequence"]
            notes.append(f"vLLM KV cache about {kv / GiB:.1f} GiB = {tokens:,} tokens; this GPU's rollouts of one "
                         f"generation are {rows} x {seq['sequence']:,} = {need:,} tokens"
                         + (" (generated in waves: slower, not an error)" if need > tokens else ""))
    elif grpo and not recipe["use_vllm"]:
        rows = _rows_per_generation(recipe, gpus)
        kv_scale = 1 if bf16 else 2  # transformers generates in the policy's dtype: fp32 without bf16
        vllm_gen = rows * seq["sequence"] * arch.kv_bytes_per_token * kv_scale
        how = (f"transformers generation of {rows} rollouts x {seq['sequence']:,} tokens (no vLLM)"
               + ("" if bf16 else ", fp32"))
        comps["rollout KV cache"] = (vllm_gen, how)
    act, how = activation_bytes(arch, recipe, seq)
    comps["activations"] = (act, how)
    if cpu:
        comps["runtime"] = (CPU_RUNTIME_GIB * GiB, "Python, PyTorch, transformers, TRL imported (measured)")
    else:
        comps["reserve"] = (reserve_gib * GiB, "CUDA context, NCCL buffers, allocator fragmentation")

    states = sum(v for name, (v, _) in comps.items() if name not in ("vLLM share", "rollout KV cache", "activations"))
    update_phase = states + act + vllm_update
    generation_phase = states + vllm_gen
    phases = {"rollout": generation_phase, "update": update_phase} if grpo else {"update": update_phase}
    if cpu:
        # the fp32 policy (and a reference) built while the checkpoint's files are mapped; LoRA adds its adapters later
        files = arch.checkpoint_bytes * p
        ref_load = ref if grpo and recipe["beta"] and not lora else 0.0
        phases = {"loading": CPU_RUNTIME_GIB * GiB + 4 * p + ref_load, **phases}
    peak = max(phases.values())
    at = max(phases, key=phases.get)
    if len(phases) > 1:
        notes.append(f"peak at the {at} phase ("
                     + ", ".join(f"{k} {v / GiB:.1f} GiB" for k, v in phases.items()) + ")")
    b, acc = int(recipe["per_device_train_batch_size"]), int(recipe["gradient_accumulation_steps"])
    batch = {"micro_batch": b, "accumulation": acc, "effective_batch": b * acc * gpus, **seq}
    if cpu:
        rss = max(v + (files if k == "loading" else 0) for k, v in phases.items())
        notes.append(f"loading: the fp32 weights ({4 * p / GiB:.1f} GiB) are built while the checkpoint's files "
                     f"({files / GiB:.1f} GiB) are memory-mapped; their pages count in the process's RSS until "
                     "loading ends but are page cache, reclaimable, so the peak and the fit leave them out; "
                     f"RSS peak with them {rss / GiB:.1f} GiB (what getrusage / top report)")
        notes.append("resident memory on the CPU assumes freed activations go back to the system: `radrl sft` / "
                     "`radrl grpo` set glibc's mmap threshold to 1 MiB for that (radrl.train.common."
                     "return_freed_memory); without it glibc's heap keeps them and a GRPO step of the 2B took "
                     "19.6+ GiB (bench/README.md). Not counted: other processes (dataloader workers, a reward "
                     "server), reward models loaded in the process (report_radcliq's scorers)")
    else:
        host = _host_ram_per_node(arch, recipe, engine, gpus, gpus_per_node, bf16, lora)
        procs = min(gpus, gpus_per_node)
        notes.append(f"host RAM while loading: about {host / GiB:.{0 if host >= 10 * GiB else 1}f} GiB per node "
                     f"({procs} process{'es' if procs > 1 else ''}: radrl loads the policy in fp32 on the CPU, TRL "
                     "the reference in its dtype; plus the checkpoint's files mapped while loading, "
                     f"{arch.checkpoint_bytes * p / GiB:.{0 if arch.checkpoint_bytes * p >= 10 * GiB else 1}f} GiB "
                     "of page cache shared by the processes)")
    return Estimate(comps, peak, capacity, notes, batch, phases, mapped=files if cpu else 0.0)


def _rows_per_generation(recipe: Recipe, gpus: int) -> int:
    """Rollouts one process generates at once: generation_batch_size / processes (TRL's default:
    per_device_train_batch_size x steps_per_generation, steps_per_generation defaulting to the accumulation)."""
    b = int(recipe["per_device_train_batch_size"])
    if recipe["generation_batch_size"]:
        return max(1, int(recipe["generation_batch_size"]) // gpus)
    return b * int(recipe["steps_per_generation"] or recipe["gradient_accumulation_steps"])


def _host_ram_per_node(arch, recipe, engine, gpus, gpus_per_node, bf16, lora) -> float:
    per_process = 4 * arch.total
    if engine.kind == "zero3":  # transformers loads under zero.Init: parameters partitioned as they load
        per_process = 4 * arch.largest_layer
    if recipe.kind == "grpo" and recipe["beta"] and not lora:
        per_process += (2 if bf16 else 4) * arch.total if engine.kind != "zero3" else 4 * arch.largest_layer
    return per_process * min(gpus, gpus_per_node)


# What `suggestions` may change, cheapest first; each is (label, function(recipe, engine, gpus) -> new or None).
def _halve_batch(recipe, engine, gpus):
    b = int(recipe["per_device_train_batch_size"])
    if b <= 1:
        return None
    new = recipe.replace(per_device_train_batch_size=b // 2,
                         gradient_accumulation_steps=int(recipe["gradient_accumulation_steps"]) * 2)
    if recipe.kind == "grpo" and not recipe["generation_batch_size"] and recipe["steps_per_generation"]:
        new = new.replace(steps_per_generation=int(recipe["steps_per_generation"]) * 2)
    return new, engine, gpus


def suggestions(arch: Architecture, recipe: Recipe, engine: Engine, gpus: int, limit: int = 3,
                **kwargs) -> list[tuple[list[str], Estimate]]:
    """Changes that make the recipe fit, fewest first: (command-line flags, their estimate). Tried: smaller
    micro-batches with the accumulation raised to keep the effective batch; activation checkpointing;
    vLLM's sleep mode; a smaller vLLM share (down to its weights + 4 GiB of KV cache); ZeRO-3 or FSDP (with
    offloading last); twice the GPUs; LoRA last (it changes what trains)."""
    batches = [recipe]
    while (nxt := _halve_batch(batches[-1], engine, gpus)) is not None:
        batches.append(nxt[0])
    grpo_colocate = recipe.kind == "grpo" and recipe["use_vllm"] and recipe["vllm_mode"] == "colocate"
    ckpt = [False, True] if not recipe["activation_checkpointing"] else [False]
    sleep = [False, True] if grpo_colocate and not recipe["vllm_enable_sleep_mode"] else [False]
    min_util = None
    if grpo_colocate:
        tp = int(recipe["vllm_tensor_parallel_size"] or 1)
        min_util = math.ceil((2 * arch.total / tp + 5 * GiB) / (kwargs.get("gpu_memory_gib", 80.0) * GiB) * 20) / 20
    util = [False, True] if min_util and min_util < float(recipe["vllm_gpu_memory_utilization"]) else [False]
    cpu = kwargs.get("device") == "cpu"
    engines = [engine] + ([] if cpu else [e for e in (Engine("zero3"), Engine("fsdp"),
                                                        Engine("zero3", offload_optimizer=True)) if e != engine])
    found = []
    for b_i, c, s, u, e_i, more, lora in itertools.product(range(len(batches)), ckpt, sleep, util,
                                                            range(len(engines)), (False, True), (False, True)):
        if (lora and recipe["use_lora"]) or (more and cpu):
            continue
        r = batches[b_i]
        flags = []
        if b_i:
            flags += ["--per_device_train_batch_size", str(r["per_device_train_batch_size"]),
                      "--gradient_accumulation_steps", str(r["gradient_accumulation_steps"])]
        if c:
            r, flags = r.replace(activation_checkpointing=True), [*flags, "--activation_checkpointing", "true"]
        if s:
            r, flags = r.replace(vllm_enable_sleep_mode=True), [*flags, "--vllm_enable_sleep_mode", "true"]
        if u:
            r = r.replace(vllm_gpu_memory_utilization=min_util)
            flags = [*flags, "--vllm_gpu_memory_utilization", str(min_util)]
        if lora:
            r, flags = r.replace(use_lora=True), [*flags, "--use_lora", "true"]
        g = gpus * 2 if more else gpus
        if e_i:
            flags += ["--engine", engines[e_i].kind] + (["--offload-optimizer"] if engines[e_i].offload_optimizer
                                                        else [])
        if more:
            flags += ["--gpus", str(g)]
        est = estimate(arch, r, engines[e_i], g, **kwargs)
        if est.fits and not any("cannot start" in note for note in est.notes):
            # fewer changes first; among equals the larger micro-batch, the engine listed first, fewer GPUs
            cost = (bool(b_i) + c + s + u + bool(e_i) + 2 * more + 3 * lora, b_i, e_i)
            found.append((cost, flags, est))
    found.sort(key=lambda x: x[0])
    return [(flags, est) for _, flags, est in found[:limit]]


def to_json(est: Estimate) -> str:
    return json.dumps({"fits": est.fits, "peak_gib": est.peak / GiB, "rss_peak_gib": est.rss_peak / GiB,
                       "mapped_gib": est.mapped / GiB, "capacity_gib": est.capacity / GiB,
                       "components_gib": {k: v / GiB for k, (v, _) in est.components.items()},
                       "phases_gib": {k: v / GiB for k, v in est.phases.items()},
                       "batch": est.batch, "notes": est.notes}, indent=1)
