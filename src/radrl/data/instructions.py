"""Samples -> Qwen3-VL conversations: the paper's task mix, templated requests, box text.

One conversation row serves SFT, GRPO and evaluation alike (TRL's conversational
prompt-completion format plus our columns, which TRL hands to every reward):

    {"id": "syn-train-00001-report",
     "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe ..."}]}],
     "completion": [{"role": "assistant", "content": [{"type": "text", "text": "The heart ..."}]}],
     "images": ["/data/img.png"],            # paths; decoded to PIL when the dataset is built
     "task": "report" | "grounding" | "classification" | "detection" | "conversation",
     "kind": None | "abnormality" | "anatomy" | "phrase" | "detection" | "conversation" | "grounded_conversation",
     "solution": "The heart ...",            # the reference answer, parsed by the same parser as completions
     "thinking": False}                      # whether the request asked for <think>...</think>

``task`` routes rewards and scorers; everything the grounding reward should score has
``task="grounding"`` and says which grounding in ``kind`` (abnormality, anatomy, phrase,
detection), so rewards keep routing on ``task`` alone. Detection rows of an image without
boxes ("No abnormalities.") have ``task="detection"``: the grounding reward is 0 without a
reference box, so they are SFT data only.

Tasks (``TASKS``), after the RadVLM instruction set (which source feeds which: each source module's
``SOURCE`` declaration, ``radrl.data.sources.SourceInfo``):

* ``report``: report generation (findings, else impression);
* ``classification``: "which abnormalities?" -> the positive CheXpert observations
  (uncertain counts as positive, as in RadVLM);
* ``grounding``: abnormality grounding, one row per finding class with boxes;
* ``anatomy_grounding``: one anatomical region per row (Chest ImaGenome), drawn at random;
* ``phrase_grounding``: one phrase per row with all its boxes (MS-CXR, PadChest-GR);
* ``detection``: all abnormalities of an image with their boxes;
* ``conversation``: a multi-turn conversation assembled from what the sample has (report,
  abnormalities, phrase boxes). RadVLM's own conversations were written by an LLM; these are
  templated. Import RadVLM's with ``radrl.data.sources.radvlm_json``.

``build_task_mix`` applies the per-source tasks and repeats of the paper's data table (as each
source declares them) and streams rows; ``build_conversations`` builds the tasks you name for every sample.

Prompt identity: the request of a row is a pure function of (seed, sample id, task, target,
repeat) through ``request_rng``, never of which other tasks, rows, order or ``--max-rows``
are built beside it. So SFT, GRPO and every evaluation of one sample and task ask the same
question, and a comparison of two models is made on identical requests. ``PROMPT_SCHEME``
names this rule; evaluation records it, and a run made under another rule is not resumed.

Every row also carries ``ref_boxes``: the target's boxes at the dataset's full precision
(``[[x1, y1, x2, y2], ...]`` in 0-1; ``[]`` for rows without boxes). The solution text rounds
them to two decimals, which moves the IoU of a small nodule by up to 0.3; scorers use these.

Boxes are written with ``radrl.data.boxes`` only: the paper's ``[x1, y1, x2, y2]`` 0-1
form (default) or Qwen3-VL's 0-1000 JSON form.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import Literal

from radrl.data.boxes import Box, format_boxes, format_qwen_json
from radrl.data.images import DICOM_SUFFIXES
from radrl.data.schema import CHEXPERT_LABELS, NO_FINDING, Sample
from radrl.data.sources import declared

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

CLASSIFICATION_PROMPTS = (
    "Which abnormalities are present in this chest X-ray?",
    "List the abnormal findings in this image.",
    "What pathologies can you identify on this radiograph?",
    "Identify any abnormalities visible in this chest X-ray.",
    "Are there any abnormalities in this image? Name them.",
    "Classify the findings present in this chest radiograph.",
)

ANATOMY_PROMPTS = (
    "Where is the {region} on this chest X-ray?",
    "Locate the {region}.",
    "Give the bounding box of the {region}.",
    "Show me the {region} in this image.",
    "Provide the coordinates of the {region}.",
)

PHRASE_PROMPTS = (
    "Locate the following finding: {phrase}",
    "Where in the image is this described: \"{phrase}\"?",
    "Give the bounding box for: {phrase}",
    "Show the region described by this sentence: {phrase}",
    "Ground this phrase in the image: {phrase}",
)

DETECTION_PROMPTS = (
    "Detect all abnormalities in this chest X-ray and give their locations.",
    "Find every abnormal finding in this image with its bounding box.",
    "List the abnormalities on this radiograph and where they are.",
    "Locate all pathologies visible in this chest X-ray.",
)

NO_ABNORMALITY = "No abnormalities."

# The rule that writes requests (see the module docstring); recorded by evaluation, checked by comparison.
# -3 reads VinDr's and TBX11K's class names from their sources' tables ("active tuberculosis", not
# "activetuberculosis"); the random draws are -2's, so the requests of every other source are unchanged,
# but a run recorded under -2 is not compared with one under -3 (its VinDr/TBX11K requests differ).
PROMPT_SCHEME = "radrl-requests-3"
_DRAW_SCHEME = "radrl-requests-2"


def request_rng(seed: int, sample_id: str, task: str, target: str = "", repeat: int = 0) -> random.Random:
    """The random stream behind one request: seeded by its key alone (string seeds are hashed with
    SHA-512, so the stream is the same in every process and Python version).

    >>> request_rng(0, "s1", "report").random() == request_rng(0, "s1", "report").random()
    True
    """
    return random.Random(f"{_DRAW_SCHEME}|{seed}|{sample_id}|{task}|{target}|{repeat}")

BOX_INSTRUCTION = {
    "paper": " Answer with boxes as [x_min, y_min, x_max, y_max] in 0-1 image coordinates.",
    "qwen": " Answer in JSON with bbox_2d on a 0-1000 grid.",
}

Task = Literal["report", "grounding", "classification", "anatomy_grounding", "phrase_grounding", "detection",
               "conversation"]
BoxFormat = Literal["paper", "qwen"]


def finding_phrase(label: str, source: str = "") -> str:
    """How a class name reads inside a request ("Locate the {phrase}"): the source's own table
    (``SourceInfo.class_names``) where it names the class, else lower case with acronyms kept,
    CamelCase split and "/" read as "or". Why: datasets write class names as identifiers
    ("ActiveTuberculosis", "ILD", "Nodule/Mass"); lower-casing them gave requests like "Locate the
    activetuberculosis" and "Locate the ild", which no radiologist writes.

    >>> finding_phrase("Pleural Effusion"), finding_phrase("ILD", "vindr-cxr"), finding_phrase("ActiveTuberculosis")
    ('pleural effusion', 'interstitial lung disease', 'active tuberculosis')
    >>> finding_phrase("Nodule/Mass"), finding_phrase("Enlarged PA")
    ('nodule or mass', 'enlarged PA')
    """
    named = _class_names(source)
    if label in named:
        return named[label]
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", label).replace("/", " or ").split()
    return " ".join(w if len(w) > 1 and w.isupper() else w.lower() for w in words)


@cache
def _class_names(source: str) -> dict[str, str]:
    """The source's ``SourceInfo.class_names`` (empty for an undeclared source); looked up once per source."""
    info = declared().get(source)
    return info.class_names if info is not None else {}


