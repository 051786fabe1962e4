"""Bootstrap intervals and the paired bootstrap test (radrl.eval.stats), and the CIs in metrics.json."""

import json
import math

import numpy as np
import pytest

from radrl.eval.stats import (
    bootstrap_ci,
    bootstrap_corpus_ci,
    mean_cis,
    paired_bootstrap,
)
from radrl.metrics import MetricResult


@pytest.mark.parametrize("values", [
    [0.7] * 10,   # a constant vector: every resample has the same mean
    [1.0],        # one sample: nothing to resample
    [0.0] * 500,  # all-zero scores, e.g. a model that never parses
])
def test_ci_of_a_constant_vector_is_degenerate(values):
    low, high = bootstrap_ci(values)
    assert low == pytest.approx(values[0]) and high == pytest.approx(values[0])


def test_ci_covers_the_mean_of_a_normal_sample_with_the_textbook_width():
    n = 2000
    x = np.random.default_rng(123).standard_normal(n)
    low, high = bootstrap_ci(x)
    assert low < 0 < high                                              # contains the true mean
    assert high - low == pytest.approx(2 * 1.96 / math.sqrt(n), rel=0.1)  # ~ normal-theory width
    assert low < x.mean() < high


def test_ci_alpha_and_statistic():
    x = np.random.default_rng(0).standard_normal(300)
    w90 = np.subtract(*bootstrap_ci(x, alpha=0.10)[::-1])
    w99 = np.subtract(*bootstrap_ci(x, alpha=0.01)[::-1])
    assert w90 < w99                                         # a higher level is a wider interval
    low, high = bootstrap_ci(x, statistic=np.median)          # any row-wise numpy reduction
    assert low < np.median(x) < high


def test_seeded_and_deterministic():
    x = np.random.default_rng(5).random(200)
    assert bootstrap_ci(x, seed=3) == bootstrap_ci(list(x), seed=3)  # same seed: same numbers
    assert bootstrap_ci(x, seed=3) != bootstrap_ci(x, seed=4)        # another seed: other resamples
    y = x + 0.01
    assert paired_bootstrap(x, y, seed=7) == paired_bootstrap(x, y, seed=7)


def test_snapshot_of_ci_values_on_a_fixed_input():
    # Literal numbers: a change of RNG, index layout or quantile method shows up here.
    values = [0.0, 0.25, 0.5, 0.75, 1.0, 1.0, 0.5, 0.0, 0.25, 1.0]
    assert bootstrap_ci(values) == pytest.approx((0.3, 0.75), abs=1e-12)
    assert bootstrap_ci(values, n_resamples=200, seed=1) == pytest.approx((0.324375, 0.775), abs=1e-12)
    res = paired_bootstrap(values, [v * 0.5 for v in values])
    assert res == pytest.approx({"delta": 0.2625, "low": 0.15, "high": 0.375, "p_value": 0.0}, abs=1e-12)


@pytest.mark.parametrize("a, b, expect_significant", [
    # model A better on every sample by 0.2 (+ noise): a clear difference
    (np.random.default_rng(1).random(200) + 0.2, np.random.default_rng(1).random(200), True),
    # identical models: no difference, p = 1
    ([0.1, 0.5, 0.9, 0.3] * 25, [0.1, 0.5, 0.9, 0.3] * 25, False),
    # independent noise around the same mean: no evidence
    (np.random.default_rng(2).random(100), np.random.default_rng(3).random(100), False),
])
def test_paired_bootstrap(a, b, expect_significant):
    res = paired_bootstrap(a, b)
    assert res["delta"] == pytest.approx(np.mean(a) - np.mean(b))
    assert res["low"] <= res["delta"] <= res["high"]
    if expect_significant:
        assert res["p_value"] < 0.01 and res["low"] > 0
    else:
        assert res["p_value"] > 0.05 and res["low"] <= 0 <= res["high"]


def test_paired_bootstrap_on_identical_inputs_is_exactly_null():
    res = paired_bootstrap([0.2, 0.8, 0.4], [0.2, 0.8, 0.4])
    assert res == {"delta": 0.0, "low": 0.0, "high": 0.0, "p_value": 1.0}


