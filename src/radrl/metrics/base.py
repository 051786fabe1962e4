"""What every scorer shares: the result it returns (``MetricResult``), what a key means (``MetricSpec``),
and the small helpers the scorer modules use (aligned inputs, package versions, weight folders and
fingerprints, errors that name their context).

Everything here is re-exported by ``radrl.metrics``; scorer modules import it from here, so that
importing one never goes through the package's registry (``radrl.metrics.registry``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["MetricResult", "MetricSpec", "check_aligned", "file_fingerprint", "model_folder", "named_error",
           "package_version"]


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

    >>> spec = MetricSpec("radcliq_v1", "RadCliQ-v1 (lower better)", "raw", False)
    >>> spec.format(0.8642), spec.format_delta(-0.0123), MetricSpec("n", "n", "int", None).format(60.0)
    ('0.864', '-0.012', '60')
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
