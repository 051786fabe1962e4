"""RaTEScore: radrl's scorer equals the ratescore package on tiny random checkpoints in the real layouts.

The package (ratescore 0.6.0, module ``RaTEScore``) needs medspaCy, which is installed beside it with
``--no-deps`` (its spaCy < 3.8 pin would pull NumPy 1); where it is missing the comparisons skip and the
rest (span rules, matching by hand, reward, errors) still runs on radrl's own code.
"""

import importlib.util
import math
import pickle
import random

import pytest

from radrl.metrics import METRICS, all_specs, check_metrics, metric_spec
from radrl.metrics import ratescore as rs

HAS_SPLITTER = all(importlib.util.find_spec(m) for m in ("spacy", "PyRuSH", "PyFastNER"))
needs_splitter = pytest.mark.skipif(not HAS_SPLITTER, reason="RaTEScore's sentence splitter: " + rs._INSTALL)

# (reference, hypothesis): report pairs, then adversarial text. Every one has at least one sentence, so the
# package scores it (see test_reports_without_a_sentence for those it cannot).
PAIRS = [
    ("No pleural effusion. Heart size is normal.", "There is no pneumothorax or effusion."),
    ("Mild cardiomegaly. Left lower lobe atelectasis.", "Mild cardiomegaly with left lower lobe opacity."),
    ("There is no pneumothorax or effusion.\n\nStable tube.", "Pleural effusion; small. Right rib fracture"),
    ("No acute cardiopulmonary process.", "No acute cardiopulmonary process."),  # identical
    ("Épanchement pleural gauche. ¿Qué? Cardiomégalie.", "Left effusion."),  # non-ASCII
    ("e\u0301de\u0300me pulmonaire.", "Edema."),  # decomposed accents
    ("...!!!", "No acute disease."),  # punctuation only
    ("No acute cardiopulmonary process.", ";;; ,,, ---"),  # punctuation only, as the hypothesis
    ("Clear.", "Lungs are clear."),  # very short: six characters
    ("THE HEART IS ENLARGED. BILATERAL EDEMA.", "the heart is enlarged.bilateral edema"),  # case; no space
    ("Opacity at the right base (2.5 cm); stable since 01/02.", "Right base opacity, 25 mm, new."),
    ("  No pneumothorax.  \t Small left effusion.  ", "No pneumothorax. Small left effusion."),  # whitespace runs
]
# Texts with no sentence at all (the package's splitter keeps none), each paired with a normal report.
NO_SENTENCE = ["", "   ", "ok", "?!", "\n\n"]


def _load(path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny():
    from pathlib import Path

    return _load(Path(__file__).parent / "fixtures" / "ratescore" / "tiny_ratescore.py")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tiny):
    """The folder RADRL_RATESCORE_MODEL names, with both tiny models in their hub names' sub-folders."""
    root = tmp_path_factory.mktemp("ratescore")
    tiny.write_tiny_ner(root / rs.NER_FOLDER)
    tiny.write_tiny_embedder(root / rs.EMBEDDER_FOLDER)
    return root


@pytest.fixture(scope="module")
def package(folder):
    """The ratescore package on the same two folders, on the CPU, with its defaults (batch 1, "long")."""
    pytest.importorskip("medspacy")
    from RaTEScore import RaTEScore

    return RaTEScore(bert_model=str(folder / rs.NER_FOLDER), eval_model=str(folder / rs.EMBEDDER_FOLDER),
                     use_gpu=False)


@needs_splitter
def test_sentences_match_medspacy():
    # the package's sentence_split, through medspacy.load; ours without medspaCy
    pytest.importorskip("medspacy")
    from RaTEScore.utils import sentence_split

    texts = [t for pair in PAIRS for t in pair] + NO_SENTENCE + ["Dr. Smith saw it. Pt. stable.\nImpression: none",
                                                                 "1. Effusion.\n2. No pneumothorax.", "a. b. c."]
    for text in texts:
        assert rs.split_sentences(text) == sentence_split([text])[0], repr(text)


