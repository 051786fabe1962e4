"""RadGraph F1 offline: a tiny random RadGraph-XL archive in the real layout, checked against the radgraph package."""

import json
import shutil
import unicodedata
from pathlib import Path

import pytest
import torch

from radrl.metrics import METRICS
from radrl.metrics.radgraph import (
    ENV_VAR,
    KEYS,
    RadGraphModelMissing,
    f1_scores,
    load_radgraph,
    radgraph,
    tokenize_report,
)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def tiny_radgraph(tmp_path_factory, tiny_clinical) -> Path:
    return tiny_clinical.write_tiny_radgraph(tmp_path_factory.mktemp("rg") / "radgraph-xl", seed=0)


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("RADRL_RADGRAPH_ENCODER", raising=False)


REFERENCES = [
    # RadGraph-XL archive (the paper's model)
    ("radgraph-xl", "radgraph_reference.json"),
    # the original RadGraph archive (CXR-Report-Metric's RadCliQ): same network, reports split by another rule
    ("radgraph", "radgraph_reference_radgraph.json"),
]


@pytest.mark.slow
@pytest.mark.parametrize("dataset,fixture", REFERENCES, ids=[r[0] for r in REFERENCES])
def test_matches_the_radgraph_package(tmp_path, dataset, fixture, tiny_clinical):
    # the radgraph package (0.1.18 code, RadEval's transformers-5 copy) run on the same tiny checkpoint
    # (make_radgraph_reference.py): every entity, label, span and relation, and the four scores, must be
    # identical; the last pair is longer than the encoder's 64-piece window (AllenNLP's folding)
    ref = json.loads((FIXTURES / fixture).read_text())
    folder = tiny_clinical.write_tiny_radgraph(tmp_path / dataset, seed=0, dataset=dataset)
    model = load_radgraph(folder, device="cpu")
    texts = ref["refs"] + ref["hyps"]
    assert [model.annotate(t) for t in texts] == ref["annotations"]
    # batched (padded windows through the encoder together): the same annotations
    assert model.annotate_many(texts, batch_size=5) == ref["annotations"]
    assert sum(len(a["entities"]) for a in ref["annotations"]) > 100  # the random model does find entities
    r = radgraph(ref["refs"], ref["hyps"], model=folder, device="cpu")
    for key in KEYS:
        assert r.per_sample[key] == pytest.approx(ref[key], abs=1e-12), key
        assert r.aggregate[key] == pytest.approx(sum(ref[key]) / len(ref[key]), abs=1e-12)


TOKENIZE_CASES = [
    # RadGraph-XL: wordpunct tokens, a real newline becomes a space
    ("xl_newline", "radgraph-xl", "Mild edema.\nNo effusion", ["Mild", "edema", ".", "No", "effusion"]),
    # RadGraph-XL: an escaped "\\n" too; "%." is split into "%" and "."
    ("xl_escaped_percent", "radgraph-xl", "ETT 5cm above carina,\\nstable 10%.",
     ["ETT", "5cm", "above", "carina", ",", "stable", "10", "%", "."]),
    # original RadGraph: spaces around / , : . ! ? ( ) only ("-" stays inside words: ",-," in its class is a range)
    ("original_split", "radgraph", "a/b, c-d (e).", ["a", "/", "b", ",", "c-d", "(", "e", ")", "."]),
    # nothing to tokenise
    ("empty", "radgraph-xl", "", []),
    # RadGraph-XL, as nltk >= 3.10.3 splits through the `regex` engine (Python's `re` gave the second form):
    # a superscript is not a word character: "cm", "²" (`re`: "cm²" whole)
    ("xl_superscript", "radgraph-xl", "Nodule 2 cm² wide.", ["Nodule", "2", "cm", "²", "wide", "."]),
    # decomposed accents (NFD) stay inside their word (`re`: "opacite", "\u0301.")
    ("xl_nfd", "radgraph-xl", unicodedata.normalize("NFD", "opacité."), [unicodedata.normalize("NFD", "opacité"), "."]),
    # a dotted capital written as I + combining dot is one word (`re`: "I", "\u0307")
    ("xl_dotted_capital", "radgraph-xl", unicodedata.normalize("NFD", "İnfiltrate"),
     [unicodedata.normalize("NFD", "İnfiltrate")]),
    # punctuation only: runs of symbols are tokens
    ("xl_punctuation", "radgraph-xl", "... ,,, !!", ["...", ",,,", "!!"]),
]


@pytest.mark.parametrize("case,model_type,text,words", TOKENIZE_CASES, ids=[c[0] for c in TOKENIZE_CASES])
def test_tokenize_like_radgraph(case, model_type, text, words):
    assert tokenize_report(text, model_type) == words


