"""RadGraph F1 with RadGraph-XL, from the ``radgraph`` package's model archive on local disk.

RadGraph-XL (Delbrouck et al., ACL Findings 2024) is a DyGIE++ span model: a BERT
encoder, word vectors as the mean of their word pieces, every span of up to
``max_span_width`` words embedded as [first word; last word; width embedding], an NER
head that labels spans, and a relation head over the top-scoring spans. The ``radgraph``
package (Stanford-AIMI/radgraph 0.1.18, and RadEval's vendored copy of it) runs it
through a fork of AllenNLP that downloads the archive from the hub on first use and
breaks under transformers 5; this module runs the same computation in plain torch from
the extracted archive, and never downloads anything.

Files (``model=`` or ``$RADRL_RADGRAPH_MODEL``): the folder that ``radgraph-xl.tar.gz``
(Hugging Face repo ``StanfordAIMI/RRG_scorers``) extracts to::

    radgraph-xl/
      config.json                    # AllenNLP config: max_span_width, feature_size,
                                     # feedforward_params, modules.relation.spans_per_word,
                                     # model.embedder.token_embedders.bert.{model_name,max_length}
      vocabulary/<dataset>__ner_labels.txt, <dataset>__relation_labels.txt,
                 non_padded_namespaces.txt
      weights.th                     # state dict, encoder weights included
      encoder/                       # ours: config.json + vocab.txt of the BERT named in
                                     # config.json (model_name); its weights are not needed

The encoder's architecture and tokenizer come from ``encoder/`` (or ``encoder=``, or
``$RADRL_RADGRAPH_ENCODER``, or ``model_name`` when that is a local folder); its weights
come from ``weights.th``. The ``_coref`` and ``_events`` modules of the checkpoint are
unused by RadGraph (their loss weights are 0) and are skipped; every other tensor must
match, so a wrong or truncated archive fails with the key it lacks.

Scores, per pair (hypothesis vs reference), as ``radgraph.F1RadGraph`` computes them:

* ``radgraph_simple``: F1 over the sets of (entity tokens, label);
* ``radgraph_partial``: (tokens, label, has a relation);
* ``radgraph_complete``: (tokens, label) for entities without relations and
  (tokens lower-cased, label, relation, target tokens lower-cased) for each relation;
  a pair where either side has no entity, or either text is blank, scores 0;
* ``radgraph_er``: RadCliQ's RadGraph input, the mean of entity F1 over (tokens, label)
  and relation F1 over (source entity, target entity, relation type) (RadEval's
  ``RadGraphRadCliQ``; 0 for empty sets).

Text is tokenised as ``radgraph`` 0.1.18 does for RadGraph-XL with today's nltk (``\\n`` to spaces,
nltk's ``wordpunct_tokenize`` pattern in the ``regex`` engine that nltk >= 3.10.3 uses, a few
punctuation splits) and not lower-cased here: the
encoder is uncased, but entity tokens keep their case in ``simple`` and ``partial``,
as in ``radgraph``. Each report is one "sentence", as in ``radgraph``; word pieces
beyond the encoder's ``max_length`` are encoded in further windows, as AllenNLP folds them.

The original RadGraph's archive (``radgraph.tar.gz``, the model CXR-Report-Metric's and
RadEval's RadCliQ-v1 use) loads the same way; its reports are split as ``radgraph`` splits
them for that model (a regex around ``/,-:.!?()``) instead.

Not verified here: values with the real weights (no hub access); the computation was
checked against the ``radgraph`` package on tiny random checkpoints in the real layouts of
both archives (tests/metrics/test_radgraph.py).

>>> r = radgraph(["No pleural effusion."], ["No effusion."], model="/models/radgraph-xl")  # doctest: +SKIP
>>> sorted(r.per_sample)  # doctest: +SKIP
['radgraph_complete', 'radgraph_er', 'radgraph_partial', 'radgraph_simple']
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import regex

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

__all__ = ["ENCODER_ENV_VAR", "ENV_VAR", "KEYS", "RadGraphModel", "RadGraphModelMissing", "check_weights",
           "f1_scores", "load_radgraph", "radgraph", "tokenize_report"]

ENV_VAR = "RADRL_RADGRAPH_MODEL"
ENCODER_ENV_VAR = "RADRL_RADGRAPH_ENCODER"
KEYS = ("radgraph_simple", "radgraph_partial", "radgraph_complete", "radgraph_er")
SPECS = (
    *(MetricSpec(f"radgraph_{level}", f"RadGraph F1 ({level})", needs_weights=True,
                 description=f"RadGraph-XL F1 at radgraph.F1RadGraph's {level!r} reward level, mean over samples")
      for level in ("simple", "partial", "complete")),
    MetricSpec("radgraph_er", "RadGraph entity/relation F1", needs_weights=True,
               description="mean of RadGraph-XL entity F1 and relation F1 (RadCliQ's RadGraph input), "
                           "mean over samples"),
)
_EMB = "_embedder.token_embedder_bert._matched_embedder.transformer_model."
_UNUSED = ("_coref.", "_events.")  # DyGIE modules RadGraph trains with loss weight 0
_MODELS: dict[tuple, RadGraphModel] = {}
# nltk's wordpunct_tokenize without importing nltk (seconds). Since 3.10.3 nltk compiles its patterns with the
# third-party `regex` engine (nltk.redos), whose \w is Unicode's (combining marks in, "²" out), not `re`'s, so
# "cm²", decomposed accents and "İ" split differently under `re`: compiled here the way nltk compiles it.
_WORDPUNCT = regex.compile(r"\w+|[^\w\s]+", regex.UNICODE | regex.MULTILINE | regex.DOTALL)


class RadGraphModelMissing(FileNotFoundError):
    """The RadGraph-XL folder is not given or incomplete; the message says what to fetch and where."""


def _missing_message(why: str) -> str:
    return (f"{why}. RadGraph F1 needs the RadGraph-XL archive on local disk; nothing is downloaded at run time. "
            f"On a machine with internet: `{HF_DOWNLOAD} StanfordAIMI/RRG_scorers radgraph-xl.tar.gz "
            "--local-dir /models`, then `mkdir -p /models/radgraph-xl && tar xzf /models/radgraph-xl.tar.gz -C "
            "/models/radgraph-xl` (it holds config.json, vocabulary/ and weights.th); put the config.json and "
            "vocab.txt of the BERT encoder that its config.json names (model.embedder.token_embedders.bert."
            "model_name) into /models/radgraph-xl/encoder/; then pass model='/models/radgraph-xl' or set "
            f"{ENV_VAR}=/models/radgraph-xl (see docs/metrics.md).")


# --- text -> words --------------------------------------------------------------------


def tokenize_report(text: str, model_type: str = "radgraph-xl") -> list[str]:
    """Words as ``radgraph`` feeds them to RadGraph-XL: ``"Mild edema.\\nNo effusion"`` ->
    ``['Mild', 'edema', '.', 'No', 'effusion']`` (``model_type="radgraph"``: the original RadGraph's split)."""
    if model_type == "radgraph":
        return re.sub("(?<! )(?=[/,-,:,.,!?()])|(?<=[/,-,:,.,!?()])(?! )", r" ", text).split()
    text = text.replace("\\n", "  ").replace("\\f", "  ").replace("\\u2122", "      ").replace("\n", " ")
    text = text.replace('\\"', "``")
    out = " ".join(_WORDPUNCT.findall(re.sub(r"\s+", " ", text)))
    for a, b in ((").", ") ."), ("%.", "% ."), (".'", ". '"), ("%,", "% ,"), ("%)", "% )")):
        out = out.replace(a, b)
    return out.split()


# --- model ----------------------------------------------------------------------------


@dataclass
class RadGraphModel:
    """A loaded RadGraph-XL: encoder, tokenizer, the head tensors of ``weights.th`` and the labels."""

    folder: Path
    encoder_folder: Path
    encoder: object  # transformers BertModel
    tokenizer: object
    heads: dict  # state-dict name (without module prefix) -> tensor
    ner_labels: list[str]  # index 0 is the null label ""
    relation_labels: list[str]
    max_span_width: int
    spans_per_word: float
    ff_layers: int
    max_length: int | None
    namespace: str
    device: str
    fingerprint: str = ""  # of weights.th, for the versions a table records

    def annotate(self, text: str) -> dict:
        """``radgraph``'s annotation of one report: ``{"text", "entities": {"1": {"tokens", "label",
        "start_ix", "end_ix", "relations": [[type, "target id"], ...]}, ...}}``."""
        return self.annotate_many([text])[0]

    def annotate_many(self, texts: Sequence[str], batch_size: int = 8) -> list[dict]:
        """``annotate`` for each text; the encoder runs on ``batch_size`` reports of similar length at a time
        (padded windows, masked; the annotations are the same for any batch size, tested), the span heads per
        report. Speed against the ``radgraph`` package: bench/scorers_speed.py."""
        import torch

        words = [tokenize_report(t, self.namespace) or ["None"] for t in texts]
        order = sorted(range(len(words)), key=lambda i: len(words[i]))  # similar lengths share a batch: less padding
        out: list[dict] = [{}] * len(words)
        for i in progress(range(0, len(order), batch_size), "RadGraph"):
            chunk = [words[j] for j in order[i:i + batch_size]]
            with torch.inference_mode():
                for j, w, vec in zip(order[i:i + batch_size], chunk, self._word_vectors(chunk)):
                    ner, rel = self._predict(w, vec)
                    out[j] = {"text": " ".join(w), "entities": _entities(ner, rel, w)}
        return out

    def _word_vectors(self, reports: list[list[str]]) -> list:
        """Per report, (n_words, hidden): each word the mean of its word pieces' last-layer vectors (zeros
        if it has none). Word pieces beyond ``max_length - 2`` go to further [CLS] ... [SEP] windows, as
        AllenNLP folds them; all windows of the batch run through the encoder together."""
        import torch

        cls, sep, pad = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id, self.tokenizer.pad_token_id or 0
        windows, owners, word_spans = [], [], []
        for r, words in enumerate(reports):
            pieces, spans = [], []
            for w in words:
                ids = self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(w))
                spans.append((len(pieces), len(pieces) + len(ids)))
                pieces.extend(ids)
            width = (self.max_length or len(pieces) + 2) - 2
            for i in range(0, max(len(pieces), 1), width):
                windows.append([cls, *pieces[i:i + width], sep])
                owners.append(r)
            word_spans.append(spans)
        longest = max(len(x) for x in windows)
        ids = torch.tensor([x + [pad] * (longest - len(x)) for x in windows], device=self.device)
        mask = torch.tensor([[1] * len(x) + [0] * (longest - len(x)) for x in windows], device=self.device)
        hidden = self.encoder(input_ids=ids, attention_mask=mask)[0]  # (n_windows, longest, hidden)
        per_report: list[list] = [[] for _ in reports]
        for k, (x, r) in enumerate(zip(windows, owners)):
            per_report[r].append(hidden[k, 1:len(x) - 1])
        out = []
        for parts, spans in zip(per_report, word_spans):
            pieces = torch.cat(parts)  # (n_pieces, hidden)
            vec = pieces.new_zeros(len(spans), pieces.shape[-1])
            for j, (a, b) in enumerate(spans):
                if b > a:
                    vec[j] = pieces[a:b].mean(0)
            out.append(vec)
        return out

    def _ff(self, x, prefix: str):
        import torch

        for i in range(self.ff_layers):
            x = torch.relu(x @ self.heads[f"{prefix}._linear_layers.{i}.weight"].T
                           + self.heads[f"{prefix}._linear_layers.{i}.bias"])
        return x

    def _linear(self, x, prefix: str):
        return x @ self.heads[f"{prefix}.weight"].T + self.heads[f"{prefix}.bias"]

    def _predict(self, words: list[str], vec):
        """NER and relation predictions of one report from its word vectors (n_words, hidden)."""
        import torch

        ns, h = self.namespace, self.heads
        n = len(words)
        spans = [(s, e) for s in range(n) for e in range(s, min(s + self.max_span_width, n))]
        starts = torch.tensor([s for s, _ in spans], device=self.device)
        ends = torch.tensor([e for _, e in spans], device=self.device)
        width = h["_endpoint_span_extractor._span_width_embedding.weight"][ends - starts]
        emb = torch.cat([vec[starts], vec[ends], width], -1)  # (n_spans, 2 * hidden + feature_size)

        ner_prefix = f"_ner._ner_scorers.{ns}__ner_labels"
        scores = self._linear(self._ff(emb, f"{ner_prefix}.0._module"), f"{ner_prefix}.1._module")
        scores = torch.cat([scores.new_zeros(len(spans), 1), scores], -1)  # column 0: the null label
        labels = scores.max(-1)[1].tolist()
        ner = [(s, e, self.ner_labels[k]) for (s, e), k in zip(spans, labels) if k != 0]

        rel_ns = f"{ns}__relation_labels"
        pruner = f"_relation._mention_pruners.{rel_ns}._scorer"
        mention = self._linear(self._ff(emb, f"{pruner}.0._module"), f"{pruner}.1._module")[:, 0]  # (n_spans,)
        keep = min(max(math.ceil(n * self.spans_per_word), 1), len(spans))
        top = torch.sort(mention.topk(keep)[1])[0]  # kept spans in their original order
        e = emb[top]
        pairs = torch.cat([e[:, None].expand(-1, keep, -1), e[None].expand(keep, -1, -1), e[:, None] * e[None]], -1)
        rel = self._linear(self._ff(pairs, f"_relation._relation_feedforwards.{rel_ns}"),
                           f"_relation._relation_scorers.{rel_ns}")
        rel = rel + mention[top][:, None, None] + mention[top][None, :, None]
        rel = torch.cat([rel.new_zeros(keep, keep, 1), rel], -1).max(-1)[1] - 1  # -1: no relation
        top_spans = [spans[i] for i in top.tolist()]
        relations = [(top_spans[i], top_spans[j], self.relation_labels[rel[i, j].item()])
                     for i, j in (rel >= 0).nonzero().tolist()]
        return ner, relations


