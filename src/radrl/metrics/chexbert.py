"""CheXbert F1 and CheXbert embedding similarity, from ``chexbert.pth`` on local disk.

CheXbert (Smit et al., EMNLP 2020) is ``bert-base-uncased`` fine-tuned to label reports
with 14 CheXpert observations: one linear head per observation on the [CLS] vector, 4
classes for the 13 conditions (blank, positive, negative, uncertain) and 2 for "No
Finding" (blank, positive). Report-generation papers (f1chexbert, RadEval, RadVLM-GRPO)
binarise as f1chexbert's ``rrg`` mode does: positive and uncertain -> 1, negative and
blank -> 0, and report F1 micro and macro over the 14 observations and over the 5 common
ones (Atelectasis, Cardiomegaly, Consolidation, Edema, Pleural Effusion). RadCliQ-v1's
"s_emb" is the cosine of the two reports' CheXbert [CLS] vectors (last layer, before
the heads).

The ``f1chexbert`` package downloads the weights on first use and has no local-path option;
this module builds the same network with transformers from a local folder (``model=`` or
``$RADRL_CHEXBERT_MODEL``) holding::

    chexbert.pth        # {"model_state_dict": {"module.bert.*", "module.linear_heads.{0..13}.*"}, ...}
                        # (StanfordAIMI/RRG_scorers on Hugging Face, or the CheXbert release)
    config.json         # bert-base-uncased's
    vocab.txt           # bert-base-uncased's (tokenizer_config.json optional)

Every tensor of the network must be in the checkpoint (f1chexbert loads with
``strict=False`` and would silently keep random weights).

Outputs: ``per_sample["chexbert_similarity"]`` (cosine, 0 when a vector is 0) and
``per_sample["chexbert_f1"]`` (example-based F1 of the pair's two 14-label binary vectors,
1.0 when both are all zero); aggregates are their means plus ``chexbert_f1_micro_14``,
``chexbert_f1_macro_14``, ``chexbert_f1_micro_5``, ``chexbert_f1_macro_5`` computed by the
same code as ``radrl.metrics.chexpert`` uses for the rule labeler (scikit-learn's
``classification_report`` conventions: a label with no positive on either side has F1 0).

Text goes in as f1chexbert passes it (stripped, whitespace runs collapsed; the tokenizer
lower-cases); more than 512 word pieces are cut to the first 511 plus [SEP].

Not verified here: values with the real ``chexbert.pth`` (no hub access); the code was
checked against f1chexbert's own model class on a tiny random checkpoint in the real layout.

>>> r = chexbert(["Small left effusion."], ["Left pleural effusion."], model="/models/chexbert")  # doctest: +SKIP
>>> r.aggregate["chexbert_f1_micro_14"], r.per_sample["chexbert_similarity"]  # doctest: +SKIP
(1.0, [0.98])
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from radrl.data.schema import CHEXPERT_LABELS, NEGATIVE, POSITIVE, UNCERTAIN
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
from radrl.metrics.chexpert import label_f1

__all__ = ["CONDITIONS", "ENV_VAR", "CheXbertModel", "CheXbertModelMissing", "check_weights", "chexbert",
           "label_reports", "load_chexbert"]

ENV_VAR = "RADRL_CHEXBERT_MODEL"
_OVER = {14: "the 14 CheXpert labels incl. No Finding", 5: "the 5 common labels"}
SPECS = (
    *(MetricSpec(f"chexbert_f1_{avg}_{n}", f"CheXbert {avg}-F1 ({n})", labels=n, needs_weights=True,
                 description=f"{avg}-averaged F1 over {_OVER[n]}, CheXbert labels (uncertain counts as positive); "
                             "corpus-level")
      for n in (14, 5) for avg in ("micro", "macro")),
    MetricSpec("chexbert_f1", "CheXbert example F1 (14)", labels=14, needs_weights=True,
               description="per-report F1 of the two 14-label CheXbert vectors (1 when both are empty), mean"),
    MetricSpec("chexbert_similarity", "CheXbert embedding cosine", "raw", needs_weights=True,
               description="cosine of the two reports' CheXbert [CLS] vectors (RadCliQ's s_emb input), mean"),
)
# The heads' order in chexbert.pth (CheXbert's CONDITIONS): 13 conditions, then "No Finding".
CONDITIONS = ("Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema", "Consolidation",
              "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture",
              "Support Devices", "No Finding")
_CLASSES = {1: POSITIVE, 2: NEGATIVE, 3: UNCERTAIN}  # class 0 is "blank": not mentioned
_MODELS: dict[tuple, CheXbertModel] = {}


class CheXbertModelMissing(FileNotFoundError):
    """The CheXbert folder is not given or incomplete; the message says what to fetch and where."""


def check_weights(model: str | os.PathLike | None = None) -> None:
    """The CheXbert folder holds what ``load_chexbert`` reads (``radrl.metrics.check_metrics``), checked without
    loading it; ``CheXbertModelMissing`` with the download steps otherwise."""
    _model_folder(model)


def _missing_message(why: str) -> str:
    return (f"{why}. CheXbert metrics need CheXbert's weights and bert-base-uncased's config and vocabulary on local "
            f"disk; nothing is downloaded at run time. On a machine with internet: `{HF_DOWNLOAD} "
            "StanfordAIMI/RRG_scorers chexbert.pth --local-dir /models/chexbert` (the same chexbert.pth as the "
            f"CheXbert release) and `{HF_DOWNLOAD} bert-base-uncased config.json vocab.txt "
            "tokenizer_config.json --local-dir /models/chexbert`; then pass model='/models/chexbert' or set "
            f"{ENV_VAR}=/models/chexbert (see docs/metrics.md).")


@dataclass
class CheXbertModel:
    """A loaded CheXbert: BERT encoder, the 14 heads and the tokenizer."""

    folder: Path
    bert: object  # transformers BertModel
    heads: list  # 14 (weight, bias) pairs
    tokenizer: object
    device: str
    fingerprint: str = ""  # of chexbert.pth, for the versions a table records

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> tuple[list[list[float]], list[dict[str, int]]]:
        """[CLS] vectors and CheXpert labels (observation -> 1 / 0 / -1; blank ones absent) of each text."""
        import torch

        vectors, labels = [], []
        for i in progress(range(0, len(texts), batch_size), "CheXbert"):
            ids = [self._ids(t) for t in texts[i:i + batch_size]]
            width = max(len(x) for x in ids)
            pad = self.tokenizer.pad_token_id
            input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids], device=self.device)
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids], device=self.device)
            with torch.inference_mode():
                cls = self.bert(input_ids=input_ids, attention_mask=mask)[0][:, 0]  # (batch, hidden)
                classes = [(cls @ w.T + b).argmax(-1).tolist() for w, b in self.heads]  # 14 x (batch,)
            vectors.extend(cls.double().cpu().tolist())
            for j in range(len(ids)):
                found = {name: _CLASSES[c[j]] for name, c in zip(CONDITIONS, classes) if c[j] in _CLASSES}
                labels.append({k: found[k] for k in CHEXPERT_LABELS if k in found})
        return vectors, labels

    def _ids(self, text: str | None) -> list[int]:
        """f1chexbert's ``tokenize``: clean, word pieces, [CLS] ... [SEP], at most 512."""
        pieces = self.tokenizer.tokenize(re.sub(r"\s+", " ", (text or "").strip()))
        ids = [self.tokenizer.cls_token_id, *self.tokenizer.convert_tokens_to_ids(pieces), self.tokenizer.sep_token_id]
        return [*ids[:511], self.tokenizer.sep_token_id] if len(ids) > 512 else ids


