"""Validate the rule-based CheXpert labeler on the Indiana University (Open-i) reports.

Reads the 3,955 IU chest X-ray reports (``reports/NLMCXR_reports.tgz``) and the NegBio
gold labels of the development split (``reports/openi_gold_labels_dev.csv``, 2,598
reports), labels FINDINGS + IMPRESSION of each report with ``radrl.metrics.chexpert``
and scores the labels against the gold on the 7 classes the two label sets share.
A naive keyword baseline (``naive_baseline`` below) is scored the same way, for scale.

    .venv/bin/python bench/chexpert_labeler_iu.py [--data ../shared/data/cxr] [--out bench/results]

Label mapping (ours -> gold column), CheXpert name -> NIH ChestX-ray14 name:

    Atelectasis -> Atelectasis         Pneumothorax -> Pneumothorax
    Cardiomegaly -> Cardiomegaly       Consolidation -> Consolidation
    Pleural Effusion -> Effusion       Edema -> Edema
    Pneumonia -> Pneumonia

The other gold columns (Infiltration, Mass, Nodule, Emphysema, Fibrosis,
Pleural_Thickening, Hernia, normal) have no one-to-one CheXpert observation and are not
scored. Convention: the gold marks a finding 1 only when it is stated as present (NegBio
counts uncertain mentions as negative), so our positive (1) -> 1 and uncertain (-1),
negative (0) and not mentioned -> 0.

Writes ``<out>/chexpert_labeler_iu.json`` (all numbers) and ``<out>/chexpert_labeler_iu.md``
(the table), and prints the table.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import sys
import tarfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # run from a checkout without installing
sys.path.insert(0, str(REPO / "bench"))

import benchlib

from radrl.data.schema import POSITIVE
from radrl.metrics.chexpert import LABELER_VERSION, label_report

# ours (CheXpert observation) -> gold column (NIH ChestX-ray14 class)
CLASS_MAP = {
    "Atelectasis": "Atelectasis",
    "Cardiomegaly": "Cardiomegaly",
    "Pleural Effusion": "Effusion",
    "Pneumonia": "Pneumonia",
    "Pneumothorax": "Pneumothorax",
    "Consolidation": "Consolidation",
    "Edema": "Edema",
}
GOLD_CLASSES = tuple(CLASS_MAP.values())
SECTIONS = ("FINDINGS", "IMPRESSION")


def data_dir(arg: str | None, needed: tuple[str, ...] = ("NLMCXR_reports.tgz", "openi_gold_labels_dev.csv")) -> Path:
    """The data folder holding the IU reports and gold labels (see bench/benchlib.py)."""
    return benchlib.data_dir(arg, *(f"reports/{name}" for name in needed))


def load_reports(tgz: Path) -> dict[str, str]:
    """uId (``CXR<n>``) -> FINDINGS and IMPRESSION text, one section per line (missing sections left out)."""
    reports = {}
    with tarfile.open(tgz) as tar:
        for member in tar:
            if not member.name.endswith(".xml"):
                continue
            root = ET.fromstring(tar.extractfile(member).read())
            uid = root.find("uId").get("id")
            parts = {el.get("Label"): (el.text or "").strip() for el in root.iter("AbstractText")}
            reports[uid] = "\n".join(parts[s] for s in SECTIONS if parts.get(s))
    return reports


def load_gold(csv_path: Path) -> dict[str, dict[str, int]]:
    """filename (``CXR<n>``) -> {gold class: 0/1} for the 7 scored classes."""
    with open(csv_path, newline="") as f:
        return {row["filename"]: {c: int(row[c]) for c in GOLD_CLASSES} for row in csv.DictReader(f)}


def ours(text: str) -> dict[str, int]:
    """radrl's labeler mapped onto the gold classes: positive -> 1; uncertain, negative, absent -> 0."""
    labels = label_report(text)
    return {gold: int(labels.get(name) == POSITIVE) for name, gold in CLASS_MAP.items()}


# --- baseline: the "20-line keyword search with naive negation" ------------------------
# A term is positive when it occurs in a sentence with no negation word before it in that
# sentence. No uncertainty, no clause splitting, no "heart size is normal" logic.
BASELINE_TERMS = {
    "Atelectasis": r"atelecta\w*",
    "Cardiomegaly": r"cardiomegaly|(?:heart|cardiac silhouette) (?:is )?(?:mildly |moderately )?enlarged",
    "Effusion": r"effusions?",
    "Pneumonia": r"pneumonia",
    "Pneumothorax": r"pneumothora\w*",
    "Consolidation": r"consolidat\w*",
    "Edema": r"edema",
}
_BASELINE_RES = {c: re.compile(rf"\b(?:{t})\b") for c, t in BASELINE_TERMS.items()}
_BASELINE_NEG = re.compile(r"\b(?:no|not|without|negative for|free of|clear of|absence of)\b")