@needs_splitter
def test_matches_the_ratescore_package(folder, package):
    from RaTEScore.score import run_ner

    refs, hyps = [r for r, _ in PAIRS], [h for _, h in PAIRS]
    ours = rs.ratescore(refs, hyps, model=folder, device="cpu").per_sample["ratescore"]
    theirs = [package.compute_score([h], [r]) for r, h in PAIRS]  # one pair per call: as aligned as it gets
    for (r, h), o, t in zip(PAIRS, ours, theirs):
        assert len(t) == 1 and o == pytest.approx(t[0], abs=1e-6), (r, h, o, t)
    # the entities themselves, text and type, piece for piece
    texts = refs + hyps
    assert rs.entities(texts, model=folder, device="cpu") == run_ner(texts, package.idx2label, package.tokenizer,
                                                                     package.model, package.device, 1)
    # the comparison means something: entities were found and the values spread
    assert sum(v != 0.5 for v in ours) >= len(PAIRS) - 3 and len({round(v, 6) for v in ours}) >= len(PAIRS) - 3


@needs_splitter
def test_matches_the_package_in_one_batch_with_its_short_matrix(folder, package, monkeypatch):
    # the package scoring all pairs in one call (batch 4), and its other matrix: the same numbers
    refs, hyps = [r for r, _ in PAIRS], [h for _, h in PAIRS]
    monkeypatch.setattr(package, "batch_size", 4)
    for name in ("long", "short"):
        monkeypatch.setattr(package, "affinity_matrix", {(k.split("_")[0].upper(), k.split("_")[1].upper()): v
                                                          for k, v in rs.AFFINITY[name].items()})
        ours = rs.ratescore(refs, hyps, model=folder, device="cpu", affinity=name).per_sample["ratescore"]
        assert ours == pytest.approx(package.compute_score(hyps, refs), abs=1e-6), name
    long = rs.ratescore(refs, hyps, model=folder, device="cpu").per_sample["ratescore"]
    assert long != pytest.approx(ours, abs=1e-3)  # the matrices differ, so must the scores


@needs_splitter
def test_reports_without_a_sentence(folder, package):
    # The package fails on them (no sentence to tag) or, inside a batch, drops them and misaligns every later
    # pair; radrl gives the pair the package's "no entity" value, 0.5, and keeps the rest aligned.
    ref = PAIRS[0][0]
    for text in NO_SENTENCE:
        with pytest.raises(IndexError):
            package.compute_score([text], [ref])
    hyps = [PAIRS[1][1], "", PAIRS[2][1]]
    refs = [PAIRS[1][0], PAIRS[0][0], PAIRS[2][0]]
    ours = rs.ratescore(refs, hyps, model=folder, device="cpu").per_sample["ratescore"]
    assert ours[1] == 0.5
    assert [ours[0], ours[2]] == pytest.approx([package.compute_score([hyps[i]], [refs[i]])[0] for i in (0, 2)],
                                               abs=1e-6)
    assert len(package.compute_score(hyps, refs)) == 2  # the package's list is one short
    # and both sides empty, or the hypothesis empty: 0.5 as well
    assert rs.ratescore(["", ref], ["", "ok"], model=folder, device="cpu").per_sample["ratescore"] == [0.5, 0.5]


@needs_splitter
def test_batching_and_repeated_references_do_not_change_values(folder):
    # a GRPO group: one reference, several answers; tagged once, and any batch size gives the same numbers
    refs = [PAIRS[1][0]] * 4 + [PAIRS[0][0]]
    hyps = [PAIRS[1][1], PAIRS[2][1], PAIRS[1][1], PAIRS[4][0], PAIRS[0][1]]
    one = rs.ratescore(refs, hyps, model=folder, device="cpu", batch_size=1).per_sample["ratescore"]
    many = rs.ratescore(refs, hyps, model=folder, device="cpu", batch_size=16).per_sample["ratescore"]
    assert one == pytest.approx(many, abs=1e-6) and one[0] == one[2]
    alone = [rs.ratescore([r], [h], model=folder, device="cpu").per_sample["ratescore"][0] for r, h in zip(refs, hyps)]
    assert one == pytest.approx(alone, abs=1e-6)


