"""The RadVLM instruction set (LLaVA / ShareGPT JSON): import as-is, and export ours to it.

Why: the paper's SFT data (about 1.1 M image-instruction pairs) is published in this form;
a user who has it should train on it directly, and a user who builds data with radrl
should be able to hand it to LLaVA-style trainers. The format::

    [{"id": "...", "image": "mimic/p10/.../x.jpg",
      "conversations": [{"from": "human", "value": "<image>\\nDescribe the findings."},
                        {"from": "gpt", "value": "The heart is normal in size."}, ...]}, ...]

Import (``read_conversations``) turns each entry into one conversation row of
``radrl.data.instructions`` (TRL prompt-completion): every turn before the last answer goes
into ``prompt`` (earlier answers as assistant messages), the last answer is ``completion``.
``<image>`` becomes the image part of the user message it appears in. ``task`` is
``"conversation"`` for several question turns, else ``"imported"`` (the file does not say
which task a pair belongs to, so GRPO rewards leave these rows alone); ``kind`` is
``"radvlm"``. A request ending in " /think" sets ``thinking``. An ``id`` seen before gets
``-<file stem>-<entry index>`` appended, so every row is kept under a unique id.

``root`` is a ``.json`` file (one array, parsed incrementally: the 1.1 M-entry file is never
held whole), a ``.jsonl`` file (one entry per line), or a folder of them. Relative image paths
resolve against ``images=PATH`` (default: the JSON file's folder).

>>> row = to_row({"id": "a", "image": "x.jpg", "conversations": [
...     {"from": "human", "value": "<image>\\nDescribe."}, {"from": "gpt", "value": "Normal."}]}, Path("/d"), "t")
>>> row["prompt"][0]["content"], row["solution"], row["images"]
([{'type': 'image'}, {'type': 'text', 'text': 'Describe.'}], 'Normal.', ['/d/x.jpg'])
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from itertools import pairwise
from pathlib import Path

from radrl.data.instructions import THINK_SUFFIX
from radrl.data.sources import Skip, SourceInfo

SOURCE = SourceInfo(
    name="radvlm-json",
    expects="""RadVLM / LLaVA instruction JSON:
  a .json file (array of {"id", "image", "conversations": [{"from": "human"|"gpt", "value"}]}),
  a .jsonl file (one such object per line), or a folder of them
options: images=PATH (folder the image paths are relative to; default the JSON file's folder)""",
    tasks=(),  # ready-made conversations: build_task_mix never sees its rows
)

IMAGE_TOKEN = "<image>"
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


def iter_json_array(path: Path, chunk_size: int = 1 << 20) -> Iterator[tuple[int, object]]:
    """(index, element) of a top-level JSON array, decoded element by element from chunks."""
    decoder = json.JSONDecoder()
    with path.open(encoding="utf-8") as f:
        buf, pos, started, index, eof = "", 0, False, 0, False
        while True:
            if not eof and len(buf) - pos < chunk_size:
                more = f.read(chunk_size)
                eof = not more
                buf = buf[pos:] + more
                pos = 0
            while pos < len(buf) and buf[pos] in " \t\r\n,":
                pos += 1
            if not started:
                if pos >= len(buf):
                    if eof:
                        raise ValueError(f"{path}: empty file; expected a JSON array")
                    continue
                if buf[pos] != "[":
                    raise ValueError(f"{path}: expected a JSON array ('['), found {buf[pos]!r}; "
                                     "for one object per line name the file .jsonl")
                started, pos = True, pos + 1
                continue
            if pos < len(buf) and buf[pos] == "]":
                return
            if pos >= len(buf):
                if eof:
                    raise ValueError(f"{path}: file ends inside the array (truncated download?)")
                continue
            try:
                obj, end = decoder.raw_decode(buf, pos)
            except json.JSONDecodeError as e:
                if not eof:  # element cut by the chunk boundary: read more and retry
                    more = f.read(chunk_size)
                    eof = not more
                    buf = buf[pos:] + more
                    pos = 0
                    continue
                if e.pos >= len(buf.rstrip()):
                    raise ValueError(f"{path}: file ends inside element {index} (truncated download?)") from None
                raise ValueError(f"{path}: element {index} is not valid JSON ({e.msg} at char {e.pos})") from None
            after = end
            while after < len(buf) and buf[after] in " \t\r\n":
                after += 1
            if after == len(buf) or buf[after] not in ",]":
                if not eof:  # the element may go on in the next chunk ("6." of "6.5e3"): read more, decode again
                    more = f.read(chunk_size)
                    eof = not more
                    buf = buf[pos:] + more
                    pos = 0
                    continue
                if after < len(buf):
                    raise ValueError(f"{path}: element {index} is followed by {buf[after]!r}, not ',' or ']'")
            yield index, obj
            index, pos = index + 1, end


def _entries(path: Path) -> Iterator[tuple[str, object]]:
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            for i, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield f"{path}:{i}", json.loads(line)
                    except json.JSONDecodeError as e:
                        yield f"{path}:{i}", e
    else:
        for i, obj in iter_json_array(path):
            yield f"{path} entry {i}", obj


def _message(role: str, text: str, with_image: bool) -> dict:
    if role == "assistant":
        return {"role": role, "content": [{"type": "text", "text": text}]}
    content: list[dict] = []
    if with_image and IMAGE_TOKEN not in text:
        content.append({"type": "image"})
    elif with_image:
        before, _, after = text.partition(IMAGE_TOKEN)
        if before.strip():
            content.append({"type": "text", "text": before.strip()})
        content.append({"type": "image"})
        text = after
    if text.strip():
        content.append({"type": "text", "text": text.strip()})
    return {"role": role, "content": content}


