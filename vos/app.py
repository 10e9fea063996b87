"""`python -m vos.app`: a local web app to make, correct and export masks (Gradio; the `app` extra).

    python -m vos.app --root ~/footage                 # our small model, http://127.0.0.1:7860
    python -m vos.app --root ~/footage --weights BAAI/seggpt-vit-large --device cuda

Offline: no fonts, scripts or analytics from the internet; it listens on 127.0.0.1 unless `--host`
says otherwise, and reads server-side files only under `--root` (uploads are copied to
`<root>/uploads/`, exports go to `<root>/exports/`, sessions to `<root>/sessions/`).

The work: open a video (upload, or a video or frame folder under the root); pick a frame with the
slider; add named objects; give an object a mask by painting it (brush, eraser: "Use drawing"), by a
box (GrabCut: "Mask from box") or a mask PNG; propagate forwards or backwards (the adaptation's steps
and the frames counted in the status, a live preview, Cancel for both); correct any frame on top of
its prediction (the strokes add to or remove from it), accept a good prediction as it is, undo;
propagate again from there; see where to correct on the timeline (per object: given, present, empty,
lost by the CLI's rule, not segmented; a click goes there) and in the playback (the result as a video
the browser plays); export a zip (index PNGs, per-object 0/255 PNGs, RGBA PNGs, a matte video, the
overlay mp4, RLE JSON); save the session and open it later. A reloaded page gets the session back
(the server holds it).

Responsiveness: views (slider, object, show/hide) bypass Gradio's queue and show no progress overlay,
so they never wait behind a propagation nor blank the images; the canvas swaps its images only once
the new ones have loaded (`vos.editing.canvas`). A propagation runs in a thread of its own and its handler
relays what it does, so a wait that yields nothing (adaptation) still shows progress and can be
cancelled. Every action is logged at start and end (`Activity`), and the page's activity line says
when a press starts nothing.

This module is the command and the page's layout; what each event does is `vos.editing.app_handlers`, what the
page shows and reads without gradio `vos.editing.app_views`, and everything they do is `vos.editing.editor.Editor`, usable
and tested without a browser. One editing session per app process: it is a local tool for one person.
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C during the imports below: one line, exit 130
    from seggpt.cli import quiet_start

    quiet_start()

import argparse
import atexit
import contextlib
import importlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import List, Optional

from vos.editing.app_views import PLAYABLE_JS, Activity, timeline_html
from vos.editing.editor import Editor
from vos.editing.editor_export import EXPORT_KINDS, EXPORT_LABELS
from vos.editing.editor_files import MAX_ADAPT_STEPS, VIDEO_SUFFIXES
from seggpt.cli import ArgumentParser, run_cli
from seggpt.errors import InputError

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry, no version check

log = logging.getLogger("vos.app")
# small videos fill the preview instead of sitting at their pixel size in a corner
CSS = "#preview img, #exported-view img {width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated}"


#: names that moved from here to the module beside it that does their job: still importable, with a warning
_MOVED = {"mask_key": "vos.editing.app_views", "parse_key": "vos.editing.app_views", "PREVIEW_EVERY_S": "vos.editing.app_handlers"}


def __getattr__(name: str):
    if name not in _MOVED:
        raise AttributeError(f"module 'vos.app' has no attribute {name!r}")
    warnings.warn(f"vos.app.{name} moved to {_MOVED[name]}.{name}; vos.app.{name} goes in the next release",
                  DeprecationWarning, stacklevel=2)
    return getattr(importlib.import_module(_MOVED[name]), name)


class _QuietDisconnects(logging.Filter):
    """uvicorn logs "Exception in ASGI application" with a traceback (h11's LocalProtocolError "Too little data
    for declared Content-Length") when a browser drops a connection before a file response ends (a reload, a
    video element reading ahead, then seeking): nothing failed in the app. One line without the traceback
    instead; every other error keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        while exc is not None:
            if type(exc).__name__ == "LocalProtocolError" and "Content-Length" in str(exc):
                record.msg, record.args, record.exc_info, record.exc_text = (
                    "a browser closed a connection before the response ended (%s); harmless", (exc,), None, None)
                record.levelno, record.levelname = logging.INFO, "INFO"
                return True
            exc = exc.__cause__ or exc.__context__ or (exc.exceptions[0] if getattr(exc, "exceptions", None) else None)
        return True


# ====================================================================== the page