def grounding_answer(label: str, boxes: list[Box], box_format: BoxFormat = "paper") -> str:
    """The reference answer for grounding: ``Cardiomegaly at [..]`` (paper form) or Qwen JSON."""
    if box_format == "qwen":
        return format_qwen_json([Box(*b.coords, label=label) for b in boxes])
    return f"{label} at {format_boxes(boxes)}"


def _row(sample: Sample, task: str, request: str, answer: str, thinking: bool, suffix: str,
         kind: str | None = None, boxes: list[Box] | None = None) -> dict:
    text = request + (THINK_SUFFIX if thinking else "")
    return {
        "id": f"{sample.id}-{suffix}",
        "prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}],
        "completion": [{"role": "assistant", "content": [{"type": "text", "text": answer}]}],
        "images": [sample.image],
        "task": task,
        "kind": kind,
        "solution": answer,
        "thinking": thinking,
        "ref_boxes": _coords(boxes),
        "sample_id": sample.id,  # the image a row asks about: rows of one image resample together (eval.stats)
    }


def _coords(boxes: list[Box] | None) -> list[list[float]]:
    return [[float(c) for c in b.coords] for b in boxes or []]


def report_conversation(sample: Sample, seed: int = 0, thinking: bool = False, repeat: int = 0) -> dict | None:
    """A report-generation row, or None when the sample has no report text."""
    if not sample.report:
        return None
    request = request_rng(seed, sample.id, "report", "", repeat).choice(REPORT_PROMPTS)
    return _row(sample, "report", request, sample.report.strip(), thinking, "report")


