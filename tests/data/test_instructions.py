"""Conversation rows: tasks, box text, thinking suffix."""

import json

import pytest

from radrl.data.boxes import Box
from radrl.data.instructions import (
    ANATOMY_PROMPTS,
    CLASSIFICATION_PROMPTS,
    DETECTION_PROMPTS,
    GROUNDING_PROMPTS,
    NO_ABNORMALITY,
    PHRASE_PROMPTS,
    REPEATS,
    REPORT_PROMPTS,
    SOURCE_TASKS,
    TASKS,
    THINK_SUFFIX,
    build_conversations,
    build_task_mix,
    to_dataset,
)
from radrl.data.schema import Sample
from radrl.parsing import parse


def _sample():
    return Sample(id="s1", image="a.png", findings="Moderate cardiomegaly. No pneumothorax.",
                  boxes=[Box(0.3, 0.5, 0.7, 0.8, "Cardiomegaly"), Box(0.1, 0.6, 0.3, 0.9, "Pleural Effusion"),
                         Box(0.7, 0.6, 0.9, 0.9, "Pleural Effusion")])


def _text(row):
    return row["prompt"][0]["content"][1]["text"]


def test_rows_per_task():
    rows = build_conversations([_sample()])
    # one report row plus one grounding row per finding with boxes
    assert [r["task"] for r in rows] == ["report", "grounding", "grounding"]
    assert rows[0]["solution"] == "Moderate cardiomegaly. No pneumothorax."
    assert _text(rows[0]) in REPORT_PROMPTS
    assert rows[0]["prompt"][0]["content"][0] == {"type": "image"}
    assert rows[0]["images"] == ["a.png"]


def test_grounding_answer_uses_paper_box_text():
    rows = build_conversations([_sample()], tasks=["grounding"])
    by_id = {r["id"]: r for r in rows}
    assert by_id["s1-ground-cardiomegaly"]["solution"] == "Cardiomegaly at [0.30, 0.50, 0.70, 0.80]"
    # several boxes of one finding: joined with " and "
    assert by_id["s1-ground-pleural_effusion"]["solution"] == (
        "Pleural Effusion at [0.10, 0.60, 0.30, 0.90] and [0.70, 0.60, 0.90, 0.90]")
    assert any(_text(by_id["s1-ground-cardiomegaly"]) == t.format(finding="cardiomegaly") for t in GROUNDING_PROMPTS)


def test_qwen_box_format():
    rows = build_conversations([_sample()], tasks=["grounding"], box_format="qwen")
    assert json.loads(rows[0]["solution"])[0] == {"bbox_2d": [300, 500, 700, 800], "label": "Cardiomegaly"}


@pytest.mark.parametrize("thinking", [False, True])
def test_thinking_suffix(thinking):
    rows = build_conversations([_sample()], thinking=thinking)
    assert all(_text(r).endswith(THINK_SUFFIX) == thinking for r in rows)
    assert all(r["thinking"] is thinking for r in rows)


def test_same_seed_same_phrasing_and_unknown_task():
    assert build_conversations([_sample()], seed=3) == build_conversations([_sample()], seed=3)
    with pytest.raises(ValueError, match="unknown task"):
        build_conversations([_sample()], tasks=["vqa"])


def test_sample_without_report_or_boxes_gives_no_rows():
    assert build_conversations([Sample(id="x", image="x.png")]) == []


def test_dataset_decodes_images(tmp_path):
    from PIL import Image

    Image.new("L", (32, 32), 128).save(tmp_path / "a.png")
    s = _sample()
    s.image = str(tmp_path / "a.png")
    ds = to_dataset(build_conversations([s]))
    assert ds[0]["images"][0].size == (32, 32)


# --- the paper's task mix -------------------------------------------------------------------------


def _mimic():
    return Sample(id="m", image="m.jpg", source="mimic-cxr", findings="Moderate cardiomegaly.",
                  impression="Cardiomegaly.", labels={"Cardiomegaly": 1, "Edema": -1, "Pneumothorax": 0})


def _imagenome():
    return Sample(id="g", image="g.jpg", source="chest-imagenome", width=2544, height=3056,
                  boxes=[Box(0.1, 0.1, 0.5, 0.8, "right lung"), Box(0.35, 0.4, 0.7, 0.7, "cardiac silhouette")])


def _mscxr():
    return Sample(id="p", image="p.jpg", source="ms-cxr", findings="Small left apical pneumothorax.",
                  labels={"Pneumothorax": 1},
                  boxes=[Box(0.59, 0.07, 0.75, 0.16, "Small left apical pneumothorax"),
                         Box(0.61, 0.16, 0.69, 0.2, "Small left apical pneumothorax"),
                         Box(0.08, 0.72, 0.4, 0.92, "Right pleural effusion")])