def build_app(editor: Editor):
    """The Gradio Blocks of the app around one Editor."""
    try:
        import gradio as gr
    except ImportError:
        raise SystemExit("error: the app needs gradio: pip install 'seggpt-vos[app]'") from None
    from vos.editing.canvas import (ACTIVITY_CSS, ACTIVITY_HTML, ACTIVITY_JS, CANVAS_CSS, CANVAS_HTML, CANVAS_JS, TIMELINE_CSS,
                                    TIMELINE_JS, WATCHED_BUTTONS)

    from vos.editing.app_handlers import Handlers  # needs gradio

    activity = Activity()
    playback_dir = Path(tempfile.mkdtemp(prefix="vos-app-playback-"))  # Gradio serves its files from its cache
    atexit.register(shutil.rmtree, playback_dir, ignore_errors=True)
    h = Handlers(editor, playback_dir)

    def activity_state(*_):
        return activity.state()

    activity_state.__name__ = "activity"

    # ------------------------------------------------------------------ layout
    with gr.Blocks(title="seggpt-vos editor", analytics_enabled=False) as app:
        gr.Markdown("## seggpt-vos editor\nOpen a video, give each object a mask on any frame (paint it, or draw a "
                    "box), propagate, correct on top of the prediction, export.")
        status = gr.Textbox(label="Status", value=f"files under {editor.root}", interactive=False,
                            elem_id="status")
        gr.HTML(value="", html_template=ACTIVITY_HTML, css_template=ACTIVITY_CSS, js_on_load=ACTIVITY_JS,
                server_functions=[activity_state], watched=json.dumps(WATCHED_BUTTONS), elem_id="activity",
                container=False)
        with gr.Row():
            upload = gr.File(label="Upload a video", file_types=list(VIDEO_SUFFIXES), type="filepath",
                             elem_id="upload-video")
            with gr.Column():
                picked = gr.Dropdown(label=f"...or a video / frame folder under {editor.root}", choices=editor.media(),
                                     value=None, allow_custom_value=False, elem_id="pick-video")
                open_btn = gr.Button("Open", elem_id="open")
        frame = gr.Slider(0, 1, value=0, step=1, label="Frame", elem_id="frame")
        info = gr.Markdown("no video open", elem_id="frame-info")
        timeline = gr.HTML(value=timeline_html(editor, 0), css_template=TIMELINE_CSS, js_on_load=TIMELINE_JS,
                           elem_id="timeline", container=False)
        with gr.Row():
            with gr.Column(scale=1):
                obj = gr.Dropdown(label="Object", choices=[], value=None, elem_id="object")
                with gr.Row():
                    name = gr.Textbox(label="Name", placeholder="e.g. judoka", elem_id="object-name", scale=2)
                    add = gr.Button("Add object", elem_id="add-object", scale=1)
                    rename = gr.Button("Rename", elem_id="rename-object", scale=1)
                    remove = gr.Button("Remove object", variant="stop", elem_id="remove-object", scale=1)
                draw = gr.HTML(value=h.canvas_value(0, None, []), html_template=CANVAS_HTML, css_template=CANVAS_CSS,
                               js_on_load=CANVAS_JS, elem_id="draw", container=False)
                gesture = gr.Textbox(visible=False, elem_id="gesture")
                with gr.Row():
                    use_drawing = gr.Button("Use drawing", variant="primary", elem_id="use-drawing")
                    box_btn = gr.Button("Mask from box", elem_id="box-to-mask")
                    accept = gr.Button("Accept prediction", elem_id="accept")
                    undo = gr.Button("Undo last change", elem_id="undo")
                shown = gr.CheckboxGroup(label="Show objects", choices=[], value=[], elem_id="shown")
                mask_file = gr.File(label="Upload a mask PNG (binary: the selected object; a label map: its ids)",
                                    file_types=[".png"], type="filepath", elem_id="upload-mask", height=110)
                use_mask = gr.Button("Use uploaded mask on this frame", elem_id="use-mask")
            with gr.Column(scale=1):
                preview = gr.Image(label="Result (overlay)", type="numpy", interactive=False, height=420,
                                   format="jpeg", elem_id="preview")
                with gr.Row():
                    bwd = gr.Button("◀ Propagate backward", elem_id="backward")
                    fwd = gr.Button("Propagate forward ▶", variant="primary", elem_id="forward")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
                play = gr.Button("Play the result as a video", elem_id="play")
                playback = gr.Video(label="Playback (the shown objects; each frame shows its number)", format=None,
                                    interactive=False, height=320, elem_id="playback")
                adapt_steps = gr.Number(label="Test-time adaptation steps before propagating (0: off; minutes on "
                                              "a CPU, Cancel stops them)", value=editor.adapt_steps, precision=0,
                                        minimum=0, maximum=MAX_ADAPT_STEPS, elem_id="adapt-steps")
                kinds = gr.CheckboxGroup(choices=[(EXPORT_LABELS[k], k) for k in EXPORT_KINDS],
                                         value=list(EXPORT_KINDS), label="Export", elem_id="kinds")
                soft = gr.Checkbox(label="Soft edges (RGBA PNGs and matte, from the model's scores)", value=False,
                                   elem_id="soft")
                export = gr.Button("Export zip", elem_id="export")
                with gr.Row():
                    exported = gr.File(label="Exported zip", interactive=False, elem_id="exported", height=110)
                    exported_view = gr.Image(label="Exported overlay at this frame (read back from the zip)",
                                             type="numpy", interactive=False, height=220, elem_id="exported-view")
                with gr.Row():
                    session_name = gr.Textbox(label="Session name", elem_id="session-name")
                    save = gr.Button("Save session", elem_id="save-session")
                with gr.Row():
                    sessions = gr.Dropdown(label="Sessions", choices=editor.sessions(), elem_id="sessions")
                    load = gr.Button("Open session", elem_id="open-session")

        shows = [draw, preview, info, timeline]
        quiet = dict(show_progress="hidden")
        light = dict(show_progress="hidden", queue=False)  # views never wait behind a propagation
        act = activity.run
        opened = [status, frame, obj, shown] + shows + [picked, playback]
        upload.upload(act("Open", "upload-video", h.on_open), [upload, picked], opened, **quiet)
        open_btn.click(act("Open", "open", h.on_open), [upload, picked], opened, **quiet)
        frame.change(h.view, [frame, obj, shown], shows, trigger_mode="always_last", **light)
        obj.change(h.view, [frame, obj, shown], shows, **light)
        shown.change(h.view, [frame, obj, shown], shows, **light)
        timeline.jump(h.on_jump, [obj, shown], [status, frame] + shows, **light)
        add.click(act("Add object", "add-object", h.on_add), [name, frame, obj, shown], [status, obj, shown] + shows + [name], **quiet)
        rename.click(act("Rename", "rename-object", h.on_rename), [name, obj, shown], [status, obj, shown, name], **quiet)
        remove.click(act("Remove object", "remove-object", h.on_remove), [frame, obj, shown], [status, obj, shown] + shows, **quiet)
        edited = [status, frame, obj] + shows
        use_drawing.click(act("Use drawing", "use-drawing", h.on_use_drawing), [gesture, frame, obj, shown], edited,
                          js="(g, f, o, s) => [window.vosCanvas ? window.vosCanvas.strokes() : '', f, o, s]", **quiet)
        box_btn.click(act("Mask from box", "box-to-mask", h.on_box), [gesture, frame, obj, shown], edited,
                      js="(g, f, o, s) => [window.vosCanvas ? window.vosCanvas.box() : '', f, o, s]", **quiet)
        accept.click(act("Accept prediction", "accept", h.on_accept), [frame, obj, shown], edited, **quiet)
        undo.click(act("Undo last change", "undo", h.on_undo), [frame, obj, shown], edited, **quiet)
        use_mask.click(act("Use uploaded mask", "use-mask", h.on_upload_mask), [mask_file, frame, obj, shown],
                       [status, obj, shown] + shows, **quiet)
        adapt_steps.input(h.on_adapt_steps, [adapt_steps], [status, adapt_steps], **quiet)
        # a propagation's progress is its status line (steps, frames, what Cancel does); the preview shows the
        # frames as they come, never covered
        propagated = [status, preview, info, draw, frame, timeline]
        fwd.click(act("Propagate forward", "forward", h.on_forward), [frame, obj, shown], propagated, **quiet)
        bwd.click(act("Propagate backward", "backward", h.on_backward), [frame, obj, shown], propagated, **quiet)
        cancel.click(h.on_cancel, None, None, queue=False)
        export.click(act("Export zip", "export", h.on_export), [kinds, soft, frame], [status, exported, exported_view],
                     show_progress="full", show_progress_on=[status])
        play.click(act("Play the result", "play", h.on_play), [gesture, shown], [status, playback], js=PLAYABLE_JS,
                   **quiet)
        save.click(act("Save session", "save-session", h.on_save), [session_name], [status, sessions], **quiet)
        load.click(act("Open session", "open-session", h.on_open_session), [sessions],
                   [status, frame, obj, shown] + shows + [adapt_steps, playback], **quiet)
        app.load(h.on_load, None, [status, frame, obj, shown] + shows + [picked, sessions, adapt_steps], **quiet)
    return app


