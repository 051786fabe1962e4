"""Checkpoint -> (Qwen3-VL model, image-only processor).

Why an image-only processor: the stock ``Qwen3VLProcessor`` also builds a video
processor, which imports torchvision; torchvision does not import beside the CPU
torch we install, and chest X-ray work never needs video. ``ImageOnlyQwen3VLProcessor``
is the same class without the video part, using the PIL image processor
(``Qwen2VLImageProcessorPil``, which reads Qwen3-VL's ``preprocessor_config.json``:
patch 16, merge 2). It is registered with ``AutoProcessor`` so that TRL and
``AutoProcessor.from_pretrained`` on one of our saved checkpoints return it.

The same code loads the tiny test model and a real Qwen3-VL-8B checkpoint.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from transformers import (
    AutoProcessor,
    AutoTokenizer,
    Qwen2VLImageProcessorPil,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
)
from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

from radrl.hub import HF_DOWNLOAD


class ImageOnlyQwen3VLProcessor(Qwen3VLProcessor):
    """``Qwen3VLProcessor`` with images only: no video processor, hence no torchvision."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        # The parent passes (image_processor, tokenizer, video_processor); our attribute list has
        # only the first two, so the video slot is dropped by ProcessorMixin.
        super().__init__(image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                         chat_template=chat_template, **kwargs)


    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as a stock Qwen3-VL processor, so the checkpoint is portable: vLLM (TRL's rollouts, a
        served model) and plain ``AutoProcessor`` on a machine with torchvision load it without radrl.
        ``processor_class`` names ``Qwen3VLProcessor``, and the video processor config a Qwen3-VL release
        ships is written with the library's defaults (the image settings stay ours)."""
        out = super().save_pretrained(save_directory, *args, **kwargs)
        folder = Path(save_directory)
        for name in ("processor_config.json", "tokenizer_config.json", "preprocessor_config.json"):
            path = folder / name
            if path.exists():
                config = json.loads(path.read_text())
                if config.get("processor_class") == type(self).__name__:
                    config["processor_class"] = STOCK_PROCESSOR
                    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        video = folder / "video_preprocessor_config.json"
        if not video.exists():
            ip = self.image_processor
            video.write_text(json.dumps({
                **VIDEO_DEFAULTS, "image_mean": list(ip.image_mean), "image_std": list(ip.image_std),
                "patch_size": ip.patch_size, "merge_size": ip.merge_size,
                "temporal_patch_size": getattr(ip, "temporal_patch_size", 2)}, indent=2, sort_keys=True) + "\n")
        return out


# What a Qwen3-VL release's video_preprocessor_config.json holds (transformers' Qwen3VLVideoProcessor
# defaults); chest X-ray work never reads it, but loaders of the stock processor require the file.
STOCK_PROCESSOR = "Qwen3VLProcessor"
VIDEO_DEFAULTS = {"video_processor_type": "Qwen3VLVideoProcessor", "processor_class": STOCK_PROCESSOR,
                  "size": {"shortest_edge": 128 * 32 * 32, "longest_edge": 768 * 32 * 32}, "do_resize": True,
                  "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "do_convert_rgb": True,
                  "resample": 3, "fps": 2, "min_frames": 4, "max_frames": 768, "do_sample_frames": True}

AutoProcessor.register(Qwen3VLConfig, ImageOnlyQwen3VLProcessor, exist_ok=True)


# What a Qwen3-VL checkpoint folder needs, part by part: (the part, any one of these files or patterns).
CHECKPOINT_PARTS = (
    ("config", ("config.json",)),
    ("weights", ("*.safetensors", "pytorch_model*.bin")),
    ("tokenizer", ("tokenizer.json", "vocab.json")),
    ("tokenizer config", ("tokenizer_config.json",)),
    ("image processor", ("preprocessor_config.json", "processor_config.json")),
)
# The opt-in for fetching a hub id on first use; without it a model that is not a local folder is an error.
ALLOW_DOWNLOAD_ENV = "RADRL_ALLOW_DOWNLOAD"


