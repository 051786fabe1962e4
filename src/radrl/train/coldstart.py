"""Cold-start thinking data: teacher reasoning traces -> validated, filtered, mixed SFT rows.

    radrl coldstart --config recipes/qwen3vl-8b/coldstart.yaml
    radrl coldstart --data runs/demo/data/train.jsonl --out runs/coldstart --teacher runs/demo/sft
    radrl coldstart --data ... --out ... --endpoint http://127.0.0.1:8000/v1 --teacher-model Qwen3-VL-235B

Reads top to bottom: samples -> conversation rows -> teacher requests (image, task, ground-truth
answer, our reading guide) -> traces.jsonl (appended as replies arrive; a rerun asks only for the
rows not in it yet) -> validation (one ``<think>...</think>`` then an answer, no mention of the
given answer) -> optional reward filter on the final answer (the GRPO reward of the row's task)
-> mixed with direct-answer rows -> ``coldstart.jsonl``, conversation rows that ``radrl sft``
trains on directly (``train_data: runs/coldstart/coldstart.jsonl``).

Why the teacher sees the ground truth: the paper's teacher did, and its appendix found traces
written without it, or filtered for correctness instead, trained worse. The price is that a
teacher may say where its answer came from; those traces are rejected, never repaired.

A local teacher (``--teacher PATH``) is served on loopback by ``radrl.models.endpoint.LocalServer``
so that local and remote teachers share one client: concurrency, retries, timeouts.
"""

from __future__ import annotations

import json
import logging
import random
import re
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from radrl.data.instructions import THINK_SUFFIX, build_conversations
from radrl.data.schema import read_jsonl
from radrl.package import version

log = logging.getLogger(__name__)

# Our own systematic reading guide, in the order a radiologist reads a frontal chest film.
READING_GUIDE = """Read the radiograph systematically, in this order:
1. Technical quality: projection (PA or AP, supine or erect), rotation, inspiration (count the posterior ribs), \
penetration, and whether the whole chest is included.
2. Lines, tubes and devices: endotracheal and feeding tubes, central lines, pacemaker leads, drains, clips, \
valves; where each tip lies.
3. Chest wall and bones: ribs, clavicles, scapulae, spine, soft tissues; fractures, lytic or sclerotic lesions, \
subcutaneous emphysema.
4. Mediastinum and heart: width of the mediastinum, tracheal position, cardiac size and contour, aortic knob.
5. Hila: position, size and density of both hila.
6. Lungs: compare the zones left with right; opacities (consolidation, nodules, masses, interstitial lines), \
lucencies, volume loss, vascular markings.
7. Airways: trachea and main bronchi, their course and calibre.
8. Pleura: costophrenic angles, effusion, thickening, pneumothorax (look for a visceral pleural line)."""

TEACHER_PROMPT = """You are an expert chest radiologist teaching a trainee how to reason about a chest X-ray.

{guide}

The trainee's request about the image: "{request}"
The correct final answer is:
{solution}

Write the reasoning a careful radiologist would go through while looking at this image, following the reading \
guide, and arriving at the correct final answer as if you had found it yourself. Refer only to what is visible \
in the image; never mention that an answer, a reference or a ground truth was provided.
Format: the reasoning inside <think> and </think>, then the final answer (the same content as the correct \
final answer above, in the same format), and nothing else."""

# A trace that reveals it was handed the answer teaches the student to cite an oracle it will not have.
LEAK_PATTERNS = (
    r"ground[\s-]*truth",
    r"\bthe reference\b",
    r"\breference (answer|report|text|label|box(es)?)\b",
    r"\bas given\b",
    r"\b(given|provided|correct|expected|target) (final )?(answer|report|label|box(es)?)\b",
    r"\b(i|we) (was|were|am|are|have been) (told|given|provided)\b",
    r"\baccording to the (provided|given|supplied)\b",
    r"\bthe answer (says|states|is given|was given)\b",
)
_LEAK_RE = re.compile("|".join(f"(?:{p})" for p in LEAK_PATTERNS), re.IGNORECASE)

# The default reward of each task that the optional filter applies to the final answer (the GRPO rewards);
# --filter_rewards picks others from radrl.rewards.REWARDS, routed by their task.
FILTER_REWARDS = {"report": "report_clinical", "grounding": "grounding_soft_f1"}


@dataclass(frozen=True)
class Verdict:
    """Validation result of one teacher trace: ``reason`` is "" when it is accepted."""

    reason: str
    think: str = ""
    answer: str = ""

    @property
    def ok(self) -> bool:
        return not self.reason


