"""Synthetic chest radiographs: the project's built-in demo data.

Why: real chest X-ray datasets are credentialed and large, but the demo, the tests and
CPU smoke runs need images with reports, CheXpert labels and boxes that anyone can make
in seconds and that are exactly true of the pixels. A tiny vision-language model trained
on a few hundred of these (seen at about 128x128) should learn to name and locate the
findings, so they are drawn large, high-contrast and at a few discrete places with jitter.

What is drawn (grayscale PA view; the patient's right is on the image left, as
radiologists read it, so "right" in a report means the image's left half): soft tissue,
two dark lung fields with branching vessel markings and hila, the mediastinum, trachea and
heart, diaphragm domes with sharp costophrenic angles, ribs, clavicles and spine, then a
light blur and noise. Findings, 0 to 3 per image (about a fifth of images are normal):
Cardiomegaly (heart wider than half the chest), Pleural Effusion (white basal opacity
with a meniscus, one or both sides), Lung Lesion (a nodule, two nodules or a mass),
Pneumothorax (a dark, vessel-free apical/lateral rim with a thin visceral pleural line)
and Consolidation (a patchy, fluffy opacity in one lung zone). Each box is the tight box
of the pixels a finding changed, labelled with its CheXpert name. Reports are short,
MIMIC-CXR-like findings sections: positive sentences for what is drawn, negated ones for
some of what is not; ``labels`` hold 1 for each present finding, 0 for each negated one
and "No Finding": 1 for normal images.

Determinism: sample ``i`` of ``generate(n, seed, split=...)`` depends only on
``(seed, split, i)`` (its own ``numpy.random.default_rng([seed, split_key, i])``), so the
same call gives identical pixels and text, and asking for more images never changes the
earlier ones. Splits draw from different streams, so train and test never overlap.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from radrl.data.boxes import Box
from radrl.data.schema import NEGATIVE, NO_FINDING, POSITIVE, Sample, write_jsonl
from radrl.data.sources import SourceInfo

SOURCE = SourceInfo(
    name="synthetic",
    expects="""generated, not read (radrl prepare does not take it):
  radrl synth-data OUT (write_dataset) writes OUT/train.jsonl, OUT/test.jsonl, OUT/images/<id>.png""",
    tasks=("report", "grounding"),  # what the demo trains: a report and boxes per image
)

FINDINGS = ("Cardiomegaly", "Pleural Effusion", "Lung Lesion", "Pneumothorax", "Consolidation")
SIDES = ("right", "left")          # patient sides; index 0 (right) is drawn on the image left
ZONES = ("upper", "middle", "lower")
FIELD_CM = 35.0                    # the image width in cm, for the sizes reports quote
_ZONE_SPAN = {"upper": (0.08, 0.36), "middle": (0.42, 0.66), "lower": (0.72, 1.0)}  # of apex..dome


@dataclass(frozen=True)
class Finding:
    """One drawn finding: its name, patient side, lung zone, size word and shape numbers."""
    name: str
    side: str = ""
    zone: str = ""
    size: str = ""       # small/moderate/large (effusion, pneumothorax), nodule/mass, mild/moderate
    u: float = 0.0       # centre in image fractions (lesion, consolidation)
    v: float = 0.0       # centre, or the effusion's medial fluid level
    r: float = 0.0       # lesion radius
    seed: int = 0        # the finding's own shape randomness, so removing one leaves the rest alone


@dataclass(frozen=True)
class Plan:
    """Everything one image is drawn from; ``render`` is a pure function of it and the size.
    Per-side tuples are indexed 0 = right lung, 1 = left lung, in that lung's mirrored frame."""
    apex: float
    base: float
    lat: tuple[float, float]
    med: tuple[float, float]
    apex_x: tuple[float, float]
    peak: tuple[float, float]
    heart: tuple[float, float, float, float]   # centre u, v and radii
    findings: tuple[Finding, ...]
    texture_seed: int


@dataclass
class Drawing:
    """A rendered plan: the image, the finding boxes, and the heart and thorax boxes (for checks)."""
    image: Image.Image
    boxes: list[Box]
    heart: Box
    thorax: Box


# --- geometry: analytic masks over image fractions u (x) and v (y) ------------------------
def _mirror(u, s):
    return u if s == 0 else 1.0 - u


