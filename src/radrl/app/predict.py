"""One radiograph in, a report and boxes out: load a checkpoint once, then ask about images.

``Predictor`` answers four questions about a chest X-ray: ``report`` (optionally with every finding boxed),
``ground`` (boxes for a finding or a free-text phrase), ``detect`` (every abnormality with its boxes) and ``chat``
(a multi-turn conversation). ``radrl predict`` is this class on the command line, ``radrl app`` in a browser.

Why it sits above ``radrl.eval``: an answer here must be the answer ``radrl eval`` would score for the same image.
So nothing here words a prompt or reads a completion its own way: a request is the row ``radrl.data.instructions``
builds for training and evaluation from a sample made of this image (its reference answer is a placeholder no one
reads), the pixel budget is eval's ``EVAL_PIXELS``, the model is loaded and run by the code eval's ``hf`` backend
runs (``load_any``, ``messages_with_images``, ``generate_messages``, eval's token limits), and completions go
through ``radrl.parsing.parse``.

Images: a PNG, JPEG or DICOM path, read by ``radrl.data.images`` (MONOCHROME1, rescale and the file's own window
or VOI LUT honoured; ``window=(centre, width)`` sets another), or a PIL image. Boxes come back in 0-1 of the image
(``Box``) and in pixels of the image as given, at its own resolution, whatever size the model saw it at.

Three lines to a report with boxes (``boxes=True`` adds the detection request's boxes to the report):

>>> from radrl.app import Predictor                                                   # doctest: +SKIP
>>> model = Predictor("runs/demo/sft")                                                # doctest: +SKIP
>>> model.report("../shared/data/cxr/dicom/CR-MONO1-10-chest.dcm", boxes=True).boxes  # doctest: +SKIP
(FoundBox(label='Cardiomegaly', box=Box(x1=0.3, ...), pixels=(132, 207, 334, 273)),)

The same on a tiny random checkpoint built here, offline (its words are noise; the requests are the real ones):

>>> import tempfile
>>> from PIL import Image
>>> from radrl.models.tiny import build_tiny_model, demo_corpus
>>> folder = tempfile.TemporaryDirectory()
>>> model = Predictor(build_tiny_model(folder.name, demo_corpus()), max_new_tokens=8)
>>> result = model.report(Image.new("L", (300, 200)), boxes=True)
>>> result.task, result.request, result.image_size
('report', 'Write the findings section of a radiology report for this chest X-ray.', (300, 200))
>>> result.detection.request
'Find every abnormal finding in this image with its bounding box.'
>>> model.ground(Image.new("L", (300, 200)), "pleural effusion").request
'Provide the bounding box coordinates of the pleural effusion.'
>>> folder.cleanup()
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Literal

from PIL import Image

from radrl.data.boxes import Box
from radrl.data.images import ImageError, as_rgb, image_header, is_dicom, load_image
from radrl.data.instructions import (
    THINK_SUFFIX,
    BoxFormat,
    detection_conversation,
    grounding_conversations,
    phrase_conversations,
    report_conversation,
)
from radrl.data.schema import CHEXPERT_LABELS, NO_FINDING, Sample
from radrl.data.sources import declared
from radrl.data.synthetic import FINDINGS as SYNTHETIC_FINDINGS
from radrl.eval.generate import messages_with_images, task_limits
from radrl.eval.run import EVAL_PIXELS
from radrl.models.generation import generate_messages, load_any
from radrl.models.load import DTYPES
from radrl.parsing import parse

__all__ = ["KNOWN_FINDINGS", "MAX_INPUT_PIXELS", "FoundBox", "Prediction", "Predictor", "Radiograph",
           "read_radiograph"]

# The sample id every request is drawn for (with ``seed``): one image always gets the same phrasing of a task.
REQUEST_ID = "image"
# Refused before decoding: a 43 x 43 cm detector at 0.1 mm is 18.5 MP, and a forged header can claim gigapixels.
MAX_INPUT_PIXELS = 64 * 2**20


def _known_findings() -> dict[str, tuple[str, str]]:
    """lower-cased name -> (class name, source) of every finding asked with the finding-grounding template: the
    CheXpert observations and the synthetic findings (no source: the generic reading of ``finding_phrase``), then
    every declared source's classes with that source, so "ILD" reads "interstitial lung disease" as in a VinDr row.
    Why the source: eval words a request for a row of that source with the source's ``class_names``; without it
    the request would differ from the one the checkpoint was trained and scored on. A name two tables share in any
    case ("Pleural Effusion", VinDr's "Pleural effusion") keeps the first, CheXpert's: its request is eval's for a
    row labelled the CheXpert way."""
    known: dict[str, tuple[str, str]] = {}
    names = [(k, "") for k in CHEXPERT_LABELS if k != NO_FINDING] + [(k, "") for k in SYNTHETIC_FINDINGS]
    names += [(k, info.name) for info in declared().values() for k in info.class_names]
    for name, source in names:
        known.setdefault(name.lower(), (name, source))
    return known


_FINDINGS = _known_findings()
# Findings asked with the finding-grounding template ("Locate the cardiomegaly ..."); any other text is a phrase.
KNOWN_FINDINGS = tuple(name for name, _ in _FINDINGS.values())


@dataclass(frozen=True)
class Radiograph:
    """An image as the model is shown it: 8-bit RGB at the file's own resolution (DICOM windowed), and where it
    came from. Read once with ``read_radiograph`` and pass it to several questions to decode a DICOM once."""

    image: Image.Image
    path: str | None = None
    dicom: bool = False
    window: tuple[float, float] | None = None   # the window set by the caller; None: the file's own

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def read_radiograph(image, window: tuple[float, float] | None = None,
                    max_pixels: int = MAX_INPUT_PIXELS) -> Radiograph:
    """A path (PNG, JPEG, DICOM) or PIL image -> ``Radiograph``; raises ``ImageError`` (a ``ValueError``) with
    the file and the fix. The size is checked from the header before decoding, so a huge or forged file costs
    nothing. ``window`` (centre, width) applies to DICOM only.

    >>> read_radiograph(Image.new("L", (30, 20))).size
    (30, 20)
    >>> read_radiograph(Image.new("L", (9000, 8000)))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    radrl.data.images.ImageError: the image is 9000 x 8000 pixels (72.0 MP), above the 67.1 MP ...; downsample it first
    """
    if isinstance(image, Radiograph):
        if window is None or window == image.window or not image.dicom:
            return image
        image = image.path
    if isinstance(image, Image.Image):
        _check_size(*image.size, "the image", max_pixels)
        return Radiograph(as_rgb(image))
    if not isinstance(image, (str, os.PathLike)):
        raise ImageError(f"cannot read an image from a {type(image).__name__}; pass a file path or a PIL image")
    path = Path(image)
    width, height, _ = image_header(path)
    _check_size(width, height, str(path), max_pixels)
    dicom = is_dicom(path)
    return Radiograph(load_image(path, window=window if dicom else None), str(path), dicom,
                      window if dicom else None)


def _check_size(width: int, height: int, what: str, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageError(f"{what} is {width} x {height} pixels ({width * height / 1e6:.1f} MP), above the "
                         f"{max_pixels / 1e6:.1f} MP this takes; downsample it first")
    if min(width, height) < 1:
        raise ImageError(f"{what} is {width} x {height} pixels: it holds no image")


@dataclass(frozen=True)
class FoundBox:
    """One box of an answer: ``box`` in 0-1 of the image (``radrl.data.boxes`` convention), ``pixels`` the same
    corners (left, top, right, bottom) in pixels of the image as given, ``label`` the finding or phrase."""

    label: str | None
    box: Box
    pixels: tuple[int, int, int, int]

    def to_dict(self) -> dict:
        return {"label": self.label, "box": [round(c, 4) for c in self.box.coords], "pixels": list(self.pixels)}


@dataclass(frozen=True)
class Prediction:
    """One answer: ``text`` is what is scored (the part after ``</think>``), ``thinking`` the reasoning when the
    model thought (else None), ``boxes`` the answer's boxes (a report asked with ``boxes=True`` also gets the
    detection's), ``request`` the exact request sent, ``completion`` the raw text, ``issues`` the parser's
    complaints (``radrl.parsing``). ``complete`` is False for the partial answers a stream yields; ``history``
    holds a chat's turns so far, this one included, to pass to the next ``chat`` call."""

    task: Literal["report", "grounding", "detection", "chat"]
    request: str
    text: str
    thinking: str | None
    boxes: tuple[FoundBox, ...]
    completion: str
    image_size: tuple[int, int]
    issues: tuple[str, ...] = ()
    image: str | None = None
    target: str | None = None
    detection: Prediction | None = None
    history: tuple[tuple[str, str], ...] = ()
    complete: bool = True

    def to_dict(self) -> dict:
        """Plain JSON-ready fields (one line of ``radrl predict``)."""
        out = {"image": self.image, "task": self.task, "target": self.target, "request": self.request,
               "text": self.text, "thinking": self.thinking, "boxes": [b.to_dict() for b in self.boxes],
               "image_size": list(self.image_size), "issues": list(self.issues), "completion": self.completion}
        if self.detection is not None:
            out["detection"] = self.detection.to_dict()
        if self.history:
            out["history"] = [list(turn) for turn in self.history]
        return out


@dataclass
class _Job:
    """A request ready to generate: the chat messages with images filled in, and how to read the answer."""

    task: str
    request: str
    messages: list[dict]
    limit: int
    radiograph: Radiograph
    target: str | None = None
    history: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class _Cancelled(Exception):
    """Raised inside ``generate`` by the stream's streamer (``_streamer_class``) once its reader has gone."""


@cache
def _streamer_class():
    """Built on first use: transformers' generation module loads only when a stream is asked for."""
    from transformers import TextIteratorStreamer

    class CancellableStreamer(TextIteratorStreamer):
        """A ``TextIteratorStreamer`` that stops ``generate`` (by raising ``_Cancelled`` on the next token) once
        ``cancel`` is set; ``generate`` calls ``put`` before running the prompt and after every new token."""

        def __init__(self, processor, cancel: threading.Event):
            tokenizer = getattr(processor, "tokenizer", processor)
            super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=3600)
            self.cancel = cancel

        def put(self, value) -> None:
            if self.cancel.is_set():
                raise _Cancelled
            super().put(value)

    return CancellableStreamer


