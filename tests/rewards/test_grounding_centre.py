"""The centre-distance grounding reward: ``metrics.grounding.soft_f1_centre`` and ``grounding_soft_f1_centre``."""

import math

import numpy as np
import pytest

from radrl.data.boxes import Box
from radrl.metrics.grounding import iou, soft_f1, soft_f1_centre
from radrl.rewards import REWARDS, GroundingSoftF1Centre, build_rewards

LESION = Box(0.40, 0.40, 0.45, 0.45)  # small: centre (0.425, 0.425)
NEAR = Box(0.46, 0.40, 0.51, 0.45)  # misses it (IoU 0), centre 0.06 to the right
FAR = Box(0.80, 0.40, 0.85, 0.45)  # misses it on the other side of the chest, centre 0.4 to the right
BESIDE_FAR = Box(0.86, 0.40, 0.91, 0.45)  # misses FAR (IoU 0), 0.06 to its right
SHIFTED = Box(0.41, 0.40, 0.46, 0.45)  # overlaps the lesion


def _closeness(a: Box, b: Box) -> float:
    (ax, ay), (bx, by) = [((x.coords[0] + x.coords[2]) / 2, (x.coords[1] + x.coords[3]) / 2) for x in (a, b)]
    return 1 - math.hypot(ax - bx, ay - by) / math.sqrt(2)


def _f1(tp: float, n_ref: int = 1, fp: int = 0) -> float:
    """soft_f1's structure: precision TP / (TP + FP), recall TP / #ref."""
    precision, recall = tp / (tp + fp), tp / n_ref
    return 2 * precision * recall / (precision + recall)


# (case, pred, ref, extra_fp, centre_weight, expected)
CASES = [
    # a perfect box scores 1 at any weight
    ("perfect", [LESION], [LESION], 0, 0.5, 1.0),
    # a near miss: IoU 0, so only the centre term counts: s = 0.5 * (1 - 0.06 / sqrt 2)
    ("near_miss", [NEAR], [LESION], 0, 0.5, _f1(0.5 * _closeness(NEAR, LESION))),
    # the miss on the other side of the chest scores by its larger distance
    ("far_miss", [FAR], [LESION], 0, 0.5, _f1(0.5 * _closeness(FAR, LESION))),
    # weight 1: centre distance alone
    ("distance_only", [FAR], [LESION], 0, 1.0, _f1(_closeness(FAR, LESION))),
    # an overlapping box: (1 - w) * IoU + w * closeness
    ("overlap", [SHIFTED], [LESION], 0, 0.3, _f1(0.7 * iou(SHIFTED, LESION) + 0.3 * _closeness(SHIFTED, LESION))),
    # an invalid box the parser dropped is a false positive, as in soft_f1
    ("extra_fp", [LESION], [LESION], 1, 0.5, 2 / 3),
    # an extra prediction with no reference left is a false positive too
    ("extra_box", [LESION, FAR], [LESION], 0, 0.5, 2 / 3),
    # no prediction or no reference: 0
    ("no_pred", [], [LESION], 0, 0.5, 0.0),
    ("no_ref", [LESION], [], 0, 0.5, 0.0),
    # two misses, two references: each is matched to the reference it is near (matching on the combined score;
    # on 1 - IoU, which is 1 for every pair here, the pairing would be arbitrary and the value lower)
    ("nearest_pairing", [BESIDE_FAR, NEAR], [LESION, FAR], 0, 0.5,
     _f1(0.5 * _closeness(NEAR, LESION) + 0.5 * _closeness(BESIDE_FAR, FAR), n_ref=2)),
]


@pytest.mark.parametrize("case,pred,ref,extra_fp,weight,expected", CASES, ids=[c[0] for c in CASES])
def test_soft_f1_centre(case, pred, ref, extra_fp, weight, expected):
    assert soft_f1_centre(pred, ref, extra_fp=extra_fp, centre_weight=weight) == pytest.approx(expected, abs=1e-12)


def test_misses_are_ranked_by_distance_where_soft_f1_gives_all_zero():
    # the point of the reward: a group of misses has a spread (an advantage to follow), the near one first
    assert soft_f1([NEAR], [LESION]) == soft_f1([FAR], [LESION]) == 0.0
    assert 1.0 > soft_f1_centre([NEAR], [LESION]) > soft_f1_centre([FAR], [LESION]) > 0.0


def _random_boxes(rng, n):
    xy = rng.random((n, 2)) * 0.9
    wh = rng.random((n, 2)) * 0.3
    boxes = [Box(float(x), float(y), float(min(x + w, 1.0)), float(min(y + h, 1.0))) for (x, y), (w, h) in zip(xy, wh)]
    if n and rng.random() < 0.2:  # a flat box (no area) now and then
        x, y = float(xy[0, 0]), float(xy[0, 1])
        boxes[0] = Box(x, y, x, min(y + 0.1, 1.0))
    return boxes