# radgraph 0.1.18's RadGraph-XL preparation (utils.radgraph_xl_preprocess_report), as data: escapes replaced
# first, then space runs collapsed, nltk's wordpunct_tokenize, and these splits of the joined tokens
_XL_ESCAPES = (("\\n", "  "), ("\\f", "  "), ("\\u2122", "      "), ("\n", " "), ('\\"', "``"))
_XL_SPLITS = ((").", ") ."), ("%.", "% ."), (".'", ". '"), ("%,", "% ,"), ("%)", "% )"))


def _radgraph_xl_words(text):
    """The words radgraph 0.1.18 gives RadGraph-XL, with the installed nltk's ``wordpunct_tokenize``: the reference."""
    import re

    from nltk.tokenize import wordpunct_tokenize

    for old, new in _XL_ESCAPES:
        text = text.replace(old, new)
    joined = " ".join(wordpunct_tokenize(re.sub(r"\s+", " ", text)))
    for old, new in _XL_SPLITS:
        joined = joined.replace(old, new)
    return joined.split()


ADVERSARIAL = [
    "", "   ", "?", "... ,,, !! -- ()", "No acute disease.", "Nodule 2 cm² in the RUL; x³ ½ ① Ⅳ.",
    unicodedata.normalize("NFD", "Épanchement pleural, opacité à droite."),
    unicodedata.normalize("NFC", "Épanchement pleural, opacité à droite."),
    unicodedata.normalize("NFD", "İnfiltrate at the İ-line"), "İnfiltrate at the İ-line",
    "ETT 5cm above carina,\\nstable 10%.\nSize (3 cm). 'q'.", 'He said \\"no\\" \\f ok\\u2122',
    "a\u200db\u00a0c\u2028d\u3000e \u0301 \ufe0f x_y", "Größe – 12,5 mm² (vs. 10 mm²)%, 40%)",  # noqa: RUF001
    " ".join(["The heart size is normal and there is no focal consolidation."] * 200),
]


def test_xl_split_equals_radgraph_with_installed_nltk():
    # radgraph 0.1.18 tokenises RadGraph-XL input with nltk's wordpunct_tokenize; nltk >= 3.10.3 runs it in
    # the `regex` engine, and the split must equal what that gives on text where `re` and `regex` differ
    nltk = pytest.importorskip("nltk")
    if tuple(int(p) for p in nltk.__version__.split(".")[:3]) < (3, 10, 3):
        pytest.skip(f"nltk {nltk.__version__} still tokenises with `re`; radgraph as installed today uses >= 3.10.3")
    for text in ADVERSARIAL:
        assert tokenize_report(text) == _radgraph_xl_words(text), repr(text)


def ann(*entities):
    """Annotation from (tokens, label, [(relation, target id)]) tuples, ids from 1."""
    return {"entities": {str(i + 1): {"tokens": t, "label": lab, "relations": [list(r) for r in rels]}
                         for i, (t, lab, rels) in enumerate(entities)}}


OP, AP = "Observation::definitely present", "Anatomy::definitely present"
F1_CASES = [
    # identical, no relations: every level 1; er = (1 + F1 of two empty relation sets = 0) / 2
    ("identical_no_rel", ann(("effusion", OP, [])), ann(("effusion", OP, [])), (1.0, 1.0, 1.0, 0.5)),
    # identical with a relation: all 1
    ("identical_rel", ann(("effusion", OP, [("located_at", "2")]), ("left", AP, [])),
     ann(("effusion", OP, [("located_at", "2")]), ("left", AP, [])), (1.0, 1.0, 1.0, 1.0)),
    # hypothesis has no entity: 0 at every level (radgraph's rule), er 0
    ("empty_hyp", ann(("effusion", OP, [])), ann(), (0.0, 0.0, 0.0, 0.0)),
    # same entities, relation missing in hyp: simple 1; partial {(eff,OP,True),(left,AP)} vs {(eff,OP),(left,AP)}
    # -> 1/2 each way = 0.5; complete {(eff,OP,located_at,left),(left,AP)} vs {(eff,OP),(left,AP)} = 0.5;
    # er = (1 + 0) / 2
    ("missing_relation", ann(("effusion", OP, [("located_at", "2")]), ("left", AP, [])),
     ann(("effusion", OP, []), ("left", AP, [])), (1.0, 0.5, 0.5, 0.5)),
    # case differs: simple/partial compare tokens as written (0), complete lower-cases relation tuples (1);
    # er compares as written: entity F1 0, relation F1 0
    ("case_only_complete", ann(("Effusion", OP, [("located_at", "2")]), ("Left", AP, [])),
     ann(("effusion", OP, [("located_at", "2")]), ("left", AP, [])), (0.0, 0.0, 0.5, 0.0)),
    # half the entities right, label differs on the other: simple 1/2 each way = 0.5
    ("wrong_label", ann(("effusion", OP, []), ("edema", OP, [])),
     ann(("effusion", OP, []), ("edema", "Observation::uncertain", [])), (0.5, 0.5, 0.5, 0.25)),
]


