"""What every scorer shares: the result it returns (``MetricResult``), what a key means (``MetricSpec``),
and the small helpers the scorer modules use (aligned inputs, package versions, weight folders and
fingerprints, errors that name their context).

Everything here is re-exported by ``radrl.metrics``; scorer modules import it from here, so that
importing one never goes through the package's registry (``radrl.metrics.registry``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DEVICE_ENV", "MetricResult", "MetricSpec", "check_aligned", "file_fingerprint", "metric_device",
           "metric_progress", "model_folder", "named_error", "package_version", "progress", "showing_progress"]


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


# --- where model-based scorers run, and whether they show progress ----------------------

# The device every model-based scorer (RadGraph, CheXbert, BERTScore, GREEN, RaTEScore) runs on unless a call
# names one: what `--metric-device` sets for radrl eval, score and reward-server, and a recipe's `env:` for GRPO.
DEVICE_ENV = "RADRL_METRIC_DEVICE"
_PROGRESS: ContextVar[bool] = ContextVar("radrl_metric_progress", default=False)


def metric_device(device: str | None = None) -> str:
    """The torch device a model-based scorer runs on: ``device`` when given, else ``$RADRL_METRIC_DEVICE``,
    else the GPU when torch sees one. Why an environment variable: scorers are reached as
    ``METRICS[name](refs, hyps)`` from eval, score, the GRPO rewards and the reward server's worker
    processes alike, and one setting reaches them all (as the weight folders' variables do).

    >>> metric_device("cpu")
    'cpu'
    """
    import torch

    chosen = device or os.environ.get(DEVICE_ENV) or ("cuda" if torch.cuda.is_available() else "cpu")
    if chosen.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"metric device {chosen!r}, but torch sees no GPU on this machine; score on the CPU "
                         f"(--metric-device cpu, or unset {DEVICE_ENV})")
    return chosen


def showing_progress() -> bool:
    """Whether scorers show progress now: ``metric_progress`` is on and standard error is a terminal."""
    import sys

    return _PROGRESS.get() and sys.stderr.isatty()


@contextmanager
def metric_progress(enabled: bool = True) -> Iterator[None]:
    """Within this block, model-based scorers show a progress bar over their batches (``progress``).
    ``radrl eval`` and ``radrl score`` turn it on; rewards inside a training loop leave it off, where a bar
    at every step would bury the trainer's own log."""
    token = _PROGRESS.set(enabled)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def progress(items: Iterable, desc: str, total: int | None = None) -> Iterable:
    """``items`` with a progress bar on standard error when ``metric_progress`` is on, standard error is a
    terminal and there is more than one step (a log file gets no bar). Why: RadGraph or GREEN over a few
    thousand reports takes minutes, and a silent minute looks like a hang."""
    n = total if total is not None else (len(items) if isinstance(items, Sequence | range) else None)
    if not (showing_progress() and (n is None or n > 1)):
        return items
    import sys

    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, total=n, leave=False, file=sys.stderr, dynamic_ncols=True)
