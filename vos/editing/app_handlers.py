"""The web app's handlers (`vos.app`): what each event of the page does, as methods of one object around the
`vos.editing.editor.Editor`; each answers with one value per output of its event (`vos.app.build_app` wires them).

Imported once gradio is (`vos.app.build_app`): the handlers answer with `gr.update`s. The annotations here
are evaluated (no `from __future__ import annotations`): Gradio reads `on_jump`'s `gr.EventData` hint to pass
the event's data, and a string hint it cannot resolve got None: the event's data never arrived.
"""
import itertools
import json
import logging
import queue
import threading
import time
from pathlib import Path
from typing import List

import gradio as gr
import numpy as np

from seggpt.errors import Cancelled, InputError

from vos.editing.app_views import data_url, gesture, lost_frames, mask_key, overlay_frame, parse_key, playable_names, timeline_html
from vos.editing.editor import Editor

log = logging.getLogger("vos.app")
PREVIEW_EVERY_S = 0.25  # at most this often a live preview goes to the browser during a propagation


class Handlers:
    """The page's events around one Editor (the server holds the session: a reloaded page gets it back)."""

    def __init__(self, editor: Editor, playback_dir: Path):
        self.editor = editor
        self.playback_dir = playback_dir  # Gradio serves the playback files from its cache
        self.serials = itertools.count(1)  # every canvas view has its own number (views run in parallel threads)
        self.viewed = 0  # the frame the page shows last: a reloaded page comes back to it
        self.runs = 0  # propagations finished: the status names each one

    def opened(self, msg: str, frame_idx: int = 0) -> tuple:
        """The status, the slider (over the open video), the objects and the views of a video just opened or
        reloaded, on `frame_idx`."""
        upd = self.objects_update()
        slider = gr.update(minimum=0, maximum=max(self.editor.num_frames - 1, 1), value=frame_idx, step=1)
        return (msg, slider, upd, self.shown_update()) + self.view(frame_idx, upd["value"], list(self.editor.objects))

    def object_choices(self):
        return [(o.label, o.obj_id) for o in self.editor.objects.values()]

    def objects_update(self, selected=None):
        choices = self.object_choices()
        ids = [c[1] for c in choices]
        return gr.update(choices=choices, value=selected if selected in ids else (ids[-1] if ids else None))

    def shown_update(self, shown=None):
        """The objects shown: `shown`, else every object (a new video)."""
        return gr.update(choices=self.object_choices(), value=list(self.editor.objects) if shown is None else shown)

    def hidden_of(self, shown) -> List[int]:
        shown = set(int(o) for o in (shown or []))
        return [o for o in self.editor.objects if o not in shown]

    def canvas_value(self, frame_idx: int, obj_id, shown, clear: bool = False) -> str:
        """The canvas's view (`vos.editing.canvas`): the frame with the other shown objects as background, the selected
        object's mask, its colour and key."""
        serial = next(self.serials)
        if not self.editor.is_open:
            return json.dumps({"serial": serial, "note": "no video open"})
        h, w = self.editor.size
        if obj_id not in self.editor.objects:
            obj_id = None
        hide = self.hidden_of(shown) + ([obj_id] if obj_id is not None else [])
        mask = self.editor.mask_of(frame_idx, obj_id) if obj_id is not None else None
        if obj_id is None:
            note = f"frame {frame_idx}: add an object to draw its mask"
        else:
            origin = self.editor.origin(frame_idx, obj_id)
            what = {"none": "no mask yet: paint it, or draw a box and press \"Mask from box\"",
                    "prediction": "the prediction (translucent): the brush adds to it, the eraser removes"}.get(
                origin, f"mask given here, made by: {origin}")
            note = f"{self.editor.objects[obj_id].label} on frame {frame_idx}: {what}"
        return json.dumps({"serial": serial, "key": mask_key(frame_idx, obj_id, mask), "width": w, "height": h,
                           "color": self.editor.objects[obj_id].hex if obj_id is not None else "#ffffff",
                           "background": data_url(self.editor.preview(frame_idx, hide=hide), "jpeg"),
                           "mask": data_url(mask if mask is not None else np.zeros((h, w), bool), "png"),
                           "note": note, "clear": clear})

    def frame_info(self, frame_idx):
        if not self.editor.is_open:
            return "no video open"
        given = self.editor.given(frame_idx)
        mark = "; masks given here: " + ", ".join(f"{self.editor.objects[o].name} ({self.editor.origin(frame_idx, o)})"
                                                  for o in given if o in self.editor.objects) if given else ""
        undo = f"; {self.editor.can_undo} change(s) to undo" if self.editor.can_undo else ""
        return (f"frame {frame_idx} of {self.editor.num_frames - 1}{mark}; {self.editor.done_frames()} frame(s) "
                f"segmented{undo}")

    def result_image(self, frame_idx, shown):
        return self.editor.preview(frame_idx, hide=self.hidden_of(shown))

    def view(self, frame_idx, obj_id, shown, clear=False):
        """Everything that shows one frame: canvas, preview, info, timeline (`shows`)."""
        if not self.editor.is_open:
            return self.canvas_value(0, None, shown), None, "no video open", timeline_html(self.editor, 0)
        try:
            frame_idx = self.editor.check_frame(frame_idx or 0)
        except InputError:
            frame_idx = 0
        self.viewed = frame_idx
        try:
            return (self.canvas_value(frame_idx, obj_id, shown, clear), self.result_image(frame_idx, shown),
                    self.frame_info(frame_idx), timeline_html(self.editor, frame_idx))
        except InputError as e:  # a frame the decoder cannot read: said where the frame would be
            log.warning("frame %d cannot be shown: %s", frame_idx, e)
            return (json.dumps({"serial": next(self.serials), "note": f"error: {e}"}), None, f"error: {e}",
                    timeline_html(self.editor, frame_idx))

    def keep(self, n: int) -> tuple:
        """`n` outputs left as they are (an error's answer)."""
        return tuple(gr.update() for _ in range(n))

    # ------------------------------------------------------------------ handlers
    def on_open(self, upload, picked):
        try:
            if not upload and not picked:
                raise InputError("upload a video, or pick a video or frame folder")
            msg = self.editor.open(upload or picked, uploaded=bool(upload))  # an upload first
        except InputError as e:
            return (f"error: {e}",) + self.keep(7) + (gr.update(choices=self.editor.media()), gr.update())
        return self.opened(msg) + (gr.update(choices=self.editor.media()), None)

    def on_add(self, name, frame_idx, obj_id, shown):
        try:
            new = self.editor.add_object(name)
        except InputError as e:
            return (f"error: {e}",) + self.keep(7)
        shown = list(shown or []) + [new]
        return ((f"added object {self.editor.objects[new].label}", self.objects_update(new), self.shown_update(shown))
                + self.view(frame_idx, new, shown) + ("",))

    def on_rename(self, name, obj_id, shown):
        try:
            self.editor.rename_object(obj_id, name)
        except InputError as e:
            return f"error: {e}", gr.update(), gr.update(), name
        return (f"renamed to {self.editor.objects[obj_id].label}", self.objects_update(obj_id),
                self.shown_update(shown or []), "")

    def on_remove(self, frame_idx, obj_id, shown):
        try:
            name = self.editor.objects[obj_id].label if obj_id in self.editor.objects else obj_id
            self.editor.remove_object(obj_id)
        except InputError as e:
            return (f"error: {e}", gr.update(), gr.update()) + self.view(frame_idx, obj_id, shown)
        upd = self.objects_update()
        shown = [o for o in (shown or []) if o in self.editor.objects]
        return ((f"removed object {name}", upd, self.shown_update(shown))
                + self.view(frame_idx, upd["value"], shown))

    def mask_change(self, change, frame_idx, obj_id, shown):
        """Run one mask change on the frame and object the canvas shows; the status says what it made."""
        try:
            msg, where, obj = change()
        except InputError as e:
            return (f"error: {e}", gr.update(), gr.update()) + self.view(frame_idx, obj_id, shown)
        moved = gr.update(value=where) if where != int(frame_idx or 0) else gr.update()  # the slider follows
        picked = gr.update(value=obj) if obj != obj_id else gr.update()
        return (msg, moved, picked) + self.view(where, obj, shown, clear=True)

    def area_message(self, frame_idx, obj_id, area, how):
        msg = f"mask of {self.editor.objects[obj_id].label} on frame {frame_idx}: {area} pixels ({how})"
        return msg + (" (empty: the object is not on this frame)" if area == 0 else "")

    def on_use_drawing(self, payload, frame_idx, obj_id, shown):
        def change():
            key, strokes = gesture(payload, "strokes")
            where, obj = parse_key(self.editor, key)
            area = self.editor.draw(where, obj, strokes)
            return self.area_message(where, obj, area, self.editor.origin(where, obj)), where, obj
        return self.mask_change(change, frame_idx, obj_id, shown)

    def on_box(self, payload, frame_idx, obj_id, shown):
        def change():
            key, box = gesture(payload, "box")
            where, obj = parse_key(self.editor, key)
            if box is None:
                raise InputError("choose Box on the canvas and drag a box around the object first")
            area = self.editor.box_to_mask(where, obj, box)
            return (self.area_message(where, obj, area, "box (GrabCut)") + "; refine it with the brush, then propagate",
                    where, obj)
        return self.mask_change(change, frame_idx, obj_id, shown)

    def on_accept(self, frame_idx, obj_id, shown):
        def change():
            if obj_id not in self.editor.objects:
                raise InputError("add an object first")
            where = int(frame_idx or 0)
            area = self.editor.accept_prediction(where, obj_id)
            return self.area_message(where, obj_id, area, "accepted prediction"), where, obj_id
        return self.mask_change(change, frame_idx, obj_id, shown)

    def on_undo(self, frame_idx, obj_id, shown):
        return self.mask_change(self.editor.undo, frame_idx, obj_id, shown)

    def on_upload_mask(self, path, frame_idx, obj_id, shown):
        try:
            if not path:
                raise InputError("choose a mask PNG first")
            ids = self.editor.load_mask(int(frame_idx), path, obj_id if obj_id in self.editor.objects else None)
        except InputError as e:
            return (f"error: {e}", gr.update(), gr.update()) + self.view(frame_idx, obj_id, shown)
        sel = obj_id if obj_id in ids else ids[0]
        shown = sorted(set(shown or []) | set(ids))
        return ((f"mask PNG on frame {int(frame_idx)}: object(s) {ids}", self.objects_update(sel),
                 self.shown_update(shown)) + self.view(frame_idx, sel, shown))

    def on_adapt_steps(self, steps):
        try:
            self.editor.set_adapt_steps(steps)
        except InputError as e:
            return f"error: {e}", gr.update(value=self.editor.adapt_steps)
        state = f"{self.editor.adapt_steps} steps before the next propagation" if self.editor.adapt_steps else "off"
        return f"test-time adaptation: {state}", gr.update()

    def on_propagate(self, frame_idx, obj_id, shown, reverse):
        """The propagation runs in a thread of its own; this generator relays its adaptation steps and frames
        (a wait that yields nothing, as adaptation, still shows progress and can be cancelled)."""
        direction = "backward" if reverse else "forward"
        frame_idx = int(frame_idx or 0)
        events: "queue.Queue[tuple]" = queue.Queue()

        def work() -> None:
            try:
                for item in self.editor.propagate(frame_idx, reverse=reverse,
                                                  on_adapt=lambda p: events.put(("adapt", p))):
                    events.put(("frame", item))
            except InputError as e:
                events.put(("error", str(e)))
            except Exception as e:  # noqa: BLE001 - said in the status, the traceback in the log
                log.exception("the propagation failed")
                events.put(("error", f"the propagation failed: {type(e).__name__}: {e} (the log has the details)"))
            finally:
                events.put(("end", self.editor.last_run_cancelled))

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
                    yield (f"error: {item}", gr.update(), gr.update(), self.canvas_value(frame_idx, obj_id, shown),
                           gr.update(value=frame_idx), timeline_html(self.editor, frame_idx))
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
                    self.viewed = idx
                    yield (f"propagating {direction} from frame {frame_idx}: {done}/{total} frames (frame {idx})",
                           self.result_image(idx, shown), self.frame_info(idx), gr.update(), gr.update(value=idx),
                           timeline_html(self.editor, idx))
                elif adapt is not None:
                    yield (f"adapting to the masks before propagating {direction}: step {adapt.step}/{adapt.steps}, "
                           f"loss {adapt.loss:.4f}, {adapt.seconds:.1f} s (Cancel stops it; nothing learnt is kept)",
                           gr.update(), gr.update(), gr.update(), gr.update(), gr.update())
                else:
                    yield (f"propagating {direction} from frame {frame_idx}: starting",) + self.keep(5)
        finally:
            if not finished:  # the page went away: stop the work it started, and end with it (the activity line
                self.editor.cancel()  # and the next action see the propagation until it has really stopped)
                while events.get()[0] != "end":
                    pass
        cancelled = cancelled and (not done or done < total)
        state = "cancelled" if cancelled else "done"
        if cancelled and not done and adapt is not None and adapt.step < adapt.steps:
            state += f" during adaptation (step {adapt.step}/{adapt.steps}; nothing learnt is kept)"
        self.runs += 1
        total = total or (frame_idx + 1 if reverse else self.editor.num_frames - frame_idx)
        lost = [f"{r.label} on {lost_frames(r)}" for r in self.editor.timeline() if r.lost]
        warn = f"; LOST (empty on more than {self.editor.lost_after} frames in a row): {'; '.join(lost)}" \
            if lost else ""
        self.viewed = idx
        yield (f"propagation {direction} {state}: {done}/{total} frames (last: frame {idx}; run {self.runs}){warn}",
               self.result_image(idx, shown), self.frame_info(idx), self.canvas_value(idx, obj_id, shown),
               gr.update(value=idx),
               timeline_html(self.editor, idx))  # everything on the last frame done, where the slider is

    def on_forward(self, frame_idx, obj_id, shown):
        yield from self.on_propagate(frame_idx, obj_id, shown, False)

    def on_backward(self, frame_idx, obj_id, shown):
        yield from self.on_propagate(frame_idx, obj_id, shown, True)

    def on_cancel(self):
        self.editor.cancel()  # the propagation says "cancelled" itself once the step or frame in progress is done

    def on_export(self, kinds, soft, frame_idx, progress=gr.Progress()):
        try:
            path, msg = self.editor.export(
                kinds, progress=lambda d, t: progress((d, t), desc="exporting", unit="frames"), soft=bool(soft))
        except Cancelled as e:
            return str(e), None, None
        except InputError as e:
            return f"error: {e}", None, None
        return msg, str(path), overlay_frame(path, int(frame_idx or 0))

    def on_save(self, name):
        try:
            path = self.editor.save_session(name)
        except (InputError, OSError) as e:
            return f"error: {e}", gr.update()
        return f"saved session {path}", gr.update(choices=self.editor.sessions(), value=path.name)

    def on_open_session(self, name):
        try:
            if not name:
                raise InputError("pick a session first (save one with \"Save session\")")
            msg = self.editor.open_session(name)
        except InputError as e:
            return (f"error: {e}",) + self.keep(9)
        return self.opened(msg) + (gr.update(value=self.editor.adapt_steps), None)

    def on_jump(self, obj_id, shown, evt: gr.EventData):
        """A click on the timeline: the slider and the views go to that frame."""
        data = evt._data if isinstance(getattr(evt, "_data", None), dict) else {}
        try:
            frame_idx = self.editor.check_frame(data.get("frame"))
        except InputError as e:
            return (f"error: {e}", gr.update()) + self.view(self.viewed, obj_id, shown)
        return (gr.update(), gr.update(value=frame_idx)) + self.view(frame_idx, obj_id, shown)

    def on_play(self, plays, shown):
        """The results as a video the page plays (`Editor.playback`), in the encoding its browser reported."""
        try:
            path, msg = self.editor.playback(self.playback_dir, hide=self.hidden_of(shown), plays=playable_names(plays))
        except InputError as e:
            return f"error: {e}", gr.update()
        return msg + "; the player's time is the frame number over the fps (each frame shows its number)", str(path)

    def on_load(self):
        """A page (re)loaded: everything the server holds comes back (the video, objects, masks, results, the
        frame last shown), the file and session pickers listed afresh."""
        pickers = (gr.update(choices=self.editor.media()), gr.update(choices=self.editor.sessions()),
                   gr.update(value=self.editor.adapt_steps))
        if not self.editor.is_open:
            return ((f"files under {self.editor.root}", gr.update(), self.objects_update(), self.shown_update())
                    + self.view(0, None, []) + pickers)
        what = (f"{self.editor.video_name} is open: {len(self.editor.objects)} object(s), "
                f"{len(self.editor.annotated_frames())} frame(s) with masks, {self.editor.done_frames()} frame(s) segmented")
        return self.opened(what, min(self.viewed, self.editor.num_frames - 1)) + pickers
