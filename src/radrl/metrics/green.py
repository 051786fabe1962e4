"""GREEN: an LLM judge counts clinically significant errors and matched findings; score = matched / (matched + errors).

GREEN (Ostmeier et al., Findings of EMNLP 2024; Stanford-AIMI/GREEN, restated in RadEval's
``green_score``) prompts a judge with the reference and the candidate report and asks for
a fixed format::

    [Explanation]:
    <Explanation>

    [Clinically Significant Errors]:
    (a) False report of a finding in the candidate: <n>. <Error 1>; ...
    ...
    (f) Omitting a comparison detailing a change from a prior study: <n>. ...

    [Clinically Insignificant Errors]:
    (a) ...: <n>. ...

    [Matched Findings]:
    <n>. <Finding 1>; ...

and scores ``matched / (matched + sum of the six significant counts)``, 0 when nothing is
matched. ``parse_green`` reads the counts with GREEN's own rules (a section that starts
with "No" counts 0; sub-categories (a)-(f), or (1)-(6); the count is the number after
": " and before "."). As in GREEN, an answer without the "[Matched Findings]" section
scores 0, and one without the "[Clinically Significant Errors]" section counts no errors;
either kind is counted in ``aggregate["green_unparsed"]``, so that a broken judge shows in
the table instead of passing as bad (or perfect) reports.

The judge is either

* a local Hugging Face causal LM folder (``model=`` or ``$RADRL_GREEN_MODEL``), normally
  ``StanfordAIMI/GREEN-radllama2-7b``, run as GREEN runs it: GREEN's chat template
  (``<|user|>`` / ``<|assistant|>``), left padding with the EOS token, greedy decoding up
  to ``max_length`` = 2048 tokens in total (or ``max_new_tokens``); or
* an OpenAI-compatible endpoint (``endpoint=`` or ``$RADRL_GREEN_ENDPOINT``, e.g. vLLM's
  ``http://host:8000/v1``): one ``POST {endpoint}/chat/completions`` per pair with the
  prompt as the user message, temperature 0; the model name comes from ``model_name=`` or
  ``$RADRL_GREEN_MODEL_NAME``, else the endpoint's first ``GET /models`` entry; the key from
  ``api_key=`` or ``$OPENAI_API_KEY`` (sent as a Bearer token when set).

Reports are cut to their first 300 words in the prompt, as GREEN does.

Not verified here: scores with the real GREEN model (no hub access); the parser is tested on
literal GREEN-format answers, the endpoint path against a loopback server.

>>> p = parse_green("[Clinically Significant Errors]:\\n(a) False report of a finding in the candidate: 1. "
...                 "Effusion.\\n\\n[Matched Findings]:\\n2. Cardiomegaly; edema.")
>>> p.significant, p.matched, green_score(p)
([1, 0, 0, 0, 0, 0], 2, 0.6666666666666666)
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from radrl.hub import HF_DOWNLOAD
from radrl.metrics.base import (
    MetricResult,
    MetricSpec,
    check_aligned,
    metric_device,
    model_folder,
    package_version,
    progress,
)

__all__ = ["CATEGORIES", "ENV_ENDPOINT", "ENV_MODEL", "ENV_MODEL_NAME", "GREEN_MODEL", "SUB_CATEGORIES",
           "GreenJudgeMissing", "GreenParse", "check_judge", "green", "green_score", "make_prompt", "parse_green"]

ENV_MODEL, ENV_ENDPOINT, ENV_MODEL_NAME = "RADRL_GREEN_MODEL", "RADRL_GREEN_ENDPOINT", "RADRL_GREEN_MODEL_NAME"
GREEN_MODEL = "StanfordAIMI/GREEN-radllama2-7b"
SPECS = (
    MetricSpec("green", "GREEN", needs_weights=True,
               description="matched findings / (matched + clinically significant errors) by the GREEN judge, mean"),
    MetricSpec("green_unparsed", "GREEN unparsed answers", "int", False, needs_weights=True,
               description="judge answers lacking a scored section (a broken judge shows here)"),
)
CATEGORIES = ("Clinically Significant Errors", "Clinically Insignificant Errors", "Matched Findings")
SUB_CATEGORIES = (
    "(a) False report of a finding in the candidate",
    "(b) Missing a finding present in the reference",
    "(c) Misidentification of a finding's anatomic location/position",
    "(d) Misassessment of the severity of a finding",
    "(e) Mentioning a comparison that isn't in the reference",
    "(f) Omitting a comparison detailing a change from a prior study",
)
# GREEN's chat template (the format GREEN-radllama2-7b was trained on)
CHAT_TEMPLATE = (
    "{% for message in messages %}\n"
    "{% if message['from'] == 'human' %}\n"
    "{{ '<|user|>\\n' + message['value'] + eos_token }}\n"
    "{% elif message['from'] == 'system' %}\n"
    "{{ '<|system|>\\n' + message['value'] + eos_token }}\n"
    "{% elif message['from'] == 'gpt' %}\n"
    "{{ '<|assistant|>\\n'  + message['value'] + eos_token }}\n"
    "{% endif %}\n"
    "{% if loop.last and add_generation_prompt %}\n"
    "{{ '<|assistant|>' }}\n"
    "{% endif %}\n"
    "{% endfor %}"
)
_JUDGES: dict[tuple, tuple] = {}  # loaded local judges: (folder, device) -> (model, tokenizer)


class GreenJudgeMissing(FileNotFoundError):
    """No GREEN judge configured, or the local folder is incomplete; the message says the fix."""


def _missing_message(why: str) -> str:
    return (f"{why}. GREEN needs a judge model; nothing is downloaded at run time. Either download "
            f"{GREEN_MODEL} on a machine with internet (`{HF_DOWNLOAD} {GREEN_MODEL} --local-dir "
            f"/models/GREEN-radllama2-7b`), copy it here and pass model='/models/GREEN-radllama2-7b' or set "
            f"{ENV_MODEL}; or serve it with an OpenAI-compatible server (e.g. `vllm serve "
            f"/models/GREEN-radllama2-7b`) and set {ENV_ENDPOINT}=http://HOST:8000/v1 (and {ENV_MODEL_NAME}, "
            "OPENAI_API_KEY if needed). See docs/metrics.md.")


def make_prompt(reference: str, candidate: str, max_words: int = 300) -> str:
    """GREEN's prompt for one pair, each report cut to its first ``max_words`` words."""
    text1 = " ".join((reference or "").split()[:max_words])
    text2 = " ".join((candidate or "").split()[:max_words])
    return (
        "Objective: Evaluate the accuracy of a candidate radiology report in comparison to a reference radiology "
        "report composed by expert radiologists.\n\n    Process Overview: You will be presented with:\n\n    "
        "1. The criteria for making a judgment.\n    2. The reference radiology report.\n    3. The candidate "
        "radiology report.\n    4. The desired format for your assessment.\n\n    1. Criteria for Judgment:\n\n"
        "    For each candidate report, determine:\n\n    The count of clinically significant errors.\n    The "
        "count of clinically insignificant errors.\n\n    Errors can fall into one of these categories:\n\n    "
        "a) False report of a finding in the candidate.\n    b) Missing a finding present in the reference.\n    "
        "c) Misidentification of a finding's anatomic location/position.\n    d) Misassessment of the severity "
        "of a finding.\n    e) Mentioning a comparison that isn't in the reference.\n    f) Omitting a "
        "comparison detailing a change from a prior study.\n    Note: Concentrate on the clinical findings "
        "rather than the report's writing style. Evaluate only the findings that appear in both reports.\n\n"
        f"    2. Reference Report:\n    {text1}\n\n    3. Candidate Report:\n    {text2}\n\n    4. Reporting "
        "Your Assessment:\n\n    Follow this specific format for your output, even if no errors are found:\n"
        "    ```\n    [Explanation]:\n    <Explanation>\n\n    [Clinically Significant Errors]:\n    (a) <Error "
        "Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n    ....\n    (f) <Error Type>: "
        "<The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n\n    [Clinically Insignificant Errors]:"
        "\n    (a) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n    ....\n    "
        "(f) <Error Type>: <The number of errors>. <Error 1>; <Error 2>; ...; <Error n>\n\n    [Matched "
        "Findings]:\n    <The number of matched findings>. <Finding 1>; <Finding 2>; ...; <Finding n>\n    ```\n"
    )


