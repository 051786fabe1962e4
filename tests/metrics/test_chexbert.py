"""CheXbert F1 and embedding similarity offline: a tiny random chexbert.pth in the real layout, checked against
RadEval's CheXbert code run on the same checkpoint."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from radrl.data.schema import CHEXPERT_LABELS
from radrl.metrics import METRICS
from radrl.metrics.chexbert import (
    ENV_VAR,
    CheXbertModelMissing,
    chexbert,
    label_reports,
    load_chexbert,
)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def tiny_chexbert(tmp_path_factory, tiny_clinical) -> Path:
    return tiny_clinical.write_tiny_chexbert(tmp_path_factory.mktemp("cx") / "chexbert", seed=0)


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads((FIXTURES / "chexbert_reference.json").read_text())


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def as_rrg(labels: dict, order: list[str]) -> list[int]:
    """radrl labels -> f1chexbert rrg vector in CheXbert's head order (positive/uncertain -> 1)."""
    return [1 if labels.get(name) in (1, -1) else 0 for name in order]


def test_labels_and_similarity_match_radeval(tiny_chexbert, reference, tiny_clinical):
    # chexbert_reference.json (make_chexbert_reference.py): RadEval's BaseBertLabeler / get_labels / get_embeddings
    # on the same tiny checkpoint; pairs include an empty reference and a report cut at 512 word pieces
    labels = label_reports(reference["refs"] + reference["hyps"], model=tiny_chexbert, device="cpu")
    want = reference["ref_labels"] + reference["hyp_labels"]
    assert [as_rrg(x, tiny_clinical.CHEXBERT_CONDITIONS) for x in labels] == want
    r = chexbert(reference["refs"], reference["hyps"], model=tiny_chexbert, device="cpu", batch_size=5)
    assert r.per_sample["chexbert_similarity"] == pytest.approx(reference["chexbert_similarity"], abs=1e-5)
    for key in ("chexbert_f1_micro_14", "chexbert_f1_macro_14", "chexbert_f1_micro_5", "chexbert_f1_macro_5"):
        assert r.aggregate[key] == pytest.approx(reference[key], abs=1e-12), key
    assert len({tuple(v) for v in reference["ref_labels"] + reference["hyp_labels"]}) > 3  # labels do vary


def test_batch_size_does_not_change_results(tiny_chexbert, reference):
    # padding is masked: one report per batch gives the same labels and cosines as many
    refs, hyps = reference["refs"][:6], reference["hyps"][:6]
    one = chexbert(refs, hyps, model=tiny_chexbert, device="cpu", batch_size=1)
    many = chexbert(refs, hyps, model=tiny_chexbert, device="cpu", batch_size=12)
    assert one.per_sample["chexbert_f1"] == many.per_sample["chexbert_f1"]
    assert one.per_sample["chexbert_similarity"] == pytest.approx(many.per_sample["chexbert_similarity"], abs=1e-5)


def test_identical_reports_score_one(tiny_chexbert):
    # a report against itself: same labels (example F1 1) and cosine 1
    texts = ["mild cardiomegaly.", "no pleural effusion or pneumothorax."]
    r = chexbert(texts, texts, model=tiny_chexbert, device="cpu")
    assert r.per_sample["chexbert_f1"] == [1.0, 1.0]
    assert r.per_sample["chexbert_similarity"] == pytest.approx([1.0, 1.0], abs=1e-9)
    assert set(r.per_sample) == {"chexbert_f1", "chexbert_similarity"}
    assert {"chexbert_f1_micro_14", "chexbert_f1_macro_5", "chexbert_similarity"} <= set(r.aggregate)
    assert "chexbert.pth (sha256:" in r.versions["chexbert_model"]  # which weights produced the numbers


def test_labels_use_radrl_schema(tiny_chexbert):
    # CheXbert's labels come back as label_report's: CHEXPERT_LABELS names, values 1 / 0 / -1, blank ones absent
    (labels,) = label_reports(["left lower lobe atelectasis."], model=tiny_chexbert, device="cpu")
    assert set(labels) <= set(CHEXPERT_LABELS) and set(labels.values()) <= {1, 0, -1}
    assert list(labels) == [k for k in CHEXPERT_LABELS if k in labels]


def test_metrics_entry_reads_env(tiny_chexbert, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(tiny_chexbert))
    assert METRICS["chexbert"](["no effusion."], ["no effusion."]).per_sample["chexbert_f1"] == [1.0]


def test_missing_model_says_what_to_download(no_env, tmp_path):
    with pytest.raises(CheXbertModelMissing) as e:
        chexbert(["a"], ["a"])
    msg = str(e.value)
    assert "chexbert.pth" in msg and "StanfordAIMI/RRG_scorers" in msg and "bert-base-uncased" in msg and ENV_VAR in msg
    with pytest.raises(CheXbertModelMissing, match="does not exist"):
        chexbert(["a"], ["a"], model=tmp_path / "nowhere")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(CheXbertModelMissing, match=r"lacks chexbert.pth, vocab.txt"):
        chexbert(["a"], ["a"], model=tmp_path)


BROKEN = [
    # a file that is not a torch checkpoint (an HTML error page saved as chexbert.pth)
    ("not_a_checkpoint", lambda p: p.write_text("<html>404</html>"), "not a CheXbert checkpoint"),
    # a head missing: the message names it
    ("head_missing", lambda p: torch.save({"model_state_dict": {k: v for k, v in torch.load(p)["model_state_dict"]
                                                                .items() if "linear_heads.13" not in k}}, p),
     r"linear_heads.13 \(No Finding\)"),
    # BERT weights missing: f1chexbert would keep random weights silently; we refuse
    ("bert_missing", lambda p: torch.save({"model_state_dict": {k: v for k, v in torch.load(p)["model_state_dict"]
                                                                .items() if "encoder.layer.0" not in k}}, p),
     "missing.*encoder.layer.0"),
]


@pytest.mark.parametrize("case,breaker,message", BROKEN, ids=[c[0] for c in BROKEN])
def test_broken_checkpoint_fails_clearly(tiny_chexbert, tmp_path, case, breaker, message):
    folder = tmp_path / "chexbert"
    shutil.copytree(tiny_chexbert, folder)
    breaker(folder / "chexbert.pth")
    with pytest.raises(ValueError, match=message):
        load_chexbert(folder, device="cpu")


def test_misaligned_inputs(tiny_chexbert):
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        chexbert(["a"], [], model=tiny_chexbert)