def grounding_conversations(sample: Sample, seed: int = 0, thinking: bool = False,
                            box_format: BoxFormat = "paper", box_instruction: bool = False,
                            repeat: int = 0) -> list[dict]:
    """One row per finding with boxes: 'Locate the X' -> all boxes of X."""
    rows = []
    for label, boxes in sorted(_by_label(sample.boxes).items()):
        rng = request_rng(seed, sample.id, "grounding", label, repeat)
        request = rng.choice(GROUNDING_PROMPTS).format(finding=finding_phrase(label, sample.source))
        if box_instruction:
            request += BOX_INSTRUCTION[box_format]
        answer = grounding_answer(label, boxes, box_format)
        slug = label.lower().replace(" ", "_")
        rows.append(_row(sample, "grounding", request, answer, thinking, f"ground-{slug}", kind="abnormality",
                         boxes=boxes))
    return rows


def _by_label(boxes: list[Box]) -> dict[str, list[Box]]:
    """Labelled boxes grouped by label, in first-seen order (unlabelled boxes left out)."""
    groups: dict[str, list[Box]] = {}
    for b in boxes:
        if b.label:
            groups.setdefault(b.label, []).append(b)
    return groups


def _boxes_answer(boxes: list[Box], box_format: BoxFormat) -> str:
    return format_qwen_json(boxes) if box_format == "qwen" else format_boxes(boxes)


def _positives(sample: Sample) -> list[str]:
    """Observations present (1) or uncertain (-1), in CheXpert order, 'No Finding' left out."""
    return [k for k in CHEXPERT_LABELS if k != NO_FINDING and sample.labels.get(k) in (1, -1)]


def classification_answer(sample: Sample) -> str | None:
    """'Cardiomegaly, Pleural Effusion', or 'No Finding'; None when the sample has no labels.

    >>> classification_answer(Sample(id="a", image="a.png", labels={"Edema": -1, "Cardiomegaly": 1, "Fracture": 0}))
    'Cardiomegaly, Edema'
    """
    if not sample.labels:
        return None
    return ", ".join(_positives(sample)) or NO_FINDING


def classification_conversation(sample: Sample, seed: int = 0, thinking: bool = False,
                                repeat: int = 0) -> dict | None:
    """'Which abnormalities ...?' -> the positive observations; None without labels."""
    answer = classification_answer(sample)
    if answer is None:
        return None
    request = request_rng(seed, sample.id, "classification", "", repeat).choice(CLASSIFICATION_PROMPTS)
    return _row(sample, "classification", request, answer, thinking, "classify")


def anatomy_conversation(sample: Sample, seed: int = 0, thinking: bool = False, box_format: BoxFormat = "paper",
                         box_instruction: bool = False, repeat: int = 0) -> dict | None:
    """One region drawn at random (as RadVLM does): 'Where is the left lung?' -> 'left lung at [..]'."""
    regions = sorted({b.label for b in sample.boxes if b.label})
    if not regions:
        return None
    region = request_rng(seed, sample.id, "anatomy_grounding", "", repeat).choice(regions)
    request = request_rng(seed, sample.id, "anatomy_grounding", region, repeat).choice(ANATOMY_PROMPTS)
    request = request.format(region=region)
    if box_instruction:
        request += BOX_INSTRUCTION[box_format]
    boxes = [b for b in sample.boxes if b.label == region]
    answer = grounding_answer(region, boxes, box_format)
    return _row(sample, "grounding", request, answer, thinking, f"anatomy-{region.lower().replace(' ', '_')}",
                kind="anatomy", boxes=boxes)


