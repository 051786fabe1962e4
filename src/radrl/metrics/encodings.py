"""What the model-based scorers share to be fast: a cache of reference encodings, and BERTScore's matching.

Why: a GRPO step scores 512 prompts x 8 rollouts, and the 8 rollouts of a prompt share one reference; the
same references come back in later steps (every epoch, every rank). RadGraph, CheXbert and BERTScore
each encode a text independently of the others in its call, so a reference's encoding (RadGraph's
annotation, CheXbert's [CLS] vector and labels, BERTScore's token vectors) can be computed once and reused:
``TextCache`` keeps the references' encodings of one loaded model, least recently used out first.
Hypotheses are not stored (rollouts rarely repeat across steps, and they would push references out), but a
hypothesis equal to a cached reference is served from it. Values do not change: an encoding is a function
of its text alone (the scorers' batching tests check that padding with other texts changes nothing).

``bertscore_pairs`` is ``bert-score``'s greedy matching (``bert_cos_score_idf`` without idf) run on
encodings that are computed once per distinct text, in batches of similar length, and cached; it equals
``BERTScorer.score`` on each pair alone (tests/metrics/test_encodings.py).

>>> cache = TextCache(2)
>>> cache.put("no effusion.", 1); cache.put("edema.", 2); cache.put("clear.", 3)
>>> cache.get("no effusion.") is None, cache.get("clear.")
(True, 3)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from radrl.metrics.base import progress

__all__ = ["CACHE_SIZE", "TextCache", "bertscore_pairs", "encode_once"]

# Reference encodings kept per loaded model: four steps of 512 prompts. A BERTScore entry is its token vectors
# (about 50 x 768 floats, 150 kB), so this bounds that cache near 300 MB; the others are far smaller.
CACHE_SIZE = 2048


class TextCache:
    """Text -> encoding, at most ``size`` entries, least recently used dropped first (``size`` 0: off)."""

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self.size = size
        self.data: OrderedDict[str, Any] = OrderedDict()
        self.hits = self.misses = 0

    def get(self, text: str) -> Any:
        value = self.data.get(text)
        if value is None:
            self.misses += 1
            return None
        self.hits += 1
        self.data.move_to_end(text)
        return value

    def put(self, text: str, value: Any) -> None:
        if self.size <= 0:
            return
        self.data[text] = value
        self.data.move_to_end(text)
        while len(self.data) > self.size:
            self.data.popitem(last=False)

    def clear(self) -> None:
        self.data.clear()
        self.hits = self.misses = 0


def encode_once(texts: Sequence[str], references: Sequence[str], encode: Callable[[list[str]], list],
                cache: TextCache | None) -> dict[str, Any]:
    """Encoding of every distinct text in ``texts``: from ``cache`` where it holds one, else by one ``encode``
    call on the rest (in first-seen order); the encodings of ``references`` are then stored in ``cache``."""
    distinct = list(dict.fromkeys(texts))
    found = {t: v for t in distinct if cache is not None and (v := cache.get(t)) is not None}
    todo = [t for t in distinct if t not in found]
    found.update(zip(todo, encode(todo) if todo else []))
    if cache is not None:
        for t in dict.fromkeys(references):
            if t in found:
                cache.put(t, found[t])
    return found


def bertscore_pairs(scorer, hyps: Sequence[str], refs: Sequence[str], batch_size: int,
                    cache: TextCache | None) -> list[float]:
    """``scorer.score(hyps, refs)[2]`` (F1, rescaled when the scorer rescales), each pair as if scored alone.

    ``scorer`` is a loaded ``bert_score.BERTScorer`` (its model already cut to the chosen layer, its tokenizer,
    its baseline); no idf. Texts must be non-blank. Each distinct text is encoded once, in length-sorted
    batches, under ``torch.inference_mode``, and its unit-length token vectors kept (references in ``cache``).
    """
    import torch
    from bert_score.utils import sent_encode

    tokenizer, model = scorer._tokenizer, scorer._model
    device = next(model.parameters()).device
    special = {tokenizer.cls_token_id, tokenizer.sep_token_id}  # bert-score's idf_dict without idf: weight 0

    def encode(texts: list[str]) -> list:
        ids = [sent_encode(tokenizer, t) for t in texts]
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        out: list = [None] * len(ids)
        pad = tokenizer.pad_token_id
        with torch.inference_mode():
            for start in progress(range(0, len(order), batch_size), "BERTScore"):   # on a terminal, in eval/score
                rows = [ids[i] for i in order[start:start + batch_size]]
                width = max(len(r) for r in rows)
                x = torch.tensor([r + [pad] * (width - len(r)) for r in rows], device=device)
                mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows], device=device)
                hidden = model(x, attention_mask=mask)[0]  # (batch, width, dim)
                for k, i in enumerate(order[start:start + batch_size]):
                    emb = hidden[k, :len(ids[i])]
                    emb = emb / torch.norm(emb, dim=-1).unsqueeze(-1)  # as greedy_cos_idf normalises
                    weight = torch.tensor([0.0 if t in special else 1.0 for t in ids[i]], device=device)
                    out[i] = (emb, weight / weight.sum())
        return out

    enc = encode_once([*refs, *hyps], refs, encode, cache)
    scores = []
    with torch.inference_mode():
        for h, r in zip(hyps, refs):
            (he, hw), (re_, rw) = enc[h], enc[r]
            sim = he @ re_.T  # (hyp tokens, ref tokens)
            p = (sim.max(dim=1)[0] * hw).sum()
            rec = (sim.max(dim=0)[0] * rw).sum()
            scores.append(torch.stack([p, rec, 2 * p * rec / (p + rec)]))
        if not scores:
            return []
        prf = torch.stack(scores).cpu()
        prf = prf.masked_fill(torch.isnan(prf), 0.0)
        if scorer.rescale_with_baseline:
            prf = (prf - scorer.baseline_vals) / (1 - scorer.baseline_vals)
    return prf[:, 2].tolist()