def test_weight_zero_is_soft_f1_exactly():
    # random cases on both of soft_f1's paths (plain Python below 8 boxes a side, numpy from 8), duplicates included
    rng = np.random.default_rng(0)
    for _ in range(400):
        n_pred, n_ref = int(rng.integers(0, 11)), int(rng.integers(0, 11))
        pred, ref = _random_boxes(rng, n_pred), _random_boxes(rng, n_ref)
        if pred and ref and rng.random() < 0.3:
            pred.append(ref[0])
        extra = int(rng.integers(0, 3))
        assert soft_f1_centre(pred, ref, extra_fp=extra, centre_weight=0.0) == soft_f1(pred, ref, extra_fp=extra)


def test_values_stay_in_zero_one():
    rng = np.random.default_rng(1)
    for _ in range(300):
        pred, ref = _random_boxes(rng, int(rng.integers(0, 6))), _random_boxes(rng, int(rng.integers(0, 6)))
        value = soft_f1_centre(pred, ref, extra_fp=int(rng.integers(0, 2)), centre_weight=float(rng.random()))
        assert 0.0 <= value <= 1.0 and isinstance(value, float)


@pytest.mark.parametrize("weight", [-0.1, 1.5, math.nan])
def test_weight_outside_zero_one_is_refused_with_the_fix(weight):
    with pytest.raises(ValueError, match=r"centre_weight must be in \[0, 1\].*0 is plain soft_f1"):
        soft_f1_centre([LESION], [LESION], centre_weight=weight)


# --- the reward -------------------------------------------------------------------------------------------------

MISSES = ["Nodule at [0.46, 0.40, 0.51, 0.45]", "Nodule at [0.80, 0.40, 0.85, 0.45]", "Nodule.",
          "<think>small</think>Nodule at [0.40, 0.40, 0.45, 0.45]"]
COLUMNS = {"task": ["grounding"] * 4, "solution": ["Nodule at [0.40, 0.40, 0.45, 0.45]"] * 4,
           "thinking": [False, False, False, True]}


def test_reward_is_the_metric_on_parsed_answers():
    out = REWARDS["grounding_soft_f1_centre"](MISSES, **COLUMNS)
    # near miss, far miss, no box, the right box after </think>
    assert out == [soft_f1_centre([NEAR], [LESION]), soft_f1_centre([FAR], [LESION]), 0.0, 1.0]
    # where the plain reward gives the two misses the same 0
    assert REWARDS["grounding_soft_f1"](MISSES, **COLUMNS) == [0.0, 0.0, 0.0, 1.0]
    # other tasks: None; a missing </think>: 0 (no answer, no boxes), as grounding_soft_f1
    assert REWARDS["grounding_soft_f1_centre"](["<think>[0.4, 0.4, 0.45, 0.45]", "x"], task=["grounding", "report"],
                                               solution=COLUMNS["solution"][:2], thinking=[True, False]) == [0.0, None]


def test_centre_weight_is_a_reward_option():
    funcs, _ = build_rewards(["grounding_soft_f1_centre"], {"grounding_soft_f1_centre": {"centre_weight": 0.2}})
    assert isinstance(funcs[0], GroundingSoftF1Centre) and funcs[0].centre_weight == 0.2
    assert funcs[0]([MISSES[0]], **{k: v[:1] for k, v in COLUMNS.items()}) == [
        soft_f1_centre([NEAR], [LESION], centre_weight=0.2)]
    assert REWARDS["grounding_soft_f1_centre"].centre_weight == 0.5  # the registered one is untouched
    # 0: plain soft F1 under its own log key
    zero, _ = build_rewards(["grounding_soft_f1_centre"], {"grounding_soft_f1_centre": {"centre_weight": 0}})
    assert zero[0](MISSES, **COLUMNS) == REWARDS["grounding_soft_f1"](MISSES, **COLUMNS)


@pytest.mark.parametrize("name,options,message", [
    # outside [0, 1]: refused with what the values mean
    ("grounding_soft_f1_centre", {"centre_weight": 1.5}, r"centre_weight must be in \[0, 1\], got 1.5"),
    # the paper's reward keeps its meaning: no centre option
    ("grounding_soft_f1", {"centre_weight": 0.5}, r"has no option\(s\) \['centre_weight'\]"),
])
def test_bad_centre_options_are_refused(name, options, message):
    with pytest.raises(ValueError, match=message):
        build_rewards([name], {name: options})


def test_recipe_option_reaches_the_trainers_reward(tmp_path, synth_data):
    from trl import TrlParser

    from radrl.train.grpo import RadrlGRPOConfig, reward_funcs

    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("rewards: [grounding_soft_f1_centre, report_clinical]\n"
                      "reward_options:\n  grounding_soft_f1_centre: {centre_weight: 0.3}\n")
    (cfg,) = TrlParser((RadrlGRPOConfig,)).parse_args_and_config(
        ["--config", str(recipe), "--output_dir", str(tmp_path / "out"), "--model_name_or_path", str(tmp_path),
         "--train_data", str(synth_data["train"]), "--bf16", "false"])
    assert reward_funcs(cfg)[0][0].centre_weight == 0.3
