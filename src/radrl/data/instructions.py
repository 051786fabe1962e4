"""Samples -> Qwen3-VL conversations for report generation and grounding.

One conversation row serves SFT, GRPO and evaluation alike (TRL's conversational
prompt-completion format plus our columns, which TRL hands to every reward):

    {"id": "syn-train-00001-report",
     "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe ..."}]}],
     "completion": [{"role": "assistant", "content": [{"type": "text", "text": "The heart ..."}]}],
     "images": ["/data/img.png"],            # paths; decoded to PIL when the dataset is built
     "task": "report" | "grounding",
     "solution": "The heart ...",            # the reference answer, parsed by the same parser as completions
     "thinking": False}                      # whether the request asked for <think>...</think>

Boxes are written with ``radrl.data.boxes`` only: the paper's ``[x1, y1, x2, y2]`` 0-1
form (default) or Qwen3-VL's 0-1000 JSON form.
"""

from __future__ import annotations

import random
from typing import Iterable, Literal

from radrl.data.boxes import Box, format_boxes, format_qwen_json
from radrl.data.schema import Sample

THINK_SUFFIX = " /think"

# Templated report requests, in the spirit of the paper's ~15 phrasings.
REPORT_PROMPTS = (
    "Please offer a detailed analysis based on this image.",
    "Write the findings section of a radiology report for this chest X-ray.",
    "Describe the findings in this chest radiograph.",
    "What are the findings on this chest X-ray?",
    "Provide a radiology report for this image.",
    "Interpret this chest X-ray.",
    "Generate a report describing this chest radiograph.",
    "Can you describe what you see in this X-ray?",
    "Summarize the radiographic findings.",
    "Please write a report for this chest film.",
    "Analyze this chest X-ray and report your findings.",
    "Give a detailed description of this radiograph.",
    "What does this chest X-ray show?",
    "Report the findings of this frontal chest radiograph.",
    "Describe this image as a radiologist would.",
)

GROUNDING_PROMPTS = (
    "Locate the {finding} on this chest X-ray.",
    "Where is the {finding}? Give the bounding box.",
    "Provide the bounding box coordinates of the {finding}.",
    "Draw a box around the {finding}.",
    "Find the {finding} in this image and give its location.",
    "Show the location of the {finding}.",
)

BOX_INSTRUCTION = {
    "paper": " Answer with boxes as [x_min, y_min, x_max, y_max] in 0-1 image coordinates.",
    "qwen": " Answer in JSON with bbox_2d on a 0-1000 grid.",
}

Task = Literal["report", "grounding"]
BoxFormat = Literal["paper", "qwen"]


def _finding_phrase(label: str) -> str:
    """Display name used in a request: 'Pleural Effusion' -> 'pleural effusion', 'Lung Lesion' -> 'lung lesion'."""
    return label.lower()


def grounding_answer(label: str, boxes: list[Box], box_format: BoxFormat = "paper") -> str:
    """The reference answer for grounding: ``Cardiomegaly at [..]`` (paper form) or Qwen JSON."""
    if box_format == "qwen":
        return format_qwen_json([Box(*b.coords, label=label) for b in boxes])
    return f"{label} at {format_boxes(boxes)}"


def _row(sample: Sample, task: Task, request: str, answer: str, thinking: bool, suffix: str) -> dict:
    text = request + (THINK_SUFFIX if thinking else "")
    return {
        "id": f"{sample.id}-{suffix}",
        "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
        "completion": [{"role": "assistant", "content": [{"type": "text", "text": answer}]}],
        "images": [sample.image],
        "task": task,
        "solution": answer,
        "thinking": thinking,
    }


def report_conversation(sample: Sample, rng: random.Random, thinking: bool = False) -> dict | None:
    """A report-generation row, or None when the sample has no report text."""
    if not sample.report:
        return None
    return _row(sample, "report", rng.choice(REPORT_PROMPTS), sample.report.strip(), thinking, "report")


def grounding_conversations(sample: Sample, rng: random.Random, thinking: bool = False,
                            box_format: BoxFormat = "paper", box_instruction: bool = False) -> list[dict]:
    """One row per finding with boxes: 'Locate the X' -> all boxes of X."""
    by_label: dict[str, list[Box]] = {}
    for b in sample.boxes:
        if b.label:
            by_label.setdefault(b.label, []).append(b)
    rows = []
    for label, boxes in sorted(by_label.items()):
        request = rng.choice(GROUNDING_PROMPTS).format(finding=_finding_phrase(label))
        if box_instruction:
            request += BOX_INSTRUCTION[box_format]
        answer = grounding_answer(label, boxes, box_format)
        slug = label.lower().replace(" ", "_")
        rows.append(_row(sample, "grounding", request, answer, thinking, f"ground-{slug}"))
    return rows


def build_conversations(samples: Iterable[Sample], tasks: Iterable[Task] = ("report", "grounding"),
                        seed: int = 0, thinking: bool = False, box_format: BoxFormat = "paper",
                        box_instruction: bool = False) -> list[dict]:
    """All conversation rows for ``samples`` and ``tasks``; request phrasings are drawn from ``seed``."""
    rng = random.Random(seed)
    tasks = tuple(tasks)
    unknown = set(tasks) - {"report", "grounding"}
    if unknown:
        raise ValueError(f"unknown task(s) {sorted(unknown)}; choose from 'report' and 'grounding'")
    rows: list[dict] = []
    for s in samples:
        if "report" in tasks and (row := report_conversation(s, rng, thinking)) is not None:
            rows.append(row)
        if "grounding" in tasks:
            rows.extend(grounding_conversations(s, rng, thinking, box_format, box_instruction))
    return rows


def to_dataset(rows: list[dict]):
    """A Hugging Face dataset whose ``images`` column decodes paths to PIL images on access."""
    from datasets import Dataset, Image, Sequence

    if not rows:
        raise ValueError("no conversation rows to build a dataset from; check the data split and tasks")
    return Dataset.from_list(rows).cast_column("images", Sequence(Image()))
