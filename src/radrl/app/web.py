"""``radrl app``: a browser app on one checkpoint (Gradio), for trying a model on a film and showing it to a
radiologist.

Upload a frontal PNG, JPEG or DICOM (and optionally a lateral), set the DICOM window, stream a report as it is
written, ask for the boxes of a finding or a free-text phrase (drawn on the image with their names), list every
finding with its boxes, and chat about the image. The thinking, when the model thinks, sits in a collapsible
block; the checkpoint's name and settings, and a "research use only" notice, are at the top.

Why Gradio: it is what the field's demos use (CheXagent, MedGemma, RadVLM), it streams, and it runs on the same
Python process as the model, so every answer comes from ``radrl.app.predict.Predictor`` (eval's requests, pixel
budget, generation and parser) and nothing here asks the model anything of its own.

Safety of the server: it binds 127.0.0.1 unless told otherwise, and anywhere else only with a token (as
``radrl reward-server`` does): the login page takes any user name and the token as the password. A bad upload (not
an image, a truncated DICOM, a huge or forged file) is answered with a message in the page; the app keeps serving.
"""

from __future__ import annotations

import hmac
import html
import os
from dataclasses import replace
from pathlib import Path

from radrl.app.draw import draw_boxes
from radrl.app.predict import KNOWN_FINDINGS, Prediction, Predictor, Radiograph, read_radiograph
from radrl.data.images import ImageError, dicom_window
from radrl.rewards.server import LOOPBACK

__all__ = ["NOTICE", "TOKEN_ENV", "build", "check_host", "launch"]

TOKEN_ENV = "RADRL_APP_TOKEN"
NOTICE = ("**Research use only.** Not a medical device and not validated for clinical use: do not use its output "
          "for diagnosis or patient care. Answers come from the checkpoint named below, as it is.")
UPLOAD_TYPES = "PNG, JPEG or DICOM"
CSS = "#notice {border-left: 6px solid #d97706; padding-left: 12px} #message {min-height: 1.5em}"


def check_host(host: str, token: str | None) -> None:
    """Refuse to bind anything but loopback without a token (the rule ``radrl reward-server`` follows).

    >>> check_host("127.0.0.1", None), check_host("0.0.0.0", "s3cret")
    (None, None)
    >>> check_host("0.0.0.0", None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ValueError: refusing to bind 0.0.0.0 without a token: ... Set RADRL_APP_TOKEN=<secret> (or --token) ...
    """
    if host not in LOOPBACK and not token:
        raise ValueError(f"refusing to bind {host} without a token: anyone who can reach the port could run the "
                         f"model on their images. Set {TOKEN_ENV}=<secret> (or --token) and log in with it as the "
                         "password, or bind 127.0.0.1 and tunnel (ssh -L 7860:127.0.0.1:7860 host)")


def _settings_markdown(predictor: Predictor) -> str:
    s = predictor.settings
    limits = ", ".join(f"{k} {v:,}" for k, v in s["max_new_tokens"].items())
    return (f"**Checkpoint** `{s['name']}` ({s['model_type']}, {s['parameters']:,} parameters, {s['device']}, "
            f"{s['dtype']}) at `{s['checkpoint']}`  \n"
            f"**Settings** (as `radrl eval`): pixel budget {s['min_pixels']:,}-{s['max_pixels']:,}, "
            f"{s['decoding']} decoding, thinking {'on' if s['thinking'] else 'off'}, new tokens: {limits}, "
            f"request seed {s['seed']}, boxes as {s['box_format']}")


def _problem(e: BaseException, upload: str | None = None) -> str:
    """A one-paragraph message for the page; the upload's temporary folder is left out of the file name."""
    text = str(e)
    if upload:
        text = text.replace(str(upload), Path(upload).name)
    return f"**Could not do that:** {html.escape(text)}"


def _boxes_markdown(result: Prediction) -> str:
    if not result.boxes:
        return f"No box in the answer to \u201c{html.escape(result.request)}\u201d."
    lines = [f"- **{html.escape(b.label or '?')}**: [{', '.join(f'{c:.2f}' for c in b.box.coords)}] "
             f"= pixels ({b.pixels[0]}, {b.pixels[1]})-({b.pixels[2]}, {b.pixels[3]})" for b in result.boxes]
    return "\n".join(lines)