@dataclass
class GreenParse:
    """Counts read from one GREEN answer; ``parsed`` is False when a scored section is absent."""

    significant: list[int] = field(default_factory=lambda: [0] * 6)
    insignificant: list[int] = field(default_factory=lambda: [0] * 6)
    matched: int = 0
    parsed: bool = False


def _section(text: str, category: str) -> tuple[bool, list[int], int]:
    """GREEN's ``parse_error_counts``: (section found, six sub-counts, matched count)."""
    m = re.search(rf"\[{category}\]:\s*(.*?)(?:\n\s*\n|\Z)", text, re.DOTALL)
    subs = [0] * 6
    if not m:
        return False, subs, 0
    body = m.group(1)
    if body.startswith("No"):
        return True, subs, 0
    if category == "Matched Findings":
        counts = re.findall(r"^\b\d+\b(?=\.)", body, re.MULTILINE)
        return True, subs, int(counts[0]) if counts else 0
    prefixes = [s.split(" ", 1)[0] + " " for s in SUB_CATEGORIES]
    lines = sorted(re.findall(r"\([a-f]\) .*", body))
    if not lines:
        lines = sorted(re.findall(r"\([1-6]\) .*", body))
        prefixes = [f"({i}) " for i in range(1, 7)]
    for i, prefix in enumerate(prefixes):
        for line in lines:
            if line.startswith(prefix):
                num = re.search(r"(?<=: )\b\d+\b(?=\.)", line)
                if num:
                    subs[i] = int(num.group(0))
    return True, subs, 0


