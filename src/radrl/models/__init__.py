"""Models: load a Qwen3-VL checkpoint with the image-only processor; build the tiny test model."""

from radrl.models.load import ImageOnlyQwen3VLProcessor, load, load_processor

__all__ = ["ImageOnlyQwen3VLProcessor", "load", "load_processor"]