def missing_parts(folder: str | Path) -> list[str]:
    """The parts of a checkpoint ``folder`` lacks, each as "part (file or file)", including the chat template
    (a ``chat_template.jinja``/``.json`` file or a ``chat_template`` in ``tokenizer_config.json``).

    >>> missing_parts("/nonexistent")[:2]
    ['config (config.json)', 'weights (*.safetensors or pytorch_model*.bin)']
    """
    p = Path(folder)
    missing = [f"{part} ({' or '.join(files)})" for part, files in CHECKPOINT_PARTS
               if not any(next(p.glob(f), None) is not None for f in files)]
    template = (p / "chat_template.jinja").exists() or (p / "chat_template.json").exists()
    if not template and (p / "tokenizer_config.json").exists():
        try:
            template = bool(json.loads((p / "tokenizer_config.json").read_text()).get("chat_template"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            template = False
    if not template:
        missing.append("chat template (chat_template.jinja)")
    return missing


def require_local(path: str) -> None:
    """Stop unless ``path`` is a local folder (or a hub id with ``RADRL_ALLOW_DOWNLOAD=1``). Why: a hub id
    made transformers go to the network for about a minute and end in a long traceback, while radrl
    promises that nothing is downloaded implicitly; the error says how to fetch the model instead."""
    p = Path(path)
    if p.is_dir():
        return
    if p.exists():
        raise FileNotFoundError(f"{path} is a file; --model takes the checkpoint folder that holds config.json")
    if _looks_like_hub_id(path):
        if os.environ.get(ALLOW_DOWNLOAD_ENV, "") in ("1", "true", "True"):
            return
        name = path.split("/")[-1]
        raise FileNotFoundError(f"{path} is not a local folder, and radrl downloads nothing by itself: fetch it "
                                f"once with `{HF_DOWNLOAD} {path} --local-dir models/{name}` and pass "
                                f"models/{name} (or set {ALLOW_DOWNLOAD_ENV}=1 to let transformers download it)")
    raise FileNotFoundError(f"checkpoint folder {path} does not exist; check the path (or build one with "
                            "`radrl tiny-model OUT`)")


def _check_checkpoint(path: str) -> None:
    require_local(path)
    if not Path(path).is_dir():
        return   # a hub id the user allowed to download
    missing = missing_parts(path)
    if missing:
        raise FileNotFoundError(
            f"{path} is not a complete Qwen3-VL checkpoint: missing {'; '.join(missing)}. Copy them from the model's "
            f"release (e.g. `{HF_DOWNLOAD} Qwen/Qwen3-VL-8B-Instruct --local-dir DIR`) or point to the "
            "folder that has them (`radrl tiny-model OUT` builds a test model)")


def _looks_like_hub_id(s: str) -> bool:
    """``org/name`` whose ``org`` is not a local folder (``runs/sftx`` is a mistyped path, not a hub id)."""
    return s.count("/") == 1 and not s.startswith(("/", ".", "~")) and not Path(s).parent.is_dir()


def load_processor(path: str, min_pixels: int | None = None, max_pixels: int | None = None
                   ) -> ImageOnlyQwen3VLProcessor:
    """The image-only processor for ``path``; ``min_pixels``/``max_pixels`` set the image pixel budget."""
    _check_checkpoint(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    image_processor = Qwen2VLImageProcessorPil.from_pretrained(path)
    if min_pixels is not None:
        image_processor.size["shortest_edge"] = int(min_pixels)
    if max_pixels is not None:
        image_processor.size["longest_edge"] = int(max_pixels)
    chat_template = getattr(tokenizer, "chat_template", None)
    folder = Path(path)
    if (folder / "chat_template.jinja").exists():  # current layout
        chat_template = (folder / "chat_template.jinja").read_text()
    elif (folder / "chat_template.json").exists():  # older processor-level layout of the Qwen releases
        chat_template = json.loads((folder / "chat_template.json").read_text())["chat_template"]
    if chat_template is None:
        raise ValueError(f"{path} has no chat template (chat_template.jinja, chat_template.json or in "
                         "tokenizer_config.json); copy the one from the Qwen3-VL release into the checkpoint folder")
    return ImageOnlyQwen3VLProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template)


def default_dtype(device: str) -> torch.dtype:
    """bf16 on GPUs that support it, fp32 on CPU (bf16 matmuls are slow and imprecise there)."""
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16, "float16": torch.float16,
          "fp32": torch.float32, "float32": torch.float32}


def load(path: str, dtype: torch.dtype | str | None = None, device: str | None = None,
         min_pixels: int | None = None, max_pixels: int | None = None,
         ) -> tuple[Qwen3VLForConditionalGeneration, ImageOnlyQwen3VLProcessor]:
    """Load a Qwen3-VL checkpoint folder (a hub id only with ``RADRL_ALLOW_DOWNLOAD=1``; ``require_local``).

    Inference: defaults pick the GPU and bf16 when there is one. Training passes
    ``dtype=torch.float32, device="cpu"``: the Trainer places the model and autocasts to bf16,
    keeping fp32 master weights so that lr-1e-6 updates do not round away.

    >>> model, processor = load("runs/demo/tiny-model")            # doctest: +SKIP
    """
    device = device or default_device()
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(DTYPES)}")
        dtype = DTYPES[dtype]
    dtype = dtype or default_dtype(device)
    processor = load_processor(path, min_pixels=min_pixels, max_pixels=max_pixels)
    # device_map loads the weights straight onto the device instead of through host memory. Under DeepSpeed
    # ZeRO-3 (registered when TrainingArguments with a ZeRO-3 config are parsed, e.g. by `accelerate launch
    # --config_file recipes/accelerate/deepspeed_zero3.yaml`) transformers refuses any device_map: the weights
    # are partitioned across processes as they load, and the Trainer places them.
    from transformers.integrations import is_deepspeed_zero3_enabled

    device_map = None if is_deepspeed_zero3_enabled() else device
    model = Qwen3VLForConditionalGeneration.from_pretrained(path, dtype=dtype, device_map=device_map)
    return model, processor