def test_paired_bootstrap_is_symmetric():
    a, b = np.random.default_rng(8).random(50), np.random.default_rng(9).random(50)
    ab, ba = paired_bootstrap(a, b), paired_bootstrap(b, a)
    assert ab["p_value"] == ba["p_value"] and ab["delta"] == pytest.approx(-ba["delta"])


@pytest.mark.parametrize("call, message", [
    (lambda: bootstrap_ci([]), "empty"),                                  # nothing scored
    (lambda: bootstrap_ci([0.5, float("nan")]), "non-finite.*position"),  # NaN is a scorer bug
    (lambda: bootstrap_ci([[0.5, 0.5]]), "flat list"),                    # a matrix by mistake
    (lambda: bootstrap_ci([0.5], alpha=5), "alpha"),                      # percent instead of fraction
    (lambda: bootstrap_ci([0.5], n_resamples=0), "n_resamples"),
    (lambda: paired_bootstrap([0.1, 0.2], [0.1]), "same samples"),        # unequal lengths
    (lambda: paired_bootstrap([], []), "empty"),
    (lambda: paired_bootstrap([0.1], [float("inf")]), "non-finite"),
    (lambda: bootstrap_corpus_ci(lambda r, h: 0.0, ["a"], []), "one reference per hypothesis"),
])
def test_validation_errors_say_the_fix(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_corpus_ci_rescoring_a_pooled_metric():
    from radrl.metrics import METRICS

    refs = ["no pleural effusion", "mild cardiomegaly", "small left pneumothorax", "clear lungs"] * 3
    hyps = ["no pleural effusion", "cardiomegaly", "large right effusion", "clear lungs"] * 3
    full = METRICS["text"](refs, hyps).aggregate["bleu1"]
    low, high = bootstrap_corpus_ci(METRICS["text"], refs, hyps, key="bleu1", n_resamples=50)
    assert low <= full <= high and low < high
    with pytest.raises(ValueError, match="pick one of"):
        bootstrap_corpus_ci(METRICS["text"], refs, hyps, key="nope", n_resamples=2)


def test_mean_cis_decides_which_aggregates_get_an_interval():
    res = MetricResult(
        aggregate={"acc": 0.5, "pooled": 0.9, "bleu": 0.0, "cider": 0.5, "n": 4.0},
        per_sample={"acc": [1.0, 0.0, 1.0, 0.0],     # aggregate == mean: gets an interval
                    "pooled": [0.1, 0.2, 0.3, 0.4],  # an unknown metric != its mean: corpus-level
                    "bleu": [0.0, 0.0, 0.0, 0.0],    # == mean by coincidence, but BLEU pools counts
                    "cider": [1.0, 0.0, 1.0, 0.0]})  # mean, but IDF depends on the set
    cis, none = mean_cis(res, n_resamples=100)
    assert set(cis) == {"acc"} and cis["acc"][0] <= 0.5 <= cis["acc"][1]
    assert set(none) == {"pooled", "bleu", "cider", "n"}
    assert all("corpus-level" in none[k] for k in ("pooled", "bleu", "cider")) and "no per-sample" in none["n"]


def test_mean_cis_dataset_ap_says_why_and_rates_use_their_per_sample_key():
    res = MetricResult(aggregate={"ap50_dataset": 0.4, "false_positive_rate": 0.5, "normal_correct": 0.5},
                       per_sample={"false_positive": [1.0, 0.0], "normal_correct": [0.0, 1.0]})
    cis, none = mean_cis(res, n_resamples=100)
    # the dataset AP is one curve over all rows: no interval, and the reason names it (not "no per-sample values")
    assert set(none) == {"ap50_dataset"} and "dataset-level" in none["ap50_dataset"]
    # false_positive_rate is the mean of the per-sample 0/1 false_positive: it gets its interval
    assert set(cis) == {"false_positive_rate", "normal_correct"}


def _row(task, solution, i):
    return {"id": f"r{i}", "task": task, "solution": solution, "thinking": False,
            "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "q"}]}]}


def test_metrics_json_and_per_sample_of_fixed_predictions(tmp_path):
    from radrl.eval.report import markdown_table, write_metrics, write_per_sample
    from radrl.eval.score import score

    ref_box, ref_text = "Cardiomegaly at [0.30, 0.50, 0.70, 0.80]", "Moderate cardiomegaly. No pneumothorax."
    rows = [_row("grounding", ref_box, i) for i in range(4)] + [_row("report", ref_text, i) for i in range(4, 8)]
    completions = [ref_box, ref_box, "Cardiomegaly at [0.60, 0.10, 0.90, 0.30]", "no box",
                   ref_text, "Mild cardiomegaly.", "Large pleural effusion.", ref_text]
    # interleave the tasks: per_sample.jsonl must still align each row with its own values
    order = [0, 4, 1, 5, 2, 6, 3, 7]
    rows, completions = [rows[i] for i in order], [completions[i] for i in order]
    results = score(rows, completions)
    metrics = json.loads(write_metrics(results, tmp_path / "metrics.json").read_text())

    assert metrics["bootstrap"] == {"method": "percentile bootstrap over samples", "n_resamples": 2000,
                                    "seed": 0, "level": 0.95}
    grounding, report = metrics["tasks"]["grounding"], metrics["tasks"]["report"]
    assert set(grounding["ci"]) == {"soft_f1", "map50", "mean_iou", "acc50", "avg_chars"}  # answer length is a mean too
    assert {"rouge_l", "clinical", "avg_chars"} <= set(report["ci"])
    assert {"bleu", "cider", "chexpert_rules_micro_f1_14", "n"} <= set(report["no_ci"])
    for task in (grounding, report):
        for key, (low, high) in task["ci"].items():
            assert low <= task["aggregate"][key] <= high
    # snapshot: two exact, one disjoint, one missing box -> soft-F1 per sample [1, 1, 0, 0]
    assert grounding["aggregate"]["soft_f1"] == 0.5
    assert grounding["ci"]["soft_f1"] == pytest.approx([0.0, 1.0])
    assert write_metrics(results, tmp_path / "m0.json", n_resamples=0).read_text().count('"ci"') == 0

    lines = [json.loads(x) for x in write_per_sample(rows, results, tmp_path / "ps.jsonl").read_text().splitlines()]
    assert [(x["id"], x["task"]) for x in lines] == [(r["id"], r["task"]) for r in rows]
    by_id = {x["id"]: x for x in lines}
    assert [by_id[f"r{i}"]["soft_f1"] for i in range(4)] == [1.0, 1.0, 0.0, 0.0]
    assert by_id["r4"]["rouge_l"] == 1.0 and "soft_f1" not in by_id["r4"]

    table = markdown_table({"m": {"grounding": grounding["aggregate"]}}, "grounding",
                           cis={"m": {"grounding": grounding["ci"]}})
    # well_formed: no interval; 75.0 because the "no box" grounding answer is not well formed
    assert "| m | 50.0 [0.0, 100.0] |" in table and "| 75.0 |" in table


def test_rows_of_one_image_resample_together():
    # Three grounding rows per image that the model gets equally right or wrong carry one image's worth of
    # evidence: resampling images gives exactly the interval of the images alone, and a wider one than
    # resampling rows (which would count each image three times and make p-values too small).
    import numpy as np

    from radrl.eval.stats import paired_bootstrap, resampled_means

    rng = np.random.default_rng(3)
    per_image = rng.random(60)
    rows = np.repeat(per_image, 3)
    images = [f"img{i}" for i in range(60) for _ in range(3)]
    assert np.allclose(resampled_means(rows, images, 500, seed=1), resampled_means(per_image, None, 500, seed=1))
    gain = np.repeat(rng.normal(0.03, 0.2, 60), 3)
    rows_test = paired_bootstrap(list(gain), [0.0] * 180)
    image_test = paired_bootstrap(list(gain), [0.0] * 180, clusters=images)
    assert image_test["delta"] == rows_test["delta"]
    assert image_test["high"] - image_test["low"] > 1.5 * (rows_test["high"] - rows_test["low"])
    assert image_test["p_value"] > rows_test["p_value"]