def to_row(entry: object, image_root: Path, where: str) -> dict:
    """One LLaVA entry -> one conversation row; ValueError says what is wrong with the entry."""
    if not isinstance(entry, dict):
        raise ValueError(f"expected an object, got {type(entry).__name__}")  # noqa: TRY004 (one error type for Skip)
    turns, image = entry.get("conversations"), entry.get("image")
    if not isinstance(image, str) or not image:
        raise ValueError("no image path (text-only entries are not used)")
    if not isinstance(turns, list) or len(turns) < 2:
        raise ValueError("conversations must be a list of at least one human and one gpt turn")
    roles = []
    for t in turns:
        if not isinstance(t, dict) or ROLES.get(t.get("from")) is None or not isinstance(t.get("value"), str):
            raise ValueError(f"bad turn {str(t)[:80]!r}: needs from=human|gpt and a text value")
        roles.append(ROLES[t["from"]])
    if roles[0] != "user" or roles[-1] != "assistant" or any(a == b for a, b in pairwise(roles)):
        raise ValueError(f"turns must alternate human, gpt, ... and end with gpt; got {roles}")
    has_token = any(IMAGE_TOKEN in t["value"] for t in turns if ROLES[t["from"]] == "user")
    messages, placed = [], False
    for t, role in zip(turns, roles):
        with_image = role == "user" and not placed and (IMAGE_TOKEN in t["value"] or not has_token)
        placed = placed or with_image
        text = t["value"] if with_image or role == "assistant" else t["value"].replace(IMAGE_TOKEN, "")
        messages.append(_message(role, text, with_image))
    answer = turns[-1]["value"].strip()
    last_request = turns[-2]["value"].rstrip()
    path = image if os.path.isabs(image) else str(image_root / image)
    n_questions = roles.count("user")
    return {
        "id": str(entry.get("id", where)),
        "prompt": messages[:-1],
        "completion": messages[-1:],
        "images": [path],
        "task": "conversation" if n_questions > 1 else "imported",
        "kind": "radvlm",
        "solution": answer,
        "thinking": last_request.endswith(THINK_SUFFIX.strip()),
    }


def read_conversations(root: str | Path, images: str | None = None) -> Iterator[dict | Skip]:
    """Conversation rows from a RadVLM / LLaVA JSON file (or a folder of them); bad entries become Skips."""
    root = Path(root)
    if root.is_dir():
        files = sorted(p for p in root.iterdir() if p.suffix in (".json", ".jsonl"))
        if not files:
            raise FileNotFoundError(f"{root}: no .json or .jsonl files")
    elif root.is_file():
        files = [root]
    else:
        raise FileNotFoundError(f"{root} does not exist; point to the RadVLM instruction JSON")
    seen: set[str] = set()
    for path in files:
        image_root = (Path(images) if images else path.parent).absolute()
        for n, (where, entry) in enumerate(_entries(path)):
            if isinstance(entry, json.JSONDecodeError):
                yield Skip(where, "bad JSON", str(entry))
                continue
            try:
                row = to_row(entry, image_root, where)
            except ValueError as e:
                yield Skip(where, "bad entry", str(e))
                continue
            if row["id"] in seen:  # one image often serves several tasks under one id: keep all, ids unique
                row["id"] = f"{row['id']}-{path.stem}-{n}"
            seen.add(row["id"])
            yield row


def _text(message: dict, image_token: bool) -> str:
    parts = []
    for c in message["content"]:
        if c.get("type") == "image":
            parts.append(IMAGE_TOKEN)
        elif c.get("type") == "text":
            parts.append(c["text"])
    text = "\n".join(parts)
    return text if image_token else text.replace(IMAGE_TOKEN, "").strip()


def to_llava(row: dict, image_root: str | Path | None = None) -> dict:
    """One conversation row -> one LLaVA entry (``<image>\\n`` leads the first human turn).

    >>> to_llava({"id": "s1", "images": ["/d/a.png"], "completion": [{"role": "assistant",
    ...     "content": [{"type": "text", "text": "Normal."}]}], "prompt": [{"role": "user",
    ...     "content": [{"type": "image"}, {"type": "text", "text": "Describe."}]}]}, "/d")
    {'id': 's1', 'image': 'a.png', 'conversations': [{'from': 'human', 'value': '<image>\\nDescribe.'}, \
{'from': 'gpt', 'value': 'Normal.'}]}
    """
    if len(row.get("images") or []) != 1:
        raise ValueError(f"row {row.get('id')}: LLaVA entries hold exactly one image, got {row.get('images')}")
    image = str(row["images"][0])
    if image_root is not None:
        image = os.path.relpath(image, image_root)
    turns = []
    for m in list(row["prompt"]) + list(row["completion"]):
        frm = {"user": "human", "assistant": "gpt"}.get(m["role"])
        if frm is None:
            continue  # system messages have no LLaVA turn
        turns.append({"from": frm, "value": _text(m, image_token=frm == "human")})
    return {"id": row["id"], "image": image, "conversations": turns}


def export(rows: Iterable[dict], path: str | Path, image_root: str | Path | None = None) -> int:
    """Write conversation rows as one LLaVA JSON array, streamed; returns the number written.

    ``image_root`` makes image paths relative to it (the RadVLM release uses relative paths)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        f.write("[")
        for row in rows:
            f.write(("," if n else "") + "\n" + json.dumps(to_llava(row, image_root)))
            n += 1
        f.write("\n]\n")
    return n