def parse_green(text: str) -> GreenParse:
    """Counts of one judge answer, read as GREEN reads them (see the module docstring)."""
    text = (text or "").replace("</s>", "").replace("<unk>", "")
    has_sig, significant, _ = _section(text, CATEGORIES[0])
    _, insignificant, _ = _section(text, CATEGORIES[1])
    has_matched, _, matched = _section(text, CATEGORIES[2])
    return GreenParse(significant, insignificant, matched, has_sig and has_matched)


def green_score(p: GreenParse) -> float:
    """GREEN's score: matched / (matched + significant errors); 0 when nothing is matched."""
    return p.matched / (p.matched + sum(p.significant)) if p.matched else 0.0


def green(refs: Sequence[str], hyps: Sequence[str], model: str | os.PathLike | None = None,
          endpoint: str | None = None, model_name: str | None = None, api_key: str | None = None,
          batch_size: int = 8, max_length: int = 2048, max_new_tokens: int | None = None,
          concurrency: int = 8, timeout: float = 300.0, device: str | None = None) -> MetricResult:
    """GREEN per pair (``per_sample["green"]``) and its mean; ``aggregate["green_unparsed"]`` counts answers
    without GREEN's sections. A local ``model`` folder wins over an ``endpoint``; without either argument the
    variables ``RADRL_GREEN_MODEL`` then ``RADRL_GREEN_ENDPOINT`` are read."""
    check_aligned(refs, hyps)
    folder, endpoint = _judge(model, endpoint)
    prompts = [make_prompt(r, h) for r, h in zip(refs, hyps)]
    if folder:
        path = _judge_folder(folder)
        answers = _generate_local(path, prompts, batch_size, max_length, max_new_tokens, device)
        judge = {"green_judge": f"local {path}", "transformers": package_version("transformers")}
    else:
        name = model_name or os.environ.get(ENV_MODEL_NAME)
        answers, name = _generate_endpoint(endpoint, prompts, name, api_key or os.environ.get("OPENAI_API_KEY"),
                                           concurrency, timeout, max_new_tokens)
        judge = {"green_judge": f"endpoint {endpoint} model {name}", "httpx": package_version("httpx")}
    parsed = [parse_green(a) for a in answers]
    scores = [green_score(p) for p in parsed]
    return MetricResult(
        aggregate={"green": math.fsum(scores) / len(scores) if scores else 0.0,
                   "green_unparsed": float(sum(not p.parsed for p in parsed))},
        per_sample={"green": scores},
        versions={**judge, "green": "GREEN prompt and parser (Stanford-AIMI/GREEN, as RadEval 2.2.1); greedy; "
                                    "answers lacking a scored section are counted in green_unparsed"},
    )


def check_judge(model: str | os.PathLike | None = None, endpoint: str | None = None) -> None:
    """The judge ``green`` would use is there, checked without loading or calling it (``radrl.metrics.
    check_metrics``): a complete local folder, or an http(s) endpoint URL. Whether the endpoint answers is
    not probed (it may be started later); an unreachable one fails on first use with the fix."""
    folder, _ = _judge(model, endpoint)
    if folder:
        _judge_folder(folder)


def _judge(model: str | os.PathLike | None, endpoint: str | None) -> tuple[str | os.PathLike | None, str | None]:
    """(local folder, None) or (None, endpoint URL): a local ``model`` wins, then ``endpoint``, then the
    variables ``RADRL_GREEN_MODEL`` and ``RADRL_GREEN_ENDPOINT``; neither, or an endpoint that is no http(s)
    URL, raises with the fix."""
    from urllib.parse import urlsplit

    folder = model if model is not None else (None if endpoint else os.environ.get(ENV_MODEL))
    endpoint = None if folder else (endpoint or os.environ.get(ENV_ENDPOINT))
    if not folder and not endpoint:
        raise GreenJudgeMissing(_missing_message(f"no GREEN judge given (model/endpoint None, {ENV_MODEL} and "
                                                 f"{ENV_ENDPOINT} unset)"))
    url = urlsplit(endpoint or "")
    if endpoint and (url.scheme not in ("http", "https") or not url.netloc):
        raise ValueError(f"GREEN endpoint {endpoint!r} (endpoint= or {ENV_ENDPOINT}) is not an http(s) URL; give "
                         "the judge server's OpenAI-compatible base URL, such as http://HOST:8000/v1")
    return folder, endpoint