def _vindr(boxes=True):
    return Sample(id="v" if boxes else "w", image="v.png", source="vindr-cxr",
                  labels={} if boxes else {"No Finding": 1},
                  boxes=[Box(0.3, 0.5, 0.7, 0.8, "Cardiomegaly"), Box(0.1, 0.2, 0.2, 0.3, "Nodule/Mass"),
                         Box(0.6, 0.2, 0.7, 0.3, "Nodule/Mass")] if boxes else [])


@pytest.mark.parametrize("sample, task, expected", [
    # classification: positives and uncertain, CheXpert order, negatives left out
    (_mimic(), "classification", [("classification", None, "Cardiomegaly, Edema")]),
    # labelled but nothing positive -> "No Finding"; no labels at all -> no row
    (Sample(id="n", image="n.png", labels={"No Finding": 1, "Edema": 0}), "classification",
     [("classification", None, "No Finding")]),
    (Sample(id="n", image="n.png"), "classification", []),
    # phrase grounding: one row per phrase, all its boxes, phrase not repeated in the answer
    (_mscxr(), "phrase_grounding", [("grounding", "phrase", "[0.59, 0.07, 0.75, 0.16] and [0.61, 0.16, 0.69, 0.20]"),
                                    ("grounding", "phrase", "[0.08, 0.72, 0.40, 0.92]")]),
    # detection: every class with its boxes, classes sorted
    (_vindr(), "detection", [("grounding", "detection", ("Cardiomegaly at [0.30, 0.50, 0.70, 0.80]; "
                              "Nodule/Mass at [0.10, 0.20, 0.20, 0.30] and [0.60, 0.20, 0.70, 0.30]"))]),
    # a labelled normal image: a detection row the grounding reward does not score (task 'detection')
    (_vindr(boxes=False), "detection", [("detection", "detection", NO_ABNORMALITY)]),
    # an unlabelled image without boxes says nothing about normality: no row
    (Sample(id="u", image="u.png"), "detection", []),
    # labelled, no CheXpert positive, but the dataset does not call it normal (TBX11K "sick", RSNA
    # "not normal"): never taught "No abnormalities"
    (Sample(id="s", image="s.png", labels={"No Finding": 0}), "detection", []),
])
def test_task_rows(sample, task, expected):
    rows = build_conversations([sample], tasks=[task])
    assert [(r["task"], r["kind"], r["solution"]) for r in rows] == expected


@pytest.mark.parametrize("task, templates, field", [
    ("classification", CLASSIFICATION_PROMPTS, None),
    ("detection", DETECTION_PROMPTS, None),
    ("phrase_grounding", PHRASE_PROMPTS, "phrase"),
    ("anatomy_grounding", ANATOMY_PROMPTS, "region"),
])
def test_requests_come_from_templates(task, templates, field):
    sample = {"classification": _mimic(), "detection": _vindr(), "phrase_grounding": _mscxr(),
              "anatomy_grounding": _imagenome()}[task]
    for seed in range(5):
        for r in build_conversations([sample], tasks=[task], seed=seed):
            text = _text(r)
            labels = {b.label for b in sample.boxes}
            options = {t.format(**{field: x}) for t in templates for x in labels} if field else set(templates)
            assert text in options


def test_anatomy_draws_one_region_per_row_and_repeats_vary():
    rows = [build_conversations([_imagenome()], tasks=["anatomy_grounding"], seed=s)[0] for s in range(12)]
    assert all((r["task"], r["kind"]) == ("grounding", "anatomy") for r in rows)
    # one region per row, answered as '<region> at [box]'; over seeds both regions appear
    assert {r["solution"] for r in rows} == {"right lung at [0.10, 0.10, 0.50, 0.80]",
                                             "cardiac silhouette at [0.35, 0.40, 0.70, 0.70]"}


@pytest.mark.parametrize("task, sample", [("phrase_grounding", _mscxr()), ("anatomy_grounding", _imagenome()),
                                          ("detection", _vindr())])
def test_grounding_answers_parse_back_to_the_boxes(task, sample):
    """What the grounding reward will read: the parser recovers every reference box (both box forms)."""
    labelled = [b for b in sample.boxes if b.label]
    # each row answers one label's boxes (detection: every labelled box at once), all of them and no others
    groups = [labelled] if task == "detection" else [[b for b in labelled if b.label == x]
                                                     for x in dict.fromkeys(b.label for b in labelled)]
    n_rows = len(groups) if task == "phrase_grounding" else 1

    def same(got, want):
        got, want = sorted(b.coords for b in got), sorted(b.coords for b in want)
        return len(got) == len(want) and all(g == pytest.approx(w, abs=0.006) for g, w in zip(got, want))

    for box_format in ("paper", "qwen"):
        rows = build_conversations([sample], tasks=[task], box_format=box_format)
        assert len(rows) == n_rows
        answered = []
        for r in rows:
            boxes = parse(r["solution"]).boxes
            match = [i for i, want in enumerate(groups) if same(boxes, want)]
            assert match, r["solution"]
            answered += match
        if task == "phrase_grounding":   # every phrase answered once
            assert sorted(answered) == list(range(len(groups)))


