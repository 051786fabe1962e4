"""``radrl <verb>``: one verb per pipeline stage.

    radrl demo         the whole pipeline on synthetic data with the tiny model (CPU, minutes)
    radrl synth-data   write synthetic chest X-rays with reports and boxes (samples JSONL)
    radrl tiny-model   build a tiny random Qwen3-VL with a tokenizer trained on a corpus
    radrl sft          supervised fine-tuning from a YAML recipe (+ overrides)
    radrl grpo         GRPO from a YAML recipe (+ overrides)
    radrl eval         generate, parse, score and write metrics for a model on a split
    radrl prepare      read a dataset in its published layout into samples (radrl prepare --list)
    radrl export-llava samples JSONL -> the paper's task mix -> LLaVA / RadVLM JSON
    radrl coldstart    teacher thinking traces -> validated cold-start SFT data
    radrl experiment   the four-way GRPO experiment ({general, domain} x {direct, thinking}) -> comparison table
    radrl score        score a file of generated reports against references with chosen metrics
    radrl label        CheXpert labels (1/0/-1/blank) for a file of reports, as CSV
    radrl compare      several evaluation runs side by side (Markdown, CSV, JSON, HTML)
    radrl reward-server  serve clinical scorers over HTTP to GRPO trainers
    radrl plan         memory per GPU of a recipe before a cluster job: fits, or what to change
    radrl predict      a checkpoint's report and boxes for PNG/JPEG/DICOM files, folders or globs, as JSON lines
    radrl app          a browser app on a checkpoint: upload a film, stream its report, draw boxes, chat (127.0.0.1)
    radrl recipes      the recipes and launch configs radrl ships: list, copy out to edit, path
    radrl --version    the installed radrl version (recorded in every manifest and checkpoint)
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable

# Verb -> its module in radrl.cli, whose main(argv) runs it; imported only when the verb runs.
MODULES = {"demo": "demo", "synth-data": "synth_data", "tiny-model": "tiny_model", "sft": "sft", "grpo": "grpo",
           "eval": "eval", "prepare": "prepare", "export-llava": "export_llava", "coldstart": "coldstart",
           "experiment": "experiment", "score": "score", "label": "label", "compare": "compare",
           "reward-server": "reward_server", "plan": "plan", "predict": "predict", "app": "app", "recipes": "recipes"}


def _lazy(module: str) -> Callable[[list[str]], object]:
    """The verb's ``main``, imported from ``radrl.cli.<module>`` when it runs."""

    def run(argv: list[str]) -> object:
        return importlib.import_module(f"radrl.cli.{module}").main(argv)

    run.__name__ = run.__qualname__ = module
    return run


VERBS = {verb: _lazy(module) for verb, module in MODULES.items()}


class _Console(logging.StreamHandler):
    """radrl's log lines as plain text on the current ``sys.stderr`` (looked up per line, so a redirected or
    captured stream gets them); stdout stays the command's result (``radrl label`` writes CSV there)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logging.Formatter("%(message)s"))

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler.__init__ sets it; the property always answers sys.stderr
        pass


def configure_logging(level: int = logging.INFO) -> None:
    """Show the library's progress (``logging.getLogger("radrl....")``, INFO and above) on the console; once
    per process, and only where nobody set the ``radrl`` logger's level already."""
    logger = logging.getLogger("radrl")
    if not any(isinstance(h, _Console) for h in logger.handlers):
        logger.addHandler(_Console())
    if logger.level == logging.NOTSET:
        logger.setLevel(level)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["--version"], ["-V"]):
        from radrl.package import version

        print(f"radrl {version()}")
        return
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in VERBS:
        print(__doc__)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"unknown verb {argv[0]!r}; choose one of: {', '.join(VERBS)}")
            sys.exit(2)
        return
    configure_logging()
    try:
        VERBS[argv[0]](argv[1:])
    except (OSError, ValueError, ImportError) as e:
        # Our errors name the file, the row and the fix; a traceback would bury that line. RADRL_DEBUG=1 keeps it.
        # OSError: missing files, and an endpoint that is down or refuses (models.endpoint.EndpointError).
        if os.environ.get("RADRL_DEBUG"):
            raise
        print(f"radrl {argv[0]}: error: {e}\n(set RADRL_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(1)
