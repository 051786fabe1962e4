"""MetricSpec: every key a scorer returns has one, names are truthful, and the lookup stays cheap."""

import subprocess
import sys

import pytest

from radrl.data.boxes import Box
from radrl.metrics import MetricResult, MetricSpec, all_specs, metric_spec

REFS = ["Mild cardiomegaly. Small left pleural effusion.", "No acute cardiopulmonary process."]
HYPS = ["mild cardiomegaly with a small left effusion.", "No pneumothorax."]


def _undeclared(result: MetricResult) -> set[str]:
    return {k for k in (*result.aggregate, *result.per_sample) if k not in all_specs()}


def _offline_results() -> dict[str, MetricResult]:
    """Every scorer that runs without model files, on a tiny input, plus the keys radrl eval adds."""
    from radrl.eval.score import score
    from radrl.metrics import grounding
    from radrl.metrics.chexpert import chexpert_f1
    from radrl.metrics.grounding import score_grounding
    from radrl.metrics.radcliq import radcliq_from_components
    from radrl.metrics.text import score_gleu, score_rouge_l, score_text

    box = Box(0.1, 0.1, 0.5, 0.5)
    rows = [{"id": "r", "task": "report", "solution": REFS[0]},
            {"id": "g", "task": "grounding", "solution": "Cardiomegaly at [0.10, 0.10, 0.50, 0.50]"}]
    scored = score(rows, [HYPS[0], "Cardiomegaly at [0.12, 0.10, 0.50, 0.50]"])
    # images without findings: normal_correct, false_positive
    normal = grounding.score_normal(["No abnormalities.", "Nodule at [0.1, 0.1, 0.2, 0.2]"],
                                    [[], [Box(0.1, 0.1, 0.2, 0.2)]])
    return {"normal": normal, "text": score_text(REFS, HYPS), "rouge_l": score_rouge_l(REFS, HYPS),
            "gleu": score_gleu(REFS, HYPS),
            "chexpert": chexpert_f1(REFS, HYPS), "grounding": score_grounding([[box]], [[box]]),
            "radcliq_v1": radcliq_from_components([0.5], [0.5], [0.5], [0.5]),
            "eval report": scored["report"], "eval grounding": scored["grounding"]}


def test_every_offline_scorer_key_has_a_spec():
    missing = {name: _undeclared(r) for name, r in _offline_results().items() if _undeclared(r)}
    assert not missing, f"keys without a MetricSpec (add one to the scorer module's SPECS): {missing}"


def test_green_keys_have_specs(monkeypatch):
    # the judge is a stand-in: GREEN's own answer format, no model or server
    from radrl.metrics import green as g

    answer = "[Clinically Significant Errors]:\n(a) 0.\n\n[Matched Findings]:\n1. Cardiomegaly.\n"
    monkeypatch.setattr(g, "_generate_endpoint", lambda endpoint, prompts, *a: ([answer] * len(prompts), "stub"))
    assert _undeclared(g.green(REFS, HYPS, endpoint="http://stub/v1")) == set()


@pytest.mark.slow
def test_model_based_scorer_keys_have_specs(clinical_models):
    # RadCliQ from text runs RadGraph-XL, BERTScore and CheXbert (tiny checkpoints in the real layouts)
    from radrl.metrics.chexbert import chexbert
    from radrl.metrics.radcliq import radcliq
    from radrl.metrics.radgraph import radgraph

    m = {k: str(v) for k, v in clinical_models.items()}
    results = [radcliq(REFS, HYPS, m["RADRL_RADGRAPH_MODEL"], m["RADRL_BERTSCORE_MODEL"], m["RADRL_CHEXBERT_MODEL"],
                       device="cpu"),
               radgraph(REFS, HYPS, model=m["RADRL_RADGRAPH_MODEL"], device="cpu"),
               chexbert(REFS, HYPS, model=m["RADRL_CHEXBERT_MODEL"], device="cpu")]
    assert set().union(*map(_undeclared, results)) == set()


