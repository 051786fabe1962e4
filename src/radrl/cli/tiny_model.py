"""``radrl tiny-model OUT``: a tiny random Qwen3-VL with a tokenizer trained on a corpus (``radrl.models.tiny``)."""

from __future__ import annotations

from radrl.cli.args import ArgumentParser


def main(argv: list[str] | None = None):
    p = ArgumentParser(prog="radrl tiny-model",
                       description="Build a tiny random Qwen3-VL (tokenizer trained on the corpus).")
    p.add_argument("out")
    p.add_argument("--corpus", nargs="*", default=[],
                   help="samples JSONL files whose requests and answers train the tokenizer "
                        "(default: a fresh synthetic corpus)")
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--max-pixels", type=int, default=128 * 128, help="image pixel budget saved with the processor")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", default="tiny", choices=["tiny", "small", "base"],
                   help="architecture preset (radrl.models.tiny.SIZE_PRESETS): tiny ~0.6 M parameters, small and "
                        "base give RL experiments more perception for more CPU minutes")
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=INT",
                   help="override single sizes of the preset, e.g. --set layers=3 vision_layers=3 "
                        "(keys: radrl.models.tiny.SIZE_KEYS)")
    a = p.parse_args(argv)
    from radrl.models.tiny import SIZE_PRESETS, build_tiny_model, check_sizes, count_parameters, demo_corpus

    sizes = dict(SIZE_PRESETS[a.size])
    for item in a.set:
        key, eq, value = item.partition("=")
        if not eq or not value.strip().lstrip("-").isdigit():
            p.error(f"--set {item!r}: write KEY=INT, e.g. layers=3")
        sizes[key.strip()] = int(value)
    try:
        check_sizes(sizes)
    except ValueError as e:
        p.error(str(e))
    path = build_tiny_model(a.out, demo_corpus(a.corpus), vocab_size=a.vocab_size, seed=a.seed,
                            max_pixels=a.max_pixels, sizes=sizes)
    from radrl.models import load

    model, _ = load(str(path), device="cpu")
    print(f"tiny Qwen3-VL with {count_parameters(model):,} parameters written to {path}")
    return path
