"""BERTScore as RadCliQ-v1 and RadVLM-GRPO compute it, from a local model folder.

The configuration (CXR-Report-Metric ``run_eval.py``, RadEval's RadCliQ, the paper's
reward): the ``bert-score`` package's ``BERTScorer`` with ``distilroberta-base``, its
default layer for that model (5 of 6), no IDF, F1 rescaled with the baseline that
``bert-score`` ships (``bert_score/rescale_baseline/en/distilroberta-base.tsv``, which it
picks as ``rescale_baseline/{lang}/{model_type}.tsv`` with ``lang="en"``).

Weights are never downloaded: the model is a local folder, given as ``model=`` or by the
environment variable ``RADRL_BERTSCORE_MODEL``; without one, or when the folder lacks its
files, ``bertscore`` raises ``BertScoreModelMissing`` saying what to download and where
(``hf download distilroberta-base --local-dir /models/distilroberta-base``
on a machine with internet, then copy the folder). Only a checked local folder is ever
passed on, and transformers reads a directory without contacting the hub.

Which model, which layer, which baseline: a folder whose name is a model ``bert-score``
knows (``distilroberta-base``, ``roberta-large``, ...; the name is the last path part, or
the last two for names such as ``microsoft/deberta-xlarge-mnli``) gets that model's
default layer and shipped English baseline, so keep the hub name as the folder name.
Any other folder is accepted as an encoder: its layer is ``num_layers`` or, by default,
its last layer (``num_hidden_layers`` in its config.json); ``rescale=True`` then needs a
``baseline_path`` (a ``bert-score`` baseline TSV: a ``LAYER,P,R,F`` header and one row
per layer, row 0 the embeddings) and raises otherwise, so that unrescaled numbers never
land silently in a column of rescaled ones. Pass ``rescale=False`` for raw F1.

Text: lower-cased, runs of spaces collapsed (CXR-Report-Metric does ``re.sub(' +', ' ')``)
and cut at 2,048 characters, as RadVLM-GRPO's reward prepares both sides (paper.md). The
original RadCliQ scripts do not lower-case; on MIMIC-CXR's upper-case section text that
changes the value, so report this module's number as the reward's.

Tokenizer: ``bert-score`` asks RoBERTa / GPT-2 tokenizers for a leading space
(``add_prefix_space=True``, how its baselines were computed); transformers 5 ignores that
argument of ``encode``, so such tokenizers are loaded with ``add_prefix_space=True`` here.

Padding: ``bert-score`` zeroes padded positions of the token-similarity matrix before
taking maxima, so a token whose best cosine is negative counts 0 when its pair shares a
batch with longer texts. distilroberta-base's cosines are positive in practice (its
baseline F is 0.85), so batches do not change RadCliQ's numbers; with other encoders,
unrelated pairs can depend on the batch (as in ``bert-score`` itself).

Empty texts (either side blank after stripping) get ``bert-score``'s value for them: raw
F1 0, so the rescaled F1 is ``-b / (1 - b)`` with ``b`` the baseline F (-5.55 for
distilroberta-base, layer 5). It is set here without running the model, because
``bert-score``'s own code for empty texts fails under transformers 5; rewards floor such
answers (-3) before this.

>>> r = bertscore(["no effusion."], ["no effusion."], model="/models/distilroberta-base")  # doctest: +SKIP
>>> round(r.aggregate["bertscore"], 4)  # doctest: +SKIP
1.0
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys
from collections.abc import Sequence
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
    showing_progress,
)

__all__ = ["DISTILBERT_ENV_VAR", "DISTILBERT_LAYER", "DISTILBERT_MODEL", "ENV_VAR", "MAX_CHARS", "RADCLIQ_MODEL",
           "BertScoreModelMissing", "bertscore", "bertscore_distilbert", "check_distilbert_weights", "check_weights",
           "prepare_text"]

RADCLIQ_MODEL = "distilroberta-base"
ENV_VAR = "RADRL_BERTSCORE_MODEL"
# RadVLM's evaluation (vilmedic BertScore), RadEval's standalone BERTScore and RadVLM-GRPO's BERTScore reward
# (worker_bertscore.py): distilbert-base-uncased, layer 5, rescaled. The paper's BERTScore column is this one.
DISTILBERT_MODEL = "distilbert-base-uncased"
DISTILBERT_ENV_VAR = "RADRL_BERTSCORE_DISTILBERT_MODEL"
DISTILBERT_LAYER = 5
MAX_CHARS = 2048  # RadVLM-GRPO cuts both texts at 2,048 characters before scoring
SPECS = (MetricSpec("bertscore", "BERTScore F1", needs_weights=True,
                    description="BERTScore F1 with the local model named in metrics.json versions (RadCliQ's "
                                "configuration: distilroberta-base, baseline-rescaled), mean over samples"),
         MetricSpec("bertscore_distilbert", "BERTScore F1 (distilbert)", needs_weights=True,
                    description="rescaled BERTScore F1, distilbert-base-uncased layer 5: the paper's BERTScore "
                                "column (RadVLM's evaluation, RadEval) and its BERTScore reward; mean over samples"))
_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json", "pytorch_model.bin.index.json")
_TOKENIZER_FILES = (("tokenizer.json",), ("vocab.json", "merges.txt"), ("vocab.txt",), ("spiece.model",),
                    ("sentencepiece.bpe.model",))
_SCORERS: dict[tuple, object] = {}  # loaded BERTScorers, so a reward loads its model once


class BertScoreModelMissing(FileNotFoundError):
    """The local BERTScore model folder is not given or incomplete; the message says the fix."""


def prepare_text(text: str | None) -> str:
    """Lower-case, collapse runs of spaces, cut at ``MAX_CHARS``: ``"No  Effusion."`` -> ``"no effusion."``."""
    return re.sub(r" +", " ", (text or "").lower())[:MAX_CHARS]


def bertscore(refs: Sequence[str | None], hyps: Sequence[str | None], model: str | os.PathLike | None = None,
              num_layers: int | None = None, rescale: bool = True, baseline_path: str | os.PathLike | None = None,
              batch_size: int = 64, device: str | None = None, fast: bool = True) -> MetricResult:
    """BERTScore F1 per pair (``per_sample["bertscore"]``) and its mean (``aggregate``).

    ``model``: local model folder (default: ``$RADRL_BERTSCORE_MODEL``); ``num_layers``:
    layer to use (default: ``bert-score``'s for a known model, else the last);
    ``rescale``: baseline-rescaled F1 (RadCliQ's), with ``baseline_path`` or the shipped
    baseline of a known model; ``device``: torch device (default cuda when available).
    Results do not depend on ``batch_size`` beyond float rounding.
    ``fast`` (default): each distinct text encoded once and references' token vectors cached across calls
    (``radrl.metrics.encodings``: a GRPO group's 8 rollouts share one reference); ``fast=False``: the
    ``bert-score`` package's ``score``. Equal to float rounding, except where bert-score's batch padding
    enters a pair's greedy match (a token whose best cosine is negative): ``fast`` scores every pair alone.
    """
    check_aligned(refs, hyps)
    folder = _model_folder(model)
    name = _known_name(folder)
    layers = _layer(folder, name, num_layers)
    baseline = _baseline(name, rescale, baseline_path)
    versions = {
        "bert-score": package_version("bert-score"),
        "transformers": package_version("transformers"),
        "bertscore_model": f"{folder} ({name or 'not a bert-score model type'}; {_weights_fingerprint(folder)})",
        "bertscore": f"F1, layer {layers}, no idf, {'rescaled with ' + str(baseline) if rescale else 'not rescaled'}; "
                     f"text lower-cased, spaces collapsed, cut at {MAX_CHARS} characters",
    }
    if not refs:
        return MetricResult(aggregate={"bertscore": 0.0}, per_sample={"bertscore": []}, versions=versions)

    scorer = _scorer(folder, layers, rescale, baseline, batch_size, metric_device(device))
    hyp_texts, ref_texts = [prepare_text(h) for h in hyps], [prepare_text(r) for r in refs]
    # bert-score sets raw P, R, F1 to 0 when a side is empty, but its code for that path
    # calls a tokenizer method transformers 5 removed; so empty pairs get that value here.
    empty_f1 = -float(scorer.baseline_vals[2]) / (1 - float(scorer.baseline_vals[2])) if rescale else 0.0
    full = [i for i, (h, r) in enumerate(zip(hyp_texts, ref_texts)) if h.strip() and r.strip()]
    values = [empty_f1] * len(hyp_texts)
    if full and fast:
        from radrl.metrics.encodings import TextCache, bertscore_pairs

        if not hasattr(scorer, "radrl_cache"):
            scorer.radrl_cache = TextCache()
        f1 = bertscore_pairs(scorer, [hyp_texts[i] for i in full], [ref_texts[i] for i in full], batch_size,
                             scorer.radrl_cache)
        for i, x in zip(full, f1):
            values[i] = float(x)
    elif full:
        verbose = showing_progress()   # bert-score's own bars; its status lines go to stderr, not a command's output
        with contextlib.redirect_stdout(sys.stderr) if verbose else contextlib.nullcontext():
            _, _, f1 = scorer.score([hyp_texts[i] for i in full], [ref_texts[i] for i in full], batch_size=batch_size,
                                    verbose=verbose)
        for i, x in zip(full, f1.tolist()):
            values[i] = float(x)
    return MetricResult(aggregate={"bertscore": math.fsum(values) / len(values)},
                        per_sample={"bertscore": values}, versions=versions)


def check_weights(model: str | os.PathLike | None = None, rescale: bool = True,
                  baseline_path: str | os.PathLike | None = None) -> None:
    """What ``bertscore`` needs, checked without loading the model (``radrl.metrics.check_metrics``): the
    ``bert-score`` package, a complete model folder, its layer and (rescaled F1) a baseline. Raises the error
    ``bertscore`` would raise on first use, with the fix."""
    import importlib.util

    if importlib.util.find_spec("bert_score") is None:
        raise ImportError("BERTScore needs the bert-score package: pip install 'bert-score>=0.3.13' (radrl's "
                          "`bertscore` extra)")
    folder = _model_folder(model)
    name = _known_name(folder)
    _layer(folder, name, None)
    _baseline(name, rescale, baseline_path)


def _missing_message(why: str) -> str:
    return (f"{why}. BERTScore (the RadCliQ configuration) needs the '{RADCLIQ_MODEL}' model folder from the "
            f"Hugging Face hub (https://huggingface.co/{RADCLIQ_MODEL}): config.json, the weights "
            f"(model.safetensors or pytorch_model.bin) and the tokenizer files (vocab.json, merges.txt, "
            f"tokenizer.json, tokenizer_config.json). On a machine with internet run "
            f"`{HF_DOWNLOAD} {RADCLIQ_MODEL} --local-dir /models/{RADCLIQ_MODEL}`, copy the folder here "
            f"keeping its name '{RADCLIQ_MODEL}' (so bert-score's layer and rescale baseline are used), and pass "
            f"model='/models/{RADCLIQ_MODEL}' or set {ENV_VAR}=/models/{RADCLIQ_MODEL}. "
            "Nothing is downloaded at run time.")


def _model_folder(model: str | os.PathLike | None) -> Path:
    return model_folder(model, ENV_VAR, "BERTScore model", _lacking,
                        lambda why: BertScoreModelMissing(_missing_message(why)))


def _lacking(folder: Path) -> list[str]:
    missing = [] if (folder / "config.json").is_file() else ["config.json"]
    if not any((folder / w).is_file() for w in _WEIGHTS):
        missing.append("model weights (model.safetensors or pytorch_model.bin)")
    if not any(all((folder / f).is_file() for f in group) for group in _TOKENIZER_FILES):
        missing.append("tokenizer files (tokenizer.json, or vocab.json + merges.txt, or vocab.txt)")
    return missing


def _known_name(folder: Path) -> str | None:
    """The ``bert-score`` model type a folder holds, by its name (last one or two path parts)."""
    from bert_score.utils import model2layers

    for name in (folder.name, f"{folder.parent.name}/{folder.name}"):
        if name in model2layers:
            return name
    return None


def _config_layers(folder: Path) -> int:
    config = json.loads((folder / "config.json").read_text())
    for key in ("num_hidden_layers", "n_layers", "num_layers", "n_layer"):
        if isinstance(config.get(key), int):
            return config[key]
    raise ValueError(f"{folder / 'config.json'} gives no layer count (num_hidden_layers); pass num_layers=")


def _layer(folder: Path, name: str | None, num_layers: int | None) -> int:
    from bert_score.utils import model2layers

    available = _config_layers(folder)
    layers = num_layers if num_layers is not None else (model2layers[name] if name else available)
    if not 0 <= layers <= available:
        raise ValueError(f"num_layers={layers} but {folder} has {available} layers; pick 0..{available}")
    return layers


def _baseline(name: str | None, rescale: bool, baseline_path: str | os.PathLike | None) -> Path | None:
    if not rescale:
        return None
    if baseline_path is not None:
        path = Path(baseline_path).expanduser()
    elif name is not None:
        import bert_score

        path = Path(bert_score.__file__).parent / "rescale_baseline" / "en" / f"{name}.tsv"
    else:
        raise ValueError("rescale=True needs a baseline: the model folder's name is not a model bert-score ships "
                         f"a baseline for (name it '{RADCLIQ_MODEL}' for RadCliQ's), so pass baseline_path= (a "
                         "bert-score baseline TSV, LAYER,P,R,F rows) or rescale=False for raw F1")
    if not path.is_file():
        raise FileNotFoundError(f"BERTScore rescale baseline {path} not found; pass baseline_path= or rescale=False")
    return path.resolve()


@lru_cache(maxsize=8)
def _weights_fingerprint(folder: Path) -> str:
    """The weights file's fingerprint (once per folder per process): two servers or runs with the same
    model name but other weights must not look alike."""
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return file_fingerprint(folder / name)
    return "weights file not found"


def _scorer(folder: Path, layers: int, rescale: bool, baseline: Path | None, batch_size: int, device: str | None):
    key = (str(folder), layers, rescale, str(baseline), device)
    if key not in _SCORERS:
        from bert_score import BERTScorer

        _SCORERS[key] = BERTScorer(model_type=str(folder), num_layers=layers, batch_size=batch_size, device=device,
                                   lang="en", rescale_with_baseline=rescale,
                                   baseline_path=str(baseline) if baseline else None)
        tokenizer = _SCORERS[key]._tokenizer
        if type(tokenizer).__name__ in ("RobertaTokenizer", "GPT2Tokenizer"):
            # bert-score passes add_prefix_space=True to encode(), which transformers 5 ignores; its baselines
            # were computed with the prefix space, so the tokenizer must add it itself.
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(str(folder), use_fast=False, add_prefix_space=True)
            _SCORERS[key]._tokenizer = tokenizer
        if tokenizer.model_max_length > 100_000:  # no limit in tokenizer_config.json: positions stop at 512
            tokenizer.model_max_length = 512
    return _SCORERS[key]


# --- distilbert-base-uncased, layer 5: the paper's BERTScore --------------------------------------------


def bertscore_distilbert(refs: Sequence[str | None], hyps: Sequence[str | None],
                         model: str | os.PathLike | None = None, batch_size: int = 64,
                         device: str | None = None) -> MetricResult:
    """BERTScore F1 as the paper reports and rewards it (``per_sample["bertscore_distilbert"]``): rescaled F1
    of ``distilbert-base-uncased`` at layer 5, no IDF, with ``bert-score``'s shipped baseline for that model.

    Why a second BERTScore: RadVLM's evaluation (the paper's tables), RadEval's standalone BERTScore and
    RadVLM-GRPO's BERTScore reward all use this encoder, while RadCliQ-v1 uses distilroberta-base
    (``bertscore``); the two numbers differ and neither stands in for the other. ``model``: the local
    ``distilbert-base-uncased`` folder (default ``$RADRL_BERTSCORE_DISTILBERT_MODEL``); its layer and
    baseline are fixed here, whatever the folder is called. Text is prepared as the reward does
    (``prepare_text``: lower-cased, a no-op for this uncased model, and cut at 2,048 characters).

    >>> r = bertscore_distilbert(["no effusion."], ["No effusion."], "/models/distilbert-base-uncased")  # doctest:+SKIP
    >>> round(r.aggregate["bertscore_distilbert"], 4)  # doctest: +SKIP
    1.0
    """
    folder = _distilbert_folder(model)
    r = bertscore(refs, hyps, model=folder, num_layers=DISTILBERT_LAYER, baseline_path=_distilbert_baseline(),
                  batch_size=batch_size, device=device)
    versions = {k: v for k, v in r.versions.items() if k not in ("bertscore_model", "bertscore")}
    versions["bertscore_distilbert_model"] = r.versions["bertscore_model"]
    versions["bertscore_distilbert"] = r.versions["bertscore"]
    return MetricResult(aggregate={"bertscore_distilbert": r.aggregate["bertscore"]},
                        per_sample={"bertscore_distilbert": r.per_sample["bertscore"]}, versions=versions)


def check_distilbert_weights(model: str | os.PathLike | None = None) -> None:
    """What ``bertscore_distilbert`` needs, checked without loading the model: ``bert-score`` (with its
    distilbert-base-uncased baseline) and a complete DistilBERT folder; raises with the fix."""
    check_weights(_distilbert_folder(model), baseline_path=_distilbert_baseline())


def _distilbert_folder(model: str | os.PathLike | None) -> Path:
    folder = model_folder(model, DISTILBERT_ENV_VAR, "BERTScore (distilbert) model", _lacking,
                          lambda why: BertScoreModelMissing(_distilbert_missing(why)))
    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type") != "distilbert" or config.get("n_layers", 0) < DISTILBERT_LAYER:
        raise BertScoreModelMissing(_distilbert_missing(
            f"{folder} holds a {config.get('model_type')!r} model with {config.get('n_layers')} layers, not "
            f"{DISTILBERT_MODEL} (model_type 'distilbert', 6 layers)"))
    return folder


def _distilbert_baseline() -> Path:
    """bert-score's shipped rescale baseline for distilbert-base-uncased (what RadVLM's evaluation uses)."""
    try:
        import bert_score
    except ImportError:
        raise ImportError("BERTScore needs the bert-score package: pip install 'bert-score>=0.3.13' (radrl's "
                          "`bertscore` extra)") from None
    return Path(bert_score.__file__).parent / "rescale_baseline" / "en" / f"{DISTILBERT_MODEL}.tsv"


def _distilbert_missing(why: str) -> str:
    return (f"{why}. BERTScore (distilbert), the paper's BERTScore, needs the '{DISTILBERT_MODEL}' folder from the "
            f"Hugging Face hub (https://huggingface.co/{DISTILBERT_MODEL}): config.json, model.safetensors and "
            f"vocab.txt (+ tokenizer_config.json). On a machine with internet run `{HF_DOWNLOAD} "
            f"{DISTILBERT_MODEL} config.json model.safetensors vocab.txt tokenizer_config.json --local-dir "
            f"/models/{DISTILBERT_MODEL}`, copy the folder here, and pass model='/models/{DISTILBERT_MODEL}' or set "
            f"{DISTILBERT_ENV_VAR}=/models/{DISTILBERT_MODEL}. Nothing is downloaded at run time.")
