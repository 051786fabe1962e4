"""The command that fetches a model from the Hugging Face hub, named once for every hint that prints it.

radrl downloads no weights by itself: a missing checkpoint or metric model is an error that says which
command fetches it. huggingface_hub renamed that command (``huggingface-cli download`` became ``hf
download``, and current releases ship only ``hf``), so the hints in ``models`` and ``metrics`` are
built from this one constant, and a test checks that the installed huggingface_hub provides it.

>>> f"{HF_DOWNLOAD} distilroberta-base --local-dir /models/distilroberta-base"
'hf download distilroberta-base --local-dir /models/distilroberta-base'
"""

from __future__ import annotations

__all__ = ["HF_DOWNLOAD"]

# `hf download REPO [FILES...] --local-dir DIR`; the console script `hf` comes with huggingface_hub.
HF_DOWNLOAD = "hf download"