def _entities(ner: list, relations: list, words: list[str]) -> dict:
    """``radgraph``'s ``get_entity``: entities numbered from 1 in span order; a relation whose target
    span is not an entity is dropped."""
    index = {}
    for i, (s, e, _) in enumerate(ner):
        index.setdefault((s, e), i + 1)
    out = {}
    for i, (s, e, label) in enumerate(ner):
        rels = [[lab, str(index[tgt])] for src, tgt, lab in relations if src == (s, e) and tgt in index]
        out[str(i + 1)] = {"tokens": " ".join(words[s:e + 1]), "label": label, "start_ix": s, "end_ix": e,
                           "relations": rels}
    return out


def check_weights(model: str | os.PathLike | None = None, encoder: str | os.PathLike | None = None) -> None:
    """The RadGraph-XL folder and its encoder's config and vocabulary are where ``load_radgraph`` reads them
    (``radrl.metrics.check_metrics``), checked without loading them; ``RadGraphModelMissing`` with the
    download steps otherwise."""
    folder = _model_folder(model)
    try:
        bert = json.loads((folder / "config.json").read_text())["model"]["embedder"]["token_embedders"]["bert"]
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{folder / 'config.json'} is not a RadGraph (DyGIE) config: missing or bad {e}; "
                         "use the config.json from radgraph-xl.tar.gz unchanged") from e
    _encoder_folder(folder, encoder, bert.get("model_name", "?"))