def naive_baseline(text: str) -> dict[str, int]:
    """1 for a class whose term appears in some sentence with no negation word before it."""
    out = dict.fromkeys(GOLD_CLASSES, 0)
    for sentence in re.split(r"(?<!\d)\.(?!\d)|\n", text.lower()):
        for cls, term in _BASELINE_RES.items():
            m = term.search(sentence)
            if m and not _BASELINE_NEG.search(sentence, 0, m.start()):
                out[cls] = 1
    return out


# --- scoring ------------------------------------------------------------------------------------


def score(pred: dict[str, dict[str, int]], gold: dict[str, dict[str, int]]) -> dict:
    """Per-class precision / recall / F1 / support (gold positives) and micro / macro F1."""
    per_class, totals = {}, [0, 0, 0]
    for c in GOLD_CLASSES:
        tp = sum(1 for k in gold if gold[k][c] and pred[k][c])
        fp = sum(1 for k in gold if pred[k][c] and not gold[k][c])
        fn = sum(1 for k in gold if gold[k][c] and not pred[k][c])
        totals = [totals[0] + tp, totals[1] + fp, totals[2] + fn]
        per_class[c] = {"precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0,
                        "f1": _f1(tp, fp, fn), "support": tp + fn, "tp": tp, "fp": fp, "fn": fn}
    tp, fp, fn = totals
    return {"per_class": per_class, "micro_f1": _f1(tp, fp, fn),
            "macro_f1": math.fsum(v["f1"] for v in per_class.values()) / len(per_class),
            "micro_precision": tp / (tp + fp) if tp + fp else 0.0, "micro_recall": tp / (tp + fn) if tp + fn else 0.0}


def _f1(tp: int, fp: int, fn: int) -> float:
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def markdown(results: dict, command: str) -> str:
    ours_, base = results["radrl"], results["baseline"]
    lines = [(f"IU (Open-i) dev split, {results['n_reports']} reports, NegBio gold; "
              f"labeler `{results['labeler_version']}`; uncertain counted negative."), "",
             f"Command: `{command}`", "",
             "| class | precision | recall | F1 | support | baseline F1 |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for c in GOLD_CLASSES:
        v = ours_["per_class"][c]
        lines.append(f"| {c} | {v['precision']:.4f} | {v['recall']:.4f} | {v['f1']:.4f} | {v['support']} "
                     f"| {base['per_class'][c]['f1']:.4f} |")
    lines.append(f"| **micro** | {ours_['micro_precision']:.4f} | {ours_['micro_recall']:.4f} "
                 f"| **{ours_['micro_f1']:.4f}** | {sum(v['support'] for v in ours_['per_class'].values())} "
                 f"| {base['micro_f1']:.4f} |")
    lines.append(f"| **macro** | | | **{ours_['macro_f1']:.4f}** | | {base['macro_f1']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="shared/data/cxr folder (default: $RADRL_CXR_DATA or <repo>/../shared/data/cxr)")
    ap.add_argument("--out", default=str(REPO / "bench" / "results"), help="folder for the JSON and Markdown results")
    args = ap.parse_args(argv)
    data = data_dir(args.data)

    reports = load_reports(data / "reports" / "NLMCXR_reports.tgz")
    gold = load_gold(data / "reports" / "openi_gold_labels_dev.csv")
    missing = sorted(set(gold) - set(reports))
    if missing:
        sys.exit(f"error: {len(missing)} gold reports have no XML report, e.g. {missing[:3]}")

    start = time.perf_counter()
    pred = {k: ours(reports[k]) for k in gold}
    seconds = time.perf_counter() - start
    base = {k: naive_baseline(reports[k]) for k in gold}

    command = "python bench/chexpert_labeler_iu.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    results = {
        "benchmark": "chexpert_labeler_iu", "command": command,
        "date": time.strftime("%Y-%m-%d"), "labeler_version": LABELER_VERSION, "n_reports": len(gold),
        "sections": list(SECTIONS), "class_map": CLASS_MAP,
        "convention": "gold 1 = stated present (NegBio); ours: positive -> 1, uncertain/negative/absent -> 0",
        "radrl": score(pred, gold), "baseline": score(base, gold),
        "baseline_description": "keyword search per sentence; positive unless no/not/without/negative for/free of/"
                                "clear of/absence of occurs earlier in the sentence",
        "labeling_seconds": round(seconds, 3),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "chexpert_labeler_iu.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results, command)
    (out / "chexpert_labeler_iu.md").write_text(table)
    print(table)
    return results


if __name__ == "__main__":
    main()