def _dome(p: Plan, s: int, u):
    m = _mirror(u, s)
    c, hw = (p.lat[s] + p.med[s]) / 2 + 0.02, (p.med[s] - p.lat[s]) / 2 + 0.04
    return p.base - (p.base - p.peak[s]) * np.clip(1 - ((m - c) / hw) ** 2, 0, 1)


def _diaphragm(p: Plan, u):
    return np.where(u < 0.5, _dome(p, 0, u), _dome(p, 1, u))


def _edges(p: Plan, s: int, v):
    """Lateral and medial lung edges (mirrored frame) at height v: rounded apex, widest at the base."""
    f = np.sqrt(1 - (1 - np.clip((v - p.apex) / (p.base - p.apex), 0, 1)) ** 2)
    return p.apex_x[s] - (p.apex_x[s] - p.lat[s]) * f, p.apex_x[s] + (p.med[s] - p.apex_x[s]) * np.sqrt(f)


def _lung_shape(p: Plan, s: int, u, v):
    xl, xm = _edges(p, s, v)
    m = _mirror(u, s)
    return (v >= p.apex) & (m > xl) & (m < xm) & (v < _dome(p, s, u))


def _heart(p: Plan, u, v):
    """An ellipse tilted down towards the patient's left, sitting on the diaphragm."""
    hx, hy, a, b = p.heart
    du, dv = u - hx, v - hy
    return (((du * 0.82 + dv * 0.57) / a) ** 2 + ((dv * 0.82 - du * 0.57) / b) ** 2 < 1) & (v < _diaphragm(p, u))


def _mediastinum(p: Plan, u, v):
    knob = 0.025 * np.exp(-(((v - 0.3) / 0.035) ** 2)) * (u > 0.5)          # the aortic knob
    return (np.abs(u - 0.5) < 0.058 + knob) & (v < p.heart[1])


def _lung(p: Plan, s: int, u, v):
    """Visible lung: where findings other than cardiomegaly may be drawn."""
    return _lung_shape(p, s, u, v) & ~_heart(p, u, v) & ~_mediastinum(p, u, v)


def _collapsed(p: Plan, s: int, size: str, u, v):
    """The lung after a pneumothorax: the apex drops and the lateral edge pulls in, down to a level."""
    cx, drop, reach = {"small": (0.62, 0.13, 0.5), "moderate": (0.5, 0.17, 0.7), "large": (0.38, 0.21, 0.9)}[size]
    k = 1 - np.clip((v - p.apex) / (p.base - p.apex) / reach, 0, 1)      # 1 at the apex, 0 from ``reach`` down
    m = p.med[s] - (p.med[s] - _mirror(u, s)) / (1 - (1 - cx) * k ** 1.5)
    return _lung_shape(p, s, _mirror(m, s), v - drop * k ** 2)


# --- planning: what goes where ----------------------------------------------------------
def _split_key(split: str) -> int:
    return zlib.crc32(split.encode())


def _place(p: Plan, s: int, zone: str, r: float, rng) -> tuple[float, float] | None:
    """A centre in the zone whose disc of radius r lies inside the visible lung, or None."""
    ang = np.linspace(0, 2 * math.pi, 24, endpoint=False)
    lo, hi = _ZONE_SPAN[zone]
    for _ in range(300):
        v0 = p.apex + (p.peak[s] - p.apex) * rng.uniform(lo, hi)
        xl, xm = _edges(p, s, v0)
        u0 = float(_mirror(xl + (xm - xl) * rng.uniform(0.15, 0.85), s))
        pu, pv = np.r_[u0, u0 + r * np.cos(ang)], np.r_[v0, v0 + r * np.sin(ang)]
        if _lung(p, s, pu, pv).all():
            return u0, float(v0)
    return None