def build(predictor: Predictor):
    """The Gradio ``Blocks`` app on ``predictor`` (``launch`` serves it). Element ids (``frontal``, ``view``,
    ``message``, ``report``, ``target``, ...) are stable: the browser test finds them by id."""
    import gradio as gr

    def frontal_of(state: dict) -> Radiograph:
        if not state.get("frontal"):
            raise ValueError(f"upload a frontal image first ({UPLOAD_TYPES})")
        return state["frontal"]

    def shown(state: dict):
        radiograph = state.get("frontal")
        return None if radiograph is None else draw_boxes(radiograph.image, state.get("boxes") or [])

    def on_frontal(upload, state):
        state = {**state, "frontal": None, "boxes": [], "history": [], "upload": None}
        hidden = gr.update(visible=False)
        if not upload:
            return None, state, "", hidden, gr.update(), gr.update(), "", []
        try:
            radiograph = read_radiograph(upload)
            window = dicom_window(upload) if radiograph.dicom else None
        except (ImageError, OSError, ValueError) as e:
            return None, state, _problem(e, upload), hidden, gr.update(), gr.update(), "", []
        state.update(frontal=radiograph, upload=upload, file_window=window[:2] if window else None)
        w, h = radiograph.size
        note = f"Frontal: {html.escape(Path(upload).name)}, {w} x {h} pixels{', DICOM' if radiograph.dicom else ''}."
        if window is None:
            return shown(state), state, note, hidden, gr.update(), gr.update(), "", []
        centre, width, lo, hi = window
        span = max(hi - lo, 1.0)
        return (shown(state), state, note, gr.update(visible=True),
                gr.update(minimum=lo - span, maximum=hi + span, value=centre),
                gr.update(minimum=1, maximum=2 * span + width, value=width), "", [])

    def on_lateral(upload, state):
        state = {**state, "lateral": None}
        if not upload:
            return gr.update(value=None, visible=False), state, ""
        try:
            radiograph = read_radiograph(upload)
        except (ImageError, OSError, ValueError) as e:
            return gr.update(value=None, visible=False), state, _problem(e, upload)
        state["lateral"] = radiograph
        return (gr.update(value=radiograph.image, visible=True), state,
                f"Lateral: {html.escape(Path(upload).name)}, {radiograph.size[0]} x {radiograph.size[1]} pixels.")

    def on_window(centre, width, state):
        radiograph = state.get("frontal")
        window = (float(centre), max(float(width), 1.0))
        # the sliders also change when an upload sets them to the file's window: nothing to redraw then
        if radiograph is None or not radiograph.dicom or window == (radiograph.window or state.get("file_window")):
            return gr.update(), state, gr.update()
        try:
            state = {**state, "frontal": read_radiograph(state["upload"], window)}
        except (ImageError, OSError, ValueError) as e:
            return shown(state), state, _problem(e, state.get("upload"))
        return shown(state), state, f"Window: centre {float(centre):g}, width {float(width):g}."

    def on_window_reset(state):
        try:
            radiograph = frontal_of(state)
            if not radiograph.dicom:
                return shown(state), state, "", gr.update(), gr.update()
            state = {**state, "frontal": read_radiograph(state["upload"])}
            centre, width, _, _ = dicom_window(state["upload"])
        except (ImageError, OSError, ValueError) as e:
            return shown(state), state, _problem(e, state.get("upload")), gr.update(), gr.update()
        return shown(state), state, "The file's own window.", gr.update(value=centre), gr.update(value=width)

    def on_report(with_boxes, state):
        try:
            radiograph = frontal_of(state)
            last = None
            for last in predictor.report_stream(radiograph, state.get("lateral")):
                yield (last.text, gr.update(visible=bool(last.thinking)), last.thinking or "", "Writing the report...",
                       gr.update(), state, gr.update())
            if last is None:
                return
            if with_boxes:
                detection = predictor.detect(radiograph)
                last = replace(last, boxes=last.boxes + detection.boxes, detection=detection)
            state = {**state, "boxes": [b.box for b in last.boxes]}
            note = f"Report written; {len(last.boxes)} box(es)" + (" (with the detection request)." if with_boxes
                                                                   else ".")
            yield last.text, gr.update(), gr.update(), note, shown(state), state, _boxes_markdown(last)
        except (ImageError, OSError, ValueError) as e:
            yield (gr.update(), gr.update(), gr.update(), _problem(e, state.get("upload")), gr.update(), state,
                   gr.update())

    def on_upload_report(auto, with_boxes, state):
        """The report right after an upload (one upload, one report), unless switched off or nothing was read."""
        if not auto or state.get("frontal") is None:
            yield (gr.update(),) * 5 + (state, gr.update())
            return
        yield from on_report(with_boxes, state)

    def on_ground(target, state):
        try:
            result = predictor.ground(frontal_of(state), target)
        except (ImageError, OSError, ValueError) as e:
            return gr.update(), state, _problem(e, state.get("upload")), gr.update(), gr.update(), gr.update()
        state = {**state, "boxes": [b.box for b in result.boxes]}
        note = f"{len(result.boxes)} box(es) for {html.escape(result.target or '')}." if result.boxes else \
            f"The model gave no box for {html.escape(result.target or '')}; its answer: {html.escape(result.text)}"
        return (shown(state), state, note, _boxes_markdown(result), result.thinking or "",
                gr.update(visible=bool(result.thinking)))

    def on_detect(state):
        try:
            result = predictor.detect(frontal_of(state))
        except (ImageError, OSError, ValueError) as e:
            return gr.update(), state, _problem(e, state.get("upload")), gr.update(), gr.update(), gr.update()
        state = {**state, "boxes": [b.box for b in result.boxes]}
        return (shown(state), state, f"Detection: {len(result.boxes)} box(es).", _boxes_markdown(result),
                result.thinking or "", gr.update(visible=bool(result.thinking)))

    def on_clear_boxes(state):
        state = {**state, "boxes": []}
        return shown(state), state, "Boxes cleared.", ""

    def on_chat(message, messages, state):
        messages = list(messages or [])
        try:
            radiograph = frontal_of(state)
            history = state.get("history") or []
            base = [*messages, {"role": "user", "content": message}]
            yield base, "", state, "", gr.update(), gr.update()   # the question moves up; the box is free again
            last = None
            for last in predictor.chat_stream(radiograph, message, history, lateral=state.get("lateral")):
                thought = [{"role": "assistant", "content": last.thinking, "metadata": {"title": "Thinking"}}] \
                    if last.thinking else []
                yield ([*base, *thought, {"role": "assistant", "content": last.text}], gr.update(), state, "",
                       gr.update(), gr.update())
            if last is None:
                return
            state = {**state, "history": list(last.history)}
            if last.boxes:
                state["boxes"] = [b.box for b in last.boxes]
            drawn = (shown(state), _boxes_markdown(last)) if last.boxes else (gr.update(), gr.update())
            yield gr.update(), gr.update(), state, "", *drawn   # the history, kept for the next turn
        except (ImageError, OSError, ValueError) as e:
            yield messages, message, state, _problem(e, state.get("upload")), gr.update(), gr.update()

    def on_chat_clear(state):
        return [], {**state, "history": []}, ""

    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    with gr.Blocks(title=f"radrl: {predictor.settings['name']}", analytics_enabled=False) as app:
        app.radrl_theme = theme  # launch() passes it on (Gradio 6 takes the theme at launch)
        state = gr.State({"frontal": None, "lateral": None, "boxes": [], "history": [], "upload": None})
        gr.Markdown(f"## radrl: chest X-ray report and grounding\n\n{NOTICE}", elem_id="notice")
        gr.Markdown(_settings_markdown(predictor), elem_id="settings")
        message = gr.Markdown("", elem_id="message")
        with gr.Row():
            with gr.Column(scale=1):
                frontal = gr.File(label=f"Frontal image ({UPLOAD_TYPES})", elem_id="frontal")
                lateral = gr.File(label=f"Lateral image, optional ({UPLOAD_TYPES}; goes into the report and chat)",
                                  elem_id="lateral")
                with gr.Group(visible=False) as window_group:
                    centre = gr.Slider(label="Window level (centre)", elem_id="window-centre")
                    width = gr.Slider(label="Window width", elem_id="window-width")
                    reset = gr.Button("Use the file's window", size="sm", elem_id="window-reset")
                lateral_view = gr.Image(label="Lateral", type="pil", format="png", interactive=False, visible=False,
                                        elem_id="lateral-view", height=240)
            with gr.Column(scale=2):
                view = gr.Image(label="Frontal, with boxes", type="pil", format="png", interactive=False,
                                elem_id="view", height=560)
        with gr.Row():
            with gr.Column():
                with gr.Row():
                    report_button = gr.Button("Write the report", variant="primary", elem_id="report-button")
                    with_boxes = gr.Checkbox(True, label="and box every finding", elem_id="report-boxes")
                    auto_report = gr.Checkbox(True, label="write it on upload", elem_id="report-on-upload")
                with gr.Accordion("Thinking", open=False, visible=False, elem_id="thinking") as thinking_block:
                    thinking = gr.Markdown("", elem_id="thinking-text")
                report = gr.Textbox(label="Report", lines=6, interactive=False, elem_id="report")
            with gr.Column():
                target = gr.Dropdown(list(KNOWN_FINDINGS), value=None, allow_custom_value=True,
                                     label="Finding or free-text phrase to locate", elem_id="target")
                with gr.Row():
                    ground_button = gr.Button("Locate", variant="primary", elem_id="ground-button")
                    detect_button = gr.Button("Find every abnormality", elem_id="detect-button")
                    clear_button = gr.Button("Clear boxes", elem_id="clear-boxes")
                boxes = gr.Markdown("", elem_id="boxes")
                with gr.Accordion("Thinking", open=False, visible=False, elem_id="ground-thinking-block") \
                        as ground_thinking_block:
                    ground_thinking = gr.Markdown("", elem_id="ground-thinking")
        chat = gr.Chatbot(label="Chat about the frontal image", elem_id="chat", height=320)
        with gr.Row():
            ask = gr.Textbox(placeholder="Ask about the image, e.g. Is there a pleural effusion?", show_label=False,
                             scale=5, elem_id="ask")
            send = gr.Button("Send", scale=1, elem_id="send")
            new_chat = gr.Button("New chat", scale=1, elem_id="new-chat")

        frontal.change(on_frontal, [frontal, state], [view, state, message, window_group, centre, width, report,
                                                       chat]).then(
            on_upload_report, [auto_report, with_boxes, state],
            [report, thinking_block, thinking, message, view, state, boxes])
        lateral.change(on_lateral, [lateral, state], [lateral_view, state, message])
        for slider in (centre, width):   # dragged, typed or stepped with the keys (not set by an upload)
            slider.input(on_window, [centre, width, state], [view, state, message], trigger_mode="always_last")
        reset.click(on_window_reset, [state], [view, state, message, centre, width])
        report_button.click(on_report, [with_boxes, state],
                            [report, thinking_block, thinking, message, view, state, boxes])
        ground_button.click(on_ground, [target, state], [view, state, message, boxes, ground_thinking,
                                                         ground_thinking_block])
        detect_button.click(on_detect, [state], [view, state, message, boxes, ground_thinking,
                                                 ground_thinking_block])
        clear_button.click(on_clear_boxes, [state], [view, state, message, boxes])
        for asked in (send.click, ask.submit):   # a question sent while the last is answered waits its turn
            asked(on_chat, [ask, chat, state], [chat, ask, state, message, view, boxes], trigger_mode="always_last")
        new_chat.click(on_chat_clear, [state], [chat, state, message])
    return app


