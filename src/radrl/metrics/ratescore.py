"""RaTEScore: entity-aware report similarity (Zhao et al., EMNLP 2024), from model folders on local disk.

Why: n-gram metrics miss synonyms ("effusion" / "fluid") and barely notice a negation; RaTEScore
extracts the medical entities of both reports, embeds them, and scores how well each entity of one
report is matched by the other's, weighted by entity type and penalised when a match flips between
a finding and its negation. It is the entity-level metric 2025-26 report-generation papers report.

The ``ratescore`` package (0.6.0) loads its two models from the hub and imports medspaCy (which
pins spaCy < 3.8 and with it NumPy 1); this module computes the same numbers from local folders,
with transformers, and with the same sentence splitter (PyRuSH's rules engine on spaCy's blank
English tokenizer, medspaCy's English rules shipped beside this file), without medspaCy:

1. each report is cut into sentences (PyRuSH; sentences that are blank or shorter than 3
   characters are dropped);
2. a DeBERTa-v3 token classifier (``RaTE-NER-Deberta``) tags each sentence's pieces with
   B-/I-/O tags of five types: ABNORMALITY, NON-ABNORMALITY, DISEASE, NON-DISEASE, ANATOMY; the
   package's span rules turn tags into (entity text, type) pairs;
3. an MPNet encoder (``BioLORD-2023-C``) embeds each entity ([CLS] vector, at most 30 pieces);
4. for each entity of one report its most similar entity of the other (cosine) is found; the
   similarity is weighted by the affinity of the two types (``AFFINITY``; "long" by default, the
   package's default) and multiplied by ``neg_weight`` when the pair is a finding and a negated one
   (DISEASE vs NON-DISEASE, ABNORMALITY vs NON-ABNORMALITY, crossed too); the weighted mean, taken
   both ways, gives two scores whose harmonic mean is RaTEScore (0 when both are 0).

A pair where either report has no entity scores 0.5, as in the package. Where the package goes
wrong, radrl keeps the pair aligned: a report with no sentence at all (empty, blank, or only 1-2
characters) gives the package no entry, so its list comes back shorter and every later pair is
scored against the wrong report; here such a report has no entity, so its pair scores 0.5.

Files (``model=`` or ``$RADRL_RATESCORE_MODEL``; the folder names are the hub names)::

    <folder>/RaTE-NER-Deberta/   config.json model.safetensors tokenizer.json tokenizer_config.json ...
    <folder>/BioLORD-2023-C/     config.json model.safetensors tokenizer.json tokenizer_config.json vocab.txt ...

The affinity matrices and the span rules are restated from the package (MAGIC-AI4Med/RaTEScore, MIT
licence); the sentence rules file is medspaCy's (Apache 2.0, credited in NOTICE).

Checked offline against the package on tiny random checkpoints in these layouts
(``tests/metrics/test_ratescore.py``); not checked here with the real weights (no hub access).

>>> r = ratescore(["No pleural effusion."], ["Small left effusion."], model="/models/ratescore")  # doctest: +SKIP
>>> r.per_sample["ratescore"]  # doctest: +SKIP
[0.71]
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from radrl.hub import HF_DOWNLOAD
from radrl.metrics.base import (
    MetricResult,
    MetricSpec,
    check_aligned,
    file_fingerprint,
    metric_device,
    model_folder,
    package_version,
    progress,
)

__all__ = ["AFFINITY", "ENV_VAR", "RaTEScoreModel", "RaTEScoreModelMissing", "check_weights", "entities",
           "load_ratescore", "ratescore", "split_sentences"]

ENV_VAR = "RADRL_RATESCORE_MODEL"
NER_FOLDER, EMBEDDER_FOLDER = "RaTE-NER-Deberta", "BioLORD-2023-C"
_HUB = {NER_FOLDER: "Angelakeke/RaTE-NER-Deberta", EMBEDDER_FOLDER: "FremyCompany/BioLORD-2023-C"}
_MODEL_FILES = ("config.json", "tokenizer_config.json")
RULES = Path(__file__).with_name("ratescore_rush_rules.tsv")  # medspaCy 1.3.1's resources/en/rush_rules.tsv
SPECS = (
    MetricSpec("ratescore", "RaTEScore", needs_weights=True,
               description="entity-aware report similarity: harmonic mean of type-weighted best-match cosines of "
                           "the two reports' entities (RaTE-NER-Deberta + BioLORD-2023-C), 0.5 when a side has no "
                           "entity; mean"),
)
# The package's two type-affinity matrices ("long" reports, its default; "short"), first type = the entity
# being matched, second = the type of its best match; neg_weight scales a finding matched with its negation.
AFFINITY = {
    "long": {"abnormality_abnormality": 0.4276119164393705, "abnormality_anatomy": 0.6240929990607657,
             "abnormality_disease": 0.0034478181112993847, "abnormality_non-abnormality": 0.5431049700217344,
             "abnormality_non-disease": 0.27005425386213877, "anatomy_abnormality": 0.7487824274337533,
             "anatomy_anatomy": 0.2856134859160784, "anatomy_disease": 0.4592143222158069,
             "anatomy_non-abnormality": 0.02097055139911715, "anatomy_non-disease": 0.00013736314126696204,
             "disease_abnormality": 0.8396510075734789, "disease_anatomy": 0.9950209388542061,
             "disease_disease": 0.8460555030578727, "disease_non-abnormality": 0.9820689020512646,
             "disease_non-disease": 0.3789136708096537, "non-abnormality_abnormality": 0.16546764653692908,
             "non-abnormality_anatomy": 0.018670610691852826, "non-abnormality_disease": 0.719397354576018,
             "non-abnormality_non-abnormality": 0.0009357166071730684,
             "non-abnormality_non-disease": 0.0927333564267591, "non-disease_abnormality": 0.7759420231214385,
             "non-disease_anatomy": 0.1839139293714062, "non-disease_disease": 0.10073046076318157,
             "non-disease_non-abnormality": 0.03860183811876373, "non-disease_non-disease": 0.34065681486566446,
             "neg_weight": 0.8716553966489615},
    "short": {"abnormality_abnormality": 0.4070293318365468, "abnormality_anatomy": 0.6952639610605605,
              "abnormality_disease": 0.28342529466226446, "abnormality_non-abnormality": 0.9479148658006686,
              "abnormality_non-disease": 0.23875064111146294, "anatomy_abnormality": 0.5829759950441763,
              "anatomy_anatomy": 0.7709590751917746, "anatomy_disease": 0.0006059634829551632,
              "anatomy_non-abnormality": 0.794672584951181, "anatomy_non-disease": 0.27982942400798977,
              "disease_abnormality": 0.8840397619834857, "disease_anatomy": 0.9637659445696822,
              "disease_disease": 0.19018958438059513, "disease_non-abnormality": 0.6962283914800402,
              "disease_non-disease": 0.943727057946997, "non-abnormality_abnormality": 0.1712744286898638,
              "non-abnormality_anatomy": 0.4485149671497294, "non-abnormality_disease": 0.00045065329822896076,
              "non-abnormality_non-abnormality": 0.0007887930317199857,
              "non-abnormality_non-disease": 0.8555432840895761, "non-disease_abnormality": 0.9555801066212176,
              "non-disease_anatomy": 0.13122106162635216, "non-disease_disease": 0.6072996585919443,
              "non-disease_non-abnormality": 0.05650711141169969, "non-disease_non-disease": 0.3214769399791204,
              "neg_weight": 0.3611577852354489},
}
_NEGATION_PAIRS = frozenset({("NON-DISEASE", "DISEASE"), ("NON-ABNORMALITY", "ABNORMALITY"), ("DISEASE", "NON-DISEASE"),
                             ("ABNORMALITY", "NON-ABNORMALITY"), ("NON-DISEASE", "ABNORMALITY"),
                             ("NON-ABNORMALITY", "DISEASE"), ("DISEASE", "NON-ABNORMALITY"),
                             ("ABNORMALITY", "NON-DISEASE")})
_INSTALL = ("pip install 'spacy>=3.8' 'PyFastNER>=1.0.10' 'quicksectx>=0.3.5' loguru && pip install --no-deps "
            "PyRuSH==1.0.13 (--no-deps: PyRuSH's metadata pins spaCy < 3.8 on Python < 3.12, which would pull NumPy 1)")
_MODELS: dict[tuple, RaTEScoreModel] = {}


class RaTEScoreModelMissing(FileNotFoundError):
    """The RaTEScore folder is not given or incomplete; the message says what to fetch and where."""


def check_weights(model: str | os.PathLike | None = None) -> None:
    """The model folders and the sentence splitter's packages are there (``radrl.metrics.check_metrics``), checked
    without loading anything; ``RaTEScoreModelMissing`` with the download steps, or ``ImportError`` with the
    install line, otherwise."""
    _model_folder(model)
    _check_splitter()


def _missing_message(why: str) -> str:
    return (f"{why}. RaTEScore needs its NER model and its entity encoder on local disk; nothing is downloaded at "
            f"run time. On a machine with internet: `{HF_DOWNLOAD} Angelakeke/RaTE-NER-Deberta "
            f"--local-dir /models/ratescore/{NER_FOLDER}` and `{HF_DOWNLOAD} FremyCompany/BioLORD-2023-C "
            f"--local-dir /models/ratescore/{EMBEDDER_FOLDER}`; then pass model='/models/ratescore' or set "
            f"{ENV_VAR}=/models/ratescore (see docs/metrics.md).")


def _model_folder(model: str | os.PathLike | None) -> Path:
    def lacking(folder: Path) -> list[str]:
        out = []
        for sub in (NER_FOLDER, EMBEDDER_FOLDER):
            out += [f"{sub}/{f}" for f in _MODEL_FILES if not (folder / sub / f).is_file()]
            if not any((folder / sub / w).is_file() for w in ("model.safetensors", "pytorch_model.bin")):
                out.append(f"{sub}/model.safetensors")
        return out

    return model_folder(model, ENV_VAR, "RaTEScore", lacking, lambda why: RaTEScoreModelMissing(_missing_message(why)))


def _check_splitter() -> None:
    absent = [m for m in ("spacy", "PyRuSH", "PyFastNER") if importlib.util.find_spec(m) is None]
    if absent:
        raise ImportError(f"RaTEScore splits reports into sentences with PyRuSH on spaCy, as the ratescore package "
                          f"does; {', '.join(absent)} not installed: {_INSTALL}")


@lru_cache(maxsize=1)
def _sentencizer():
    """spaCy's blank English pipeline with PyRuSH's sentencizer and medspaCy's English rules: what
    ``medspacy.load(medspacy_enable=["medspacy_pyrush", ...])`` builds for the package, minus medspaCy."""
    _check_splitter()
    import spacy
    from loguru import logger
    from PyRuSH import PyRuSHSentencizer  # noqa: F401  (registers the spaCy factory "medspacy_pyrush")

    logger.disable("PyRuSH")  # it logs every token at DEBUG level to stderr through loguru's default sink
    nlp = spacy.blank("en")
    nlp.add_pipe("medspacy_pyrush", config={"rules_path": str(RULES)})
    return nlp


def split_sentences(text: str) -> list[str]:
    """The package's ``sentence_split`` of one report: PyRuSH sentences, stripped, without those that are blank
    or shorter than 3 characters.

    >>> split_sentences("No acute disease.  Heart size normal.\\n\\nok")  # doctest: +SKIP
    ['No acute disease.', 'Heart size normal.']
    """
    out = []
    for sent in _sentencizer()(text).sents:
        s = str(sent).strip()
        if s.split() and len(s) >= 3:
            out.append(s)
    return out


def _spans(tokens: Sequence[str], tags: Sequence[str]) -> list[tuple[int, int, str]]:
    """(first, last, type) piece spans from B-/I-/O tags: the package's ``post_process`` rules, quirks included
    (an I- tag before a B- tag opens a span at the I- piece; a span still open at the end runs to the piece
    before [SEP]). ``tags[i + 1]`` is the tag after piece i ([SEP]'s own tag after the last word piece)."""
    spans: list[tuple[int, int, str]] = []
    start = end = kind = None
    for i, (token, tag) in enumerate(zip(tokens, tags)):
        if token in ("[CLS]", "[SEP]") or tag == "O" or i >= len(tags) - 1:
            continue
        after = tags[i + 1]
        if tag.startswith("B-"):
            if after.startswith("I-"):
                start, kind = i, tag[2:]
            elif after.startswith("B-"):
                spans.append((i, i, tag[2:]))
                start = end = i
                kind = tag[2:]
            elif after.startswith("O"):
                spans.append((i, i, tag[2:]))
                start = end = kind = None
        elif tag.startswith("I-"):
            if after.startswith("B-"):
                end = i
                if start is not None:
                    spans.append((start, end, kind))
                start, kind = i, tag[2:]
            elif after.startswith("O"):
                end = i
                if start is not None:
                    spans.append((start, end, kind))
                start = end = kind = None
    if start is not None and end is None:
        spans.append((start, len(tokens) - 2, kind))
    return spans


@dataclass
class RaTEScoreModel:
    """The two loaded models and their tokenizers."""

    folder: Path
    ner: object  # transformers DebertaV2ForTokenClassification
    ner_tokenizer: object
    embedder: object  # transformers MPNetModel
    embed_tokenizer: object
    labels: dict  # class index -> tag ("B-DISEASE", "O", ...)
    device: str
    fingerprints: dict  # sub-folder -> fingerprint of its weights file

    def entities(self, texts: Sequence[str], batch_size: int = 16) -> list[list[tuple[str, str]]]:
        """(entity text, type) pairs of each text, in reading order (the package's ``run_ner``). Sentences are
        tagged ``batch_size`` at a time, grouped by length."""
        import torch

        sentences = [(t, s) for t, text in enumerate(texts) for s in split_sentences(text)]
        order = sorted(range(len(sentences)), key=lambda i: len(sentences[i][1]))
        found: list[list[tuple[str, str]]] = [[] for _ in sentences]
        tok = self.ner_tokenizer
        for b in progress(range(0, len(order), batch_size), "RaTEScore"):
            chunk = order[b:b + batch_size]
            inputs = tok([sentences[i][1] for i in chunk], max_length=512, padding=True, truncation=True,
                         return_tensors="pt")
            with torch.no_grad():
                logits = self.ner(**inputs.to(self.device)).logits  # (batch, pieces, tags)
            classes = logits.argmax(-1).cpu().tolist()
            ids, lengths = inputs["input_ids"].cpu(), inputs["attention_mask"].sum(1).tolist()
            for row, i in enumerate(chunk):
                real = int((ids[row] != tok.pad_token_id).sum())  # as the package counts its pieces
                tokens = tok.convert_ids_to_tokens(ids[row][:real].tolist())
                tags = [self.labels[c] for c in classes[row][:lengths[row]]]  # as tagged one sentence at a time
                found[i] = [(tok.convert_tokens_to_string(tokens[s:e + 1]), kind)
                            for s, e, kind in _spans(tokens, tags)]
        out: list[list[tuple[str, str]]] = [[] for _ in texts]
        for (t, _), pairs in zip(sentences, found):
            out[t].extend(pairs)
        return out

    def embed(self, names: Sequence[str]):
        """[CLS] vectors of entity texts, one batch (at most 30 pieces each): (n, hidden) float32 on the CPU."""
        import torch

        with torch.no_grad():
            encoded = self.embed_tokenizer(list(names), truncation=True, padding=True, return_tensors="pt",
                                           max_length=30).to(self.device)
            return self.embedder(**encoded).last_hidden_state[:, 0, :].cpu()


def load_ratescore(model: str | os.PathLike | None = None, device: str | None = None) -> RaTEScoreModel:
    """Load both models from a local folder (``model`` or ``$RADRL_RATESCORE_MODEL``); cached per folder and device."""
    from transformers import AutoConfig, AutoModel, AutoModelForTokenClassification, AutoTokenizer

    folder = _model_folder(model)
    device = metric_device(device)   # the call's, else $RADRL_METRIC_DEVICE (--metric-device), else the GPU
    if (str(folder), device) in _MODELS:
        return _MODELS[(str(folder), device)]
    _check_splitter()
    ner_dir, emb_dir = str(folder / NER_FOLDER), str(folder / EMBEDDER_FOLDER)
    labels = {int(k): v for k, v in AutoConfig.from_pretrained(ner_dir, local_files_only=True).id2label.items()}
    types = {tag[2:] for tag in labels.values() if tag != "O"}
    known = {k.split("_")[0].upper() for k in AFFINITY["long"] if k != "neg_weight"}
    if not types or not types <= known or not all(t == "O" or t[:2] in ("B-", "I-") for t in labels.values()):
        raise ValueError(f"{ner_dir}/config.json: id2label {sorted(labels.values())} are not B-/I-/O tags of "
                         f"RaTEScore's types {sorted(known)}; is this {_HUB[NER_FOLDER]}?")
    loaded = RaTEScoreModel(
        folder=folder,
        ner=AutoModelForTokenClassification.from_pretrained(ner_dir, local_files_only=True).eval().to(device),
        ner_tokenizer=AutoTokenizer.from_pretrained(ner_dir, local_files_only=True),
        embedder=AutoModel.from_pretrained(emb_dir, local_files_only=True).eval().to(device),
        embed_tokenizer=AutoTokenizer.from_pretrained(emb_dir, local_files_only=True),
        labels=labels, device=device,
        fingerprints={sub: file_fingerprint(_weights_file(folder / sub)) for sub in (NER_FOLDER, EMBEDDER_FOLDER)})
    _MODELS[(str(folder), device)] = loaded
    return loaded


def _weights_file(folder: Path) -> Path:
    safetensors = folder / "model.safetensors"
    return safetensors if safetensors.is_file() else folder / "pytorch_model.bin"


def _affinity(choice: str) -> tuple[dict[tuple[str, str], float], str]:
    """(type pair -> weight, a description for ``versions``) from "long", "short" or a JSON file of the same keys."""
    if choice.lower() in AFFINITY:
        matrix, described = AFFINITY[choice.lower()], f"{choice.lower()} (the package's default matrix)"
    else:
        try:
            matrix = json.loads(Path(choice).read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"affinity {choice!r}: not 'long', 'short' or a readable JSON file ({e}); pass one of "
                             "those") from e
        described = f"{choice} ({file_fingerprint(choice)})"
    absent = sorted(set(AFFINITY["long"]) - set(matrix))
    if absent:
        raise ValueError(f"affinity {choice!r} lacks {absent}; give every 'type_type' key and 'neg_weight'")
    return {(k.split("_")[0].upper(), k.split("_")[1].upper()): float(v) for k, v in matrix.items()}, described


def _match(a, b, a_types: Sequence[str], b_types: Sequence[str], weights: dict) -> float:
    """The package's ``compute``: each entity of ``a`` takes its most similar entity of ``b`` (cosine); the mean of
    those similarities weighted by the affinity of the two types, a negated match scaled by ``neg_weight``."""
    import torch
    import torch.nn.functional as F  # noqa: N812

    a, b = F.normalize(a, p=2, dim=1), F.normalize(b, p=2, dim=1)
    total = weight_sum = 0.0
    for row, a_type in zip(a, a_types):
        value, index = torch.topk(torch.matmul(b, row), 1, largest=True)
        b_type = b_types[int(index[0])]
        weight = weights[(a_type, b_type)]
        total += float(value[0]) * weight * (weights[("NEG", "WEIGHT")] if (a_type, b_type) in _NEGATION_PAIRS else 1)
        weight_sum += weight
    return total / weight_sum if weight_sum != 0 else 0.0


def ratescore(refs: Sequence[str], hyps: Sequence[str], model: str | os.PathLike | None = None,
              device: str | None = None, affinity: str = "long", batch_size: int = 16) -> MetricResult:
    """RaTEScore of each (reference, hypothesis) pair, and its mean.

    ``affinity``: "long" (the package's default), "short", or a JSON file with the package's keys.
    A text that occurs several times (a GRPO group's shared reference) is tagged and embedded once.
    """
    check_aligned(refs, hyps)
    weights, described = _affinity(affinity)
    m = load_ratescore(model, device)
    unique = list(dict.fromkeys([*refs, *hyps]))
    found = dict(zip(unique, m.entities(unique, batch_size)))
    vectors = {t: m.embed([name for name, _ in pairs]) for t, pairs in found.items() if pairs}
    scores = []
    for ref, hyp in zip(refs, hyps):
        if ref not in vectors or hyp not in vectors:  # a side without entities: the package's 0.5
            scores.append(0.5)
            continue
        ref_types, hyp_types = [k for _, k in found[ref]], [k for _, k in found[hyp]]
        p = _match(vectors[ref], vectors[hyp], ref_types, hyp_types, weights)
        r = _match(vectors[hyp], vectors[ref], hyp_types, ref_types, weights)
        scores.append(2 * p * r / (p + r) if p + r != 0 else 0.0)
    return MetricResult(
        aggregate={"ratescore": math.fsum(scores) / len(scores) if scores else 0.0},
        per_sample={"ratescore": scores},
        versions={"ratescore_model": ", ".join(f"{m.folder / sub} ({fp})" for sub, fp in m.fingerprints.items()),
                  "ratescore": f"RaTEScore as ratescore 0.6.0 computes it; affinity {described}; 0.5 when a side has "
                               "no entity (also for reports without a sentence, which the package drops)",
                  "sentence_splitter": f"PyRuSH {package_version('PyRuSH')} on spaCy {package_version('spacy')} "
                                       "blank 'en', medspaCy 1.3.1 English rules",
                  "transformers": package_version("transformers"), "torch": package_version("torch")},
    )


def entities(texts: Sequence[str], model: str | os.PathLike | None = None,
             device: str | None = None) -> list[list[tuple[str, str]]]:
    """RaTEScore's (entity text, type) pairs of each text, e.g. to see why a pair scored as it did."""
    return load_ratescore(model, device).entities(list(texts))