def plan_sample(seed: int, index: int, split: str = "train") -> Plan:
    """Draw the anatomy and findings of one image from its own random stream."""
    rng = np.random.default_rng([seed, _split_key(split), index])
    names = set(rng.choice(FINDINGS, size=rng.choice(4, p=[0.22, 0.4, 0.26, 0.12]), replace=False))
    def j(w):
        return float(rng.uniform(-w, w))
    scale = rng.uniform(1.35, 1.55) if "Cardiomegaly" in names else rng.uniform(0.92, 1.05)
    lat, med = 0.135 + j(0.012), 0.46 + j(0.006)
    p = Plan(apex=0.13 + j(0.012), base=0.8 + j(0.012), lat=(lat, lat + j(0.01)), med=(med, med + j(0.005)),
             apex_x=(0.37 + j(0.01), 0.37 + j(0.01)), peak=(0.64 + j(0.015), 0.67 + j(0.015)),
             heart=(0.52 + 0.05 * scale, 0.645 + j(0.01), 0.165 * scale, 0.12 * scale), findings=(),
             texture_seed=int(rng.integers(2**32)))
    free = {(s, z) for s in SIDES for z in ZONES}
    out: list[Finding] = []
    def fseed():
        return int(rng.integers(2**32))
    if "Pneumothorax" in names:
        side = SIDES[rng.integers(2)]
        free -= {(side, z) for z in ZONES}
        out.append(Finding("Pneumothorax", side, "upper", str(rng.choice(["small", "moderate", "large"],
                                                                        p=[0.35, 0.4, 0.25])), seed=fseed()))
    if "Pleural Effusion" in names:
        sides = [s for s in SIDES if (s, "lower") in free]
        if len(sides) == 2 and rng.random() > 0.3:
            sides = [sides[rng.integers(2)]]
        for side in sides:
            size = str(rng.choice(["small", "moderate", "large"], p=[0.35, 0.45, 0.2]))
            level = p.peak[SIDES.index(side)] + {"small": -0.03, "moderate": -0.09, "large": -0.18}[size] + j(0.015)
            free.discard((side, "lower"))
            out.append(Finding("Pleural Effusion", side, "lower", size, v=level, seed=fseed()))
    wanted = [("Consolidation", "", 0.04)] if "Consolidation" in names else []
    if "Lung Lesion" in names:
        kind = "mass" if rng.random() < 0.35 else "nodule"
        n = 2 if kind == "nodule" and rng.random() < 0.3 else 1
        wanted += [("Lung Lesion", kind, rng.uniform(0.055, 0.075) if kind == "mass" else rng.uniform(0.022, 0.035))
                   for _ in range(n)]
    for name, kind, r in wanted:
        cells = sorted(c for c in free if not (kind == "mass" and c[1] == "lower"))
        while cells:
            side, zone = cells.pop(int(rng.integers(len(cells))))
            at = _place(p, SIDES.index(side), zone, r + 0.006, rng)
            if at:
                free.discard((side, zone))
                out.append(Finding(name, side, zone, kind, at[0], at[1], float(r), seed=fseed()))
                break
    if "Cardiomegaly" in names:
        out.append(Finding("Cardiomegaly", size="moderate" if scale > 1.45 else "mild"))
    return replace(p, findings=tuple(out))


# --- rendering --------------------------------------------------------------------------
def _soft(a, sigma: float) -> np.ndarray:
    """Gaussian-blurred copy (0-1 floats) of a mask or an 8-bit layer, done by PIL in C for speed."""
    im = a if isinstance(a, Image.Image) else Image.fromarray((np.clip(a, 0, 1) * 255).astype(np.uint8), "L")
    return np.asarray(im.filter(ImageFilter.GaussianBlur(sigma)), np.float32) / 255


def _grow(m: np.ndarray, r: int = 1) -> np.ndarray:
    """Dilate a mask by r pixels (lungs never touch the border, so wrap-around is harmless)."""
    out = m.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(m, (dy, dx), (0, 1))
    return out