def test_conversation_turns():
    row = build_conversations([_mscxr()], tasks=["conversation"], thinking=True)[0]
    roles = [m["role"] for m in row["prompt"]]
    # report, abnormalities, two phrase groundings: 4 questions, the last answer is the completion
    assert roles == ["user", "assistant"] * 3 + ["user"]
    assert row["prompt"][0]["content"][0] == {"type": "image"}
    assert all(c["type"] == "text" for m in row["prompt"][1:] for c in m["content"])  # one image, first turn only
    assert row["prompt"][1]["content"][0]["text"] == "Small left apical pneumothorax."
    assert row["prompt"][3]["content"][0]["text"] == "Pneumothorax"
    assert (row["task"], row["kind"]) == ("conversation", "grounded_conversation")
    assert row["solution"] == "[0.08, 0.72, 0.40, 0.92]"
    # ' /think' only on the last request
    assert row["prompt"][-1]["content"][-1]["text"].endswith(THINK_SUFFIX)
    assert not row["prompt"][0]["content"][1]["text"].endswith(THINK_SUFFIX)
    # a sample with one possible turn gives no conversation
    assert build_conversations([Sample(id="x", image="x.png", findings="Normal.")], tasks=["conversation"]) == []


def test_task_mix_follows_sources_and_paper_repeats():
    rows = list(build_task_mix([_mimic(), _imagenome(), _mscxr(), _vindr(), _vindr(boxes=False)]))
    by = {}
    for r in rows:
        by.setdefault(r["id"].split("-")[0], []).append(r["id"])
    assert by["m"] == ["m-report", "m-classify", "m-conversation"]  # MIMIC: report, classification, conversation
    assert len(by["g"]) == 1 and by["g"][0].startswith("g-anatomy-")
    # MS-CXR: phrase grounding x3 (2 phrases -> 6 rows), grounded conversation x4
    assert sum("phrase" in i for i in by["p"]) == 2 * REPEATS[("phrase_grounding", "ms-cxr")]
    assert sum("conversation" in i for i in by["p"]) == REPEATS[("conversation", "ms-cxr")]
    # VinDr: abnormality grounding x3 per class (2 classes), detection x2; the normal image: detection x2 only
    assert sum("ground" in i for i in by["v"]) == 2 * 3 and sum("detect" in i for i in by["v"]) == 2
    assert by["w"] == ["w-detect", "w-detect-r1"]
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids))  # repeats get -r<k>, so ids stay unique
    # every task named in the source table exists
    assert {t for ts in SOURCE_TASKS.values() for t in ts} <= set(TASKS)


def test_task_mix_filter_and_unknown_task():
    # the filter keeps named tasks of each source's own list: MS-CXR has no classification task in the paper
    rows = list(build_task_mix([_mimic(), _mscxr()], tasks=["classification"]))
    assert [r["id"] for r in rows] == ["m-classify"]
    with pytest.raises(ValueError, match="unknown task"):
        list(build_task_mix([_mimic()], tasks=["vqa"]))


def test_task_mix_is_lazy():
    def samples():
        yield _mimic()
        raise AssertionError("read past the first sample")
    assert next(build_task_mix(samples()))["id"] == "m-report"


def test_mixed_tasks_build_one_dataset(tmp_path):
    from PIL import Image

    Image.new("L", (32, 32), 100).save(tmp_path / "a.png")
    samples = [_mimic(), _imagenome(), _mscxr(), _vindr(), _vindr(boxes=False)]
    for s in samples:
        s.image = str(tmp_path / "a.png")
    rows = list(build_task_mix(samples))
    ds = to_dataset(rows)
    assert len(ds) == len(rows) and set(ds["task"]) == {"report", "classification", "grounding", "detection",
                                                        "conversation"}
    multi = ds[[r["task"] for r in rows].index("conversation")]
    assert len(multi["prompt"]) == 3  # the MIMIC sample: report, abnormalities -> user, assistant, user


def test_dicom_images_are_refused_with_the_fix():
    # HF's Image feature cannot decode DICOM: the error names the row and the prepare flag that fixes it
    rows = [{"id": "v-1", "prompt": [], "completion": [], "images": ["/data/vindr/train/abc.dicom"],
             "task": "report", "solution": "x", "thinking": False}]
    with pytest.raises(ValueError, match=r"row v-1: .*abc\.dicom is DICOM.*--dicom-to-png"):
        to_dataset(rows)


