"""``radrl compare``: several ``radrl eval`` folders side by side (``radrl.eval.compare``); prints the leaderboard."""

from __future__ import annotations

from pathlib import Path

from radrl.cli.args import ArgumentParser
from radrl.eval.compare import compare
from radrl.eval.contract import VARIABLE


def main(argv: list[str] | None = None) -> dict:
    p = ArgumentParser(prog="radrl compare", description="Several evaluation runs side by side.")
    p.add_argument("runs", nargs="+", help="radrl eval output folders, optionally NAME=FOLDER")
    p.add_argument("--out", required=True, help="folder for leaderboard.md/.csv/.json and report.html")
    p.add_argument("--published", action="store_true", help="add the paper's numbers as reference rows")
    p.add_argument("--baseline", default=None, help="run the paired tests compare against (default: the first)")
    p.add_argument("--logs", nargs="*", default=[],
                   help="NAME=log_history.json of training runs, for reward and length curves in the HTML "
                        "(found by itself in the checkpoint folder of a run evaluated with --engine hf)")
    p.add_argument("--examples", type=int, default=8, help="examples per task in the HTML report")
    p.add_argument("--no-html", action="store_true")
    p.add_argument("--allow-mismatch", action="store_true",
                   help="write the comparison even when the runs measured different things (data, requests, pixel "
                        "budget, decoding, precision, token limits, metric versions); every output then starts with "
                        "the differences")
    p.add_argument("--vary", nargs="+", default=[], choices=VARIABLE,
                   help="settings that are the experiment's variable and may differ (e.g. decoding.thinking: "
                        "thinking vs direct models, asked the same requests with and without ' /think'); "
                        "named at the top of the leaderboard")
    a = p.parse_args(argv)
    logs = {}
    for spec in a.logs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).parent.name, spec
        logs[name] = path
    payload = compare(a.runs, a.out, published=a.published, baseline=a.baseline, html=not a.no_html, logs=logs,
                      n_examples=a.examples, allow_mismatch=a.allow_mismatch, vary=tuple(a.vary))
    print((Path(a.out) / "leaderboard.md").read_text())
    print(f"written to {a.out}")
    return payload