def _box(mask: np.ndarray, label: str, fallback: tuple[float, float, float, float]) -> Box:
    """Tight box of the drawn pixels (the nominal extent if the image is too small to show any)."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return Box(*(min(1.0, max(0.0, c)) for c in fallback), label)
    return Box.from_pixels(xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, mask.shape[1], mask.shape[0], label)


def _vessels(draw: ImageDraw.ImageDraw, S: int, x: float, y: float, ang: float, length: float, w: float,  # noqa: N803
             level: int, depth: int, rng) -> None:
    x2, y2 = x + length * math.cos(ang), y + length * math.sin(ang)
    draw.line([(x * S, y * S), (x2 * S, y2 * S)], fill=level, width=max(1, round(w * S / 256)))
    if depth:
        for turn in (-1, 1):
            _vessels(draw, S, x2, y2, ang + turn * rng.uniform(0.25, 0.55), length * rng.uniform(0.6, 0.8),
                     w * 0.7, int(level * 0.75), depth - 1, rng)


def _draw_finding(p: Plan, f: Finding, u, v, lungs, lung_img, px: int):
    """Paint one finding into the lung layer; returns the new layer and the mask of what changed."""
    rng = np.random.default_rng(f.seed)
    s = SIDES.index(f.side) if f.side else 0
    if f.name == "Pneumothorax":              # dark, vessel-free rim with a thin visceral pleural line
        air = lungs[s] & ~_collapsed(p, s, f.size, u, v)
        line = _grow(air, px) & lungs[s] & ~air
        return np.where(air, 0.03, np.where(line, 0.5, lung_img)), air
    if f.name == "Pleural Effusion":          # homogeneous white base; the fluid climbs the lateral wall
        xl, xm = _edges(p, s, v)
        top = f.v - 0.09 * np.clip((xm - _mirror(u, s)) / np.maximum(xm - xl, 1e-3), 0, 1) ** 2
        ramp = np.clip((v - top) / 0.02 + 0.5, 0, 1) * ((u < 0.5) == (s == 0))
        return lung_img * (1 - ramp) + 0.64 * ramp, lungs[s] & (v > top)
    if f.name == "Lung Lesion":               # round (nodule) or lobulated (mass) bright blob
        wobble = 0.08 * np.sin(3 * np.arctan2(v - f.v, u - f.u) + rng.uniform(0, 6)) if f.size == "mass" else 0
        rr, d = f.r * (1 + wobble), np.hypot(u - f.u, v - f.v)
        edge = np.clip((rr - d) / (0.2 * f.r), 0, 1)
        return lung_img * (1 - edge) + (0.66 + 0.04 * (1 - d / rr)) * edge, (d < rr) & lungs[s]
    alpha = np.zeros_like(u)                  # Consolidation: a fluffy cluster of soft blobs
    for _ in range(16):
        cu, cv, sg = f.u + rng.normal(0, 0.045), f.v + rng.normal(0, 0.035), rng.uniform(0.01, 0.024)
        alpha += rng.uniform(0.5, 1.0) * np.exp(-((u - cu) ** 2 + (v - cv) ** 2) / (2 * sg * sg))
    alpha = np.clip(alpha, 0, 1) * lungs[s]
    return lung_img + 0.36 * alpha, alpha > 0.25


def _bones(S: int, rng) -> Image.Image:  # noqa: N803 (S: the image side in pixels, as in the drawing code)
    """Ribs (posterior arcs up and out from the spine, fainter anterior ones down and in) and clavicles."""
    bones = Image.new("L", (S, S), 0)
    draw = ImageDraw.Draw(bones)
    q = np.linspace(0, 1, 16)
    for k in range(9):
        y0 = 0.1 + 0.06 * k + rng.uniform(-0.004, 0.004)
        for sign in (-1, 1):
            xs, ys = 0.5 + sign * (0.04 + 0.41 * q), y0 - 0.08 * q + 0.2 * q ** 3
            draw.line([(a * S, b * S) for a, b in zip(xs, ys)], fill=255, width=max(1, round(0.018 * S)))
            xa, ya = xs[-1] - sign * 0.3 * q, ys[-1] + 0.17 * q - 0.04 * q ** 2
            draw.line([(a * S, b * S) for a, b in zip(xa, ya)], fill=150, width=max(1, round(0.015 * S)))
    for sign in (-1, 1):
        draw.line([((0.5 + sign * a) * S, b * S) for a, b in ((0.04, 0.155), (0.18, 0.125), (0.34, 0.105))],
                  fill=255, width=max(1, round(0.028 * S)))
    return bones


def render(p: Plan, size: int = 256) -> Drawing:
    """Draw a plan: body, lungs with vessels, findings into the lung layer, heart, bones, blur, noise."""
    S, px = size, max(1, round(size / 128))  # noqa: N806 (S: the image side in pixels, short in the formulas)
    rng = np.random.default_rng(p.texture_seed)   # textures only; findings use their own seeds
    v, u = (np.mgrid[0:S, 0:S].astype(np.float32) + 0.5) / S
    body = np.abs(u - 0.5) < 0.13 + 0.35 * np.clip((v - 0.02) / 0.18, 0, 1) ** 0.6
    img = np.where(body, 0.5 + 0.06 * np.abs(u - 0.5), 0.03)
    img = np.where(body & (v > _diaphragm(p, u)), 0.64, img)
    shapes, lungs = [_lung_shape(p, s, u, v) for s in (0, 1)], [_lung(p, s, u, v) for s in (0, 1)]
    heart = _heart(p, u, v)
    vessels = Image.new("L", (S, S), 0)
    draw = ImageDraw.Draw(vessels)
    for s, hx in ((0, 0.43), (1, 0.57)):
        for d in np.linspace(-1.35, 1.25, 6):
            ang = (math.pi if s == 0 else 0.0) + (d + rng.uniform(-0.12, 0.12)) * (1 if s else -1)
            _vessels(draw, S, hx, 0.46 + rng.uniform(-0.02, 0.02), ang, rng.uniform(0.06, 0.08), 2.5, 255, 3, rng)
    lung_img = 0.2 + 0.09 * np.clip((v - p.apex) / (p.base - p.apex), 0, 1) + 0.17 * _soft(vessels, 0.4 * px)
    for hx in (0.43, 0.57):                        # hila
        lung_img += 0.18 * np.exp(-((u - hx) ** 2 + (v - 0.46) ** 2) / (2 * 0.028 ** 2))
    boxes = []
    for f in p.findings:
        if f.name == "Cardiomegaly":               # the heart is simply drawn big
            boxes.append(_box(heart, f.name, (0, 0, 1, 1)))
            continue
        lung_img, mask = _draw_finding(p, f, u, v, lungs, lung_img, px)
        boxes.append(_box(mask, f.name, (f.u - 0.05, f.v - 0.05, f.u + 0.05, f.v + 0.05)))
    alpha = _soft(shapes[0] | shapes[1], px)
    img = img * (1 - alpha) + lung_img * alpha
    alpha = _soft(heart | _mediastinum(p, u, v), px)
    img = img * (1 - alpha) + 0.77 * alpha
    img -= 0.22 * _soft((np.abs(u - 0.5) < 0.014) & (v < 0.34), px)   # trachea
    spine = (np.abs(u - 0.5) < 0.035) * (0.75 + 0.25 * (np.sin(v * 2 * math.pi / 0.045) > -0.6))
    img += body * (0.1 * _soft(_bones(S, rng), px) + 0.07 * spine)
    img = _soft(np.clip(img, 0, 1) ** 0.95, 0.4 * px) + rng.normal(0, 0.018, (S, S)).astype(np.float32)
    image = Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), "L")
    thorax = _box(shapes[0] | shapes[1], "thorax", (0, 0, 1, 1))
    return Drawing(image, boxes, _box(heart, "heart", (0, 0, 1, 1)), thorax)


# --- reports ----------------------------------------------------------------------------
_GROUP = {"Cardiomegaly": "heart", "Pleural Effusion": "pleura", "Pneumothorax": "pleura",
          "Consolidation": "lungs", "Lung Lesion": "lungs"}
_POSITIVE = {  # sentence templates, then the impression phrase; lesions are keyed by kind
    "Cardiomegaly": (["The heart is {adv} enlarged.", "There is {size} cardiomegaly.",
                      "The cardiac silhouette is enlarged.", "{Size} cardiomegaly."], "{size} cardiomegaly"),
    "Pleural Effusion": (["There is a {size} {side} pleural effusion.", "{Size} {side} pleural effusion.",
                          "A {size} {side} pleural effusion is present with a meniscus along the lateral chest wall."],
                         "{size} {side} pleural effusion"),
    "Pneumothorax": (["There is a {size} {side} apical pneumothorax.", "{Size} {side} pneumothorax.",
                      "A {size} {side}-sided pneumothorax is present, with the visceral pleural line visible.",
                      "{Side} apical pneumothorax is seen, {size} in size."], "{size} {side} pneumothorax"),
    "Consolidation": (["There is consolidation in {loc}.", "Focal consolidation is seen in {loc}.",
                       "{Adj} consolidation.", "Patchy airspace opacity in {loc} is consistent with consolidation."],
                      "{adj} consolidation"),
    "nodule": (["A {cm} cm nodule is seen in {loc}.", "A small well-circumscribed nodule projects over {loc}.",
                "{Adj} nodule measuring {cm} cm."], "{adj} nodule"),
    "mass": (["There is a {cm} cm mass in {loc}.",
              "A rounded mass is present in {loc}, measuring approximately {cm} cm.",
              "{Adj} mass measuring {cm} cm."], "{adj} mass"),
}
_NEGATIVE = [  # (group, findings that must be absent, probability, sentences, labels stated, also covers)
    ("lungs", {"Consolidation", "Lung Lesion", "Pleural Effusion", "Pneumothorax"}, 0.85,
     ["The lungs are clear.", "Lungs are clear.", "The lungs are well expanded and clear."],
     {"Lung Opacity": NEGATIVE}, {"Consolidation", "Lung Lesion"}),
    ("lungs", {"Consolidation"}, 0.5, ["No focal consolidation.", "There is no focal consolidation."],
     {"Consolidation": NEGATIVE}, set()),
    ("lungs", {"Lung Lesion"}, 0.35, ["No suspicious pulmonary nodules or masses.", "No focal nodule or mass is seen."],
     {"Lung Lesion": NEGATIVE}, set()),
    ("pleura", {"Pleural Effusion", "Pneumothorax"}, 0.6,
     ["No pleural effusion or pneumothorax.", "There is no pleural effusion or pneumothorax."],
     {"Pleural Effusion": NEGATIVE, "Pneumothorax": NEGATIVE}, set()),
    ("pleura", {"Pleural Effusion"}, 0.7,
     ["No pleural effusion.", "There is no pleural effusion.", "The costophrenic angles are sharp."],
     {"Pleural Effusion": NEGATIVE}, set()),
    ("pleura", {"Pneumothorax"}, 0.7, ["No pneumothorax.", "There is no pneumothorax.", "No pneumothorax is seen."],
     {"Pneumothorax": NEGATIVE}, set()),
    ("heart", {"Cardiomegaly"}, 0.5, ["The heart size is normal.", "Heart size is within normal limits."],
     {"Cardiomegaly": NEGATIVE}, set()),
    ("heart", {"Cardiomegaly"}, 0.5, ["The cardiomediastinal silhouette is normal."],
     {"Cardiomegaly": NEGATIVE, "Enlarged Cardiomediastinum": NEGATIVE}, set()),
    ("bones", set(), 0.15, ["No acute osseous abnormality."], {"Fracture": NEGATIVE}, set()),
]
_NORMAL_IMPRESSIONS = ["No acute cardiopulmonary process.", "No acute intrathoracic abnormality.",
                       "Normal chest radiograph."]


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def _where(f: Finding, pick, noun: bool = True) -> str:
    """'the right lower lobe' (noun) or 'right basilar' (adjective) for a finding's side and zone."""
    s = f.side
    if noun:
        return pick({"upper": [f"the {s} upper lobe", f"the {s} upper lung zone"],
                     "middle": [f"the {s} mid lung zone", "the right middle lobe" if s == "right" else "the lingula"],
                     "lower": [f"the {s} lower lobe", f"the {s} lung base"]}[f.zone])
    return pick({"upper": [f"{s} upper lobe", f"{s} upper lung"], "middle": [f"{s} mid lung"],
                 "lower": [f"{s} basilar", f"{s} lower lobe"]}[f.zone])


