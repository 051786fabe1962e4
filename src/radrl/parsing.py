"""Completion text -> ``Parsed``: the one parser that rewards and evaluation share.

Rewards and evaluation must read a completion the same way, or the number that is
optimised is not the number that is reported; so both call ``parse`` and score its
fields, never the raw text. ``parse`` never raises: a policy in RL emits anything
(empty strings, megabytes of repetition, half a tag, ``[nan, 1, 2, 3]``), and one bad
completion must cost a low reward, not a crashed training step. What went wrong is
recorded in ``Parsed.issues`` instead.

Thinking: the answer is the text after the *last* ``</think>``, exact case. Qwen3's thinking
chat template already puts ``<think>`` into the prompt, so a completion usually holds only
the closing tag. When thinking was requested and no ``</think>`` came, the answer is
``""`` (the paper scores such completions 0 for grounding and -3 for RadCliQ). The paper
and the authors' report rewards take the last tag; their grounding reward takes the first,
in any case. One rule serves both here, and the two differ only on completions with more
than one closing tag (flagged ``unbalanced_think``) or an upper-case one, which is not
Qwen3's tag token (docs/metrics.md, "where radrl departs from the authors' reward").

Boxes: the paper's ``[x1, y1, x2, y2]`` in 0-1 units and Qwen3-VL's native JSON
``{"bbox_2d": [x1, y1, x2, y2], "label": ...}`` on the 0-1000 grid, both returned as
``Box`` (0-1). Each box gets the phrase written before it as its label
(``"Cardiomegaly at [..]"`` -> ``"Cardiomegaly"``); boxes joined by ", " / " and " share
it. Invalid boxes (NaN, inverted, outside 0-1) are dropped and counted; the grounding reward
counts each as a false positive. (The authors' reward keeps a finite box outside 0-1 and
scores its raw overlap; that differs only when such a box still overlaps a reference.)

>>> p = parse("<think>enlarged heart</think>Cardiomegaly at [0.38, 0.47, 0.76, 0.62].", thinking=True)
>>> p.answer, p.boxes[0].label, p.well_formed
('Cardiomegaly at [0.38, 0.47, 0.76, 0.62].', 'Cardiomegaly', True)
>>> parse("still thinking...", thinking=True).issues
('think_missing', 'empty_answer')
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from radrl.data.boxes import BOX_RE, Box

__all__ = ["MAX_CHARS", "Parsed", "parse", "reference_boxes"]

# Work is capped so a runaway completion cannot stall a reward worker: a 4,096-token
# answer is about 20 k characters, so 64 k keeps every real answer whole.
MAX_CHARS = 65_536

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

# Qwen3-VL JSON: a flat object holding "bbox_2d"; a truncated one may lack its braces.
_OBJ_RE = re.compile(r"\{[^{}]*\}")
_BBOX2D_RE = re.compile(r'"bbox_2d"\s*:\s*(\[[^\[\]]*\])')
_LABEL_RE = re.compile(r'"label"\s*:\s*"((?:[^"\\]|\\.)*)"')

# Words between a phrase and its box ("Cardiomegaly is located at [..]") and between
# boxes ("[a], [b] and [c]"); stripped to leave the phrase itself.
_TRAILING_WORDS = frozenset(
    ["is", "are", "was", "were", "located", "seen", "found", "shown", "visible", "at", "in", "within", "on",
     "bounding", "boxes", "box", "coordinates", "coordinate", "region", "regions"])
_LEADING_WORDS = frozenset({"and", "&"})
_SENTENCE_END_RE = re.compile(r"[.;!?](?=\s|$)|\n")
_MAX_LABEL_CHARS = 120


@dataclass(frozen=True)
class Parsed:
    """What a completion says, split into the parts scorers use.

    ``think``: the reasoning (``None`` when there was no ``</think>`` and none was
    requested). ``answer``: what is scored. ``boxes``: valid boxes in the answer, in
    order. ``invalid_boxes``: how many were dropped. ``issues``: machine-readable
    reasons the completion is not well formed; ``well_formed`` is True when there are none.
    """

    think: str | None
    answer: str
    boxes: list[Box] = field(default_factory=list)
    invalid_boxes: int = 0
    issues: tuple[str, ...] = ()

    @property
    def well_formed(self) -> bool:
        return not self.issues


def parse(text: str, thinking: bool = False) -> Parsed:
    """Split ``text`` into think / answer and read the answer's boxes; never raises.

    ``thinking``: whether the prompt requested thinking; then a missing ``</think>``
    leaves the answer empty (issue ``think_missing``).
    Issues: ``not_text``, ``truncated_input``, ``think_missing``, ``unbalanced_think``,
    ``empty_answer``, ``invalid_box``.
    """
    issues: list[str] = []
    if not isinstance(text, str):
        if text is not None:
            issues.append("not_text")
        text = "" if text is None else str(text)
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS]
        issues.append("truncated_input")

    think, answer = _split_think(text, thinking, issues)
    boxes, invalid = _read_boxes(answer)
    if not answer:
        issues.append("empty_answer")
    if invalid:
        issues.append("invalid_box")
    return Parsed(think=think, answer=answer, boxes=boxes, invalid_boxes=invalid, issues=tuple(issues))


def reference_boxes(solution: str, ref_boxes: Sequence[Sequence[float]] | None = None,
                    where: str = "row") -> list[Box]:
    """The boxes a grounding answer is scored against: ``ref_boxes`` when the row has them, else
    the boxes read from ``solution``.

    ``ref_boxes`` is the ``ref_boxes`` column of rows built by ``radrl.data.instructions``:
    ``[[x1, y1, x2, y2], ...]`` in 0-1 at the dataset's full precision. The solution text rounds
    to two decimals (0-1000 integers in Qwen JSON), which moves the IoU of a small nodule
    by up to 0.3, so rewards and evaluation read the column where it exists; ``None`` (rows from
    other builders, e.g. imported RadVLM JSON) falls back to parsing the solution. Unlike
    ``parse`` this raises: a reference is data, and a bad one is a bug to fix, not a low score.

    >>> reference_boxes("Nodule at [0.12, 0.30, 0.13, 0.31]", [[0.121, 0.3, 0.124, 0.304]])[0].coords
    (0.121, 0.3, 0.124, 0.304)
    >>> reference_boxes("Nodule at [0.12, 0.30, 0.13, 0.31]")[0].coords
    (0.12, 0.3, 0.13, 0.31)
    """
    if ref_boxes is None:
        return parse(solution).boxes
    boxes = []
    for coords in ref_boxes:
        try:
            x1, y1, x2, y2 = (float(v) for v in coords)
        except (TypeError, ValueError):
            raise ValueError(f"{where}: ref_boxes entry {coords!r} is not [x1, y1, x2, y2]; rebuild the rows with "
                             "radrl.data.instructions, or drop the ref_boxes column to score the solution's "
                             "boxes") from None
        box = Box(x1, y1, x2, y2)
        if not box.is_valid:
            raise ValueError(f"{where}: ref_boxes entry {list(box.coords)} is not inside 0-1 with x1 < x2 and "
                             "y1 < y2; fix the sample's boxes (convert pixels with Box.from_pixels)")
        boxes.append(box)
    return boxes


def _split_think(text: str, thinking: bool, issues: list[str]) -> tuple[str | None, str]:
    end = text.rfind(THINK_CLOSE)
    if end < 0 and thinking:
        issues.append("think_missing")
    opens, closes = text.count(THINK_OPEN), text.count(THINK_CLOSE)
    # The prompt may hold the opening tag, so one close without an open is fine; a block
    # opened after the last close is unbalanced even when the counts match (its text would
    # otherwise pass as part of the answer).
    if opens > closes or closes > max(opens, 1) or (end >= 0 and THINK_OPEN in text[end:]):
        issues.append("unbalanced_think")
    if end < 0:
        if not thinking:
            return None, text.strip()
        start = text.rfind(THINK_OPEN)
        return (text[start + len(THINK_OPEN):] if start >= 0 else text).strip(), ""
    before = text[:end]
    start = before.rfind(THINK_OPEN)
    think = before[start + len(THINK_OPEN):] if start >= 0 else before
    return think.strip(), text[end + len(THINK_CLOSE):].strip()


def _read_boxes(answer: str) -> tuple[list[Box], int]:
    """Boxes in order of appearance, from both text forms; JSON spans are read first
    and masked so their 0-1000 arrays are not read again as 0-1 boxes."""
    found: list[tuple[int, Box]] = []
    invalid = 0
    masked = list(answer) if "bbox_2d" in answer else []

    def take(box: Box | None, start: int, end: int) -> None:
        """Keep a valid box (or count an invalid one) and blank its span for the later passes."""
        nonlocal invalid
        if box is None or not box.is_valid:
            invalid += 1
        else:
            found.append((start, box))
        masked[start:end] = " " * (end - start)

    if "bbox_2d" in answer:  # most answers hold no JSON: skip its passes and the masking copy
        for m in _OBJ_RE.finditer(answer):
            inner = _BBOX2D_RE.search(m.group(0))
            if inner is not None:
                take(_qwen_box(inner.group(1), _json_label(m.group(0))), m.start(), m.end())
        for m in _BBOX2D_RE.finditer("".join(masked)):  # truncated JSON without a closing brace
            take(_qwen_box(m.group(1), None), m.start(), m.end())
        prose = "".join(masked)
    else:
        prose = answer
    prev_end, prev_label = 0, None
    for m in BOX_RE.finditer(prose):
        label = _phrase(prose[prev_end:m.start()], prev_label if prev_end else None)
        prev_end, prev_label = m.end(), label
        x1, y1, x2, y2 = m.groups()
        box = Box(float(x1), float(y1), float(x2), float(y2), label)
        if not box.is_valid:
            invalid += 1
            continue
        found.append((m.start(), box))
    found.sort(key=lambda t: t[0])
    return [b for _, b in found], invalid


def _json_label(obj: str) -> str | None:
    try:
        label = json.loads(obj).get("label")
    except (ValueError, AttributeError):
        m = _LABEL_RE.search(obj)
        label = m.group(1) if m else None
    return (label.strip() or None) if isinstance(label, str) else None


def _qwen_box(array: str, label: str | None) -> Box | None:
    try:
        coords = [float(v) for v in array.strip("[] ").split(",")]
    except ValueError:
        return None
    return Box.from_qwen(coords, label) if len(coords) == 4 else None


def _phrase(segment: str, previous: str | None) -> str | None:
    """The phrase a box belongs to: the words since the last sentence end, minus the
    connecting words; a box with no words of its own continues the previous phrase."""
    if len(segment) > 4 * _MAX_LABEL_CHARS:
        segment, previous = segment[-4 * _MAX_LABEL_CHARS:], None
    ends = list(_SENTENCE_END_RE.finditer(segment))
    if ends:
        segment, previous = segment[ends[-1].end():], None
    words = [w for w in segment.split() if any(c.isalnum() for c in w)]  # drop "-", "->", ":"
    while words and words[-1].strip(":=(").lower() in _TRAILING_WORDS:
        words.pop()
    while words and words[0].strip(",;:)").lower() in _LEADING_WORDS:
        words.pop(0)
    phrase = " ".join(words).strip(" ,;:-\"'*")
    if not phrase:
        return previous
    return phrase[-_MAX_LABEL_CHARS:]
