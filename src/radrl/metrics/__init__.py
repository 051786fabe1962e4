"""Metrics: the source of truth for every number radrl reports or optimises.

Each scorer takes plain lists (references first, then hypotheses, in the order the
field's tools use) and returns a ``MetricResult``: corpus-level ``aggregate`` values,
``per_sample`` values aligned with the inputs (rewards read these; bootstrap
confidence intervals resample them) and the ``versions`` of the packages and method
choices behind the numbers, so a table can say exactly what it measured.

``METRICS`` maps a report metric's name to its scorer ``(refs, hyps) -> MetricResult``;
the modules are imported on first use, so heavy scorers cost nothing until asked for.
``check_metrics(names)`` checks names, weights and judges without loading a model, so that
an evaluation or a training run stops before its expensive part, not after it.
Grounding is scored on boxes, not text: ``radrl.metrics.grounding.score_grounding``.

Each scorer module declares a ``SPECS`` tuple of ``MetricSpec`` beside its scorer, one per
key it returns: the name a table prints, scale, direction and meaning. ``metric_spec(key)``
looks one up, so every table, summary and paired test says the same truthful thing about a
key (the modules import torch and friends inside their functions, so the lookup is cheap).

>>> METRICS["text"](["no pneumothorax."], ["no pneumothorax."]).aggregate["rouge_l"]
1.0
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import import_module
from pathlib import Path

__all__ = ["EVAL_SPECS", "METRICS", "MetricResult", "MetricSpec", "all_specs", "check_aligned", "check_metrics",
           "file_fingerprint", "metric_spec", "named_error", "package_version"]


@dataclass
class MetricResult:
    """``aggregate``: name -> corpus value; ``per_sample``: name -> one value per input
    (a metric with no per-sample form, such as corpus BLEU's brevity penalty, has only
    an aggregate); ``versions``: package or method -> version or description."""

    aggregate: dict[str, float] = field(default_factory=dict)
    per_sample: dict[str, list[float]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.aggregate.items() if not math.isfinite(v)}
        bad.update({k: "non-finite per-sample value" for k, v in self.per_sample.items()
                    if not all(math.isfinite(x) for x in v)})
        if bad:  # NaN is a bug in a scorer, never a score
            raise ValueError(f"metric values must be finite, got {bad}; fix the scorer that produced them")

    @classmethod
    def merge(cls, results: Iterable[MetricResult]) -> MetricResult:
        """One result from several scorers run on the same samples."""
        out = cls()
        for r in results:
            out.aggregate.update(r.aggregate)
            out.per_sample.update(r.per_sample)
            out.versions.update(r.versions)
        return out


@dataclass(frozen=True)
class MetricSpec:
    """What a metric key means, so that no table shows a bare key or a name that overstates it.

    ``scale``: ``"pct"`` (a 0-1 value shown x100, 1 decimal), ``"raw"`` (shown as is, 3 decimals) or
    ``"int"`` (counts, characters). ``higher_is_better``: None where neither is (counts, answer length).
    ``labels``: for label F1s, how many CheXpert labels the micro/macro average is over. ``same_as``: a key
    with the same numbers (``bleu4`` is ``bleu``); a table shows only one of the two.

    >>> metric_spec("chexpert_rules_micro_f1_14").name
    'CheXpert-rules micro-F1 (14)'
    >>> metric_spec("radcliq_v1").format(0.8642), metric_spec("my_new_key").name
    ('0.864', 'my_new_key')
    """

    key: str
    name: str
    scale: str = "pct"
    higher_is_better: bool | None = True
    description: str = ""
    needs_weights: bool = False
    labels: int | None = None
    same_as: str | None = None

    def format(self, value: float | None) -> str:
        if value is None:
            return "-"
        return {"pct": f"{100 * value:.1f}", "raw": f"{value:.3f}", "int": f"{value:.0f}"}[self.scale]

    def format_delta(self, value: float) -> str:
        """A difference of two values, in the unit ``format`` shows (percentage points for ``pct``)."""
        return {"pct": f"{100 * value:+.1f}", "raw": f"{value:+.3f}", "int": f"{value:+.0f}"}[self.scale]


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
    modules = dict.fromkeys([*_SPEC_MODULES, *(getattr(m, "module", None) or getattr(m, "__module__", None)
                                               for m in METRICS.values())])
    for module in filter(None, modules):
        for spec in getattr(import_module(module if "." in module else f"radrl.metrics.{module}"), "SPECS", ()):
            out.setdefault(spec.key, spec)
    for spec in EVAL_SPECS:
        out.setdefault(spec.key, spec)
    return out


def metric_spec(key: str) -> MetricSpec:
    """The spec of ``key``. A key nobody declared gets one named by the key itself (shown raw, 3 decimals,
    no direction), so a new scorer's numbers reach every table before anyone writes its spec."""
    return all_specs().get(key) or MetricSpec(key, key, "raw", None, "no MetricSpec declared for this key")