def load_radgraph(model: str | os.PathLike | None = None, encoder: str | os.PathLike | None = None,
                  device: str | None = None) -> RadGraphModel:
    """Load RadGraph-XL from its extracted archive (``model`` or ``$RADRL_RADGRAPH_MODEL``); cached."""
    import torch

    folder = _model_folder(model)
    config = json.loads((folder / "config.json").read_text())
    try:
        bert = config["model"]["embedder"]["token_embedders"]["bert"]
        model_cfg = config["model"]
        max_span_width = int(model_cfg["max_span_width"])
        spans_per_word = float(model_cfg["modules"]["relation"]["spans_per_word"])
        ff_layers = int(model_cfg["feedforward_params"]["num_layers"])
    except (KeyError, TypeError, ValueError) as e:
        raise ValueError(f"{folder / 'config.json'} is not a RadGraph (DyGIE) config: missing or bad {e}; "
                         "use the config.json from radgraph-xl.tar.gz unchanged") from e
    enc = _encoder_folder(folder, encoder, bert.get("model_name", "?"))
    device = metric_device(device)   # the call's, else $RADRL_METRIC_DEVICE (--metric-device), else the GPU
    key = (str(folder), str(enc), device)
    if key in _MODELS:
        return _MODELS[key]

    from transformers import BertConfig, BertModel, BertTokenizer

    namespace, ner_labels, relation_labels = _vocabulary(folder / "vocabulary")
    if namespace not in ("radgraph-xl", "radgraph"):
        raise ValueError(f"{folder / 'vocabulary'} is for {namespace!r}; this loader reads the BERT-based "
                         "radgraph-xl.tar.gz (and the original radgraph.tar.gz), not other RadGraph-family models")
    enc_config = BertConfig.from_pretrained(str(enc))
    if enc_config.model_type != "bert":
        raise ValueError(f"{enc / 'config.json'} is a {enc_config.model_type!r} model; RadGraph-XL's encoder is a "
                         f"BERT ({bert.get('model_name')})")
    state = torch.load(folder / "weights.th", map_location="cpu", weights_only=True)
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    encoder_model = BertModel(enc_config, add_pooling_layer=any(
        k.startswith(_EMB + "pooler.") for k in state))
    enc_state = {k[len(_EMB):]: v for k, v in state.items() if k.startswith(_EMB)}
    enc_state.pop("embeddings.position_ids", None)  # a buffer older transformers saved; recomputed
    missing, unexpected = encoder_model.load_state_dict(enc_state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{folder / 'weights.th'} does not fit the encoder described by {enc / 'config.json'}: "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]}; use the encoder config that "
                         f"config.json names ({bert.get('model_name')})")
    heads = {k: v.float().to(device) for k, v in state.items() if not k.startswith(_EMB) and not k.startswith(_UNUSED)}
    loaded = RadGraphModel(folder=folder, encoder_folder=enc, encoder=encoder_model.to(device).eval(),
                           tokenizer=BertTokenizer.from_pretrained(str(enc)), heads=heads, ner_labels=ner_labels,
                           relation_labels=relation_labels, max_span_width=max_span_width,
                           spans_per_word=spans_per_word, ff_layers=ff_layers, max_length=bert.get("max_length"),
                           namespace=namespace, device=device, fingerprint=file_fingerprint(folder / "weights.th"))
    _check_heads(loaded)
    _MODELS[key] = loaded
    return loaded


