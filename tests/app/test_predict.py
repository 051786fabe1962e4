"""radrl.app.predict and ``radrl predict``: eval's requests and parser, boxes in pixels of the image as given, every
image kind, and the command line on real files from ../shared."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from radrl.data.boxes import Box
from radrl.data.images import ImageError, dicom_window, load_image
from radrl.data.instructions import DETECTION_PROMPTS, REPORT_PROMPTS, THINK_SUFFIX, build_conversations
from radrl.data.schema import Sample
from radrl.eval.generate import messages_with_images
from radrl.eval.run import EVAL_PIXELS

MONO1 = "dicom/CR-MONO1-10-chest.dcm"   # 440 x 440, MONOCHROME1, 10-bit, no file meta header
SIIM = "dicom/siim_1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"  # 1024 x 1024, JPEG baseline


@pytest.fixture(scope="module")
def answering(taught):
    from radrl.app import Predictor

    return Predictor(taught.path, max_pixels=taught.pixels)


@pytest.fixture(scope="module")
def random_model(tiny_model_dir):
    from radrl.app import Predictor

    return Predictor(tiny_model_dir, max_new_tokens=4)


def test_three_lines_give_a_report_with_boxes_for_a_dicom(taught, cxr_data):
    # The README's three lines, on a real DICOM: the report, its box, and the detection request's box.
    from radrl.app import Predictor

    model = Predictor(taught.path, max_pixels=taught.pixels)
    result = model.report(cxr_data / MONO1, boxes=True)

    assert result.text == taught.answer and result.image_size == (440, 440)
    assert result.request in REPORT_PROMPTS and result.detection.request in DETECTION_PROMPTS
    assert [b.label for b in result.boxes] == ["Cardiomegaly", "Cardiomegaly"]   # the report's, the detection's
    assert result.boxes[0].box.coords == taught.box
    assert result.boxes[0].pixels == (132, 176, 308, 352)   # 0.30 x 440 ... at the file's own resolution
    assert result.to_dict()["boxes"][0] == {"label": "Cardiomegaly", "box": list(taught.box),
                                            "pixels": [132, 176, 308, 352]}


def test_the_pixel_budget_is_evals(random_model):
    assert random_model.processor.image_processor.size == {"shortest_edge": EVAL_PIXELS[0],
                                                            "longest_edge": EVAL_PIXELS[1]}
    assert (random_model.settings["min_pixels"], random_model.settings["max_pixels"]) == EVAL_PIXELS


# (call, build task, sample boxes, seed): each question must send exactly the conversation that
# radrl.data.instructions builds for a sample of this image, and that eval's messages_with_images fills.
CASES = [
    # a report: the report templates
    (lambda m, img: m.report(img), "report", [], 0),
    # another seed picks another phrasing, as eval's --seed does
    (lambda m, img: m.report(img), "report", [], 5),
    # a known finding, any case: the finding-grounding templates with the readable name
    (lambda m, img: m.ground(img, "pleural EFFUSION"), "grounding", [Box(0, 0, 1, 1, "Pleural Effusion")], 0),
    # free text: the phrase-grounding templates with the phrase as typed
    (lambda m, img: m.ground(img, "opacity at the left base"), "phrase_grounding",
     [Box(0, 0, 1, 1, "opacity at the left base")], 0),
    # an unknown name forced to be a finding
    (lambda m, img: m.ground(img, "Tuberculosis", kind="finding"), "grounding", [Box(0, 0, 1, 1, "Tuberculosis")], 0),
    # detection: the detection templates
    (lambda m, img: m.detect(img), "detection", [Box(0, 0, 1, 1, "x")], 0),
]


@pytest.mark.parametrize("case", range(len(CASES)))
def test_requests_are_the_rows_training_and_eval_build(random_model, monkeypatch, case):
    from radrl.app import predict

    call, task, boxes, seed = CASES[case]
    sent = []
    monkeypatch.setattr(predict, "generate_messages",
                        lambda model, processor, convs, **kw: sent.append((convs, kw)) or ["no answer"])
    monkeypatch.setattr(random_model, "seed", seed)
    image = Image.new("L", (300, 200), 90)
    result = call(random_model, image)

    sample = Sample(id=predict.REQUEST_ID, image="image.png", findings="x", boxes=boxes)
    row = build_conversations([sample], tasks=[task], seed=seed)[0]
    row["images"] = [image.convert("RGB")]
    assert sent[0][0] == [messages_with_images(row)]
    assert result.request == row["prompt"][0]["content"][1]["text"]
    assert sent[0][1]["max_new_tokens"] == random_model.limits[row["task"]]


def test_boxes_come_back_in_0_1_and_in_pixels_of_the_image_given(random_model, monkeypatch):
    from radrl.app import predict

    answers = iter(["[0.10, 0.20, 0.30, 0.40] and [0.5, 0.5, 0.9, 0.95]",
                    "Nodule at [0.10, 0.20, 0.30, 0.40]; Pleural Effusion at [0.60, 0.50, 0.90, 0.80]",
                    "Cardiomegaly at [0.3, 0.4, nan, 0.8]"])
    monkeypatch.setattr(predict, "generate_messages", lambda *a, **kw: [next(answers)])
    image = Image.new("RGB", (300, 200))
    phrase = random_model.ground(image, "opacity at the left base")
    # a phrase answer has bare boxes: they are labelled with the phrase asked for
    assert [(b.label, b.pixels) for b in phrase.boxes] == [("opacity at the left base", (30, 40, 90, 80)),
                                                          ("opacity at the left base", (150, 100, 270, 190))]
    assert phrase.boxes[0].box.label == "opacity at the left base" and phrase.target == "opacity at the left base"
    detection = random_model.detect(image)
    assert [(b.label, b.box.coords) for b in detection.boxes] == [("Nodule", (0.1, 0.2, 0.3, 0.4)),
                                                                  ("Pleural Effusion", (0.6, 0.5, 0.9, 0.8))]
    bad = random_model.ground(image, "Cardiomegaly")   # the parser's verdict is kept, not hidden
    assert bad.boxes == () and "invalid_box" in bad.issues


def test_thinking_asks_with_the_suffix_and_reads_after_the_think_block(tiny_model_dir, monkeypatch):
    from radrl.app import Predictor, predict

    sent = []
    monkeypatch.setattr(predict, "generate_messages", lambda m, p, convs, **kw: sent.append(convs) or
                        ["<think>the heart is wide</think>Cardiomegaly at [0.30, 0.40, 0.70, 0.80]."])
    model = Predictor(tiny_model_dir, thinking=True)
    result = model.ground(Image.new("L", (100, 100)), "Cardiomegaly")
    assert sent[0][0][0]["content"][1]["text"].endswith(THINK_SUFFIX) and not result.request.endswith(THINK_SUFFIX)
    assert (result.thinking, result.text) == ("the heart is wide", "Cardiomegaly at [0.30, 0.40, 0.70, 0.80].")
    assert model.limits["report"] == 4096  # eval's thinking limit
    # cut off while thinking (the chat template may open <think> in the prompt): no answer, and the parser says why
    monkeypatch.setattr(predict, "generate_messages", lambda *a, **kw: ["still thinking"])
    unfinished = model.report(Image.new("L", (100, 100)))
    assert (unfinished.text, unfinished.thinking, unfinished.issues) == ("", "still thinking",
                                                                         ("think_missing", "empty_answer"))


def test_chat_keeps_the_turns_and_shows_the_image_once(random_model, monkeypatch):
    from radrl.app import predict

    sent = []
    answers = iter(["There is cardiomegaly.", "Cardiomegaly at [0.30, 0.40, 0.70, 0.80]."])
    monkeypatch.setattr(predict, "generate_messages", lambda m, p, convs, **kw: sent.append(convs[0]) or
                        [next(answers)])
    image = Image.new("L", (200, 100))
    first = random_model.chat(image, "What do you see?")
    second = random_model.chat(image, "Where?", first.history)
    assert second.history == (("What do you see?", "There is cardiomegaly."),
                              ("Where?", "Cardiomegaly at [0.30, 0.40, 0.70, 0.80]."))
    assert [m["role"] for m in sent[1]] == ["user", "assistant", "user"]
    assert [p["type"] for m in sent[1] for p in m["content"]] == ["image", "text", "text", "text"]
    assert second.boxes[0].pixels == (60, 40, 140, 80)
    with pytest.raises(ValueError, match="message is empty"):
        random_model.chat(image, "  ")
    with pytest.raises(ValueError, match="give a finding"):
        random_model.ground(image, "")


def test_a_lateral_view_goes_into_the_same_request(random_model, monkeypatch):
    from radrl.app import predict

    sent = []
    monkeypatch.setattr(predict, "generate_messages", lambda m, p, convs, **kw: sent.append(convs[0]) or ["ok"])
    frontal, lateral = Image.new("L", (200, 100), 10), Image.new("L", (120, 100), 200)
    random_model.report(frontal, lateral)
    parts = sent[0][0]["content"]
    assert [p["type"] for p in parts] == ["image", "image", "text"]
    assert (parts[0]["image"].size, parts[1]["image"].size) == ((200, 100), (120, 100))


def test_streaming_ends_with_the_answer_generate_gives(answering, taught, cxr_data):
    streamed = list(answering.report_stream(cxr_data / MONO1))
    assert streamed[-1].complete and not any(p.complete for p in streamed[:-1]) and len(streamed) >= 2
    assert streamed[-1] == answering.report(cxr_data / MONO1)
    assert taught.answer.startswith(streamed[0].completion)   # partial texts grow towards the answer


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")  # the 90 MP header: PIL warns, radrl refuses
def test_images_of_every_kind_and_the_ones_refused(random_model, cxr_data, tmp_path, forged_png):
    from radrl.app import read_radiograph

    mono1 = read_radiograph(cxr_data / MONO1)
    assert (mono1.dicom, mono1.size, mono1.image.mode) == (True, (440, 440), "RGB")
    assert mono1.image.tobytes() == load_image(cxr_data / MONO1).tobytes()   # the file's window, as eval reads it
    assert dicom_window(cxr_data / MONO1) == (550.0, 1024.0, 0.0, 979.0)   # the file's window, its value range
    narrow = read_radiograph(cxr_data / MONO1, window=(600.0, 100.0))
    assert narrow.window == (600.0, 100.0) and narrow.image.tobytes() != mono1.image.tobytes()
    assert read_radiograph(cxr_data / "nih_bbox" / "00001369_000.png", window=(1, 2)).window is None  # DICOM only
    sixteen = Image.frombytes("I;16", (2, 1), bytes([0, 0, 0xFF, 0x0F]))  # 16-bit PIL: scaled, not clipped white
    assert read_radiograph(sixteen).image.getpixel((0, 0)) == (0, 0, 0)

    text = tmp_path / "notes.png"
    text.write_text("not an image")
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes((cxr_data / SIIM).read_bytes()[:3000])
    with pytest.raises(ImageError, match=r"notes\.png: not a readable image"):
        read_radiograph(text)
    with pytest.raises(ImageError, match=r"truncated\.dcm"):
        read_radiograph(truncated)
    # refused from the header: decoding would need 3.6 GB (PIL's own bomb check), or more than the 67 MP taken
    with pytest.raises(ImageError, match=r"huge\.png: too large to decode safely .*; downsample it first"):
        read_radiograph(forged_png(tmp_path / "huge.png", 40_000, 30_000))
    with pytest.raises(ImageError, match=r"big\.png is 10000 x 9000 pixels \(90\.0 MP\).*downsample it first"):
        read_radiograph(forged_png(tmp_path / "big.png", 10_000, 9_000))
    with pytest.raises(ImageError, match="pass a file path or a PIL image"):
        random_model.report(b"bytes")


def test_radrl_predict_writes_json_lines_and_labelled_images(taught, cxr_data, tmp_path, capsys):
    from radrl.cli import main

    folder = tmp_path / "scans"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(cxr_data / MONO1, folder / "sub" / "chest.dcm")
    shutil.copy(cxr_data / "nih_bbox" / "00001369_000.png", folder / "nih.png")
    (folder / "notes.png").write_text("not an image")
    out, drawn = tmp_path / "preds.jsonl", tmp_path / "drawn"
    with pytest.raises(SystemExit) as exit_:   # one unreadable file: the others are answered, the status says 1
        main(["predict", str(folder), str(cxr_data / "dicom" / "CR-*.dcm"), "--model", str(taught.path),
              "--max-pixels", str(taught.pixels), "--ground", "opacity at the left base", "--draw", str(drawn),
              "--out", str(out)])
    assert exit_.value.code == 1
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    names = [(line["image"].rsplit("/", 1)[-1], line.get("task") or "error") for line in lines]
    assert names == [("nih.png", "report"), ("nih.png", "detection"), ("nih.png", "grounding"),
                     ("notes.png", "error"), ("chest.dcm", "report"), ("chest.dcm", "detection"),
                     ("chest.dcm", "grounding"), ("CR-MONO1-10-chest.dcm", "report"),
                     ("CR-MONO1-10-chest.dcm", "detection"), ("CR-MONO1-10-chest.dcm", "grounding")]
    report = lines[4]
    assert report["text"] == taught.answer and report["request"] in REPORT_PROMPTS
    assert report["image_size"] == [440, 440]
    assert report["boxes"] == [{"label": "Cardiomegaly", "box": list(taught.box), "pixels": [132, 176, 308, 352]}]
    assert lines[6]["target"] == "opacity at the left base"
    assert "notes.png: not a readable image" in lines[3]["error"]
    # every line, the unreadable image's too, says what answered: the checkpoint, its settings, radrl's version
    from radrl import __version__

    assert all(line["model"] == str(taught.path) and line["radrl_version"] == __version__ for line in lines)
    assert all(line["settings"]["max_pixels"] == taught.pixels and line["settings"]["decoding"] == "greedy"
               for line in lines)
    assert "1 unreadable" in capsys.readouterr().err
    # drawn at the original resolution (NIH 1024 x 1024, the DICOM 440 x 440), one file per image, names kept apart
    assert sorted(p.name for p in drawn.iterdir()) == ["CR-MONO1-10-chest.png", "chest.png", "nih.png"]
    chest = Image.open(drawn / "chest.png")
    assert chest.size == (440, 440)
    assert chest.getpixel((133, 264)) == (230, 25, 75)   # the left edge of the box, in the first label's colour


@pytest.mark.parametrize("args,message", [
    # a path that does not exist stops before the model loads
    (["missing.png"], "missing.png: no such file or folder"),
    # a glob that matches nothing says to quote it
    (["nothing/**/*.dcm"], "matches no file"),
])
def test_radrl_predict_refuses_missing_inputs_in_one_line(args, message, tmp_path, capsys):
    from radrl.cli import main

    with pytest.raises(SystemExit):
        main(["predict", *[str(tmp_path / a) for a in args], "--model", str(tmp_path / "no-model")])
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("target,source,label,phrase", [
    # VinDr's classes: the finding-grounding template, read with VinDr's table, as in eval's VinDr rows
    ("Nodule/Mass", "vindr-cxr", "Nodule/Mass", "nodule or mass"),
    ("ild", "vindr-cxr", "ILD", "interstitial lung disease"),   # any case; the generic reading would say "ILD"
    # TBX11K's COCO categories
    ("ActiveTuberculosis", "tbx11k", "ActiveTuberculosis", "active tuberculosis"),
])
def test_a_source_class_is_asked_as_evals_row_of_that_source(random_model, monkeypatch, target, source, label,
                                                            phrase):
    from radrl.app import KNOWN_FINDINGS, predict

    sent = []
    monkeypatch.setattr(predict, "generate_messages",
                        lambda model, processor, convs, **kw: sent.append(convs) or ["no answer"])
    image = Image.new("L", (300, 200), 90)
    result = random_model.ground(image, target)

    sample = Sample(id=predict.REQUEST_ID, image="image.png", source=source, findings="x",
                    boxes=[Box(0, 0, 1, 1, label)])
    row = build_conversations([sample], tasks=["grounding"], seed=random_model.seed)[0]
    row["images"] = [image.convert("RGB")]
    assert sent[0] == [messages_with_images(row)]
    assert phrase in result.request and result.target == label and label in KNOWN_FINDINGS


def test_closing_a_stream_stops_generation(tiny_model_dir):
    # The viewer leaves after the first words: the generation thread stops within a token or two and frees the
    # lock, instead of writing the rest of its 400 tokens while other requests wait.
    import threading

    from radrl.app import Predictor

    model = Predictor(tiny_model_dir, max_new_tokens=400, dtype="fp32")
    model.model.generation_config.eos_token_id = None   # a random model may say EOS early: it must run to the limit
    steps = []
    model.model.register_forward_hook(lambda *_: steps.append(1))
    stream = model.report_stream(Image.new("L", (64, 64), 90))
    next(stream)
    stream.close()
    thread = next((t for t in threading.enumerate() if t.name == "radrl-predict-stream"), None)
    if thread is not None:
        thread.join(timeout=30)
        assert not thread.is_alive()
    assert len(steps) < 20, f"{len(steps)} forward passes after the stream was closed"
    assert model._lock.acquire(blocking=False)
    model._lock.release()
    # and a stream read to the end still gives the whole answer
    done = list(model.report_stream(Image.new("L", (64, 64), 90)))[-1]
    assert done.complete and len(steps) > 100