def phrase_conversations(sample: Sample, seed: int = 0, thinking: bool = False, box_format: BoxFormat = "paper",
                         box_instruction: bool = False, repeat: int = 0) -> list[dict]:
    """One row per phrase, answered with all of that phrase's boxes (the phrase is not repeated).

    >>> s = Sample(id="p", image="p.jpg", boxes=[Box(0.6, 0.1, 0.8, 0.2, "Left apical pneumothorax")])
    >>> phrase_conversations(s)[0]["solution"]
    '[0.60, 0.10, 0.80, 0.20]'
    """
    rows = []
    for n, (phrase, boxes) in enumerate(_by_label(sample.boxes).items()):
        request = request_rng(seed, sample.id, "phrase_grounding", phrase, repeat).choice(PHRASE_PROMPTS)
        request = request.format(phrase=phrase)
        if box_instruction:
            request += BOX_INSTRUCTION[box_format]
        rows.append(_row(sample, "grounding", request, _boxes_answer(boxes, box_format), thinking, f"phrase{n}",
                         kind="phrase", boxes=boxes))
    return rows


def detection_answer(sample: Sample, box_format: BoxFormat = "paper") -> str:
    """Every labelled box: 'Cardiomegaly at [..]; Nodule/Mass at [..] and [..]' (or Qwen JSON), else NO_ABNORMALITY.

    >>> detection_answer(Sample(id="v", image="v.png", boxes=[Box(0.3, 0.5, 0.7, 0.8, "Cardiomegaly")]), "qwen")
    '[{"bbox_2d": [300, 500, 700, 800], "label": "Cardiomegaly"}]'
    """
    boxes = [b for b in sample.boxes if b.label]
    if not boxes:
        return NO_ABNORMALITY
    if box_format == "qwen":
        return format_qwen_json(sorted(boxes, key=lambda b: b.label or ""))
    return "; ".join(f"{label} at {format_boxes(bs)}" for label, bs in sorted(_by_label(boxes).items()))


def detection_conversation(sample: Sample, seed: int = 0, thinking: bool = False, box_format: BoxFormat = "paper",
                           box_instruction: bool = False, repeat: int = 0) -> dict | None:
    """All abnormalities with boxes; a box-free image (labels say nothing is wrong) answers NO_ABNORMALITY."""
    has_boxes = any(b.label for b in sample.boxes)
    if not has_boxes and not _says_normal(sample):
        return None
    request = request_rng(seed, sample.id, "detection", "", repeat).choice(DETECTION_PROMPTS)
    request += BOX_INSTRUCTION[box_format] if box_instruction else ""
    task = "grounding" if has_boxes else "detection"
    return _row(sample, task, request, detection_answer(sample, box_format), thinking, "detect", kind="detection",
                boxes=[b for b in sample.boxes if b.label])


def _says_normal(sample: Sample) -> bool:
    """A sample we may call normal: the dataset says so ("No Finding": 1) and nothing is positive or
    uncertain. Labels that merely lack CheXpert positives are not enough: a TBX11K "sick" image or an
    RSNA "No Lung Opacity / Not Normal" image has none, and must not be taught "No abnormalities"."""
    return sample.labels.get(NO_FINDING) == 1 and not _positives(sample)


def conversation(sample: Sample, seed: int = 0, thinking: bool = False, box_format: BoxFormat = "paper",
                 box_instruction: bool = False, max_phrases: int = 2, repeat: int = 0) -> dict | None:
    """A multi-turn conversation from the sample's annotations; None when fewer than two turns exist.

    Turns, in order, where the sample has them: report, abnormalities, then up to
    ``max_phrases`` phrase groundings (a "grounded conversation"). The image sits in the first
    user turn; earlier answers are assistant messages in the prompt; the last answer is the
    completion and the solution; " /think" goes on the last request only.

    >>> s = Sample(id="m", image="m.jpg", findings="Small left effusion.", labels={"Pleural Effusion": 1})
    >>> row = conversation(s)
    >>> [m["role"] for m in row["prompt"]], row["solution"]
    (['user', 'assistant', 'user'], 'Pleural Effusion')
    """
    turns: list[tuple[str, str]] = []
    if sample.report:
        turns.append((request_rng(seed, sample.id, "conversation", "report", repeat).choice(REPORT_PROMPTS),
                      sample.report.strip()))
    if (answer := classification_answer(sample)) is not None:
        turns.append((request_rng(seed, sample.id, "conversation", "classification", repeat)
                      .choice(CLASSIFICATION_PROMPTS), answer))
    phrases = phrase_conversations(sample, seed, False, box_format, box_instruction, repeat)[:max_phrases]
    turns += [(r["prompt"][0]["content"][1]["text"], r["solution"]) for r in phrases]
    if len(turns) < 2:
        return None
    messages: list[dict] = []
    for i, (request, answer) in enumerate(turns):
        last = i == len(turns) - 1
        text = request + (THINK_SUFFIX if thinking and last else "")
        content = ([{"type": "image"}] if i == 0 else []) + [{"type": "text", "text": text}]
        messages.append({"role": "user", "content": content})
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    kind = "grounded_conversation" if phrases else "conversation"
    return {"id": f"{sample.id}-conversation", "prompt": messages[:-1], "completion": messages[-1:],
            "images": [sample.image], "task": "conversation", "kind": kind, "solution": turns[-1][1],
            "thinking": thinking, "ref_boxes": phrases[-1]["ref_boxes"] if phrases else [],  # phrases come last
            "sample_id": sample.id}