def radgraph(refs: Sequence[str], hyps: Sequence[str], model: str | os.PathLike | None = None,
             encoder: str | os.PathLike | None = None, device: str | None = None, batch_size: int = 8,
             fast: bool = True) -> MetricResult:
    """RadGraph F1 per pair at the three reward levels and RadCliQ's entity/relation mean (``KEYS``);
    aggregates are their means over pairs, as ``radgraph.F1RadGraph`` reports them. Each distinct text is
    annotated once per call; ``fast`` (default) also keeps the references' annotations across calls
    (``radrl.metrics.encodings.TextCache``: GRPO steps and epochs repeat references), same values."""
    from radrl.metrics.encodings import TextCache, encode_once

    check_aligned(refs, hyps)
    m = load_radgraph(model, encoder, device)
    blank = [not (r or "").strip() or not (h or "").strip() for r, h in zip(refs, hyps)]
    if fast and not hasattr(m, "ref_cache"):
        m.ref_cache = TextCache()
    cache = encode_once([t for r, h, b in zip(refs, hyps, blank) if not b for t in (r, h)],
                        [r for r, b in zip(refs, blank) if not b], lambda texts: m.annotate_many(texts, batch_size),
                        m.ref_cache if fast else None)
    per: dict[str, list[float]] = {k: [] for k in KEYS}
    for r, h, b in zip(refs, hyps, blank):
        values = (0.0,) * 4 if b else f1_scores(cache[r], cache[h])
        for k, v in zip(KEYS, values):
            per[k].append(v)
    return MetricResult(
        aggregate={k: math.fsum(v) / len(v) if v else 0.0 for k, v in per.items()},
        per_sample=per,
        versions={"radgraph_model": f"{m.folder} ({m.namespace}; weights.th {m.fingerprint}), encoder files "
                                    f"{m.encoder_folder}",
                  "radgraph": "RadGraph-XL in plain torch (radgraph 0.1.18 F1RadGraph reward levels; radgraph_er = "
                              "RadEval RadGraphRadCliQ entity/relation F1 mean); blank text scores 0",
                  "transformers": package_version("transformers"), "torch": package_version("torch")},
    )