def _many_samples(n=12):
    labels = ("Cardiomegaly", "Pleural Effusion", "Nodule/Mass", "Pneumothorax")
    return [Sample(id=f"p{i}", image=f"p{i}.png", findings=f"Finding {i}.", labels={"Cardiomegaly": 1},
                   boxes=[Box(0.1 + 0.01 * i, 0.2, 0.5, 0.6, labels[i % 4]),
                          Box(0.6, 0.1, 0.9, 0.4, labels[(i + 1) % 4])])
            for i in range(n)]


def _requests(rows):
    return {(r["task"], r["id"]): _text(r) for r in rows}


def test_request_is_the_same_whatever_else_is_built():
    # Prompt identity: a row's request depends on (seed, sample, task, target) only. Before the fix one random
    # stream ran through all tasks and rows, so evaluating SFT on report + grounding and GRPO on grounding alone
    # asked most grounding rows differently.
    samples = _many_samples()
    both = _requests(build_conversations(samples, tasks=("report", "grounding"), seed=3))
    alone = {**_requests(build_conversations(samples, tasks=("grounding",), seed=3)),
             **_requests(build_conversations(samples, tasks=("report",), seed=3))}
    assert both == alone
    # fewer samples (--max-rows style subsets), another order, other tasks beside: the same requests
    subset = _requests(build_conversations(samples[5:8][::-1], tasks=("detection", "grounding", "classification"),
                                           seed=3))
    assert all(both[k] == v for k, v in subset.items() if k in both)
    assert sum(k in both for k in subset) == 6  # the grounding rows of three samples were compared
    # the phrasings still vary across rows, and another seed draws others
    assert len(set(both.values())) > 10
    assert _requests(build_conversations(samples, tasks=("report",), seed=4)) != \
        _requests(build_conversations(samples, tasks=("report",), seed=3))


def test_task_mix_repeat_zero_asks_what_build_conversations_asks():
    samples = [Sample(id="v1", image="v.png", source="vindr-cxr", boxes=[Box(0.1, 0.1, 0.4, 0.4, "Nodule/Mass")])]
    mix = list(build_task_mix(samples, seed=2, tasks=["grounding"]))
    plain = build_conversations(samples, tasks=("grounding",), seed=2)
    assert [r["id"] for r in mix] == ["v1-ground-nodule/mass", "v1-ground-nodule/mass-r1", "v1-ground-nodule/mass-r2"]
    assert _text(mix[0]) == _text(plain[0])


def test_rows_carry_reference_boxes_at_full_precision():
    # The solution text rounds to two decimals; ref_boxes keeps the dataset's coordinates for scoring.
    s = Sample(id="n", image="n.png", boxes=[Box(0.123456, 0.2, 0.131, 0.2149, "Nodule/Mass")])
    row = build_conversations([s], tasks=("grounding",))[0]
    assert row["ref_boxes"] == [[0.123456, 0.2, 0.131, 0.2149]]
    assert "0.12" in row["solution"]
    assert build_conversations([_sample()], tasks=("report",))[0]["ref_boxes"] == []


@pytest.mark.parametrize("source, label, phrase, mangled", [
    ("tbx11k", "ActiveTuberculosis", "the active tuberculosis", "activetuberculosis"),
    ("tbx11k", "ObsoletePulmonaryTuberculosis", "the obsolete pulmonary tuberculosis", "obsoletepulmonary"),
    ("vindr-cxr", "ILD", "the interstitial lung disease", "the ild"),
    ("vindr-cxr", "Nodule/Mass", "the nodule or mass", "nodule/mass"),
    ("synthetic", "Pleural Effusion", "the pleural effusion", None),      # plain names read as before
    ("folder", "PICC", "the PICC", "picc"),                              # no table: acronyms kept
])
def test_class_names_read_as_words_in_requests(source, label, phrase, mangled):
    s = Sample(id="c1", image="c.png", source=source, boxes=[Box(0.1, 0.1, 0.4, 0.4, label)])
    [row] = build_conversations([s], tasks=("grounding",))
    assert phrase in _text(row) and (mangled is None or mangled not in _text(row)), _text(row)
    assert row["solution"].startswith(f"{label} at ")   # answers and scoring keep the dataset's class name


def test_every_real_class_has_a_readable_name(cxr_data):
    # The classes in the real annotation files are all in their source's table (none falls back to the generic rule).
    import gzip

    from radrl.data.sources import declared

    with gzip.open(cxr_data / "vindr" / "vinbigdata-train.csv.gz", "rt") as f:
        vindr = {line.split(",")[1] for line in list(f)[1:]} - {"No finding"}
    tbx = {c["name"] for c in json.loads((cxr_data / "tbx11k" / "TBX11K_train.json").read_text())["categories"]}
    assert vindr <= set(declared()["vindr-cxr"].class_names) and len(vindr) == 14
    assert tbx == set(declared()["tbx11k"].class_names)
