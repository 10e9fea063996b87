"""`python -m vos.app`: a local web app to make, correct and export masks (Gradio; the `app` extra).

    python -m vos.app --root ~/footage                 # our small model, http://127.0.0.1:7860
    python -m vos.app --root ~/footage --weights BAAI/seggpt-vit-large --device cuda

Offline: no fonts, scripts or analytics from the internet; it listens on 127.0.0.1 unless `--host`
says otherwise, and reads server-side files only under `--root` (uploads are copied to
`<root>/uploads/`, exports go to `<root>/exports/`, sessions to `<root>/sessions/`).

The work: open a video (upload, or a video or frame folder under the root); pick a frame with the
slider; add named objects; draw an object's mask with the brush (the eraser removes) and press
"Use drawing", or upload a mask PNG; propagate forwards or backwards (a progress bar, a live
preview and a cancel button); correct any frame by drawing again and propagate again from there;
export a zip (index PNGs, per-object 0/255 PNGs, RGBA PNGs, a matte video, the overlay mp4, RLE
JSON); save the session and open it later.

This module is the UI only; everything it does is `vos.editor.Editor`, usable and tested without a
browser. One editing session per app process: it is a local tool for one person.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import List, Optional

import numpy as np

from .editor import EXPORT_KINDS, EXPORT_LABELS, Editor, EditorError
from seggpt.cli import ArgumentParser

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no telemetry, no version check

log = logging.getLogger("vos.app")
PREVIEW_EVERY_S = 0.25
# small videos fill the preview instead of sitting at their pixel size in a corner
CSS = "#preview img, #exported-view img {width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated}"  # at most this often a live preview goes to the browser during a propagation


def _import_gradio():
    try:
        import gradio as gr
    except ImportError:
        raise SystemExit("error: the app needs gradio: pip install 'seggpt-vos[app]'") from None
    return gr


# ====================================================================== the UI


def build_app(editor: Editor):
    """The Gradio Blocks of the app around one Editor."""
    gr = _import_gradio()

    def object_choices():
        return [(o.label, o.obj_id) for o in editor.objects.values()]

    def objects_update(selected=None):
        choices = object_choices()
        ids = [c[1] for c in choices]
        value = selected if selected in ids else (ids[-1] if ids else None)
        return gr.update(choices=choices, value=value)

    def brush_for(obj_id):
        obj = editor.objects.get(obj_id) if obj_id is not None else None
        color = obj.hex if obj else "#ffffff"
        return gr.Brush(colors=[color], default_color=color, color_mode="fixed", default_size=8)

    def editor_value(frame_idx, obj_id):
        """The drawing canvas: the frame with the other objects as background, the object's mask as the layer."""
        if not editor.is_open:
            return None
        background = editor.preview(frame_idx, hide=obj_id)
        layer = np.zeros(background.shape[:2] + (4,), np.uint8)
        if obj_id in editor.objects:
            m = editor.mask_of(frame_idx, obj_id)
            layer[m] = (*editor.objects[obj_id].color, 255)
        return {"background": background, "layers": [layer], "composite": None}

    def canvas(frame_idx, obj_id):
        return gr.update(value=editor_value(frame_idx, obj_id), brush=brush_for(obj_id))

    def frame_info(frame_idx):
        if not editor.is_open:
            return "no video open"
        given = editor.given(frame_idx)
        mark = f"; masks given here: {', '.join(editor.objects[o].name for o in given if o in editor.objects)}" \
            if given else ""
        return f"frame {frame_idx} of {editor.num_frames - 1}{mark}; {editor.done_frames()} frame(s) segmented"

    def view(frame_idx, obj_id):
        """Everything that shows one frame: canvas, preview, info."""
        if not editor.is_open:
            return gr.update(), None, "no video open"
        frame_idx = int(frame_idx or 0)
        return canvas(frame_idx, obj_id), editor.preview(frame_idx), frame_info(frame_idx)

    # ------------------------------------------------------------------ handlers
    def on_open(upload, picked):
        try:
            if upload:
                msg = editor.open(upload, uploaded=True)
            elif picked:
                msg = editor.open(picked)
            else:
                raise EditorError("upload a video, or pick a video or frame folder")
        except EditorError as e:
            return (f"error: {e}", gr.update(), gr.update(), gr.update(), None, gr.update(), gr.update())
        slider = gr.update(minimum=0, maximum=max(editor.num_frames - 1, 1), value=0, step=1)
        c, p, info = view(0, None)
        return msg, slider, objects_update(), c, p, info, gr.update(choices=editor.media())

    def on_add(name, frame_idx, obj_id):
        try:
            new = editor.add_object(name)
        except EditorError as e:
            return f"error: {e}", gr.update(), gr.update(), ""
        return f"added object {editor.objects[new].label}", objects_update(new), canvas(int(frame_idx), new), ""

    def on_rename(name, obj_id):
        try:
            editor.rename_object(obj_id, name)
        except EditorError as e:
            return f"error: {e}", gr.update(), name
        return f"renamed to {editor.objects[obj_id].label}", objects_update(obj_id), ""

    def on_remove(frame_idx, obj_id):
        try:
            name = editor.objects[obj_id].label if obj_id in editor.objects else obj_id
            editor.remove_object(obj_id)
        except EditorError as e:
            return (f"error: {e}", gr.update()) + view(frame_idx, obj_id)
        upd = objects_update()
        return (f"removed object {name}", upd) + view(frame_idx, upd["value"])

    def on_use_drawing(value, frame_idx, obj_id):
        try:
            if obj_id not in editor.objects:
                raise EditorError("add an object first")
            if not value or not value.get("layers"):
                raise EditorError("draw on the frame first")
            mask = np.zeros(editor.size, bool)
            for layer in value["layers"]:
                a = np.asarray(layer)
                if a.shape[:2] != editor.size:
                    raise EditorError(f"the drawing is {a.shape[1]}x{a.shape[0]}, the frame "
                                      f"{editor.size[1]}x{editor.size[0]}")
                mask |= (a[..., 3] > 0) if a.ndim == 3 and a.shape[2] == 4 else (a.reshape(a.shape[:2] + (-1,)).max(-1) > 0)
            area = editor.set_mask(int(frame_idx), obj_id, mask)
        except EditorError as e:
            return (f"error: {e}",) + view(frame_idx, obj_id)
        msg = f"mask of {editor.objects[obj_id].label} on frame {int(frame_idx)}: {area} pixels"
        if area == 0:
            msg += " (empty: the object is not on this frame)"
        return (msg,) + view(frame_idx, obj_id)

    def on_upload_mask(path, frame_idx, obj_id):
        try:
            if not path:
                raise EditorError("choose a mask PNG first")
            ids = editor.load_mask(int(frame_idx), path, obj_id if obj_id in editor.objects else None)
        except EditorError as e:
            return (f"error: {e}", gr.update()) + view(frame_idx, obj_id)
        sel = obj_id if obj_id in ids else ids[0]
        return ((f"mask PNG on frame {int(frame_idx)}: object(s) {ids}", objects_update(sel))
                + view(frame_idx, sel))

    runs = [0]  # propagations finished: the status names each one

    def on_propagate(frame_idx, obj_id, reverse, progress):
        direction = "backward" if reverse else "forward"
        frame_idx = int(frame_idx or 0)
        last = 0.0
        done = total = 0
        idx = frame_idx
        try:
            for done, total, idx in editor.propagate(frame_idx, reverse=reverse):
                progress((done, total), desc=f"propagating {direction}", unit="frames")
                now = time.monotonic()
                if now - last >= PREVIEW_EVERY_S:
                    last = now
                    yield (f"propagating {direction} from frame {frame_idx}: {done}/{total} frames (frame {idx})",
                           editor.preview(idx), gr.update())
        except EditorError as e:
            yield f"error: {e}", gr.update(), gr.update()
            return
        state = "cancelled" if editor.cancelled and done < total else "done"
        runs[0] += 1
        yield (f"propagation {direction} {state}: {done}/{total} frames (last: frame {idx}; run {runs[0]})",
               editor.preview(frame_idx), frame_info(frame_idx))  # back to the frame the slider shows

    def on_forward(frame_idx, obj_id, progress=gr.Progress()):
        yield from on_propagate(frame_idx, obj_id, False, progress)

    def on_backward(frame_idx, obj_id, progress=gr.Progress()):
        yield from on_propagate(frame_idx, obj_id, True, progress)

    def on_cancel():
        editor.cancel()  # the propagation says "cancelled" itself once the frame in progress is done

    def on_export(kinds, soft, frame_idx, progress=gr.Progress()):
        try:
            path, msg = editor.export(kinds, progress=lambda d, t: progress((d, t), desc="exporting", unit="frames"),
                                      soft=bool(soft))
        except EditorError as e:
            return f"error: {e}", None, None
        return msg, str(path), _overlay_frame(path, int(frame_idx or 0))

    def on_save(name):
        try:
            path = editor.save_session(name)
        except (EditorError, OSError) as e:
            return f"error: {e}", gr.update()
        return f"saved session {path}", gr.update(choices=editor.sessions(), value=path.name)

    def on_open_session(name):
        try:
            msg = editor.open_session(name)
        except EditorError as e:
            return (f"error: {e}", gr.update(), gr.update()) + (gr.update(), None, gr.update())
        slider = gr.update(minimum=0, maximum=max(editor.num_frames - 1, 1), value=0, step=1)
        upd = objects_update()
        return (msg, slider, upd) + view(0, upd["value"])

    # ------------------------------------------------------------------ layout
    with gr.Blocks(title="seggpt-vos editor", analytics_enabled=False) as app:
        gr.Markdown("## seggpt-vos editor\nOpen a video, draw a mask for each object on any frame, propagate, "
                    "correct, export.")
        status = gr.Textbox(label="Status", value=f"files under {editor.root}", interactive=False,
                            elem_id="status")
        with gr.Row():
            upload = gr.File(label="Upload a video", file_types=list(_video_types()), type="filepath",
                             elem_id="upload-video")
            with gr.Column():
                picked = gr.Dropdown(label=f"...or a video / frame folder under {editor.root}", choices=editor.media(),
                                     value=None, allow_custom_value=False, elem_id="pick-video")
                open_btn = gr.Button("Open", elem_id="open")
        frame = gr.Slider(0, 1, value=0, step=1, label="Frame", elem_id="frame")
        info = gr.Markdown("no video open", elem_id="frame-info")
        with gr.Row():
            with gr.Column(scale=1):
                obj = gr.Dropdown(label="Object", choices=[], value=None, elem_id="object")
                with gr.Row():
                    name = gr.Textbox(label="Name", placeholder="e.g. judoka", elem_id="object-name", scale=2)
                    add = gr.Button("Add object", elem_id="add-object", scale=1)
                    rename = gr.Button("Rename", elem_id="rename-object", scale=1)
                    remove = gr.Button("Remove object", variant="stop", elem_id="remove-object", scale=1)
                draw = gr.ImageEditor(label="Draw the selected object (brush; the eraser removes)", type="numpy",
                                      image_mode="RGBA", sources=(), transforms=(), layers=False, height=420,
                                      brush=brush_for(None), eraser=gr.Eraser(default_size=8), elem_id="draw")
                use_drawing = gr.Button("Use drawing as the object's mask on this frame", variant="primary",
                                        elem_id="use-drawing")
                mask_file = gr.File(label="Upload a mask PNG (binary: the selected object; a label map: its ids)",
                                    file_types=[".png"], type="filepath", elem_id="upload-mask", height=110)
                use_mask = gr.Button("Use uploaded mask on this frame", elem_id="use-mask")
            with gr.Column(scale=1):
                preview = gr.Image(label="Result (overlay)", type="numpy", interactive=False, height=420,
                                   elem_id="preview")
                with gr.Row():
                    bwd = gr.Button("◀ Propagate backward", elem_id="backward")
                    fwd = gr.Button("Propagate forward ▶", variant="primary", elem_id="forward")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="cancel")
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

        shown = [draw, preview, info]
        upload.upload(on_open, [upload, picked], [status, frame, obj] + shown + [picked])
        open_btn.click(on_open, [upload, picked], [status, frame, obj] + shown + [picked])
        frame.change(view, [frame, obj], shown)
        obj.change(view, [frame, obj], shown)
        add.click(on_add, [name, frame, obj], [status, obj, draw, name])
        rename.click(on_rename, [name, obj], [status, obj, name])
        remove.click(on_remove, [frame, obj], [status, obj] + shown)
        use_drawing.click(on_use_drawing, [draw, frame, obj], [status] + shown)
        use_mask.click(on_upload_mask, [mask_file, frame, obj], [status, obj] + shown)
        fwd.click(on_forward, [frame, obj], [status, preview, info])
        bwd.click(on_backward, [frame, obj], [status, preview, info])
        cancel.click(on_cancel, None, None, queue=False)
        export.click(on_export, [kinds, soft, frame], [status, exported, exported_view])
        save.click(on_save, [session_name], [status, sessions])
        load.click(on_open_session, [sessions], [status, frame, obj] + shown)
    return app