# --- scores ---------------------------------------------------------------------------


def _f1(hyp: set, ref: set) -> float:
    tp = len(hyp & ref)
    p = tp / len(hyp) if hyp else 0.0
    r = tp / len(ref) if ref else 0.0
    return 2 * p * r / (p + r) if p + r else 0.0


def f1_scores(ref: dict, hyp: dict) -> tuple[float, float, float, float]:
    """(simple, partial, complete, er) of two annotations (``RadGraphModel.annotate`` output).

    >>> ann = {"entities": {"1": {"tokens": "effusion", "label": "OBS-DA", "relations": []}}}
    >>> f1_scores(ann, ann)
    (1.0, 1.0, 1.0, 0.5)
    """
    def sets(ann: dict):
        ents = ann["entities"]
        simple = {(e["tokens"], e["label"]) for e in ents.values()}
        partial = {(e["tokens"], e["label"]) + ((True,) if e["relations"] else ()) for e in ents.values()}
        complete = set()
        for e in ents.values():
            if not e["relations"]:
                complete.add((e["tokens"], e["label"]))
            complete.update((e["tokens"].lower(), e["label"], r[0], ents[r[1]]["tokens"].lower())
                            for r in e["relations"])
        relations = {((e["tokens"], e["label"]), (ents[t]["tokens"], ents[t]["label"]), kind)
                     for e in ents.values() for kind, t in e["relations"] if t in ents}
        return simple, partial, complete, relations

    rs, rp, rc, rr = sets(ref)
    hs, hp, hc, hr = sets(hyp)
    er = (_f1(hs, rs) + _f1(hr, rr)) / 2
    if not ref["entities"] or not hyp["entities"]:
        return 0.0, 0.0, 0.0, er
    return _f1(hs, rs), _f1(hp, rp), _f1(hc, rc), er


