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
"""

from __future__ import annotations

import argparse
import os
import sys


def _synth_data(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="radrl synth-data", description="Write synthetic chest X-rays, reports and boxes.")
    p.add_argument("out")
    p.add_argument("--train", type=int, default=400, help="training images")
    p.add_argument("--test", type=int, default=60, help="held-out images")
    p.add_argument("--size", type=int, default=256, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    from radrl.data.synthetic import write_dataset

    paths = write_dataset(a.out, n_train=a.train, n_test=a.test, seed=a.seed, size=a.size)
    print("\n".join(f"{k}: {v}" for k, v in paths.items()))


def _tiny_model(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="radrl tiny-model",
                                description="Build a tiny random Qwen3-VL (tokenizer trained on the corpus).")
    p.add_argument("out")
    p.add_argument("--corpus", nargs="*", default=[],
                   help="samples JSONL files whose requests and answers train the tokenizer "
                        "(default: a fresh synthetic corpus)")
    p.add_argument("--vocab-size", type=int, default=1024)
    p.add_argument("--max-pixels", type=int, default=128 * 128, help="image pixel budget saved with the processor")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    from radrl.models.tiny import build_tiny_model, count_parameters, demo_corpus

    path = build_tiny_model(a.out, demo_corpus(a.corpus), vocab_size=a.vocab_size, seed=a.seed,
                            max_pixels=a.max_pixels)
    from radrl.models import load

    model, _ = load(str(path), device="cpu")
    print(f"tiny Qwen3-VL with {count_parameters(model):,} parameters written to {path}")


def _eval(argv: list[str]) -> None:
    p = argparse.ArgumentParser(prog="radrl eval", description="Evaluate a model on a samples JSONL split. Rerunning "
                                "into the same --out resumes: rows already in predictions.jsonl are kept.")
    p.add_argument("--model", required=True,
                   help="checkpoint folder (ours, any Qwen3-VL, or any Hugging Face VLM with a chat template), "
                        "or with --endpoint the served model id")
    p.add_argument("--data", required=True, help="samples JSONL (e.g. runs/demo/data/test.jsonl)")
    p.add_argument("--out", required=True, help="output folder for predictions, metrics, images and manifest.json")
    p.add_argument("--name", default=None, help="run name in tables (default: the model folder name)")
    p.add_argument("--tasks", nargs="+", default=["report", "grounding"],
                   choices=["report", "grounding", "anatomy_grounding", "phrase_grounding", "detection"],
                   help="grounding = abnormality grounding; the grounding kinds are also scored separately")
    p.add_argument("--engine", default="hf", choices=["hf", "vllm", "openai"],
                   help="hf: transformers generate; vllm: vLLM offline engine (if installed); openai: --endpoint")
    p.add_argument("--engine-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="with --engine vllm: a vllm.LLM argument, repeatable, value read as YAML "
                        "(e.g. --engine-arg tensor_parallel_size=4 --engine-arg gpu_memory_utilization=0.8)")
    p.add_argument("--endpoint", default=None, help="OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="environment variable holding the endpoint key")
    p.add_argument("--concurrency", type=int, default=8, help="endpoint requests in flight")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per endpoint request before a retry")
    p.add_argument("--loader", default="auto", choices=["auto", "qwen3vl", "generic"],
                   help="generic: AutoModelForImageTextToText + AutoProcessor (auto picks it for non-Qwen3-VL)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--temperature", type=float, default=0.0, help="0 is greedy decoding (the default)")
    p.add_argument("--top-p", type=float, default=None)
    p.add_argument("--max-new-tokens-report", type=int, default=None, help="default 1024 (4096 with --thinking)")
    p.add_argument("--max-new-tokens-grounding", type=int, default=None, help="default 4096; also detection rows (images without findings)")
    p.add_argument("--thinking", action="store_true", help="append ' /think' and score the answer after </think>")
    p.add_argument("--box-instruction", action="store_true",
                   help="spell out the box format in grounding requests (base models that never saw it)")
    p.add_argument("--metrics", nargs="*", default=[],
                   help="report metrics beyond text and chexpert, from radrl.metrics.METRICS (e.g. bertscore meteor)")
    p.add_argument("--max-rows", type=int, default=None)
    p.add_argument("--seed", type=int, default=1, help="seed of the request phrasings")
    p.add_argument("--min-pixels", type=int, default=None,
                   help="image pixel budget, min (default 1,024); every model of a comparison must use one budget")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="image pixel budget, max (default 451,584, the paper's RL budget; not the checkpoint's "
                        "training budget, which would differ between SFT and GRPO checkpoints)")
    p.add_argument("--device", default=None)
    a = p.parse_args(argv)
    import yaml

    engine_args = {}
    for arg in a.engine_arg:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            p.error(f"--engine-arg expects KEY=VALUE (e.g. tensor_parallel_size=4), got {arg!r}")
        try:
            engine_args[key.replace("-", "_")] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            p.error(f"--engine-arg {arg!r}: the value is not YAML ({str(e).splitlines()[0]}); quote strings that "
                    "YAML misreads, e.g. revision='\"0123\"'")
    from radrl.eval.run import EVAL_PIXELS, evaluate, print_summary

    aggregates = evaluate(a.model, a.data, a.out, tasks=tuple(a.tasks), batch_size=a.batch_size,
                          max_new_tokens={"report": a.max_new_tokens_report,
                                          "grounding": a.max_new_tokens_grounding},
                          thinking=a.thinking, max_rows=a.max_rows, device=a.device,
                          min_pixels=EVAL_PIXELS[0] if a.min_pixels is None else a.min_pixels,
                          max_pixels=EVAL_PIXELS[1] if a.max_pixels is None else a.max_pixels,
                          box_instruction=a.box_instruction, seed=a.seed,
                          engine=a.engine, endpoint=a.endpoint, loader=a.loader, temperature=a.temperature,
                          top_p=a.top_p, concurrency=a.concurrency, timeout=a.timeout,
                          api_key=os.environ.get(a.api_key_env), name=a.name,
                          engine_args=engine_args,
                          report_metrics=tuple(dict.fromkeys(["text", "chexpert", *a.metrics])))
    print_summary(aggregates)
    print(f"written to {a.out}")


def _sft(argv: list[str]) -> None:
    from radrl.train.sft import main

    print(f"saved to {main(argv)}")


def _grpo(argv: list[str]) -> None:
    from radrl.train.grpo import main

    print(f"saved to {main(argv)}")


def _demo(argv: list[str]) -> None:
    from radrl.demo import main

    main(argv)


def _lazy(module: str, function: str = "main"):
    """A verb whose ``function(argv)`` lives in ``module`` (imported only when the verb runs)."""

    def run(argv: list[str]) -> None:
        import importlib

        getattr(importlib.import_module(module), function)(argv)

    return run


VERBS = {"demo": _demo, "synth-data": _synth_data, "tiny-model": _tiny_model, "sft": _sft, "grpo": _grpo,
         "eval": _eval, "prepare": _lazy("radrl.data.prepare"),
         "export-llava": _lazy("radrl.data.sources.radvlm_json", "export_main"), "coldstart": _lazy("radrl.train.coldstart"),
         "experiment": _lazy("radrl.train.experiment"),
         "score": _lazy("radrl.metrics.cli", "score_main"), "label": _lazy("radrl.metrics.cli", "label_main"),
         "compare": _lazy("radrl.eval.compare"), "reward-server": _lazy("radrl.rewards.server")}


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in VERBS:
        print(__doc__)
        if argv and argv[0] not in ("-h", "--help"):
            print(f"unknown verb {argv[0]!r}; choose one of: {', '.join(VERBS)}")
            sys.exit(2)
        return
    try:
        VERBS[argv[0]](argv[1:])
    except (FileNotFoundError, ValueError, ImportError) as e:
        # Our errors name the file, the row and the fix; a traceback would bury that line. RADRL_DEBUG=1 keeps it.
        if os.environ.get("RADRL_DEBUG"):
            raise
        print(f"radrl {argv[0]}: error: {e}\n(set RADRL_DEBUG=1 for the traceback)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
