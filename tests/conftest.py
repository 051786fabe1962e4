"""Shared fixtures: a tiny random Qwen3-VL and small synthetic data, built offline once per session."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may download anything
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def cxr_data() -> Path:
    """The real chest X-ray fixtures in ../shared/data/cxr (or $RADRL_CXR_DATA). Missing -> fail, never skip."""
    path = Path(os.environ.get("RADRL_CXR_DATA", REPO.parent / "shared" / "data" / "cxr"))
    if not path.is_dir():
        pytest.fail(f"real CXR fixtures not found at {path}; set RADRL_CXR_DATA to the shared/data/cxr folder")
    return path


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> dict:
    """A few synthetic images with reports and boxes: train/test samples JSONL."""
    from radrl.data.synthetic import write_dataset

    return write_dataset(tmp_path_factory.mktemp("synth"), n_train=24, n_test=8, seed=0, size=128)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, synth_data) -> Path:
    """A tiny random Qwen3-VL checkpoint with a tokenizer trained on the synthetic corpus."""
    from radrl.models.tiny import build_tiny_model, demo_corpus

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", demo_corpus([str(synth_data["train"])]),
                            vocab_size=512, max_pixels=64 * 64)