def _as_list(row: dict | list[dict] | None) -> list[dict]:
    return [] if row is None else row if isinstance(row, list) else [row]


# task name -> (sample, seed, thinking, box_format, box_instruction, repeat) -> rows
TASKS: dict[str, Callable[..., list[dict]]] = {
    "report": lambda s, seed, th, bf, bi, r: _as_list(report_conversation(s, seed, th, r)),
    "classification": lambda s, seed, th, bf, bi, r: _as_list(classification_conversation(s, seed, th, r)),
    "grounding": lambda s, seed, th, bf, bi, r: grounding_conversations(s, seed, th, bf, bi, r),
    "anatomy_grounding": lambda s, seed, th, bf, bi, r: _as_list(anatomy_conversation(s, seed, th, bf, bi, r)),
    "phrase_grounding": lambda s, seed, th, bf, bi, r: phrase_conversations(s, seed, th, bf, bi, r),
    "detection": lambda s, seed, th, bf, bi, r: _as_list(detection_conversation(s, seed, th, bf, bi, r)),
    "conversation": lambda s, seed, th, bf, bi, r: _as_list(conversation(s, seed, th, bf, bi, repeat=r)),
}

def _source_tasks() -> dict[str, tuple[str, ...]]:
    """source -> its tasks in the paper's mix, as each source module declares them (``SOURCE.tasks``)."""
    return {name: info.tasks for name, info in declared().items()}


def _repeats() -> dict[tuple[str, str], int]:
    """(task, source) -> repeats, as each source module declares them (``SOURCE.repeats``); anything else is 1."""
    return {(task, name): n for name, info in declared().items() for task, n in info.repeats.items()}


def __getattr__(name: str):
    """``SOURCE_TASKS`` and ``REPEATS``: the sources' declarations as the tables ``build_task_mix``'s
    ``source_tasks=`` and ``repeats=`` take, a fresh copy on each access (built on use, not at import:
    some source modules import this one, so they cannot be read while it loads)."""
    if name == "SOURCE_TASKS":
        return _source_tasks()
    if name == "REPEATS":
        return _repeats()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _check_tasks(tasks: Iterable[str]) -> tuple[str, ...]:
    tasks = tuple(tasks)
    unknown = set(tasks) - set(TASKS)
    if unknown:
        raise ValueError(f"unknown task(s) {sorted(unknown)}; choose from {', '.join(TASKS)}")
    return tasks


def build_conversations(samples: Iterable[Sample], tasks: Iterable[Task] = ("report", "grounding"),
                        seed: int = 0, thinking: bool = False, box_format: BoxFormat = "paper",
                        box_instruction: bool = False) -> list[dict]:
    """All conversation rows for ``samples`` and ``tasks`` (names in ``TASKS``), whatever the source;
    each request is drawn by ``request_rng`` from ``seed`` and the row's own key, so a row's request does
    not depend on the other tasks or samples. Use ``build_task_mix`` for the paper's per-source mix."""
    tasks = _check_tasks(tasks)
    rows: list[dict] = []
    for s in samples:
        for task, build in TASKS.items():  # a fixed order, whatever order the caller named them in
            if task in tasks:
                rows.extend(build(s, seed, thinking, box_format, box_instruction, 0))
    return rows