# --- files ----------------------------------------------------------------------------


def _model_folder(model: str | os.PathLike | None) -> Path:
    return model_folder(model, ENV_VAR, "RadGraph-XL",
                        lambda folder: [f for f in ("config.json", "weights.th", "vocabulary")
                                        if not (folder / f).exists()],
                        lambda why: RadGraphModelMissing(_missing_message(why)))


def _encoder_folder(folder: Path, encoder: str | os.PathLike | None, model_name: str) -> Path:
    candidates = [encoder, os.environ.get(ENCODER_ENV_VAR), model_name, folder / "encoder"]
    chosen = next((Path(c).expanduser() for c in candidates if c and Path(c).expanduser().is_dir()), None)
    if chosen is None or not all((chosen / f).is_file() for f in ("config.json", "vocab.txt")):
        where = chosen or folder / "encoder"
        raise RadGraphModelMissing(_missing_message(
            f"RadGraph-XL encoder files not found: {where} needs config.json and vocab.txt of {model_name} "
            f"(or pass encoder= / set {ENCODER_ENV_VAR})"))
    return chosen.absolute()


def _vocabulary(folder: Path) -> tuple[str, list[str], list[str]]:
    """(dataset name, NER labels with "" at 0, relation labels) from AllenNLP vocabulary files."""
    ner_files = sorted(folder.glob("*__ner_labels.txt"))
    if len(ner_files) != 1:
        raise ValueError(f"{folder} must hold exactly one <dataset>__ner_labels.txt, found "
                         f"{[f.name for f in ner_files]}; use the vocabulary/ folder of radgraph-xl.tar.gz")
    namespace = ner_files[0].name[:-len("__ner_labels.txt")]
    padded_file = folder / "non_padded_namespaces.txt"
    patterns = padded_file.read_text().split() if padded_file.is_file() else ["*tags", "*labels"]

    def labels(name: str) -> list[str]:
        path = folder / f"{name}.txt"
        if not path.is_file():
            raise ValueError(f"{path} not found; use the vocabulary/ folder of radgraph-xl.tar.gz")
        lines = re.split(r"\n|\r\n", path.read_text(encoding="utf-8"))
        if lines and lines[-1] == "":
            lines = lines[:-1]
        padded = not any(name.endswith(p[1:]) if p.startswith("*") else name == p for p in patterns)
        return (["@@PADDING@@"] if padded else []) + [t.replace("@@NEWLINE@@", "\n") for t in lines]

    ner, rel = labels(f"{namespace}__ner_labels"), labels(f"{namespace}__relation_labels")
    if not ner or ner[0] != "":
        raise ValueError(f"{folder / ner_files[0].name}: the first NER label must be the empty null label")
    return namespace, ner, rel