def _fill(template: str, f: Finding, pick) -> str:
    loc, adj = (_where(f, pick), _where(f, pick, False)) if f.zone and f.name != "Pneumothorax" else ("", "")
    return template.format(side=f.side, Side=_cap(f.side), size=f.size, Size=_cap(f.size), loc=loc, adj=adj,
                           Adj=_cap(adj), cm=f"{2 * f.r * FIELD_CM:.1f}",
                           adv={"mild": "mildly", "moderate": "moderately"}.get(f.size, ""))


def _report(findings: tuple[Finding, ...], rng) -> tuple[str, str, dict[str, int]]:
    """Findings text, impression and CheXpert labels; every sentence is true of the drawing."""
    def pick(xs):
        return xs[int(rng.integers(len(xs)))]
    pos, imp = [], []                          # (group, sentence, labels it states), impression phrases
    for name in FINDINGS:
        fs = [f for f in findings if f.name == name]
        if len(fs) == 2 and name == "Pleural Effusion":
            rt, lt = sorted(fs, key=lambda f: f.side != "right")
            texts = ["There are bilateral pleural effusions.",
                     f"Bilateral pleural effusions, {rt.size} on the right and {lt.size} on the left."]
            if rt.size == lt.size:
                texts.append(f"{_cap(rt.size)} bilateral pleural effusions.")
            text, short = pick(texts), "bilateral pleural effusions"
        elif len(fs) == 2:                     # two nodules
            text = pick(["Two pulmonary nodules are seen, in {} and {}.", "There are nodules in {} and {}."])
            text, short = text.format(_where(fs[0], pick), _where(fs[1], pick)), "two pulmonary nodules"
        elif fs:
            f = fs[0]
            templates, short = _POSITIVE[f.size if name == "Lung Lesion" else name]
            if name == "Pleural Effusion" and f.size == "small":
                templates = [*templates, "Blunting of the {side} costophrenic angle reflects a small pleural effusion."]
            text, short = _fill(pick(templates), f, pick), _fill(short, f, pick)
        else:
            continue
        tags = {name: POSITIVE, **({"Lung Opacity": POSITIVE} if "opacity" in text else {})}
        pos.append((_GROUP[name], text, tags))
        imp.append(short)
    rng.shuffle(pos)
    present, said, neg = {f.name for f in findings}, set(), []
    for group, absent, prob, texts, labels, covers in _NEGATIVE:
        if not absent & present and not set(labels) & said and rng.random() < prob:
            neg.append((group, pick(texts), labels))
            said |= set(labels) | covers
    while neg and len(pos) + len(neg) > 5:
        neg.pop(int(rng.integers(len(neg))))
    if not pos and not neg:
        neg.append(("lungs", "The lungs are clear.", {"Lung Opacity": NEGATIVE}))
    order = pick([("lungs", "pleura", "heart", "bones"), ("heart", "lungs", "pleura", "bones")])
    sentences = sorted(pos + neg, key=lambda x: order.index(x[0]))  # stable: positives lead each group
    labels = {k: v for _, _, tags in sentences for k, v in tags.items()}
    if not present:
        labels[NO_FINDING] = POSITIVE
        return " ".join(t for _, t, _ in sentences), pick(_NORMAL_IMPRESSIONS), labels
    impression = _cap(imp[0] if len(imp) == 1 else ", ".join(imp[:-1]) + " and " + imp[-1]) + "."
    return " ".join(t for _, t, _ in sentences), impression, labels


