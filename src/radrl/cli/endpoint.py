"""``python -m radrl.cli.endpoint --model CHECKPOINT --port 8000``: serve a local checkpoint over the OpenAI
chat-completions protocol (``radrl.models.endpoint.LocalServer``) until interrupted."""

from __future__ import annotations

import time

from radrl.cli.args import ArgumentParser


def main(argv: list[str] | None = None) -> None:
    from radrl.models.endpoint import LocalServer

    p = ArgumentParser(prog="python -m radrl.cli.endpoint",
                       description="Serve a local checkpoint over the OpenAI chat-completions protocol.")
    p.add_argument("--model", required=True, help="checkpoint folder")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-batch", type=int, default=8)
    p.add_argument("--served-name", default=None, help="model id clients send (default: the folder name)")
    a = p.parse_args(argv)
    server = LocalServer(a.model, a.host, a.port, a.device, a.max_batch, a.served_name).start()
    print(f"serving {a.model} as {server.served_name!r} at {server.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