def _judge_folder(folder: str | os.PathLike) -> Path:
    return model_folder(folder, ENV_MODEL, "GREEN model", _lacking,
                        lambda why: GreenJudgeMissing(_missing_message(why)))


def _lacking(folder: Path) -> list[str]:
    weights = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
    missing = [] if (folder / "config.json").is_file() else ["config.json"]
    if not any((folder / w).is_file() for w in weights):
        missing.append("model weights (model*.safetensors or pytorch_model*.bin)")
    if not any((folder / t).is_file() for t in ("tokenizer.json", "tokenizer.model", "vocab.txt", "vocab.json")):
        missing.append("tokenizer files")
    return missing


def _generate_local(path: Path, prompts: list[str], batch_size: int, max_length: int, max_new_tokens: int | None,
                    device: str | None) -> list[str]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = metric_device(device)   # the call's, else $RADRL_METRIC_DEVICE (--metric-device), else the GPU
    if (str(path), device) not in _JUDGES:
        dtype = torch.float16 if device.startswith("cuda") else torch.float32  # as GREEN
        lm = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype).to(device).eval()
        # add_eos_token: GREEN's tokenizer setting (Llama tokenizers then end the prompt with </s>, as GREEN ran)
        tok = AutoTokenizer.from_pretrained(str(path), padding_side="left", add_eos_token=True)
        tok.chat_template = CHAT_TEMPLATE
        tok.pad_token = tok.eos_token
        _JUDGES[(str(path), device)] = (lm, tok)
    lm, tok = _JUDGES[(str(path), device)]
    limits = {"max_new_tokens": max_new_tokens} if max_new_tokens else {"max_length": max_length}
    out = []
    for i in progress(range(0, len(prompts), batch_size), "GREEN"):
        texts = [tok.apply_chat_template([{"from": "human", "value": p}, {"from": "gpt", "value": ""}],
                                         tokenize=False, add_generation_prompt=True) for p in prompts[i:i + batch_size]]
        enc = tok(texts, return_tensors="pt", padding=True, truncation=True, max_length=max_length).to(device)
        with torch.no_grad():
            gen = lm.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"], do_sample=False,
                              eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, **limits)
        out.extend(tok.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    return out


def _generate_endpoint(endpoint: str, prompts: list[str], name: str | None, api_key: str | None, concurrency: int,
                       timeout: float, max_new_tokens: int | None) -> tuple[list[str], str]:
    import httpx

    base = endpoint.rstrip("/")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(timeout=timeout, headers=headers) as client:
        if not name:
            models = _call(client, "GET", f"{base}/models").get("data") or []
            if not models or "id" not in models[0]:
                raise ValueError(f"{base}/models lists no model; set {ENV_MODEL_NAME} or pass model_name=")
            name = models[0]["id"]

        def ask(prompt: str) -> str:
            body = {"model": name, "messages": [{"role": "user", "content": prompt}], "temperature": 0.0}
            if max_new_tokens:
                body["max_tokens"] = max_new_tokens
            reply = _call(client, "POST", f"{base}/chat/completions", body)
            try:
                return reply["choices"][0]["message"]["content"] or ""
            except (KeyError, IndexError, TypeError) as e:
                raise ValueError(f"{base}/chat/completions answered without choices[0].message.content: "
                                 f"{json.dumps(reply)[:300]}") from e

        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(progress(pool.map(ask, prompts), "GREEN (endpoint)", total=len(prompts))), name


def _call(client, method: str, url: str, body: dict | None = None) -> dict:
    import httpx

    try:
        r = client.request(method, url, json=body)
    except httpx.HTTPError as e:
        raise ConnectionError(f"GREEN endpoint {url} unreachable ({type(e).__name__}: {e}); check "
                              f"{ENV_ENDPOINT} (an OpenAI-compatible base URL such as http://HOST:8000/v1)") from e
    # ValueError, not RuntimeError: the command line turns it into one line (a served judge that refuses is
    # a setting to fix, like a wrong model name or key, not a bug to trace)
    if r.status_code != 200:
        raise ValueError(f"GREEN endpoint {url} answered HTTP {r.status_code}: {r.text[:300]}; check the model "
                         f"name ({ENV_MODEL_NAME}), the key and the server's log")
    try:
        return r.json()
    except ValueError as e:
        raise ValueError(f"GREEN endpoint {url} answered non-JSON: {r.text[:300]}; is {ENV_ENDPOINT} the "
                         "OpenAI-compatible base URL (ending in /v1)?") from e