# (case, tokens, tags, expected spans (first piece, last piece, type))
SPANS = [
    # B then I then O: one span over both pieces
    ("b_i_o", ["[CLS]", "▁left", "▁effusion", "▁.", "[SEP]"], ["O", "B-DISEASE", "I-DISEASE", "O", "O"],
     [(1, 2, "DISEASE")]),
    # B then O: a one-piece span
    ("b_o", ["[CLS]", "▁edema", "▁.", "[SEP]"], ["O", "B-ABNORMALITY", "O", "O"], [(1, 1, "ABNORMALITY")]),
    # B then B: the first closes at once, the second is a span of its own
    ("b_b", ["[CLS]", "▁left", "▁lung", "[SEP]"], ["O", "B-ANATOMY", "B-ANATOMY", "O"],
     [(1, 1, "ANATOMY"), (2, 2, "ANATOMY")]),
    # I then B: the open span closes, and a new one opens at the I- piece (the package's rule)
    ("i_b", ["[CLS]", "▁no", "▁effusion", "▁rib", "▁fracture", "[SEP]"],
     ["O", "B-NON-DISEASE", "I-NON-DISEASE", "B-DISEASE", "I-DISEASE", "O"],
     [(1, 2, "NON-DISEASE"), (3, 4, "DISEASE")]),
    # a span still open at the end runs to the piece before [SEP]
    ("open_at_end", ["[CLS]", "▁small", "▁effusion", "[SEP]"], ["O", "B-DISEASE", "I-DISEASE", "I-DISEASE"],
     [(1, 2, "DISEASE")]),
    # an I- without an opening B-: nothing
    ("lone_i", ["[CLS]", "▁effusion", "▁.", "[SEP]"], ["O", "I-DISEASE", "O", "O"], []),
    # tags on [CLS] and [SEP] are never spans
    ("special", ["[CLS]", "▁ok", "[SEP]"], ["B-DISEASE", "O", "B-DISEASE"], []),
]


@pytest.mark.parametrize("case,tokens,tags,expected", SPANS, ids=[c[0] for c in SPANS])
def test_span_rules(case, tokens, tags, expected):
    assert rs._spans(tokens, tags) == expected


def test_span_rules_equal_the_package_on_random_tags():
    pytest.importorskip("medspacy")
    from RaTEScore.utils import post_process

    class Joiner:  # the tokenizer's only use there: join pieces
        @staticmethod
        def convert_tokens_to_string(tokens):
            return "|".join(tokens)

    rng = random.Random(0)
    tags = ["O", *(f"{p}-{t}" for t in ("DISEASE", "ANATOMY") for p in "BI")]
    for _ in range(2000):
        n = rng.randint(0, 8)
        tokens = ["[CLS]", *(f"w{i}" for i in range(n)), "[SEP]"]
        predicted = [rng.choice(tags) for _ in range(n + 2)]
        ours = [("|".join(tokens[s:e + 1]), k) for s, e, k in rs._spans(tokens, predicted)]
        assert ours == post_process(tokens, predicted, Joiner), (tokens, predicted)


def test_matching_by_hand():
    import torch

    w, _ = rs._affinity("long")  # type pair -> affinity, and ("NEG", "WEIGHT") -> neg_weight
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    # the same entities, the same types: every best match has cosine 1
    assert rs._match(a, a, ["DISEASE", "ANATOMY"], ["DISEASE", "ANATOMY"], w) == pytest.approx(1.0)
    # the best match of a finding is its negation: cosine 1, scaled by neg_weight
    b = torch.tensor([[3.0, 0.0]])
    assert rs._match(b, a, ["NON-DISEASE"], ["DISEASE", "ANATOMY"], w) == pytest.approx(w[("NEG", "WEIGHT")])
    # two entities matched with cosines 1 and 0.6, weighted by their types' affinities
    c = torch.tensor([[1.0, 0.0], [0.6, 0.8]])
    expected = ((1.0 * w[("DISEASE", "DISEASE")] + 0.6 * w[("ANATOMY", "DISEASE")])
                / (w[("DISEASE", "DISEASE")] + w[("ANATOMY", "DISEASE")]))
    assert rs._match(c, a[:1], ["DISEASE", "ANATOMY"], ["DISEASE"], w) == pytest.approx(expected)


