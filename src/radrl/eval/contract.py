"""The comparison contract: ``radrl compare`` sets runs side by side only when they measured the same thing.

A difference in score between two runs should come from the models. ``radrl eval`` records in
``manifest.json["comparable"]`` everything else a score depends on (design principle 14): the samples
file, how requests are drawn, the pixel budget, decoding, precision, and per task the rows, their requests,
the token limit and the metric versions. ``mismatches`` lists every difference (the caller refuses, or with
``--allow-mismatch`` prints them as a banner); the machine is only noted (``machines_note``): CPU results
differ in the last bits across instruction sets, worth knowing but not a different experiment.

    >>> a = {"contract": 1, "data_sha256": "ab", "pixels": {"max_pixels": 4}, "tasks": {"report": {"rows": 2}}}
    >>> [m["text"] for m in mismatches({"A": a, "B": {**a, "pixels": {"max_pixels": 8}}})]
    ['A vs B: pixels.max_pixels: 4 vs 8']
"""

from __future__ import annotations

import json

from radrl.data.instructions import THINK_SUFFIX

CONTRACT = 1  # the format version of the block ``radrl eval`` writes
RUN_FIELDS = ("data_sha256", "prompt_scheme", "pixels", "decoding", "precision")
TASK_FIELDS = ("rows", "row_ids_sha256", "requests_sha256", "max_new_tokens", "mean_image_tokens", "metric_versions")
# Not reported when the field it follows from already differs: one line per cause, not three.
FOLLOWS = {"row_ids_sha256": "rows", "requests_sha256": "row_ids_sha256", "mean_image_tokens": "pixels"}
# Settings an experiment may vary on purpose (``radrl compare --vary``); rows, requests, data and metric versions
# never: a different question is not an experimental variable.
VARIABLE = ("decoding.thinking", "decoding.temperature", "decoding.top_p", "max_new_tokens", "pixels", "precision")
FIX = ("Re-run `radrl eval` into a new folder with matching settings, or pass --allow-mismatch to show them side "
       "by side anyway (every output then starts with these differences).")


class ContractError(ValueError):
    """Runs that measured different things; the message lists the differences and the fix."""