def load_chexbert(model: str | os.PathLike | None = None, device: str | None = None) -> CheXbertModel:
    """Load CheXbert from a local folder (``model`` or ``$RADRL_CHEXBERT_MODEL``); cached per folder and device."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    folder = _model_folder(model)
    device = metric_device(device)   # the call's, else $RADRL_METRIC_DEVICE (--metric-device), else the GPU
    if (str(folder), device) in _MODELS:
        return _MODELS[(str(folder), device)]
    path = folder / "chexbert.pth"
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = checkpoint["model_state_dict"]
    except Exception as e:  # a truncated download or another file under this name
        raise ValueError(f"{path} is not a CheXbert checkpoint ({type(e).__name__}: {e}); download chexbert.pth "
                         "again (StanfordAIMI/RRG_scorers)") from e
    state = {k.removeprefix("module."): v for k, v in state.items()}
    bert_state = {k[len("bert."):]: v for k, v in state.items() if k.startswith("bert.")}
    bert_state.pop("embeddings.position_ids", None)  # a buffer older transformers saved; recomputed
    bert = BertModel(BertConfig.from_pretrained(str(folder)),
                     add_pooling_layer=any(k.startswith("pooler.") for k in bert_state))
    missing, unexpected = bert.load_state_dict(bert_state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path} does not fit {folder / 'config.json'}: missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}; config.json must be bert-base-uncased's")
    heads = []
    for i, name in enumerate(CONDITIONS):
        w, b = state.get(f"linear_heads.{i}.weight"), state.get(f"linear_heads.{i}.bias")
        classes = 2 if name == "No Finding" else 4
        if w is None or b is None or tuple(w.shape) != (classes, bert.config.hidden_size):
            raise ValueError(f"{path}: module.linear_heads.{i} ({name}) missing or not {classes} x "
                             f"{bert.config.hidden_size}; is it CheXbert's checkpoint?")
        heads.append((w.float().to(device), b.float().to(device)))
    loaded = CheXbertModel(folder=folder, bert=bert.to(device).eval(), heads=heads,
                           tokenizer=BertTokenizer.from_pretrained(str(folder)), device=device,
                           fingerprint=file_fingerprint(path))
    _MODELS[(str(folder), device)] = loaded
    return loaded


def label_reports(texts: Sequence[str], model: str | os.PathLike | None = None,
                  device: str | None = None) -> list[dict[str, int]]:
    """CheXbert's CheXpert labels of each text, in ``radrl.metrics.chexpert.label_report``'s form."""
    return load_chexbert(model, device).encode(list(texts))[1]


def chexbert(refs: Sequence[str], hyps: Sequence[str], model: str | os.PathLike | None = None,
             device: str | None = None, batch_size: int = 32, fast: bool = True) -> MetricResult:
    """CheXbert F1 (micro/macro over 14 and 5 observations), per-pair example F1 and embedding cosine.
    Each distinct text is encoded once per call (a GRPO group's reference once, not 8 times); ``fast``
    (default) also encodes in batches of similar length and keeps the references' encodings across calls
    (``radrl.metrics.encodings.TextCache``), same values."""
    from radrl.metrics.encodings import TextCache, encode_once

    check_aligned(refs, hyps)
    m = load_chexbert(model, device)
    if fast and not hasattr(m, "ref_cache"):
        m.ref_cache = TextCache()

    def encode(texts: list[str]) -> list[tuple]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i])) if fast else list(range(len(texts)))
        vecs, labs = m.encode([texts[i] for i in order], batch_size)
        out: list = [None] * len(texts)
        for i, v, lab in zip(order, vecs, labs):
            out[i] = (v, lab)
        return out

    found = encode_once([*refs, *hyps], refs, encode, m.ref_cache if fast else None)
    unique = list(found)
    vectors, labels = [found[t][0] for t in unique], [found[t][1] for t in unique]
    at = {t: i for i, t in enumerate(unique)}
    ref_i, hyp_i = [at[r] for r in refs], [at[h] for h in hyps]
    f1s, sample_f1 = label_f1([labels[i] for i in ref_i], [labels[i] for i in hyp_i])
    agg = {f"chexbert_f1_{avg}_{n}": v for (avg, n), v in f1s.items()}
    similarity = [_cosine(vectors[a], vectors[b]) for a, b in zip(ref_i, hyp_i)]
    for name, values in (("chexbert_f1", sample_f1), ("chexbert_similarity", similarity)):
        agg[name] = math.fsum(values) / len(values) if values else 0.0
    return MetricResult(
        aggregate=agg,
        per_sample={"chexbert_f1": sample_f1, "chexbert_similarity": similarity},
        versions={"chexbert_model": f"{m.folder / 'chexbert.pth'} ({m.fingerprint})",
                  "chexbert": "CheXbert labels, f1chexbert rrg mode (positive/uncertain -> 1), 14 labels incl. No "
                              "Finding and the 5 common ones; macro: empty label F1=0; chexbert_f1 per sample: "
                              "example F1 (1 when both empty); similarity: cosine of [CLS] vectors",
                  "transformers": package_version("transformers"), "torch": package_version("torch")},
    )


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b))
    norm = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return dot / norm if norm > 0 else 0.0


def _model_folder(model: str | os.PathLike | None) -> Path:
    return model_folder(model, ENV_VAR, "CheXbert",
                        lambda folder: [f for f in ("chexbert.pth", "config.json", "vocab.txt")
                                        if not (folder / f).is_file()],
                        lambda why: CheXbertModelMissing(_missing_message(why)))
