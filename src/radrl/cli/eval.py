"""``radrl eval``: generate, parse, score and write metrics for a model on a split (``radrl.eval.run``)."""

from __future__ import annotations

import os

from radrl.cli.args import ArgumentParser


def main(argv: list[str] | None = None) -> dict:
    p = ArgumentParser(prog="radrl eval", description="Evaluate a model on a samples JSONL split. Rerunning "
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
    p.add_argument("--max-new-tokens-grounding", type=int, default=None,
                   help="default 4096; also detection rows (images without findings)")
    p.add_argument("--thinking", action="store_true", help="append ' /think' and score the answer after </think>")
    p.add_argument("--box-instruction", action="store_true",
                   help="spell out the box format in grounding requests (base models that never saw it)")
    p.add_argument("--metrics", nargs="*", default=[], names=True,
                   help="report metrics beyond text and chexpert, from radrl.metrics.METRICS (e.g. bertscore meteor)")
    p.add_argument("--max-rows", type=int, default=None)
    p.add_argument("--seed", type=int, default=1, help="seed of the request phrasings")
    p.add_argument("--min-pixels", type=int, default=None,
                   help="image pixel budget, min (default 1,024); every model of a comparison must use one budget")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="image pixel budget, max (default 451,584, the paper's RL budget; not the checkpoint's "
                        "training budget, which would differ between SFT and GRPO checkpoints)")
    p.add_argument("--device", default=None)
    p.add_argument("--dtype", default=None, choices=["bf16", "fp16", "fp32"],
                   help="precision of the model's weights (hf, vllm; default bf16 on a GPU that has it, else fp32); "
                        "bf16 on a CPU lets an 8B model evaluate in about 17 GiB")
    p.add_argument("--metric-device", default=None,
                   help="device of the model-based scorers (RadGraph, CheXbert, BERTScore, GREEN, RaTEScore): cpu, "
                        "cuda, cuda:1 (default: the GPU when there is one; also $RADRL_METRIC_DEVICE)")
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
    from radrl.eval.report import summary_line
    from radrl.eval.run import EVAL_PIXELS, evaluate
    from radrl.metrics import DEVICE_ENV, metric_device

    if a.metric_device:   # every scorer reads it, here and in any process it starts
        os.environ[DEVICE_ENV] = metric_device(a.metric_device)

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
                          engine_args=engine_args, dtype=a.dtype,
                          report_metrics=tuple(dict.fromkeys(["text", "chexpert", *a.metrics])))
    for task, agg in aggregates.items():
        print(summary_line(task, agg))
    print(f"written to {a.out}")
    return aggregates
