"""``radrl app`` in a real headless browser: Playwright drives the system's Chromium against ``radrl app`` started
as a user would (a subprocess on loopback), with a real DICOM from ../shared and the taught tiny model, so the
report, the box and the chat answer are known."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

CHROMIUM = "/usr/bin/chromium"
MONO1 = "dicom/CR-MONO1-10-chest.dcm"   # 440 x 440, MONOCHROME1
SIIM = "dicom/siim_1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
RED = (230, 25, 75)   # radrl.app.draw.PALETTE[0]: the first label's colour


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def app_server(taught, tmp_path):
    """``radrl app --model <taught model>`` on a free loopback port; yields (url, process)."""
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
           "OMP_NUM_THREADS": "1"}   # the tiny model is fastest on one thread, and the browser needs the other core
    log = (tmp_path / "app.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "radrl.cli", "app", "--model", str(taught.path), "--port",
                             str(port), "--max-pixels", str(taught.pixels), "--max-new-tokens", "40"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 180
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"radrl app did not start:\n{(tmp_path / 'app.log').read_text()[-3000:]}")
        time.sleep(0.25)
    yield url, proc
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


def _shown_image(page) -> Image.Image:
    """The frontal view as the page shows it: the <img> in #view, fetched from the app."""
    src = page.locator("#view img").first.get_attribute("src")
    return Image.open(io.BytesIO(page.request.get(src).body())).convert("RGB")


def test_upload_a_dicom_get_a_report_and_a_drawn_box_and_survive_bad_uploads(app_server, taught, cxr_data,
                                                                              tmp_path, forged_png):
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: apt-get install -y chromium (.ci/run does this)"
    from playwright.sync_api import expect, sync_playwright

    url, proc = app_server
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notes.txt").write_text("a radiology report, not an image\n")
    (bad / "truncated.dcm").write_bytes((cxr_data / SIIM).read_bytes()[:3000])
    forged_png(bad / "huge.png", 40_000, 30_000)
    dicom = tmp_path / "chest.dcm"
    shutil.copy(cxr_data / MONO1, dicom)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        page.set_default_timeout(60_000)
        page.goto(url)
        expect(page.locator("#notice")).to_contain_text("Research use only")
        expect(page.locator("#settings")).to_contain_text(taught.path.name)
        expect(page.locator("#settings")).to_contain_text("pixel budget 1,024-4,096")

        upload = page.locator("#frontal input[type=file]")
        # bad uploads: a message in the page each time, and the app goes on serving
        for name, says in (("notes.txt", "notes.txt: not a readable image"),
                           ("truncated.dcm", "truncated.dcm"),
                           ("huge.png", "downsample it first")):
            upload.set_input_files(bad / name)
            expect(page.locator("#message")).to_contain_text("Could not do that")
            expect(page.locator("#message")).to_contain_text(says)
            assert "/tmp" not in page.locator("#message").inner_text()  # the upload's temporary folder stays hidden
            page.locator("#frontal button[aria-label='Clear']").click()
        assert proc.poll() is None

        # a real DICOM: one upload, and the report is written into the page, with its box (and the detection's)
        # drawn on the film, shown at its own size with window controls
        upload.set_input_files(dicom)
        expect(page.locator("#message")).to_contain_text("Report written; 2 box(es)")
        expect(page.locator("#report textarea")).to_have_value(taught.answer)
        expect(page.locator("#window-centre")).to_be_visible()
        assert _shown_image(page).getpixel((133, 264)) == RED

        # boxes cleared: the film as the file shows it; the report again, by its button
        page.locator("#clear-boxes").click()
        expect(page.locator("#message")).to_contain_text("Boxes cleared")
        plain = _shown_image(page)
        assert plain.size == (440, 440) and plain.getpixel((133, 264)) != RED
        page.locator("#report-boxes input").uncheck()
        page.locator("#report-button").click()
        expect(page.locator("#message")).to_contain_text("Report written; 1 box(es).")

        # a box asked for by name: drawn where the answer puts it, labelled, at the film's resolution
        page.locator("#clear-boxes").click()
        expect(page.locator("#message")).to_contain_text("Boxes cleared")
        page.locator("#target input").fill("Cardiomegaly")
        page.locator("#target input").press("Enter")
        page.locator("#ground-button").click()
        expect(page.locator("#boxes")).to_contain_text("Cardiomegaly: [0.30, 0.40, 0.70, 0.80]")
        expect(page.locator("#boxes")).to_contain_text("pixels (132, 176)-(308, 352)")
        drawn = _shown_image(page)
        assert drawn.size == (440, 440)
        assert drawn.getpixel((133, 264)) == RED and drawn.getpixel((307, 264)) == RED   # left and right edges
        assert drawn.getpixel((220, 264)) == plain.getpixel((220, 264))                   # inside: the film

        # a window set by the user redraws the film (boxes kept)
        centre = page.locator("#window-centre input[type=number]")
        centre.fill("300")
        centre.press("Enter")
        expect(page.locator("#message")).to_contain_text("Window: centre 300")
        windowed = _shown_image(page)
        assert windowed.getpixel((133, 264)) == RED and windowed.getpixel((220, 264)) != plain.getpixel((220, 264))

        # chat, two turns: each question and its answer in the conversation, the answer's box listed
        page.locator("#clear-boxes").click()
        expect(page.locator("#boxes")).to_have_text("")
        for turn, question in enumerate(("Where is the heart?", "And the lungs?"), 1):
            page.locator("#ask textarea").fill(question)
            page.locator("#ask textarea").press("Enter")
            expect(page.locator("#chat")).to_contain_text(question)
            expect(page.locator("#chat .message.bot")).to_have_count(turn)
            expect(page.locator("#chat .message.bot").last).to_have_text(taught.answer)
            expect(page.locator("#boxes")).to_contain_text("Cardiomegaly: [0.30, 0.40, 0.70, 0.80]")  # turn done
        browser.close()
    assert proc.poll() is None