def _video_types() -> List[str]:
    from .editor import VIDEO_SUFFIXES

    return list(VIDEO_SUFFIXES)


def _overlay_frame(zip_path, frame_idx: int) -> Optional[np.ndarray]:
    """A frame of the exported overlay video, decoded from the zip (what the user will get)."""
    import io
    import zipfile

    import av

    try:
        with zipfile.ZipFile(zip_path) as z:
            if "overlay.mp4" not in z.namelist():
                return None
            data = z.read("overlay.mp4")
        with av.open(io.BytesIO(data)) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        return frames[min(frame_idx, len(frames) - 1)] if frames else None
    except Exception:  # noqa: BLE001 - a preview only
        log.warning("could not read the exported overlay back", exc_info=True)
        return None


# ====================================================================== the command


def build_parser() -> argparse.ArgumentParser:
    from seggpt.device import DEVICE_HELP

    ap = ArgumentParser(prog="python -m vos.app",
                                 description="A local web app to make, correct and export video masks (SegGPT).")
    ap.add_argument("--root", default=".", metavar="DIR",
                    help="the folder the app may read files from and writes uploads, exports and sessions to "
                         "(default: the current folder)")
    ap.add_argument("--weights", default="small", metavar="ID|PATH",
                    help="small (packaged, offline), BAAI/seggpt-vit-large, BAAI/SegGPT or a file (default: %(default)s)")
    ap.add_argument("--device", default="auto", metavar="DEV", help=f"{DEVICE_HELP} (default: %(default)s)")
    ap.add_argument("--dtype", default="auto", choices=["auto", "fp32", "bf16", "fp16"],
                    help="the model's precision; auto: bf16 on CUDA, fp16 on MPS, on a CPU bf16 where it computes bf16 "
                         "natively and the model is wide enough to gain (not the small model) (default: %(default)s)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="engine settings, e.g. --set engine.memory=4 (repeatable) (default: none)")
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to listen on; 0.0.0.0 opens the app to the network (default: %(default)s)")
    ap.add_argument("--port", type=int, default=7860, help="port (default: %(default)s)")
    return ap


def make_editor(args: argparse.Namespace) -> Editor:
    from seggpt.settings import ConfigError, parse_assignments
    from seggpt.weights import WeightsError

    from .config import RunConfig, load_run_config
    from .engine import EngineError, VideoSegmenter

    try:
        settings = load_run_config(RunConfig, None, [({"weights": args.weights, "device": args.device,
                                                       "dtype": args.dtype}, "the command line"),
                                                     *parse_assignments(args.set)])
        seg = VideoSegmenter(settings.weights, config=settings.engine, device=settings.device, dtype=settings.dtype)
    except (ConfigError, WeightsError, EngineError) as e:
        raise SystemExit(f"error: {e}") from None
    root = Path(args.root).expanduser()
    if not root.is_dir():
        raise SystemExit(f"error: --root {root}: not a folder")
    log.info("weights %s on %s; files under %s", settings.weights, seg.device, root.resolve())
    return Editor(seg, root, settings={"weights": settings.weights})


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(message)s")
    editor = make_editor(args)
    app = build_app(editor)
    print(f"seggpt-vos editor on http://{args.host}:{args.port} (files under {editor.root})", flush=True)
    app.queue(default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port, share=False, inbrowser=False, show_error=True,
        allowed_paths=[str(editor.root / "exports")], footer_links=[], ssr_mode=False, pwa=False, mcp_server=False,
        quiet=True, css=CSS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
