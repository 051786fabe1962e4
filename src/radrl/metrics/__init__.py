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

Modules: ``base`` (``MetricResult``, ``MetricSpec`` and the helpers scorer modules share), ``registry``
(``METRICS``, ``check_metrics`` and the spec lookup), one module per scorer, and ``files`` (reports in
files: ``radrl score``, ``radrl label``).

>>> METRICS["text"](["no pneumothorax."], ["no pneumothorax."]).aggregate["rouge_l"]
1.0
"""

from radrl.metrics.base import (
    DEVICE_ENV,
    MetricResult,
    MetricSpec,
    check_aligned,
    file_fingerprint,
    metric_device,
    metric_progress,
    model_folder,
    named_error,
    package_version,
    progress,
    showing_progress,
)
from radrl.metrics.registry import EVAL_SPECS, METRICS, all_specs, check_metrics, metric_spec, scorer_specs

__all__ = ["DEVICE_ENV", "EVAL_SPECS", "METRICS", "MetricResult", "MetricSpec", "all_specs", "check_aligned",
           "check_metrics", "file_fingerprint", "metric_device", "metric_progress", "metric_spec", "model_folder",
           "named_error", "package_version", "progress", "scorer_specs", "showing_progress"]