def test_the_thinking_shows_in_a_collapsible_block(taught, cxr_data):
    # Asked to think, the taught model never closes a think block: its words are all thinking, shown folded
    # under "Thinking", and the report is empty (what eval would score).
    from playwright.sync_api import expect, sync_playwright

    from radrl.app import Predictor
    from radrl.app.web import launch

    app = launch(Predictor(taught.path, max_pixels=taught.pixels, thinking=True, max_new_tokens=40),
                 port=_free_port(), block=False, quiet=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page()
            page.set_default_timeout(60_000)
            page.goto(app.local_url)
            expect(page.locator("#settings")).to_contain_text("thinking on")
            expect(page.locator("#thinking")).to_be_hidden()
            page.locator("#frontal input[type=file]").set_input_files(cxr_data / MONO1)
            expect(page.locator("#message")).to_contain_text("Report written; 0 box(es)")
            expect(page.locator("#thinking")).to_be_visible()
            expect(page.locator("#thinking-text")).to_be_hidden()    # folded until opened
            page.locator("#thinking").get_by_text("Thinking").click()
            expect(page.locator("#thinking-text")).to_contain_text(taught.answer)
            expect(page.locator("#report textarea")).to_have_value("")
            browser.close()
    finally:
        app.close()


@pytest.mark.parametrize("argv,env,message", [
    # another host without a token: refused before the model loads (the model path does not even exist)
    (["--host", "0.0.0.0"], {}, "refusing to bind 0.0.0.0 without a token"),
    # with a token in the environment, the host check passes and the missing checkpoint is the next error
    (["--host", "0.0.0.0"], {"RADRL_APP_TOKEN": "s3cret"}, "does not exist"),
])
def test_radrl_app_binds_elsewhere_only_with_a_token(argv, env, message, tmp_path, monkeypatch, capsys):
    from radrl.cli import main

    monkeypatch.delenv("RADRL_APP_TOKEN", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SystemExit):
        main(["app", "--model", str(tmp_path / "no-model"), *argv])
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_token_is_the_login_password(taught, tmp_path):
    # With a token, the page asks for it: a wrong password is refused, the token lets the user in.
    from radrl.app import Predictor
    from radrl.app.web import launch

    app = launch(Predictor(taught.path, max_pixels=taught.pixels), port=_free_port(), token="s3cret", block=False,
                 quiet=True)
    try:
        base = app.local_url.rstrip("/")
        import httpx

        with httpx.Client(timeout=30) as client:
            assert client.get(base + "/config").status_code == 401
            assert client.post(base + "/login", data={"username": "x", "password": "wrong"}).status_code == 400
            assert client.post(base + "/login", data={"username": "x", "password": "s3cret"}).status_code == 200
            assert client.get(base + "/config").status_code == 200
    finally:
        app.close()


def test_the_app_never_opens_a_public_share_link(taught, monkeypatch):
    # GRADIO_SHARE=true (or Colab) makes Gradio open a public *.gradio.live tunnel unless launch says share=False:
    # that would publish the model with no token. The launch call is captured, nothing is served.
    import gradio as gr

    from radrl.app import Predictor
    from radrl.app.web import launch

    monkeypatch.setenv("GRADIO_SHARE", "true")
    seen = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: seen.update(kw))
    launch(Predictor(taught.path, max_pixels=taught.pixels), port=_free_port(), block=False, quiet=True)
    assert seen["share"] is False and seen["enable_monitoring"] is False
    assert seen["server_name"] == "127.0.0.1"


def test_what_the_user_typed_comes_back_escaped(taught):
    # "Locate" echoes the target into the page's message: markup typed there is shown as text, in both branches.
    from radrl.app import Predictor, read_radiograph
    from radrl.app.web import build

    predictor = Predictor(taught.path, max_pixels=taught.pixels, max_new_tokens=40)
    app = build(predictor)
    on_ground = next(f.fn for f in app.fns.values() if f.name == "on_ground")
    state = {"frontal": read_radiograph(Image.new("L", (64, 64), 90)), "boxes": [], "upload": None}
    typed = "<img src=x onerror=alert(1)>"
    _, _, note, *_ = on_ground(typed, state)   # the taught model answers with a box: "1 box(es) for ..."
    assert "box(es) for &lt;img src=x onerror=alert(1)&gt;" in note and "<img" not in note
    predictor.ground = lambda image, target: replace(predictor.__class__.ground(predictor, image, target),
                                                     boxes=())
    _, _, note, *_ = on_ground(typed, state)   # no box: the other branch
    assert "no box for &lt;img" in note and "<img" not in note
