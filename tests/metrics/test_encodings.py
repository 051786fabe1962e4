"""The fast scorer path (references' encodings cached across calls, length-sorted batches, radrl's BERTScore
matcher) against the straightforward one (``fast=False``): same values on tiny checkpoints in the real layouts."""

from pathlib import Path

import pytest

from radrl.metrics.encodings import TextCache, encode_once

REPORTS = Path(__file__).resolve().parents[3] / "shared" / "data" / "cxr" / "reports"


def grpo_batch(start: int, prompts: int = 3, rollouts: int = 4) -> tuple[list[str], list[str]]:
    """RadEval pairs grouped as GRPO groups them: each reference repeated for its rollouts (other predictions)."""
    refs = (REPORTS / "radeval_refs_chexpert_impression.txt").read_text().splitlines()
    preds = (REPORTS / "radeval_preds_chexpert_impression.txt").read_text().splitlines()
    r = [refs[start + g] for g in range(prompts) for _ in range(rollouts)]
    h = [preds[(start + g * rollouts + k) % len(preds)] for g in range(prompts) for k in range(rollouts)]
    return r, h


@pytest.fixture(scope="module")
def batches() -> list[tuple[list[str], list[str]]]:
    a, b = grpo_batch(0), grpo_batch(10)
    # step 3 repeats step 1's prompts with new rollouts (a second epoch): its references come from the cache;
    # a blank answer, an answer equal to its reference, and a duplicated rollout are in it too
    c_refs, c_hyps = grpo_batch(0)[0], grpo_batch(40)[1]
    c_hyps[0], c_hyps[1], c_hyps[3] = "", c_refs[1], c_hyps[2]
    return [a, b, (c_refs, c_hyps)]


def test_radcliq_fast_equals_plain(clinical_models, batches):
    # every per-sample value of RadCliQ and its components, and of the three scorers, agrees to 1e-6 between the
    # two paths, over three calls, the last one served partly from the references cached by the first
    from radrl.metrics.bertscore import bertscore
    from radrl.metrics.chexbert import chexbert
    from radrl.metrics.radcliq import radcliq
    from radrl.metrics.radgraph import radgraph

    m = {k: str(v) for k, v in clinical_models.items()}
    kw = {"radgraph_model": m["RADRL_RADGRAPH_MODEL"], "bertscore_model": m["RADRL_BERTSCORE_MODEL"],
          "chexbert_model": m["RADRL_CHEXBERT_MODEL"], "device": "cpu"}
    for refs, hyps in batches:
        runs = {
            "radcliq": [radcliq(refs, hyps, fast=f, **kw) for f in (False, True)],
            "radgraph": [radgraph(refs, hyps, model=kw["radgraph_model"], device="cpu", fast=f) for f in (False, True)],
            "chexbert": [chexbert(refs, hyps, model=kw["chexbert_model"], device="cpu", batch_size=5, fast=f)
                         for f in (False, True)],
            "bertscore": [bertscore(refs, hyps, model=kw["bertscore_model"], device="cpu", fast=f)
                          for f in (False, True)],
        }
        for name, (plain, fast) in runs.items():
            assert set(plain.per_sample) == set(fast.per_sample), name
            for key, values in plain.per_sample.items():
                assert fast.per_sample[key] == pytest.approx(values, abs=1e-6), (name, key)
            for key, value in plain.aggregate.items():
                assert fast.aggregate[key] == pytest.approx(value, abs=1e-6), (name, key)
    from radrl.metrics.radgraph import load_radgraph

    cache = load_radgraph(kw["radgraph_model"], device="cpu").ref_cache
    assert cache.hits > 0 and len(cache.data) <= 9  # step 3's references came from step 1; only references kept


def test_encode_once_encodes_each_text_once_and_keeps_references():
    # one encode call per batch of new texts; references stored, hypotheses not; a cached text is not re-encoded
    calls = []

    def encode(texts):
        calls.append(list(texts))
        return [t.upper() for t in texts]

    cache = TextCache(10)
    got = encode_once(["a", "x", "a", "y"], ["a", "a"], encode, cache)
    assert got == {"a": "A", "x": "X", "y": "Y"} and calls == [["a", "x", "y"]]
    assert list(cache.data) == ["a"]
    got = encode_once(["a", "z"], ["a"], encode, cache)
    assert got == {"a": "A", "z": "Z"} and calls[-1] == ["z"] and cache.hits == 1
    # no cache: the straightforward path, still one encoding per distinct text
    assert encode_once(["a", "a"], ["a"], encode, None) == {"a": "A"} and calls[-1] == ["a"]


def test_text_cache_drops_least_recently_used():
    cache = TextCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    off = TextCache(0)
    off.put("a", 1)
    assert off.get("a") is None