def launch(predictor: Predictor, host: str = "127.0.0.1", port: int = 7860, token: str | None = None,
           max_upload_mb: float = 200.0, block: bool = True, quiet: bool = False):
    """Serve ``build(predictor)`` on ``host:port`` (``check_host`` first). ``block=False`` returns at once with the
    running app (tests; ``app.close()`` stops it); its address is ``app.local_url``.

    ``share=False`` is passed explicitly: left out, Gradio opens a public *.gradio.live tunnel when GRADIO_SHARE=true
    is set or in Colab, which would publish the model without the token ``check_host`` demands. Monitoring is off
    for the same reason (its /monitoring page is one more route to expose)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    check_host(host, token)
    app = build(predictor)
    auth = None
    if token:
        def auth(_user: str, password: str) -> bool:
            return hmac.compare_digest(password.encode(), token.encode())
    app.queue(default_concurrency_limit=1)
    app.launch(server_name=host, server_port=port, auth=auth,
               auth_message="Log in with any user name and the app's token as the password.",
               max_file_size=f"{max_upload_mb:g}mb", prevent_thread_lock=not block, quiet=quiet, ssr_mode=False,
               show_error=True, theme=app.radrl_theme, footer_links=[], css=CSS, share=False,
               enable_monitoring=False)
    return app