# ====================================================================== the command


def build_parser() -> argparse.ArgumentParser:
    from seggpt.device import DEVICE_HELP, DTYPE_CHOICES, DTYPE_HELP
    from seggpt.weights_file import OFFICIAL_WEIGHTS, PACKAGED_WEIGHTS

    ap = ArgumentParser(prog="python -m vos.app",
                                 description="A local web app to make, correct and export video masks (SegGPT).")
    ap.add_argument("--root", default=".", metavar="DIR",
                    help="the folder the app may read files from and writes uploads, exports and sessions to "
                         "(default: the current folder)")
    ap.add_argument("--weights", default=None, metavar="ID|PATH",
                    help=f"{PACKAGED_WEIGHTS} (packaged, offline), {OFFICIAL_WEIGHTS}, BAAI/SegGPT or a file (default: "
                         f"{PACKAGED_WEIGHTS}, so the app starts offline and answers fast on a CPU; the command-line "
                         f"tools default to the official {OFFICIAL_WEIGHTS})")
    ap.add_argument("--device", default="auto", metavar="DEV", help=f"{DEVICE_HELP} (default: %(default)s)")
    ap.add_argument("--dtype", default="auto", choices=DTYPE_CHOICES, help=f"{DTYPE_HELP} (default: %(default)s)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="engine settings, e.g. --set engine.memory=4 (repeatable) (default: none)")
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to listen on; 0.0.0.0 opens the app to the network (default: %(default)s)")
    ap.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    return ap


def make_editor(args: argparse.Namespace) -> Editor:
    """The editor the command line asks for; a bad option is an `InputError` (one line, exit code 2)."""
    from seggpt.settings import parse_assignments
    from seggpt.weights_file import PACKAGED_WEIGHTS, default_weights_note

    from vos.engine.config import RunConfig, load_run_config
    from vos.engine.segmenter import VideoSegmenter

    root = Path(args.root).expanduser()
    if not root.is_dir():
        raise InputError(f"--root {root}: not a folder")
    settings = load_run_config(RunConfig, None, [({"weights": PACKAGED_WEIGHTS if args.weights is None else args.weights,
                                                   "device": args.device,
                                                   "dtype": args.dtype}, "the command line"),
                                                 *parse_assignments(args.set)])
    seg = VideoSegmenter(settings.weights, config=settings.engine, device=settings.device, dtype=settings.dtype)
    chosen = ("--set" if any(a.partition("=")[0].strip() == "weights" for a in args.set)
              else "--weights" if args.weights is not None else None)
    log.info("%s on %s; files under %s", default_weights_note(settings.weights, chosen, "the app"), seg.device,
             root.resolve())
    return Editor(seg, root, settings={"weights": settings.weights})


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")

    def work() -> int:
        if not 0 <= args.port <= 65535:  # before the model loads; the server would fail with a traceback
            raise InputError(f"--port: a port is 0..65535, got {args.port}")
        editor = make_editor(args)
        logging.getLogger("uvicorn.error").addFilter(_QuietDisconnects())
        app = build_app(editor)
        print(f"seggpt-vos editor on http://{args.host}:{args.port} (files under {editor.root})", flush=True)
        app.queue(default_concurrency_limit=1).launch(
            server_name=args.host, server_port=args.port, share=False, inbrowser=False, show_error=True,
            allowed_paths=[str(editor.root / "exports")], footer_links=[], ssr_mode=False, pwa=False,
            mcp_server=False, quiet=True, css=CSS, prevent_thread_lock=True)
        # Gradio's own wait swallows Ctrl-C and SIGTERM (exit 0): here they reach run_cli (130, 143)
        with contextlib.closing(app):
            while app.is_running:
                time.sleep(0.2)
        return 0

    return run_cli(work, interrupted="the app stopped; sessions and exports on disk are complete")


if __name__ == "__main__":
    sys.exit(main())
