"""Which metrics there are: ``METRICS`` (a report metric's name -> its scorer, imported on first use),
``check_metrics`` (the cheap preflight of named metrics) and the lookup of every key's ``MetricSpec``
(``all_specs``, ``metric_spec``), gathered from the scorer modules' ``SPECS`` and ``EVAL_SPECS``.

Everything here is re-exported by ``radrl.metrics``, where callers and tests reach it
(``radrl.metrics.METRICS`` is this very dict).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import lru_cache
from importlib import import_module

from radrl.metrics.base import MetricResult, MetricSpec

__all__ = ["EVAL_SPECS", "METRICS", "all_specs", "check_metrics", "metric_spec"]


# Keys radrl.eval.score adds to every task's result (declared here because metrics never import eval).
EVAL_SPECS = (
    MetricSpec("well_formed", "well-formed", description="share of completions the parser read cleanly"),
    MetricSpec("avg_chars", "answer chars", "int", None,
               "mean answer length in characters (the paper's check for length hacking)"),
    MetricSpec("n", "n", "int", None, "rows scored"),
)
# The modules with a SPECS tuple, in the order tables list their keys; a module behind a METRICS entry that is
# not listed here (a new metric) is read after them, so adding a metric needs no entry here.
_SPEC_MODULES = ("text", "bertscore", "chexbert", "radgraph", "green", "radcliq", "chexpert", "grounding")


@lru_cache(maxsize=1)
def all_specs() -> dict[str, MetricSpec]:
    """Every declared spec by key, in table order (the scorer modules', then ``EVAL_SPECS``)."""
    out: dict[str, MetricSpec] = {}
    for module in dict.fromkeys([*_SPEC_MODULES, *map(_module_of, METRICS.values())]):
        for spec in scorer_specs(module):
            out.setdefault(spec.key, spec)
    for spec in EVAL_SPECS:
        out.setdefault(spec.key, spec)
    return out


def _module_of(scorer) -> str:
    """The module that holds a ``METRICS`` scorer (``_lazy`` records it; a user's function has ``__module__``)."""
    return getattr(scorer, "module", None) or getattr(scorer, "__module__", "")


def scorer_specs(scorer_or_module) -> tuple[MetricSpec, ...]:
    """The ``SPECS`` declared beside a scorer (a ``METRICS`` entry, or its module's name); empty when none."""
    module = scorer_or_module if isinstance(scorer_or_module, str) else _module_of(scorer_or_module)
    try:
        loaded = import_module(module if "." in module else f"radrl.metrics.{module}")
    except ImportError:
        return ()
    return tuple(getattr(loaded, "SPECS", ()))


def metric_spec(key: str) -> MetricSpec:
    """The spec of ``key``. A key nobody declared gets one named by the key itself (shown raw, 3 decimals,
    no direction), so a new scorer's numbers reach every table before anyone writes its spec.

    >>> metric_spec("chexpert_rules_micro_f1_14").name
    'CheXpert-rules micro-F1 (14)'
    >>> metric_spec("radcliq_v1").format(0.8642), metric_spec("my_new_key").name
    ('0.864', 'my_new_key')
    """
    return all_specs().get(key) or MetricSpec(key, key, "raw", None, "no MetricSpec declared for this key")


def _lazy(module: str, function: str, check: str | None = None) -> Callable[[list[str], list[str]], MetricResult]:
    def scorer(refs: list[str], hyps: list[str]) -> MetricResult:
        return getattr(import_module(f"radrl.metrics.{module}"), function)(refs, hyps)

    scorer.__name__ = scorer.__qualname__ = function
    scorer.__doc__ = f"radrl.metrics.{module}.{function}, imported on first use."
    scorer.module = module  # type: ignore[attr-defined]  # where its SPECS are (all_specs)
    if check:  # the scorer's cheap preflight (check_metrics): it travels with the scorer, not with its name
        scorer.check = lambda: getattr(import_module(f"radrl.metrics.{module}"), check)()  # type: ignore[attr-defined]
    return scorer


# Report metrics, name -> (refs, hyps) -> MetricResult.
METRICS: dict[str, Callable[[list[str], list[str]], MetricResult]] = {
    "text": _lazy("text", "score_text"),
    "rouge_l": _lazy("text", "score_rouge_l"),  # the same ROUGE-L as "text", alone (cheaper for rewards)
    "gleu": _lazy("text", "score_gleu"),  # the same GLEU as "text", alone
    "chexpert": _lazy("chexpert", "chexpert_f1"),
    "meteor": _lazy("text", "score_meteor", "check_meteor"),  # needs the `meteor` extra (pycocoevalcap + Java)
    "bertscore": _lazy("bertscore", "bertscore", "check_weights"),  # bert-score + a local model (RADRL_BERTSCORE_MODEL)
    # the paper's BERTScore (RadVLM's evaluation): distilbert-base-uncased layer 5 (RADRL_BERTSCORE_DISTILBERT_MODEL)
    "bertscore_distilbert": _lazy("bertscore", "bertscore_distilbert", "check_distilbert_weights"),
    "radgraph": _lazy("radgraph", "radgraph", "check_weights"),  # RadGraph-XL archive on disk (RADRL_RADGRAPH_MODEL)
    "chexbert": _lazy("chexbert", "chexbert", "check_weights"),  # chexbert.pth + BERT files (RADRL_CHEXBERT_MODEL)
    "radcliq": _lazy("radcliq", "radcliq", "check_weights"),  # RadGraph-XL + CheXbert + BERTScore (the three variables)
    "green": _lazy("green", "green", "check_judge"),  # GREEN judge: RADRL_GREEN_MODEL (local) or RADRL_GREEN_ENDPOINT
    "ratescore": _lazy("ratescore", "ratescore", "check_weights"),  # RaTE-NER + BioLORD folders (RADRL_RATESCORE_MODEL)
}


def check_metrics(names: Iterable[str]) -> None:
    """Stop a run before its expensive part (generation, a model load, training) when a metric cannot score.

    An unknown name is refused with the closest known one; a model-based metric runs its scorer's ``check``
    (files, settings and runtimes only, no model loads), which raises the error the scorer would raise on first
    use, download instructions included. A scorer without ``check`` (the offline ones, or your own put into
    ``METRICS``) needs nothing checked.

    >>> check_metrics(["text", "chexpert"])  # offline: nothing to fetch
    >>> check_metrics(["rouge-l"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: unknown metric 'rouge-l' (did you mean 'rouge_l'?); known metrics: [...]
    """
    from radrl.lookup import resolve  # the one lookup with "did you mean" (rewards and the reward server use it too)

    scorers = [resolve(name, METRICS, "metric") for name in dict.fromkeys(names)]
    for scorer in scorers:
        check = getattr(scorer, "check", None)
        if check is not None:
            check()