def check_aligned(refs: Sequence, hyps: Sequence) -> None:
    """Every report scorer takes aligned lists: one reference per hypothesis."""
    if len(refs) != len(hyps):
        raise ValueError(f"got {len(refs)} references and {len(hyps)} hypotheses; pass one reference per hypothesis")


def file_fingerprint(path: str | os.PathLike) -> str:
    """``"sha256:<first 16 hex> (<bytes> bytes)"``: which weights produced a table, without naming a
    download. Computed once per loaded model (hashing a 500 MB checkpoint takes a second or two)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return f"sha256:{digest.hexdigest()[:16]} ({os.path.getsize(path)} bytes)"


def model_folder(model: str | os.PathLike | None, env_var: str, what: str,
                 lacking: Callable[[Path], list[str]], missing: Callable[[str], Exception]) -> Path:
    """The folder of a model-based metric's weights: ``model``, else ``$env_var``. ``missing(why)`` builds the
    error (it carries the download instructions) when none is given, the folder does not exist, or
    ``lacking(folder)`` names files it needs. Not resolved: a link named after the model keeps that name."""
    given = model if model is not None else os.environ.get(env_var)
    if not given:
        raise missing(f"no {what} folder given (model=None and {env_var} unset)")
    folder = Path(given).expanduser()
    if not folder.is_dir():
        raise missing(f"{what} folder {folder} does not exist")
    absent = lacking(folder)
    if absent:
        raise missing(f"{what} folder {folder} lacks {', '.join(absent)}")
    return folder.absolute()


def package_version(name: str) -> str:
    """Installed version of a distribution, or "not installed"."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


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
    "radgraph": _lazy("radgraph", "radgraph", "check_weights"),  # RadGraph-XL archive on disk (RADRL_RADGRAPH_MODEL)
    "chexbert": _lazy("chexbert", "chexbert", "check_weights"),  # chexbert.pth + BERT files (RADRL_CHEXBERT_MODEL)
    "radcliq": _lazy("radcliq", "radcliq", "check_weights"),  # RadGraph-XL + CheXbert + BERTScore (the three variables)
    "green": _lazy("green", "green", "check_judge"),  # GREEN judge: RADRL_GREEN_MODEL (local) or RADRL_GREEN_ENDPOINT
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


def named_error(e: Exception, context: str) -> Exception:
    """``e`` again, of the same type (so callers still catch it), with ``context`` before its message;
    a ``RuntimeError`` when the type cannot be built from one message.

    >>> named_error(FileNotFoundError("no weights"), "reward report_radgraph")
    FileNotFoundError('reward report_radgraph: no weights')
    """
    message = f"{context}: {e}"
    try:
        return type(e)(message)
    except Exception:  # noqa: BLE001 (any constructor failure: e.g. UnicodeDecodeError needs five arguments)
        return RuntimeError(f"{context}: {type(e).__name__}: {e}")