# --- public API -------------------------------------------------------------------------
def draw_sample(seed: int, index: int, size: int = 256, split: str = "train") -> tuple[Image.Image, Sample]:
    """Image ``index`` of the (seed, split) stream with its report, labels and boxes."""
    plan = plan_sample(seed, index, split)
    drawing = render(plan, size)
    text, impression, labels = _report(plan.findings, np.random.default_rng([seed, _split_key(split), index, 1]))
    sid = f"synthetic-{split}-{seed}-{index:06d}"
    return drawing.image, Sample(id=sid, image=f"{sid}.png", source=SOURCE.name, split=split, view="PA",
                                 width=size, height=size, findings=text, impression=impression,
                                 labels=labels, boxes=drawing.boxes)


def generate(n: int, seed: int = 0, size: int = 256, split: str = "train") -> list[tuple[Image.Image, Sample]]:
    """The first ``n`` images of the (seed, split) stream; a longer call extends a shorter one."""
    return [draw_sample(seed, i, size, split) for i in range(n)]


def write_dataset(out_dir: str | Path, n_train: int, n_test: int, seed: int = 0, size: int = 256) -> dict[str, Path]:
    """Write ``images/<id>.png`` plus ``train.jsonl`` and ``test.jsonl`` (image paths relative to ``out_dir``)."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    paths = {}
    for split, n in (("train", n_train), ("test", n_test)):
        samples = []
        for image, sample in generate(n, seed, size, split):
            sample.image = f"images/{sample.id}.png"
            image.save(out / sample.image, compress_level=1)
            samples.append(sample)
        paths[split] = out / f"{split}.jsonl"
        write_jsonl(samples, paths[split])
    return paths
