"""Metrics: the source of truth for every number radrl reports or optimises.

Each scorer takes plain lists (references first, then hypotheses, in the order the
field's tools use) and returns a ``MetricResult``: corpus-level ``aggregate`` values,
``per_sample`` values aligned with the inputs (rewards read these; bootstrap
confidence intervals resample them) and the ``versions`` of the packages and method
choices behind the numbers, so a table can say exactly what it measured.

``METRICS`` maps a report metric's name to its scorer ``(refs, hyps) -> MetricResult``;
the modules are imported on first use, so heavy scorers cost nothing until asked for.
Grounding is scored on boxes, not text: ``radrl.metrics.grounding.score_grounding``.

>>> METRICS["text"](["no pneumothorax."], ["no pneumothorax."]).aggregate["rouge_l"]
1.0
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path

__all__ = ["METRICS", "MetricResult", "check_aligned", "file_fingerprint", "named_error", "package_version"]


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


def _lazy(module: str, function: str) -> Callable[[list[str], list[str]], MetricResult]:
    def scorer(refs: list[str], hyps: list[str]) -> MetricResult:
        return getattr(import_module(f"radrl.metrics.{module}"), function)(refs, hyps)

    scorer.__name__ = scorer.__qualname__ = function
    scorer.__doc__ = f"radrl.metrics.{module}.{function}, imported on first use."
    return scorer


# Report metrics, name -> (refs, hyps) -> MetricResult.
METRICS: dict[str, Callable[[list[str], list[str]], MetricResult]] = {
    "text": _lazy("text", "score_text"),
    "rouge_l": _lazy("text", "score_rouge_l"),  # the same ROUGE-L as "text", alone (cheaper for rewards)
    "gleu": _lazy("text", "score_gleu"),  # the same GLEU as "text", alone
    "chexpert": _lazy("chexpert", "chexpert_f1"),
    "meteor": _lazy("text", "score_meteor"),  # needs the `meteor` extra (pycocoevalcap + Java) or WordNet
    "bertscore": _lazy("bertscore", "bertscore"),  # needs bert-score and a local model (RADRL_BERTSCORE_MODEL)
    "radgraph": _lazy("radgraph", "radgraph"),  # RadGraph-XL archive on disk (RADRL_RADGRAPH_MODEL)
    "chexbert": _lazy("chexbert", "chexbert"),  # chexbert.pth + bert-base-uncased files (RADRL_CHEXBERT_MODEL)
    "radcliq": _lazy("radcliq", "radcliq"),  # RadGraph-XL + CheXbert + BERTScore models (the three variables)
    "green": _lazy("green", "green"),  # GREEN judge: RADRL_GREEN_MODEL (local) or RADRL_GREEN_ENDPOINT
}


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