class Predictor:
    """A checkpoint loaded once, answering questions about radiographs (see the module docstring).

    ``min_pixels``/``max_pixels``: the pixel budget (default eval's ``EVAL_PIXELS``, never the budget the
    checkpoint was trained at, as in ``radrl eval``). ``max_new_tokens``: an int for every task or a dict per
    task (eval's defaults otherwise: 1,024 for reports, 4,096 when thinking and for boxes). ``thinking`` appends
    " /think" to every request and reads the answer after ``</think>``. ``seed`` picks the requests' phrasing
    (as eval's ``--seed`` does). ``dtype``: a torch dtype or ``bf16``/``fp16``/``fp32`` (default bf16 on a GPU
    that has it, else fp32). Generation is greedy and one request at a time (a lock serialises callers).
    """

    def __init__(self, checkpoint: str | os.PathLike, *, device: str | None = None, dtype=None,
                 loader: str = "auto", min_pixels: int = EVAL_PIXELS[0], max_pixels: int = EVAL_PIXELS[1],
                 thinking: bool = False, max_new_tokens: dict[str, int] | int | None = None, seed: int = 0,
                 box_format: BoxFormat = "paper", box_instruction: bool = False):
        if not 0 < min_pixels <= max_pixels:
            raise ValueError(f"pixel budget min_pixels={min_pixels}, max_pixels={max_pixels}: give two positive "
                             f"numbers, min <= max (default {EVAL_PIXELS}, eval's)")
        if isinstance(dtype, str):   # "bf16", "fp32"...: the names radrl eval --dtype takes
            if dtype not in DTYPES:
                raise ValueError(f"dtype {dtype!r}: choose one of {sorted(DTYPES)}")
            dtype = DTYPES[dtype]
        self.checkpoint = str(checkpoint)
        self.model, self.processor = load_any(self.checkpoint, device=device, loader=loader, dtype=dtype,
                                              min_pixels=min_pixels, max_pixels=max_pixels)
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        self.thinking, self.seed = thinking, seed
        self.box_format, self.box_instruction = box_format, box_instruction
        self.limits = task_limits(max_new_tokens, thinking)
        self._lock = threading.Lock()

    @property
    def settings(self) -> dict:
        """What an answer depends on besides the image: shown by the app, written by ``radrl predict``."""
        return {"checkpoint": self.checkpoint, "name": Path(self.checkpoint).name,
                "model_type": getattr(self.model.config, "model_type", None),
                "parameters": sum(p.numel() for p in self.model.parameters()),
                "device": str(self.model.device), "dtype": str(self.model.dtype).removeprefix("torch."),
                "min_pixels": self.min_pixels, "max_pixels": self.max_pixels, "decoding": "greedy",
                "thinking": self.thinking, "max_new_tokens": dict(self.limits), "seed": self.seed,
                "box_format": self.box_format}

    # --- the four questions ----------------------------------------------------------------------------------
    def report(self, image, lateral=None, *, boxes: bool = False,
               window: tuple[float, float] | None = None) -> Prediction:
        """A report for ``image`` (a frontal view); ``lateral``, when given, goes into the same request as a
        second image (the demo's checkpoints were trained on one view). ``boxes=True`` also asks the
        detection request and adds its boxes (the detection's answer is in ``.detection``)."""
        job = self._report_job(image, lateral, window)
        result = self._finish(job, self._generate(job))
        return self._with_detection(result, job.radiograph) if boxes else result

    def ground(self, image, target: str, *, kind: Literal["auto", "finding", "phrase"] = "auto",
               window: tuple[float, float] | None = None) -> Prediction:
        """Boxes for ``target``: a finding name (``KNOWN_FINDINGS``, or any name with ``kind="finding"``) is
        asked with the finding-grounding requests, anything else with the phrase-grounding ones."""
        job = self._ground_job(image, target, kind, window)
        return self._finish(job, self._generate(job))

    def detect(self, image, *, window: tuple[float, float] | None = None) -> Prediction:
        """Every abnormality the model sees, each with its boxes ("No abnormalities." when none)."""
        job = self._detect_job(read_radiograph(image, window))
        return self._finish(job, self._generate(job))

    def chat(self, image, message: str, history: Sequence[tuple[str, str]] = (), *, lateral=None,
             window: tuple[float, float] | None = None) -> Prediction:
        """One turn of a conversation about ``image``: ``history`` is the earlier (request, answer) pairs (the
        previous result's ``.history``). The image sits in the first user turn, as in the conversation rows
        ``radrl.data.instructions`` builds."""
        job = self._chat_job(image, message, history, lateral, window)
        return self._finish(job, self._generate(job))

    # --- streaming (the app shows text as it is written) -----------------------------------------------------
    def report_stream(self, image, lateral=None, *, window: tuple[float, float] | None = None
                      ) -> Iterator[Prediction]:
        """``report``, yielding partial predictions (``complete=False``) as tokens arrive, then the final one."""
        return self._stream(self._report_job(image, lateral, window))

    def chat_stream(self, image, message: str, history: Sequence[tuple[str, str]] = (), *, lateral=None,
                    window: tuple[float, float] | None = None) -> Iterator[Prediction]:
        """``chat``, yielding partial predictions as tokens arrive, then the final one."""
        return self._stream(self._chat_job(image, message, history, lateral, window))

    # --- requests: the rows radrl.data.instructions builds -------------------------------------------------
    def _sample(self, radiograph: Radiograph, boxes: list[Box] | None = None, source: str = "") -> Sample:
        # The reference text and boxes only decide which rows exist; the request does not depend on them. The
        # source does: it picks how a class name reads (``SourceInfo.class_names``).
        return Sample(id=REQUEST_ID, image=radiograph.path or "image.png", source=source,
                      findings="(placeholder)", boxes=boxes or [])

    def _job(self, task: str, row: dict, radiograph: Radiograph, target: str | None = None,
             lateral: Radiograph | None = None) -> _Job:
        """The row's prompt with the images filled in, and the token limit eval gives the row's task."""
        prompt = [dict(m) for m in row["prompt"]]
        images = [radiograph.image]
        if lateral is not None:  # a second image part right after the first
            content = list(prompt[0]["content"])
            content.insert(1, {"type": "image"})
            prompt[0] = {**prompt[0], "content": content}
            images.append(lateral.image)
        request = row["prompt"][-1]["content"][-1]["text"].removesuffix(THINK_SUFFIX)
        messages = messages_with_images({"id": row["id"], "prompt": prompt, "images": images})
        return _Job(task, request, messages, self.limits[row["task"]], radiograph, target)

    def _report_job(self, image, lateral, window) -> _Job:
        radiograph = read_radiograph(image, window)
        lateral = read_radiograph(lateral, window) if lateral is not None else None
        row = report_conversation(self._sample(radiograph), seed=self.seed, thinking=self.thinking)
        return self._job("report", row, radiograph, lateral=lateral)

    def _ground_job(self, image, target: str, kind: str, window) -> _Job:
        target = " ".join(str(target or "").split())
        if not target:
            raise ValueError("give a finding (e.g. Cardiomegaly) or a phrase (e.g. 'small left effusion') to locate")
        if kind not in ("auto", "finding", "phrase"):
            raise ValueError(f"kind={kind!r}; choose auto, finding or phrase")
        finding = kind == "finding" or (kind == "auto" and target.lower() in _FINDINGS)
        label, source = _FINDINGS.get(target.lower(), (target, ""))
        radiograph = read_radiograph(image, window)
        sample = self._sample(radiograph, [Box(0.0, 0.0, 1.0, 1.0, label if finding else target)],
                              source if finding else "")
        build = grounding_conversations if finding else phrase_conversations
        row = build(sample, seed=self.seed, thinking=self.thinking, box_format=self.box_format,
                    box_instruction=self.box_instruction)[0]
        return self._job("grounding", row, radiograph, target=label if finding else target)

    def _detect_job(self, radiograph: Radiograph) -> _Job:
        sample = self._sample(radiograph, [Box(0.0, 0.0, 1.0, 1.0, "finding")])
        row = detection_conversation(sample, seed=self.seed, thinking=self.thinking, box_format=self.box_format,
                                     box_instruction=self.box_instruction)
        return self._job("detection", row, radiograph)

    def _chat_job(self, image, message: str, history: Sequence[tuple[str, str]], lateral, window) -> _Job:
        message = str(message or "").strip()
        if not message:
            raise ValueError("the message is empty; type a question about the image")
        radiograph = read_radiograph(image, window)
        views = [radiograph.image] + ([read_radiograph(lateral, window).image] if lateral is not None else [])
        turns = [*((str(q), str(a)) for q, a in history), (message, "")]
        prompt: list[dict] = []
        for i, (question, answer) in enumerate(turns):
            last = i == len(turns) - 1
            text = question + (THINK_SUFFIX if self.thinking and last else "")
            images = [{"type": "image"}] * len(views) if i == 0 else []
            prompt.append({"role": "user", "content": [*images, {"type": "text", "text": text}]})
            if not last:
                prompt.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
        messages = messages_with_images({"id": "chat", "prompt": prompt, "images": views})
        return _Job("chat", message, messages, self.limits["report"], radiograph, history=tuple(turns[:-1]))

    # --- generation and reading ------------------------------------------------------------------------------
    def _generate(self, job: _Job, streamer=None) -> str:
        with self._lock:
            return generate_messages(self.model, self.processor, [job.messages], max_new_tokens=job.limit,
                                     streamer=streamer)[0]

    def _stream(self, job: _Job) -> Iterator[Prediction]:
        """Generate on a thread and yield as the streamer gives text. Closing the generator early (the viewer left,
        Gradio cancelled) sets ``cancel``: the streamer then stops ``generate`` at its next token, so the thread
        ends and frees the lock instead of writing up to 4,096 tokens no one reads while other requests wait.
        Why the streamer stops it: ``generate_messages`` takes no stopping criteria, and the streamer is the one
        hook it calls on every token."""
        cancel = threading.Event()
        streamer = _streamer_class()(self.processor, cancel)
        out: dict = {}

        def run() -> None:
            try:
                out["text"] = self._generate(job, streamer)
            except _Cancelled:
                streamer.end()
            except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread below
                out["error"] = e
                streamer.end()

        thread = threading.Thread(target=run, daemon=True, name="radrl-predict-stream")
        thread.start()
        try:
            text = ""
            for piece in streamer:
                text += piece
                if piece:
                    yield replace(self._finish(job, text), complete=False)
            thread.join()
        finally:
            cancel.set()   # a no-op once generation has ended; stops it when the caller left early
        if "error" in out:
            raise out["error"]
        yield self._finish(job, out["text"])

    def _finish(self, job: _Job, completion: str) -> Prediction:
        parsed = parse(completion, thinking=self.thinking)
        width, height = job.radiograph.size
        boxes = tuple(FoundBox(b.label or job.target, b if b.label else replace(b, label=job.target),
                               tuple(round(v) for v in b.to_pixels(width, height)))  # type: ignore[arg-type]
                      for b in parsed.boxes)
        history = (*job.history, (job.request, parsed.answer)) if job.task == "chat" else ()
        return Prediction(task=job.task, request=job.request, text=parsed.answer, thinking=parsed.think,
                          boxes=boxes, completion=completion, image_size=(width, height), issues=parsed.issues,
                          image=job.radiograph.path, target=job.target, history=history)

    def _with_detection(self, result: Prediction, radiograph: Radiograph) -> Prediction:
        job = self._detect_job(radiograph)
        detection = self._finish(job, self._generate(job))
        return replace(result, boxes=result.boxes + detection.boxes, detection=detection)
