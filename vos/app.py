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
the new ones have loaded (`vos.canvas`). A propagation runs in a thread of its own and its handler
relays what it does, so a wait that yields nothing (adaptation) still shows progress and can be
cancelled. Every action is logged at start and end (`Activity`), and the page's activity line says
when a press starts nothing.

This module is the UI only; everything it does is `vos.editor.Editor`, usable and tested without a
browser. One editing session per app process: it is a local tool for one person.
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl-C during the imports below: one line, exit 130
    from seggpt.cli import quiet_start

    quiet_start()

import argparse
import atexit
import base64
import functools
import html
import inspect
import itertools
import json
import logging
import os
import queue
import shutil
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import cv2
import numpy as np

from .editor import EXPORT_KINDS, EXPORT_LABELS, MAX_ADAPT_STEPS, Editor
from .writers import PLAYABLE_ENCODINGS
from seggpt.cli import ArgumentParser, run_cli
from seggpt.errors import Cancelled, InputError, is_integer

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


class Activity:
    """What the app is doing now, for the stuck-action watch of the page (`vos.canvas.ACTIVITY_JS`) and the
    log: every action says when it starts and ends, so a press that starts nothing is visible. Gradio runs
    each kind of action one at a time (a second press of the same button waits for the first) while different
    actions may overlap (the editor refuses changes while a propagation runs), so several can be running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = 0  # actions started since the app began
        self._running: Dict[int, Tuple[str, str, float]] = {}  # start number -> (name, button, since)

    def run(self, name: str, button: str, fn):
        """`fn` (the handler of the button with elem_id `button`, plain or generator) wrapped: its start, end and
        time logged and shown."""
        def begin() -> int:
            with self._lock:
                self.started += 1
                self._running[self.started] = (name, button, time.monotonic())
                number = self.started
            log.info("action %r started", name)
            return number

        def end(number: int) -> None:
            with self._lock:
                _, _, since = self._running.pop(number)
            log.info("action %r ended after %.2f s", name, time.monotonic() - since)

        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen(*args, **kwargs):
                number = begin()
                try:
                    yield from fn(*args, **kwargs)
                finally:
                    end(number)
            return gen

        @functools.wraps(fn)
        def plain(*args, **kwargs):
            number = begin()
            try:
                return fn(*args, **kwargs)
            finally:
                end(number)
        return plain

    def state(self) -> dict:
        """The actions running (the oldest first: what a waiting press most likely waits for) and their buttons."""
        with self._lock:
            running = [self._running[k] for k in sorted(self._running)]
        if not running:
            return {"started": self.started, "busy": None, "buttons": [], "seconds": 0, "cancellable": False}
        name, _, since = running[0]
        return {"started": self.started, "busy": name, "buttons": [b for _, b, _ in running],
                "seconds": round(time.monotonic() - since), "cancellable": name.startswith("Propagate") or name == "Export zip"}


def _data_url(image: np.ndarray, kind: str) -> str:
    """An RGB frame as a JPEG, or a (H, W) bool mask as a grey PNG, in a data: URL (no file, no request)."""
    if kind == "jpeg":
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(image[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 92])
    else:
        ok, buf = cv2.imencode(".png", image.astype(np.uint8) * 255, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise InputError(f"could not encode the {kind} image for the page")
    return f"data:image/{kind};base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def mask_key(frame_idx: int, obj_id: Optional[int], mask: Optional[np.ndarray]) -> str:
    """Names what a canvas shows: the frame, the object and the mask it starts from (`Editor.mask_of`, a
    checksum). A commit carries it back, so strokes land where they were drawn, over what the user saw, or
    are refused."""
    if obj_id is None or mask is None:
        return f"{frame_idx}:none:0"
    return f"{frame_idx}:{obj_id}:{zlib.crc32(np.packbits(mask).tobytes()) ^ mask.size:08x}"


def parse_key(editor: Editor, key) -> Tuple[int, int]:
    """The frame and object of a canvas key, checked against what the editor has now (`mask_key`)."""
    try:
        frame_s, obj_s, _ = str(key).split(":")
        frame_idx, obj_id = int(frame_s), int(obj_s)
    except (ValueError, TypeError):
        raise InputError("add an object and pick a frame first") from None
    if obj_id not in editor.objects:
        raise InputError(f"object {obj_id} no longer exists")
    if mask_key(frame_idx, obj_id, editor.mask_of(frame_idx, obj_id)) != key:
        raise InputError(f"the mask of {editor.objects[obj_id].label} on frame {frame_idx} changed since you drew "
                         f"on it; draw again on what the canvas shows now")
    return frame_idx, obj_id


def _gesture(payload: str, field: str):
    try:
        doc = json.loads(payload or "{}")
    except (ValueError, RecursionError):  # a forged payload nested beyond Python's limit counts as unreadable
        raise InputError("the canvas sent something unreadable; reload the page") from None
    if not isinstance(doc, dict):
        raise InputError("the canvas sent something unreadable; reload the page")
    return doc.get("key"), doc.get(field)


_STATE_WORDS = {"given": "mask given", "present": "present", "empty": "empty", "lost": "lost", "none": "not segmented"}


def timeline_html(editor: Editor, current: int) -> str:
    """The timeline (`vos.canvas.TIMELINE_CSS`): per object a bar of its frames by state (`Editor.timeline`),
    a marker on frame `current`, and the objects lost named in red with their frames."""
    if not editor.is_open:
        return '<div class="vos-timeline"></div>'
    n = editor.num_frames
    legend = "".join(f'<span><i class="vos-{k}"></i>{w}</span>' for k, w in _STATE_WORDS.items())
    rows = []
    for row in editor.timeline():
        cells = "".join(f'<div class="vos-tl-run vos-{state}" style="flex-grow: {b - a}" data-start="{a}" '
                        f'data-stop="{b}" title="{html.escape(_STATE_WORDS[state])}: frame'
                        f'{f" {a}" if b - a == 1 else f"s {a}-{b - 1}"}"></div>' for a, b, state in row.runs)
        at = min(max(int(current), 0), n - 1) if is_integer(current) else 0
        cursor = f'<div class="vos-tl-cursor" style="left: calc({100 * (at + 0.5) / n:.3f}% - 1px)"></div>'
        lost = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in row.lost)
        label = html.escape(row.label) + (f" LOST on {lost}" if lost else "")
        rows.append(f'<div class="vos-tl-row" data-obj="{row.obj_id}" data-lost="{html.escape(lost)}">'
                    f'<span class="vos-tl-label{" vos-tl-warn" if lost else ""}" title="{label}">{label}</span>'
                    f'<div class="vos-tl-bar" data-frames="{n}">{cells}{cursor}</div></div>')
    head = (f'<div class="vos-tl-legend"><b>Timeline</b> (click a frame to go there){legend}'
            f'<span>lost: empty on more than {editor.lost_after} frames in a row</span></div>')
    return f'<div class="vos-timeline">{head}{"".join(rows)}</div>'


def _playable_names(payload: str) -> List[str]:
    """The encodings the page says its browser plays (`PLAYABLE_JS`), known ones only."""
    try:
        names = json.loads(payload or "[]")
    except (ValueError, RecursionError):
        raise InputError("the page sent something unreadable; reload the page") from None
    known = {e.name for e in PLAYABLE_ENCODINGS}
    return [str(n) for n in names if isinstance(n, str) and n in known] if isinstance(names, list) else []


#: asks the browser which playback encodings its <video> plays (`vos.writers.PLAYABLE_ENCODINGS`)
PLAYABLE_JS = ("(p, s) => { const v = document.createElement('video'); const kinds = "
               + json.dumps({e.name: e.mime for e in PLAYABLE_ENCODINGS})
               + "; return [JSON.stringify(Object.keys(kinds).filter(k => v.canPlayType(kinds[k]) !== '')), s]; }")


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


def build_app(editor: Editor):
    """The Gradio Blocks of the app around one Editor."""
    gr = _import_gradio()
    from .canvas import (ACTIVITY_CSS, ACTIVITY_HTML, ACTIVITY_JS, CANVAS_CSS, CANVAS_HTML, CANVAS_JS, TIMELINE_CSS,
                         TIMELINE_JS, WATCHED_BUTTONS)

    activity = Activity()
    serials = itertools.count(1)  # every canvas view has its own number (views run in parallel threads)
    viewed = {"frame": 0}  # the frame the page shows last: a reloaded page comes back to it
    playback_dir = Path(tempfile.mkdtemp(prefix="vos-app-playback-"))  # Gradio serves its files from its cache
    atexit.register(shutil.rmtree, playback_dir, ignore_errors=True)

    def object_choices():
        return [(o.label, o.obj_id) for o in editor.objects.values()]

    def objects_update(selected=None):
        choices = object_choices()
        ids = [c[1] for c in choices]
        value = selected if selected in ids else (ids[-1] if ids else None)
        return gr.update(choices=choices, value=value)

    def shown_update():
        """Every object shown (a new video, a new or removed object)."""
        return gr.update(choices=object_choices(), value=list(editor.objects))

    def hidden_of(shown) -> List[int]:
        shown = set(int(o) for o in (shown or []))
        return [o for o in editor.objects if o not in shown]

    def canvas_value(frame_idx: int, obj_id, shown, clear: bool = False) -> str:
        """The canvas's view (`vos.canvas`): the frame with the other shown objects as background, the selected
        object's mask, its colour and key."""
        serial = next(serials)
        if not editor.is_open:
            return json.dumps({"serial": serial, "note": "no video open"})
        h, w = editor.size
        if obj_id not in editor.objects:
            obj_id = None
        hide = hidden_of(shown) + ([obj_id] if obj_id is not None else [])
        background = editor.preview(frame_idx, hide=hide)
        mask = editor.mask_of(frame_idx, obj_id) if obj_id is not None else None
        if obj_id is None:
            note = f"frame {frame_idx}: add an object to draw its mask"
        else:
            origin = editor.origin(frame_idx, obj_id)
            what = {"none": "no mask yet: paint it, or draw a box and press \"Mask from box\"",
                    "prediction": "the prediction (translucent): the brush adds to it, the eraser removes"}.get(
                origin, f"mask given here, made by: {origin}")
            note = f"{editor.objects[obj_id].label} on frame {frame_idx}: {what}"
        return json.dumps({"serial": serial, "key": mask_key(frame_idx, obj_id, mask), "width": w, "height": h,
                           "color": editor.objects[obj_id].hex if obj_id is not None else "#ffffff",
                           "background": _data_url(background, "jpeg"),
                           "mask": _data_url(mask if mask is not None else np.zeros((h, w), bool), "png"),
                           "note": note, "clear": clear})

    def frame_info(frame_idx):
        if not editor.is_open:
            return "no video open"
        given = editor.given(frame_idx)
        mark = "; masks given here: " + ", ".join(f"{editor.objects[o].name} ({editor.origin(frame_idx, o)})"
                                                  for o in given if o in editor.objects) if given else ""
        undo = f"; {editor.can_undo} change(s) to undo" if editor.can_undo else ""
        return f"frame {frame_idx} of {editor.num_frames - 1}{mark}; {editor.done_frames()} frame(s) segmented{undo}"

    def result_image(frame_idx, shown):
        return editor.preview(frame_idx, hide=hidden_of(shown))

    def view(frame_idx, obj_id, shown, clear=False):
        """Everything that shows one frame: canvas, preview, info, timeline (`shows`)."""
        if not editor.is_open:
            return canvas_value(0, None, shown), None, "no video open", timeline_html(editor, 0)
        try:
            frame_idx = editor.check_frame(frame_idx or 0)
        except InputError:
            frame_idx = 0
        viewed["frame"] = frame_idx
        try:
            return (canvas_value(frame_idx, obj_id, shown, clear), result_image(frame_idx, shown),
                    frame_info(frame_idx), timeline_html(editor, frame_idx))
        except InputError as e:  # a frame the decoder cannot read: said where the frame would be
            log.warning("frame %d cannot be shown: %s", frame_idx, e)
            return (json.dumps({"serial": next(serials), "note": f"error: {e}"}), None, f"error: {e}",
                    timeline_html(editor, frame_idx))

    def keep(n: int) -> tuple:
        """`n` outputs left as they are (an error's answer)."""
        return tuple(gr.update() for _ in range(n))

    # ------------------------------------------------------------------ handlers
    def on_open(upload, picked):
        try:
            if upload:
                msg = editor.open(upload, uploaded=True)
            elif picked:
                msg = editor.open(picked)
            else:
                raise InputError("upload a video, or pick a video or frame folder")
        except InputError as e:
            return (f"error: {e}",) + keep(7) + (gr.update(choices=editor.media()), gr.update())
        slider = gr.update(minimum=0, maximum=max(editor.num_frames - 1, 1), value=0, step=1)
        return ((msg, slider, objects_update(), shown_update()) + view(0, None, [])
                + (gr.update(choices=editor.media()), None))

    def on_add(name, frame_idx, obj_id, shown):
        try:
            new = editor.add_object(name)
        except InputError as e:
            return (f"error: {e}",) + keep(7)
        shown = list(shown or []) + [new]
        return ((f"added object {editor.objects[new].label}", objects_update(new),
                 gr.update(choices=object_choices(), value=shown))
                + view(frame_idx, new, shown) + ("",))

    def on_rename(name, obj_id, shown):
        try:
            editor.rename_object(obj_id, name)
        except InputError as e:
            return f"error: {e}", gr.update(), gr.update(), name
        return (f"renamed to {editor.objects[obj_id].label}", objects_update(obj_id),
                gr.update(choices=object_choices(), value=shown), "")

    def on_remove(frame_idx, obj_id, shown):
        try:
            name = editor.objects[obj_id].label if obj_id in editor.objects else obj_id
            editor.remove_object(obj_id)
        except InputError as e:
            return (f"error: {e}", gr.update(), gr.update()) + view(frame_idx, obj_id, shown)
        upd = objects_update()
        shown = [o for o in (shown or []) if o in editor.objects]
        return ((f"removed object {name}", upd, gr.update(choices=object_choices(), value=shown))
                + view(frame_idx, upd["value"], shown))

    def mask_change(change, frame_idx, obj_id, shown):
        """Run one mask change on the frame and object the canvas shows; the status says what it made."""
        try:
            msg, where, obj = change()
        except InputError as e:
            return (f"error: {e}", gr.update(), gr.update()) + view(frame_idx, obj_id, shown)
        moved = gr.update(value=where) if where != int(frame_idx or 0) else gr.update()  # the slider follows
        picked = gr.update(value=obj) if obj != obj_id else gr.update()
        return (msg, moved, picked) + view(where, obj, shown, clear=True)

    def area_message(frame_idx, obj_id, area, how):
        msg = f"mask of {editor.objects[obj_id].label} on frame {frame_idx}: {area} pixels ({how})"
        return msg + (" (empty: the object is not on this frame)" if area == 0 else "")

    def on_use_drawing(payload, frame_idx, obj_id, shown):
        def change():
            key, strokes = _gesture(payload, "strokes")
            where, obj = parse_key(editor, key)
            area = editor.draw(where, obj, strokes)
            return area_message(where, obj, area, editor.origin(where, obj)), where, obj
        return mask_change(change, frame_idx, obj_id, shown)

    def on_box(payload, frame_idx, obj_id, shown):
        def change():
            key, box = _gesture(payload, "box")
            where, obj = parse_key(editor, key)
            if box is None:
                raise InputError("choose Box on the canvas and drag a box around the object first")
            area = editor.box_to_mask(where, obj, box)
            return (area_message(where, obj, area, "box (GrabCut)") + "; refine it with the brush, then propagate",
                    where, obj)
        return mask_change(change, frame_idx, obj_id, shown)

    def on_accept(frame_idx, obj_id, shown):
        def change():
            if obj_id not in editor.objects:
                raise InputError("add an object first")
            where = int(frame_idx or 0)
            area = editor.accept_prediction(where, obj_id)
            return area_message(where, obj_id, area, "accepted prediction"), where, obj_id
        return mask_change(change, frame_idx, obj_id, shown)

    def on_undo(frame_idx, obj_id, shown):
        def change():
            return editor.undo()
        return mask_change(change, frame_idx, obj_id, shown)

    def on_upload_mask(path, frame_idx, obj_id, shown):
        try:
            if not path:
                raise InputError("choose a mask PNG first")
            ids = editor.load_mask(int(frame_idx), path, obj_id if obj_id in editor.objects else None)
        except InputError as e:
            return (f"error: {e}", gr.update(), gr.update()) + view(frame_idx, obj_id, shown)
        sel = obj_id if obj_id in ids else ids[0]
        shown = sorted(set(shown or []) | set(ids))
        return ((f"mask PNG on frame {int(frame_idx)}: object(s) {ids}", objects_update(sel),
                 gr.update(choices=object_choices(), value=shown)) + view(frame_idx, sel, shown))

    def on_adapt_steps(steps):
        try:
            editor.set_adapt_steps(steps)
        except InputError as e:
            return f"error: {e}", gr.update(value=editor.adapt_steps)
        state = f"{editor.adapt_steps} steps before the next propagation" if editor.adapt_steps else "off"
        return f"test-time adaptation: {state}", gr.update()

    runs = [0]  # propagations finished: the status names each one

    def on_propagate(frame_idx, obj_id, shown, reverse):
        """The propagation runs in a thread of its own; this generator relays its adaptation steps and frames
        (a wait that yields nothing, as adaptation, still shows progress and can be cancelled)."""
        direction = "backward" if reverse else "forward"
        frame_idx = int(frame_idx or 0)
        events: "queue.Queue[tuple]" = queue.Queue()

        def work() -> None:
            try:
                for item in editor.propagate(frame_idx, reverse=reverse, on_adapt=lambda p: events.put(("adapt", p))):
                    events.put(("frame", item))
            except InputError as e:
                events.put(("error", str(e)))
            except Exception as e:  # noqa: BLE001 - said in the status, the traceback in the log
                log.exception("the propagation failed")
                events.put(("error", f"the propagation failed: {type(e).__name__}: {e} (the log has the details)"))
            finally:
                events.put(("end", editor.last_run_cancelled))

        threading.Thread(target=work, name="vos-propagate", daemon=True).start()
        done = total = 0
        idx = frame_idx
        adapt = None
        last = 0.0
        finished = cancelled = False
        try:
            while True:
                try:
                    kind, item = events.get(timeout=PREVIEW_EVERY_S)
                except queue.Empty:
                    kind, item = "wait", None
                if kind == "end":
                    finished, cancelled = True, item
                    break
                if kind == "error":
                    finished = True
                    yield (f"error: {item}", gr.update(), gr.update(), canvas_value(frame_idx, obj_id, shown),
                           gr.update(value=frame_idx), timeline_html(editor, frame_idx))
                    return
                if kind == "adapt":
                    adapt = item
                elif kind == "frame":
                    done, total, idx = item
                now = time.monotonic()
                if now - last < PREVIEW_EVERY_S and kind != "wait":
                    continue
                last = now
                if done or total:  # the slider, the preview, the info and the timeline follow the frames
                    viewed["frame"] = idx
                    yield (f"propagating {direction} from frame {frame_idx}: {done}/{total} frames (frame {idx})",
                           result_image(idx, shown), frame_info(idx), gr.update(), gr.update(value=idx),
                           timeline_html(editor, idx))
                elif adapt is not None:
                    yield (f"adapting to the masks before propagating {direction}: step {adapt.step}/{adapt.steps}, "
                           f"loss {adapt.loss:.4f}, {adapt.seconds:.1f} s (Cancel stops it; nothing learnt is kept)",
                           gr.update(), gr.update(), gr.update(), gr.update(), gr.update())
                else:
                    yield (f"propagating {direction} from frame {frame_idx}: starting", gr.update(), gr.update(),
                           gr.update(), gr.update(), gr.update())
        finally:
            if not finished:  # the page went away: stop the work it started, and end with it (the activity line
                editor.cancel()  # and the next action see the propagation until it has really stopped)
                while events.get()[0] != "end":
                    pass
        cancelled = cancelled and (not done or done < total)
        state = "cancelled" if cancelled else "done"
        if cancelled and not done and adapt is not None and adapt.step < adapt.steps:
            state += f" during adaptation (step {adapt.step}/{adapt.steps}; nothing learnt is kept)"
        runs[0] += 1
        total = total or (frame_idx + 1 if reverse else editor.num_frames - frame_idx)
        lost = [f"{r.label} on {', '.join(f'{a}-{b}' if a != b else str(a) for a, b in r.lost)}"
                for r in editor.timeline() if r.lost]
        warn = f"; LOST (empty on more than {editor.lost_after} frames in a row): {'; '.join(lost)}" if lost else ""
        viewed["frame"] = idx
        yield (f"propagation {direction} {state}: {done}/{total} frames (last: frame {idx}; run {runs[0]}){warn}",
               result_image(idx, shown), frame_info(idx), canvas_value(idx, obj_id, shown), gr.update(value=idx),
               timeline_html(editor, idx))  # everything on the last frame done, where the slider is

    def on_forward(frame_idx, obj_id, shown):
        yield from on_propagate(frame_idx, obj_id, shown, False)

    def on_backward(frame_idx, obj_id, shown):
        yield from on_propagate(frame_idx, obj_id, shown, True)

    def on_cancel():
        editor.cancel()  # the propagation says "cancelled" itself once the step or frame in progress is done

    def on_export(kinds, soft, frame_idx, progress=gr.Progress()):
        try:
            path, msg = editor.export(kinds, progress=lambda d, t: progress((d, t), desc="exporting", unit="frames"),
                                      soft=bool(soft))
        except Cancelled as e:
            return str(e), None, None
        except InputError as e:
            return f"error: {e}", None, None
        return msg, str(path), _overlay_frame(path, int(frame_idx or 0))

    def on_save(name):
        try:
            path = editor.save_session(name)
        except (InputError, OSError) as e:
            return f"error: {e}", gr.update()
        return f"saved session {path}", gr.update(choices=editor.sessions(), value=path.name)

    def on_open_session(name):
        try:
            if not name:
                raise InputError("pick a session first (save one with \"Save session\")")
            msg = editor.open_session(name)
        except InputError as e:
            return (f"error: {e}",) + keep(9)
        slider = gr.update(minimum=0, maximum=max(editor.num_frames - 1, 1), value=0, step=1)
        upd = objects_update()
        return ((msg, slider, upd, shown_update()) + view(0, upd["value"], list(editor.objects))
                + (gr.update(value=editor.adapt_steps), None))

    def on_jump(obj_id, shown, evt: gr.EventData):
        """A click on the timeline: the slider and the views go to that frame."""
        data = evt._data if isinstance(getattr(evt, "_data", None), dict) else {}
        try:
            frame_idx = editor.check_frame(data.get("frame"))
        except InputError as e:
            return (f"error: {e}", gr.update()) + view(viewed["frame"], obj_id, shown)
        return (gr.update(), gr.update(value=frame_idx)) + view(frame_idx, obj_id, shown)

    # this module's annotations are strings (`from __future__ import annotations`) and `gr` is not a module
    # global, so Gradio could not resolve the hint and passed None: the event's data never arrived
    on_jump.__annotations__["evt"] = gr.EventData

    def on_play(plays, shown):
        """The results as a video the page plays (`Editor.playback`), in the encoding its browser reported."""
        try:
            path, msg = editor.playback(playback_dir, hide=hidden_of(shown), plays=_playable_names(plays))
        except InputError as e:
            return f"error: {e}", gr.update()
        return msg + "; the player's time is the frame number over the fps (each frame shows its number)", str(path)

    def on_load():
        """A page (re)loaded: everything the server holds comes back (the video, objects, masks, results, the
        frame last shown), the file and session pickers listed afresh."""
        pickers = (gr.update(choices=editor.media()), gr.update(choices=editor.sessions()),
                   gr.update(value=editor.adapt_steps))
        if not editor.is_open:
            return ((f"files under {editor.root}", gr.update(), objects_update(), shown_update()) + view(0, None, [])
                    + pickers)
        frame_idx = min(viewed["frame"], editor.num_frames - 1)
        upd = objects_update()
        slider = gr.update(minimum=0, maximum=max(editor.num_frames - 1, 1), value=frame_idx, step=1)
        what = (f"{editor.video_name} is open: {len(editor.objects)} object(s), {len(editor.annotated_frames())} "
                f"frame(s) with masks, {editor.done_frames()} frame(s) segmented")
        return (what, slider, upd, shown_update()) + view(frame_idx, upd["value"], list(editor.objects)) + pickers

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
            upload = gr.File(label="Upload a video", file_types=list(_video_types()), type="filepath",
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
                draw = gr.HTML(value=canvas_value(0, None, []), html_template=CANVAS_HTML, css_template=CANVAS_CSS,
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
        upload.upload(act("Open", "upload-video", on_open), [upload, picked], opened, **quiet)
        open_btn.click(act("Open", "open", on_open), [upload, picked], opened, **quiet)
        frame.change(view, [frame, obj, shown], shows, trigger_mode="always_last", **light)
        obj.change(view, [frame, obj, shown], shows, **light)
        shown.change(view, [frame, obj, shown], shows, **light)
        timeline.jump(on_jump, [obj, shown], [status, frame] + shows, **light)
        add.click(act("Add object", "add-object", on_add), [name, frame, obj, shown], [status, obj, shown] + shows + [name], **quiet)
        rename.click(act("Rename", "rename-object", on_rename), [name, obj, shown], [status, obj, shown, name], **quiet)
        remove.click(act("Remove object", "remove-object", on_remove), [frame, obj, shown], [status, obj, shown] + shows, **quiet)
        edited = [status, frame, obj] + shows
        use_drawing.click(act("Use drawing", "use-drawing", on_use_drawing), [gesture, frame, obj, shown], edited,
                          js="(g, f, o, s) => [window.vosCanvas ? window.vosCanvas.strokes() : '', f, o, s]", **quiet)
        box_btn.click(act("Mask from box", "box-to-mask", on_box), [gesture, frame, obj, shown], edited,
                      js="(g, f, o, s) => [window.vosCanvas ? window.vosCanvas.box() : '', f, o, s]", **quiet)
        accept.click(act("Accept prediction", "accept", on_accept), [frame, obj, shown], edited, **quiet)
        undo.click(act("Undo last change", "undo", on_undo), [frame, obj, shown], edited, **quiet)
        use_mask.click(act("Use uploaded mask", "use-mask", on_upload_mask), [mask_file, frame, obj, shown],
                       [status, obj, shown] + shows, **quiet)
        adapt_steps.input(on_adapt_steps, [adapt_steps], [status, adapt_steps], **quiet)
        # a propagation's progress is its status line (steps, frames, what Cancel does); the preview shows the
        # frames as they come, never covered
        propagated = [status, preview, info, draw, frame, timeline]
        fwd.click(act("Propagate forward", "forward", on_forward), [frame, obj, shown], propagated, **quiet)
        bwd.click(act("Propagate backward", "backward", on_backward), [frame, obj, shown], propagated, **quiet)
        cancel.click(on_cancel, None, None, queue=False)
        export.click(act("Export zip", "export", on_export), [kinds, soft, frame], [status, exported, exported_view],
                     show_progress="full", show_progress_on=[status])
        play.click(act("Play the result", "play", on_play), [gesture, shown], [status, playback], js=PLAYABLE_JS,
                   **quiet)
        save.click(act("Save session", "save-session", on_save), [session_name], [status, sessions], **quiet)
        load.click(act("Open session", "open-session", on_open_session), [sessions],
                   [status, frame, obj, shown] + shows + [adapt_steps, playback], **quiet)
        app.load(on_load, None, [status, frame, obj, shown] + shows + [picked, sessions, adapt_steps], **quiet)
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
    """The editor the command line asks for; a bad option is an `InputError` (one line, exit code 2)."""
    from seggpt.settings import parse_assignments
    from seggpt.weights_file import PACKAGED_WEIGHTS, default_weights_note

    from .config import RunConfig, load_run_config
    from .engine import VideoSegmenter

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
        try:  # Gradio's own wait swallows Ctrl-C and SIGTERM (exit 0): here they reach run_cli (130, 143)
            while app.is_running:
                time.sleep(0.2)
        finally:
            app.close()
        return 0

    return run_cli(work, interrupted="the app stopped; sessions and exports on disk are complete")


if __name__ == "__main__":
    sys.exit(main())