def validate_trace(text: str, min_think_chars: int = 20) -> Verdict:
    """Exactly one ``<think>...</think>`` at the start, a non-empty answer after it, no leak of the given answer.

    >>> validate_trace("<think>The heart is enlarged, no effusion.</think>Cardiomegaly.").answer
    'Cardiomegaly.'
    >>> validate_trace("<think>The ground truth says cardiomegaly, so ...</think>Cardiomegaly.").reason
    'leak'
    >>> validate_trace("Cardiomegaly.").reason
    'no_think'
    """
    text = (text or "").strip()
    opens, closes = text.count("<think>"), text.count("</think>")
    if opens == 0 or closes == 0:
        return Verdict("no_think")
    if opens > 1 or closes > 1:
        return Verdict("several_think")
    if not text.startswith("<think>"):  # with one of each, the close then follows the open
        return Verdict("text_outside_think")
    think, answer = text[len("<think>"):].split("</think>", 1)
    think, answer = think.strip(), answer.strip()
    if len(think) < min_think_chars:
        return Verdict("short_think")
    if not answer:
        return Verdict("empty_answer")
    if _LEAK_RE.search(think) or _LEAK_RE.search(answer):
        return Verdict("leak")
    return Verdict("", think, answer)


def teacher_messages(row: dict) -> list[dict]:
    """The teacher's request for one conversation row: the image, our guide, the task and its answer."""
    request = next(p["text"] for p in row["prompt"][0]["content"] if p.get("type") == "text")
    text = TEACHER_PROMPT.format(guide=READING_GUIDE, request=request, solution=row["solution"])
    return [{"role": "user", "content": [{"type": "image", "image": row["images"][0]}, {"type": "text", "text": text}]}]


def read_traces(path: Path) -> dict[str, dict]:
    """Traces already written, by row id. A last line cut off by a kill (no newline, bad JSON) is dropped
    from the file, so the run appends cleanly after it; a bad line elsewhere is an error naming it."""
    if not path.exists():
        return {}
    raw = path.read_text()
    lines = raw.split("\n")
    if lines and lines[-1] and not raw.endswith("\n"):
        path.write_text(raw[: len(raw) - len(lines[-1])])
        log.warning("%s: dropped a last line cut off mid-write; its row is asked for again", path)
        lines = lines[:-1]
    done = {}
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            done[record["id"]] = record
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"{path} line {n} is not a trace record ({line[:80]!r}); delete the line to ask for "
                             "that row again") from None
    return done


def ask_teacher(client, rows: list[dict], path: Path, max_tokens: int, temperature: float, seed: int | None = None
                ) -> dict[str, int]:
    """Ask for a trace for every row not in ``path`` yet, ``client.concurrency`` at a time, appending each
    reply as it arrives. A row whose request still fails after the client's retries is counted, not written,
    so a rerun asks for it again. Returns ``{"resumed", "generated", "failed"}``."""
    from tqdm.auto import tqdm

    from radrl.models.endpoint import EndpointError

    done = read_traces(path)
    todo = [r for r in rows if r["id"] not in done]
    counts = {"resumed": len(done), "generated": 0, "failed": 0}
    extra = {"seed": seed} if seed is not None else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out, ThreadPoolExecutor(client.concurrency) as pool, \
            tqdm(total=len(rows), initial=len(done), desc="teacher traces", unit="row") as bar:
        futures = {pool.submit(client.complete, teacher_messages(r), max_tokens, temperature, **extra): r
                   for r in todo}
        for fut in as_completed(futures):
            row = futures[fut]
            try:
                text = fut.result()
            except (EndpointError, ValueError) as e:
                counts["failed"] += 1
                log.warning("row %s: %s", row["id"], e)
            else:
                out.write(json.dumps({"id": row["id"], "task": row["task"], "trace": text}) + "\n")
                out.flush()  # one whole line per reply: a kill loses at most the line being written
                counts["generated"] += 1
            bar.update(1)
    return counts