def test_affinity_choices(tmp_path):
    weights, described = rs._affinity("short")
    assert weights[("NEG", "WEIGHT")] == rs.AFFINITY["short"]["neg_weight"] and described.startswith("short")
    path = tmp_path / "matrix.json"
    path.write_text(__import__("json").dumps({**rs.AFFINITY["long"], "neg_weight": 0.5}))
    assert rs._affinity(str(path))[0][("NEG", "WEIGHT")] == 0.5
    with pytest.raises(ValueError, match="not 'long', 'short' or a readable JSON file"):
        rs._affinity("medium")
    path.write_text('{"disease_disease": 1.0}')
    with pytest.raises(ValueError, match="lacks"):
        rs._affinity(str(path))


def test_missing_weights_say_what_to_download(monkeypatch, tmp_path, tiny):
    monkeypatch.delenv(rs.ENV_VAR, raising=False)
    with pytest.raises(rs.RaTEScoreModelMissing, match="hf download Angelakeke/RaTE-NER-Deberta"):
        check_metrics(["ratescore"])
    (tmp_path / rs.NER_FOLDER).mkdir()
    (tmp_path / rs.NER_FOLDER / "config.json").write_text("{}")
    monkeypatch.setenv(rs.ENV_VAR, str(tmp_path))
    with pytest.raises(rs.RaTEScoreModelMissing, match=r"lacks RaTE-NER-Deberta/tokenizer_config.json, "
                                                        r"RaTE-NER-Deberta/model.safetensors, BioLORD-2023-C/config"):
        check_metrics(["ratescore"])


def test_a_model_with_other_labels_is_refused(tmp_path, tiny):
    import json

    tiny.write_tiny_ner(tmp_path / rs.NER_FOLDER)
    tiny.write_tiny_embedder(tmp_path / rs.EMBEDDER_FOLDER)
    config = json.loads((tmp_path / rs.NER_FOLDER / "config.json").read_text())
    config["id2label"] = {"0": "O", "1": "B-PER", "2": "I-PER"}
    (tmp_path / rs.NER_FOLDER / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="are not B-/I-/O tags of RaTEScore's types"):
        rs.load_ratescore(tmp_path, device="cpu")


@needs_splitter
def test_metric_entry_reward_and_specs(folder, monkeypatch):
    from radrl.rewards import REWARDS

    monkeypatch.setenv(rs.ENV_VAR, str(folder))
    check_metrics(["ratescore"])
    refs, hyps = [PAIRS[1][0], PAIRS[0][0]], [PAIRS[1][1], PAIRS[0][1]]
    result = METRICS["ratescore"](refs, hyps)
    assert set(result.per_sample) == {"ratescore"} and metric_spec("ratescore").name == "RaTEScore"
    assert set(result.aggregate) <= set(all_specs())  # every key it returns is declared
    assert result.aggregate["ratescore"] == pytest.approx(math.fsum(result.per_sample["ratescore"]) / 2)
    assert "sha256:" in result.versions["ratescore_model"] and "PyRuSH 1.0.13" in result.versions["sentence_splitter"]
    reward = pickle.loads(pickle.dumps(REWARDS["report_ratescore"]))
    out = reward(["<think>x</think>" + hyps[0], "ok", hyps[1], hyps[0]], task=["report", "report", "report", "vqa"],
                 solution=[refs[0], refs[0], refs[1], refs[0]], thinking=[True, False, False, False])
    # the metric's value where scored; the floor (0) for a too-short answer; None off its task
    assert out == [pytest.approx(result.per_sample["ratescore"][0]), 0.0,
                   pytest.approx(result.per_sample["ratescore"][1]), None]
