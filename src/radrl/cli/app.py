"""``radrl app``: a browser app on a checkpoint: upload a film, stream its report, draw boxes, chat (``radrl.app.web``).

    radrl app --model runs/demo/sft --max-pixels 16384          # then open http://127.0.0.1:7860
    RADRL_APP_TOKEN=secret radrl app --model CKPT --host 0.0.0.0  # reachable by others: log in with the token
"""

from __future__ import annotations

import argparse
import os
import sys

from radrl.cli.args import ArgumentParser
from radrl.cli.predict import add_model_args, load_predictor


def main(argv: list[str] | None = None) -> None:
    p = ArgumentParser(prog="radrl app", description=__doc__.split(": ", 1)[1],
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog="Requests, pixel budget, generation and parsing are radrl eval's. Needs "
                                       "gradio: pip install 'radrl[app]'.")
    p.add_argument("--model", required=True, help="checkpoint folder (radrl tiny-model OUT makes a test one)")
    p.add_argument("--host", default="127.0.0.1", help="bind address; anything but loopback needs a token")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--token", default=None,
                   help="password of the login page (prefer $RADRL_APP_TOKEN: command lines are visible)")
    add_model_args(p, "append ' /think'; the thinking shows in its own block")
    p.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload the page accepts")
    a = p.parse_args(argv)

    from radrl.app.web import TOKEN_ENV, check_host

    token = a.token or os.environ.get(TOKEN_ENV) or None
    check_host(a.host, token)  # before minutes of model loading
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")   # no calls home, set before gradio is imported
    try:
        import gradio  # noqa: F401 - only checks that it is installed
    except ImportError:
        raise ImportError("radrl app needs gradio: pip install 'radrl[app]'") from None
    from radrl.app.web import launch

    predictor = load_predictor(a)
    print(f"radrl app: {a.model} on http://{a.host}:{a.port} ({'token required' if token else 'no token'}); "
          "research use only. Ctrl-C stops it.", file=sys.stderr, flush=True)
    launch(predictor, host=a.host, port=a.port, token=token, max_upload_mb=a.max_upload_mb, quiet=True)