def _check_heads(m: RadGraphModel) -> None:
    """Every tensor the computation reads exists with the shape the labels and config imply."""
    ns = m.namespace
    hidden = m.encoder.config.hidden_size
    width = m.heads.get("_endpoint_span_extractor._span_width_embedding.weight")
    if width is None or width.shape[0] < m.max_span_width:
        raise ValueError(f"{m.folder / 'weights.th'} lacks a span width embedding for max_span_width "
                         f"{m.max_span_width}; config.json and weights.th are from different models")
    span = 2 * hidden + width.shape[1]
    need = {f"_ner._ner_scorers.{ns}__ner_labels.1._module.weight": len(m.ner_labels) - 1,
            f"_relation._mention_pruners.{ns}__relation_labels._scorer.1._module.weight": 1,
            f"_relation._relation_scorers.{ns}__relation_labels.weight": len(m.relation_labels)}
    firsts = {f"_ner._ner_scorers.{ns}__ner_labels.0._module": span,
              f"_relation._mention_pruners.{ns}__relation_labels._scorer.0._module": span,
              f"_relation._relation_feedforwards.{ns}__relation_labels": 3 * span}
    used = {"_endpoint_span_extractor._span_width_embedding.weight"}
    for prefix, dim in firsts.items():
        for i in range(m.ff_layers):
            w = m.heads.get(f"{prefix}._linear_layers.{i}.weight")
            if w is None or (i == 0 and w.shape[1] != dim):
                raise ValueError(f"{m.folder / 'weights.th'}: {prefix}._linear_layers.{i}.weight missing or not "
                                 f"of input size {dim}; the archive does not match config.json")
            used.update({f"{prefix}._linear_layers.{i}.weight", f"{prefix}._linear_layers.{i}.bias"})
    for name, rows in need.items():
        w = m.heads.get(name)
        if w is None or w.shape[0] != rows:
            raise ValueError(f"{m.folder / 'weights.th'}: {name} missing or without {rows} outputs "
                             "(the labels in vocabulary/); the archive is incomplete or from another model")
        used.update({name, name[:-len("weight")] + "bias"})
    extra = sorted(set(m.heads) - used)
    if extra:
        raise ValueError(f"{m.folder / 'weights.th'} has tensors RadGraph does not use: {extra[:5]}; "
                         "is it a RadGraph (DyGIE) checkpoint?")