def _flat(d: dict, prefix: str = "") -> dict:
    """``{"pixels": {"max_pixels": 4}}`` -> ``{"pixels.max_pixels": 4}``: a difference names the exact setting."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _differences(a: dict, b: dict, fields: tuple[str, ...], vary: tuple[str, ...] = ()) -> dict[str, tuple]:
    fa, fb = _flat({f: a.get(f) for f in fields}), _flat({f: b.get(f) for f in fields})
    return {k: (fa.get(k), fb.get(k)) for k in dict.fromkeys([*fa, *fb])
            if fa.get(k) != fb.get(k) and not any(k == v or k.startswith(v + ".") for v in vary)}


def _show(value) -> str:
    if isinstance(value, str) and len(value) == 64:  # a sha256: its start tells them apart
        return value[:12] + "..."
    return json.dumps(value)


def _entry(runs: list[str], task: str | None, field: str, values: list, text: str) -> dict:
    return {"runs": runs, "task": task, "field": field, "values": values, "text": text}


def _pair(ref: str, name: str, task: str | None, diff: dict[str, tuple]) -> list[dict]:
    where = f"{task}: " if task else ""
    return [_entry([ref, name], task, k, list(v), f"{ref} vs {name}: {where}{k}: {_show(v[0])} vs {_show(v[1])}")
            for k, v in diff.items()]


def _shared_metrics(a: dict, b: dict) -> tuple[dict, dict]:
    """Both tasks with ``metric_versions`` cut to the metrics both runs scored: a metric only one run has
    (BERTScore ran on one side) shows as "-" in the tables; one both have must be the same version."""
    va, vb = a.get("metric_versions") or {}, b.get("metric_versions") or {}
    return ({**a, "metric_versions": {k: v for k, v in va.items() if k in vb}},
            {**b, "metric_versions": {k: v for k, v in vb.items() if k in va}})


def mismatches(blocks: dict[str, dict | None], vary: tuple[str, ...] = ()) -> list[dict]:
    """Every difference between the runs' ``comparable`` blocks (run name -> block, None when absent).

    ``vary`` names the settings that are the experiment's own variable and may differ (``decoding.thinking``
    for the four-way experiment: a thinking and a direct model are asked the same request, one with
    " /think" appended, which the request hashes leave out because ``decoding.thinking`` records it).

    Run-level settings are checked against the first run; a task against the first run that has it, so runs
    with different task sets (SFT on report and grounding, each GRPO model on its own task) are compared on
    the tasks they share. Entries: runs, task (None: the whole run), field, values, and a one-line text."""
    out, ok = [], {}
    for name, block in blocks.items():
        if not block:
            out.append(_entry([name], None, "comparable", [None], f"{name}: manifest.json has no `comparable` block "
                              "(evaluated before radrl checked comparisons); re-run `radrl eval` into a new folder"))
        elif block.get("contract") != CONTRACT:
            out.append(_entry([name], None, "contract", [block.get("contract")],
                              f"{name}: comparison contract {block.get('contract')!r}, this radrl reads {CONTRACT}; "
                              "re-run `radrl eval` with this radrl into a new folder"))
        else:
            ok[name] = block
    names = list(ok)
    for name in names[1:]:
        out += _pair(names[0], name, None, _differences(ok[names[0]], ok[name], RUN_FIELDS, vary))
        for task, mine in (ok[name].get("tasks") or {}).items():
            ref = next(n for n in names if task in (ok[n].get("tasks") or {}))
            if ref == name:
                continue
            diff = _differences(*_shared_metrics(ok[ref]["tasks"][task], mine), TASK_FIELDS, vary)
            causes = {c.split(".")[0] for c in [*diff, *_differences(ok[ref], ok[name], ("pixels",))]}
            out += _pair(ref, name, task, {k: v for k, v in diff.items() if FOLLOWS.get(k) not in causes})
    return out


def refusal(found: list[dict]) -> str:
    """The error ``radrl compare`` raises: one line per difference, then the fix."""
    return "\n".join(["these runs are not comparable:", *(f"  {m['text']}" for m in found), FIX])


def banner(found: list[dict]) -> str:
    """The heading every output of a comparison written with ``--allow-mismatch`` starts with."""
    return (f"NOT COMPARABLE (written with --allow-mismatch): {len(found)} difference(s) in what the runs measured, "
            "so their scores differ for more reasons than the models")


def machines_note(blocks: dict[str, dict | None]) -> str | None:
    """A line when the runs come from different machines (not refused: the same experiment, but CPU results
    differ in the last bits across instruction sets and thread counts, and greedy decoding amplifies that)."""
    def machine(m: dict) -> str:  # what numerics depend on (not the kernel version or core count)
        gpus = f", GPUs: {', '.join(map(str, m['gpus']))}" if m.get("gpus") else ""
        return f"{m.get('cpu', '?')}, {m.get('isa', '?')}, {m.get('threads', '?')} threads{gpus}"

    groups: dict[str, list[str]] = {}
    for name, block in blocks.items():
        if (block or {}).get("machine"):
            groups.setdefault(machine(block["machine"]), []).append(name)
    if len(groups) < 2:
        return None
    return ("Runs from different machines (" + "; ".join(f"{', '.join(names)}: {m}" for m, names in groups.items())
            + "): CPU results differ in the last bits across instruction sets and thread counts, and greedy "
              "decoding amplifies that.")


def same_requests(a: list[dict], b: list[dict]) -> set[tuple[str, str]]:
    """(task, id) of the rows both predictions files hold with the same request text and image path: only
    these are paired observations of one question."""
    def asked(preds: list[dict]) -> dict:  # " /think" is the thinking setting, which the contract checks
        return {(p["task"], p["id"]): (str(p.get("request")).removesuffix(THINK_SUFFIX), p.get("image"))
                for p in preds}

    x, y = asked(a), asked(b)
    return {k for k, v in x.items() if k in y and y[k] == v}