def test_every_scorer_module_declares_its_keys_and_only_specs():
    for spec in all_specs().values():
        assert isinstance(spec, MetricSpec) and spec.scale in ("pct", "raw", "int"), spec
        assert spec.name and spec.description, spec
        assert spec.same_as is None or spec.same_as in all_specs(), spec
    # the keys eval adds, RadGraph's levels, CheXbert's averages, and the normal-image grounding keys
    assert {"avg_chars", "n", "well_formed", "radgraph_partial", "chexbert_f1_macro_5", "ap50_dataset",
            "normal_correct", "false_positive_rate", "meteor", "meteor_nltk", "green_unparsed"} <= set(all_specs())


# (key, what its display name must say)
NAMES = [
    # the rule labeler, named as such, with its label count
    ("chexpert_rules_micro_f1_14", "CheXpert-rules micro-F1 (14)"),
    ("chexpert_rules_macro_f1_5", "CheXpert-rules macro-F1 (5)"),
    ("chexbert_f1_micro_14", "CheXbert micro-F1 (14)"),  # only CheXbert's own keys carry CheXbert's name
    ("radcliq_v1", "RadCliQ-v1 (lower better)"),  # the raw score, with its direction
    ("false_positive_rate", "false-positive rate (lower better)"),
]


@pytest.mark.parametrize("key,name", NAMES, ids=[k for k, _ in NAMES])
def test_display_names(key, name):
    assert metric_spec(key).name == name


def test_names_never_overstate():
    for key, spec in all_specs().items():
        # the rule labeler is never shown under CheXbert's name, CheXbert never under the rule labeler's
        assert ("CheXbert" in spec.name) == key.startswith(("chexbert_", "radcliq_chexbert_")), key
        assert ("CheXpert-rules" in spec.name) == (key.startswith("chexpert_") or key == "clinical"), key
        # every micro/macro F1 says over how many labels
        if "micro" in key or "macro" in key:
            assert spec.labels in (5, 14) and f"({spec.labels})" in spec.name, key
        if spec.higher_is_better is False and spec.scale != "int":  # a score that falls as it improves says so
            assert "lower" in spec.name, key
    radcliq = metric_spec("radcliq_v1")
    assert radcliq.higher_is_better is False and "-RadCliQ" in radcliq.description and "1/RadCliQ" in \
        radcliq.description


def test_unknown_key_keeps_its_name_and_formats():
    spec = metric_spec("some_future_metric")
    assert spec.name == "some_future_metric" and spec.higher_is_better is None
    assert spec.format(0.12345) == "0.123" and spec.format(None) == "-"
    assert metric_spec("rouge_l").format(0.2468) == "24.7" and metric_spec("n").format(60.0) == "60"
    assert metric_spec("rouge_l").format_delta(-0.012) == "-1.2"


def test_lookup_imports_no_heavy_package():
    code = ("import sys; from radrl.metrics import all_specs; all_specs(); "
            "print([m for m in ('torch', 'transformers', 'bert_score', 'scipy', 'httpx') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_new_metric_is_one_module_and_one_metrics_entry(monkeypatch):
    # Adding a metric: a module with its scorer and SPECS, and one METRICS entry; its names reach every table.
    import sys
    import types

    from radrl import metrics
    from radrl.metrics import METRICS, MetricResult, MetricSpec

    module = types.ModuleType("my_lab.my_metric")

    def my_metric(refs, hyps):
        return MetricResult({"my_score": 1.0}, {"my_score": [1.0] * len(hyps)})

    my_metric.__module__ = module.__name__
    module.my_metric = my_metric
    module.SPECS = (MetricSpec("my_score", "My score (lab)", description="a user's metric"),)
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(METRICS, "my_metric", my_metric)
    metrics.all_specs.cache_clear()
    try:
        assert metrics.metric_spec("my_score").name == "My score (lab)"
    finally:
        metrics.all_specs.cache_clear()