@pytest.mark.parametrize("case,ref,hyp,expected", F1_CASES, ids=[c[0] for c in F1_CASES])
def test_f1_levels_table(case, ref, hyp, expected):
    assert f1_scores(ref, hyp) == pytest.approx(expected)


def test_blank_text_scores_zero_and_identical_text_one_on_simple(tiny_radgraph):
    # a blank side scores 0 without running the model (radgraph: empty report -> 0);
    # a text against itself finds the same entities, so simple = partial = complete = 1
    text = "mild left lower lobe opacity, likely atelectasis. no pleural effusion."
    r = radgraph([text, "", text], [text, text, "  "], model=tiny_radgraph, device="cpu")
    assert [r.per_sample[k][0] for k in KEYS[:3]] == [1.0, 1.0, 1.0]
    assert all(r.per_sample[k][1:] == [0.0, 0.0] for k in KEYS)
    assert set(r.per_sample) == set(r.aggregate) == set(KEYS)
    assert str(tiny_radgraph) in r.versions["radgraph_model"] and "weights.th sha256:" in r.versions["radgraph_model"]


def test_metrics_entry_reads_env(tiny_radgraph, monkeypatch):
    # METRICS["radgraph"](refs, hyps) takes the folder from RADRL_RADGRAPH_MODEL
    monkeypatch.setenv(ENV_VAR, str(tiny_radgraph))
    r = METRICS["radgraph"](["no effusion."], ["no effusion."])
    assert r.per_sample["radgraph_simple"] == [1.0]


def test_missing_model_says_what_to_download(no_env, tmp_path):
    # no folder: the message names the archive, its hub repo, the encoder files and the variable
    with pytest.raises(RadGraphModelMissing) as e:
        radgraph(["a"], ["a"])
    msg = str(e.value)
    assert "radgraph-xl.tar.gz" in msg and "StanfordAIMI/RRG_scorers" in msg and ENV_VAR in msg and "vocab.txt" in msg
    with pytest.raises(RadGraphModelMissing, match="does not exist"):
        radgraph(["a"], ["a"], model=tmp_path / "nowhere")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(RadGraphModelMissing, match=r"lacks weights.th, vocabulary"):
        radgraph(["a"], ["a"], model=tmp_path)


def test_missing_encoder_files(no_env, tiny_radgraph, tmp_path):
    # the archive without encoder/: the message names the encoder from config.json
    folder = tmp_path / "radgraph-xl"
    shutil.copytree(tiny_radgraph, folder)
    shutil.rmtree(folder / "encoder")
    with pytest.raises(RadGraphModelMissing, match=r"BiomedNLP-BiomedBERT.*RADRL_RADGRAPH_ENCODER"):
        load_radgraph(folder, device="cpu")


def test_other_radgraph_family_archives_are_refused(no_env, tiny_radgraph, tmp_path):
    # an EchoGraph vocabulary (another preprocessing, another model): refused by name rather than mis-scored
    folder = tmp_path / "echograph"
    shutil.copytree(tiny_radgraph, folder)
    for f in (folder / "vocabulary").glob("radgraph-xl__*"):
        f.rename(f.with_name(f.name.replace("radgraph-xl", "echograph")))
    with pytest.raises(ValueError, match="'echograph'"):
        load_radgraph(folder, device="cpu")


def test_mismatched_archive_fails_naming_the_tensor(no_env, tiny_radgraph, tmp_path):
    # a vocabulary with one more NER label than weights.th was trained with: the NER head no longer fits
    folder = tmp_path / "radgraph-xl"
    shutil.copytree(tiny_radgraph, folder)
    labels = folder / "vocabulary" / "radgraph-xl__ner_labels.txt"
    labels.write_text(labels.read_text() + "Extra::label\n")
    with pytest.raises(ValueError, match=r"_ner._ner_scorers.radgraph-xl__ner_labels.1._module.weight"):
        load_radgraph(folder, device="cpu")
    # a state dict with a foreign tensor is not taken for RadGraph
    folder2 = tmp_path / "other"
    shutil.copytree(tiny_radgraph, folder2)
    state = torch.load(folder2 / "weights.th", weights_only=True)
    state["classifier.weight"] = torch.zeros(2, 2)
    torch.save(state, folder2 / "weights.th")
    with pytest.raises(ValueError, match=r"classifier.weight"):
        load_radgraph(folder2, device="cpu")


def test_misaligned_inputs(tiny_radgraph):
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        radgraph(["a", "b"], ["a"], model=tiny_radgraph)