def build_task_mix(samples: Iterable[Sample], seed: int = 0, thinking: bool = False, box_format: BoxFormat = "paper",
                   box_instruction: bool = False, tasks: Iterable[str] | None = None,
                   repeats: dict[tuple[str, str], int] | None = None,
                   source_tasks: dict[str, tuple[str, ...]] | None = None) -> Iterator[dict]:
    """The paper's instruction mix, streamed: each sample feeds its source's tasks, each ``repeats`` times.

    Tasks and repeats are what each source module declares (``SOURCE``, ``radrl.data.sources``);
    ``source_tasks`` (source -> tasks) and ``repeats`` ((task, source) -> n) replace those tables,
    e.g. ``source_tasks={**SOURCE_TASKS, "mimic-cxr": ("report",)}``. A sample whose source is not in
    the table is an error that says how to declare it: it never falls back to some default mix.

    Every repeat draws afresh (another phrasing; another region for anatomy: ``repeat`` is part of the
    request's key), and repeat ``r > 0`` has ``-r<r>`` appended to its id so ids stay unique. Repeat 0
    asks what ``build_conversations`` asks. ``tasks`` keeps only the named tasks.

    >>> s = Sample(id="m1", image="m1.jpg", source="ms-cxr", findings="Small left effusion.",
    ...            boxes=[Box(0.6, 0.6, 0.9, 0.9, "Small left effusion.")])
    >>> [r["id"] for r in build_task_mix([s], tasks=["phrase_grounding"])]
    ['m1-phrase0', 'm1-phrase0-r1', 'm1-phrase0-r2']
    """
    keep = set(_check_tasks(tasks)) if tasks is not None else None
    given = source_tasks is not None
    repeats = _repeats() if repeats is None else repeats
    source_tasks = _source_tasks() if source_tasks is None else source_tasks
    for s in samples:
        if s.source not in source_tasks:
            raise ValueError(_unknown_source(s, source_tasks, given))
        for task in _check_tasks(source_tasks[s.source]):
            if keep is not None and task not in keep:
                continue
            for r in range(repeats.get((task, s.source), 1)):
                for row in TASKS[task](s, seed, thinking, box_format, box_instruction, r):
                    if r:
                        row["id"] += f"-r{r}"
                    yield row


def _unknown_source(sample: Sample, source_tasks: dict[str, tuple[str, ...]], given: bool) -> str:
    if not sample.source:
        return (f"sample {sample.id!r} has no source (Sample.source is empty), so build_task_mix does not know its "
                f"tasks; set it to the source that made the sample (one of: {', '.join(source_tasks)}), or build "
                "named tasks for every sample with build_conversations(samples, tasks=[...])")
    where = "is not in the source_tasks= you passed" if given else "is declared by no data source"
    return (f"sample {sample.id!r}: source {sample.source!r} {where} (known: {', '.join(source_tasks)}), so "
            "build_task_mix does not know its tasks. Fix: declare it, SOURCE = SourceInfo(name="
            f"{sample.source!r}, expects=..., tasks=(...)) in a module of radrl/data/sources/ (docs/extending.md), "
            f"or pass source_tasks={{**SOURCE_TASKS, {sample.source!r}: (\"report\", \"grounding\")}}")


def to_dataset(rows: list[dict]):
    """A Hugging Face dataset whose ``images`` column decodes paths to PIL images on access."""
    from datasets import Dataset, Image, Sequence

    if not rows:
        raise ValueError("no conversation rows to build a dataset from; check the data split and tasks")
    dicom = next(((r["id"], p) for r in rows for p in r.get("images") or []
                  if isinstance(p, str) and p.lower().endswith(DICOM_SUFFIXES)), None)
    if dicom:  # decoding DICOM (often JPEG 2000) in every epoch would dominate a training step
        raise ValueError(f"row {dicom[0]}: image {dicom[1]} is DICOM; training and GRPO read PNG/JPEG. Decode once "
                         "with `radrl prepare SOURCE --root DIR --out DIR --dicom-to-png` (radrl.data.images "
                         "handles MONOCHROME1, rescale, VOI LUT) and train on that output")
    return Dataset.from_list(rows).cast_column("images", Sequence(Image()))