def build_coldstart(rows: list[dict], traces: dict[str, dict], direct_ratio: float = 1.0,
                    min_reward: float | None = None, min_think_chars: int = 20, seed: int = 0,
                    filter_rewards: dict[str, str] | None = None) -> tuple[list[dict], dict]:
    """Validated (and optionally reward-filtered) thinking rows mixed with direct-answer rows, shuffled.

    Thinking rows ask with the ' /think' suffix and answer ``<think>\\n...\\n</think>\\n\\nANSWER``; ``direct_ratio``
    direct-answer rows (the plain request and reference answer) are drawn per accepted trace. With ``min_reward``,
    a trace's final answer must score at least that with its task's reward in ``filter_rewards`` (task -> reward
    name, default ``FILTER_REWARDS``). Returns the rows and a summary of what was kept and why the rest was
    rejected."""
    from radrl.rewards import REWARDS

    by_id = {r["id"]: r for r in rows}
    rejected: dict[str, int] = {}
    verdicts: dict[str, Verdict] = {}
    for row_id, record in traces.items():
        if row_id not in by_id:  # traces of rows no longer in the data (another split or task list) are ignored
            rejected["not_in_data"] = rejected.get("not_in_data", 0) + 1
            continue
        verdicts[row_id] = validate_trace(record.get("trace", ""), min_think_chars)
    if min_reward is not None:  # one reward call per task, over all its valid traces (report metrics batch)
        by_task: dict[str, list[str]] = {}
        for row_id, verdict in verdicts.items():
            if verdict.ok:
                by_task.setdefault(by_id[row_id]["task"], []).append(row_id)
        for task, ids in by_task.items():
            reward = REWARDS[(filter_rewards or FILTER_REWARDS)[task]]
            # ref_boxes: the dataset's boxes at full precision, as the GRPO reward and evaluation score them
            scores = reward([verdicts[i].answer for i in ids], task=[task] * len(ids),
                            solution=[by_id[i]["solution"] for i in ids], thinking=[False] * len(ids),
                            ref_boxes=[by_id[i].get("ref_boxes") for i in ids])
            for row_id, score in zip(ids, scores, strict=True):
                if score is None or score < min_reward:
                    verdicts[row_id] = Verdict("low_reward")
    thinking_rows = []
    for row_id, verdict in verdicts.items():
        if not verdict.ok:
            rejected[verdict.reason] = rejected.get(verdict.reason, 0) + 1
            continue
        thinking_rows.append(_thinking_row(by_id[row_id], verdict))
    rng = random.Random(seed)
    direct = list(rows)
    rng.shuffle(direct)
    direct = direct[: round(direct_ratio * len(thinking_rows))]
    mixed = thinking_rows + direct
    rng.shuffle(mixed)
    summary = {"rows": len(rows), "traces": len(traces), "accepted": len(thinking_rows), "rejected": rejected,
               "direct": len(direct), "coldstart_rows": len(mixed)}
    return mixed, summary


def _thinking_row(row: dict, verdict: Verdict) -> dict:
    prompt = json.loads(json.dumps(row["prompt"]))  # deep copy: the direct row keeps its request
    for part in prompt[0]["content"]:
        if part.get("type") == "text":
            part["text"] += THINK_SUFFIX
    text = f"<think>\n{verdict.think}\n</think>\n\n{verdict.answer}"
    return {**row, "id": f"{row['id']}-think", "prompt": prompt, "thinking": True,
            "completion": [{"role": "assistant", "content": [{"type": "text", "text": text}]}]}


def run_coldstart(data: str, out: str, tasks: list[str] | tuple[str, ...] = ("report", "grounding"),
                  teacher: str | None = None, endpoint: str | None = None, teacher_model: str | None = None,
                  device: str = "cpu", concurrency: int = 8, timeout: float = 600.0, max_retries: int = 4,
                  max_tokens: int = 2048, temperature: float = 0.7, seed: int = 0, max_rows: int | None = None,
                  min_think_chars: int = 20, min_reward: float | None = None,
                  filter_rewards: dict[str, str] | None = None, direct_ratio: float = 1.0,
                  box_format: str = "paper") -> dict:
    """The whole stage (``radrl coldstart``): conversation rows of ``data`` -> traces from one teacher (a local
    checkpoint ``teacher`` served on loopback, or an OpenAI-compatible ``endpoint``) appended to
    ``out/traces.jsonl`` -> ``build_coldstart`` -> ``out/coldstart.jsonl`` and ``out/summary.json``; returns the
    summary (``failed``: requests that failed after retries; a rerun asks for them again)."""
    from radrl.models.endpoint import ChatClient, LocalServer
    from radrl.train.common import check_images

    if bool(teacher) == bool(endpoint):
        raise ValueError("give exactly one teacher: --teacher PATH (local checkpoint) or --endpoint URL")
    rows = build_conversations(read_jsonl(data), tasks=tasks, seed=seed, box_format=box_format)
    rows = rows[:max_rows] if max_rows else rows
    check_images(data, [(r["id"], p) for r in rows for p in r["images"]])
    out = Path(out)
    server = LocalServer(teacher, device=device, max_batch=concurrency).start() if teacher else None
    try:
        base_url = server.base_url if server else endpoint
        with ChatClient(base_url, model=teacher_model or "", timeout=timeout, max_retries=max_retries,
                        concurrency=concurrency) as client:
            if not client.model:
                served = client.models()
                if not served:
                    raise ValueError(f"{base_url}/models lists no model; pass --teacher_model NAME")
                client.model = served[0]
            counts = ask_teacher(client, rows, out / "traces.jsonl", max_tokens, temperature, seed)
    finally:
        if server:
            server.stop()
    mixed, summary = build_coldstart(rows, read_traces(out / "traces.jsonl"), direct_ratio, min_reward,
                                     min_think_chars, seed, filter_rewards)
    summary = {"radrl_version": version(), **counts, **summary}
    with (out / "coldstart.jsonl").open("w") as f:
        f.writelines(json.dumps(r) + "\n" for r in mixed)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary
