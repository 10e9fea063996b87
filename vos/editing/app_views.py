"""What the web app's page shows and reads (`vos.app`), without gradio: the activity of the actions, the
canvas's view key and the gestures it sends, the timeline's HTML, the playback encodings the browser plays,
and the exported overlay read back from the zip.
"""
from __future__ import annotations

import base64
import contextlib
import functools
import html
import inspect
import io
import json
import logging
import threading
import time
import zipfile
import zlib
from typing import Dict, Iterator, List, Optional, Tuple

import cv2
import numpy as np

from seggpt.errors import InputError, is_integer

from vos.editing.editor import Editor
from vos.editing.editor_results import TimelineRow
from vos.io.writers import PLAYABLE_ENCODINGS

log = logging.getLogger("vos.app")


class Activity:
    """What the app is doing now, for the stuck-action watch of the page (`vos.editing.canvas.ACTIVITY_JS`) and the
    log: every action says when it starts and ends, so a press that starts nothing is visible. Gradio runs
    each kind of action one at a time (a second press of the same button waits for the first) while different
    actions may overlap (the editor refuses changes while a propagation runs), so several can be running."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started = 0  # actions started since the app began
        self._running: Dict[int, Tuple[str, str, float]] = {}  # start number -> (name, button, since)

    @contextlib.contextmanager
    def _action(self, name: str, button: str) -> Iterator[None]:
        """One action running from start to end: logged at both, with its time, and shown meanwhile."""
        with self._lock:
            self.started += 1
            number = self.started
            self._running[number] = (name, button, time.monotonic())
        log.info("action %r started", name)
        try:
            yield
        finally:
            with self._lock:
                _, _, since = self._running.pop(number)
            log.info("action %r ended after %.2f s", name, time.monotonic() - since)

    def run(self, name: str, button: str, fn):
        """`fn` (the handler of the button with elem_id `button`, plain or generator) wrapped: its start, end and
        time logged and shown."""
        if inspect.isgeneratorfunction(fn):
            @functools.wraps(fn)
            def gen(*args, **kwargs):
                with self._action(name, button):
                    yield from fn(*args, **kwargs)
            return gen

        @functools.wraps(fn)
        def plain(*args, **kwargs):
            with self._action(name, button):
                return fn(*args, **kwargs)
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


def data_url(image: np.ndarray, kind: str) -> str:
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


def gesture(payload: str, field: str):
    try:
        doc = json.loads(payload or "{}")
    except (ValueError, RecursionError):  # a forged payload nested beyond Python's limit counts as unreadable
        raise InputError("the canvas sent something unreadable; reload the page") from None
    if not isinstance(doc, dict):
        raise InputError("the canvas sent something unreadable; reload the page")
    return doc.get("key"), doc.get(field)


STATE_WORDS = {"given": "mask given", "present": "present", "empty": "empty", "lost": "lost", "none": "not segmented"}


def lost_frames(row: TimelineRow) -> str:
    """The frames where a timeline row's object is lost, as "4-9, 12"."""
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in row.lost)


def timeline_html(editor: Editor, current: int) -> str:
    """The timeline (`vos.editing.canvas.TIMELINE_CSS`): per object a bar of its frames by state (`Editor.timeline`),
    a marker on frame `current`, and the objects lost named in red with their frames."""
    if not editor.is_open:
        return '<div class="vos-timeline"></div>'
    n = editor.num_frames
    legend = "".join(f'<span><i class="vos-{k}"></i>{w}</span>' for k, w in STATE_WORDS.items())
    rows = []
    for row in editor.timeline():
        cells = "".join(f'<div class="vos-tl-run vos-{state}" style="flex-grow: {b - a}" data-start="{a}" '
                        f'data-stop="{b}" title="{html.escape(STATE_WORDS[state])}: frame'
                        f'{f" {a}" if b - a == 1 else f"s {a}-{b - 1}"}"></div>' for a, b, state in row.runs)
        at = min(max(int(current), 0), n - 1) if is_integer(current) else 0
        cursor = f'<div class="vos-tl-cursor" style="left: calc({100 * (at + 0.5) / n:.3f}% - 1px)"></div>'
        lost = lost_frames(row)
        label = html.escape(row.label) + (f" LOST on {lost}" if lost else "")
        rows.append(f'<div class="vos-tl-row" data-obj="{row.obj_id}" data-lost="{html.escape(lost)}">'
                    f'<span class="vos-tl-label{" vos-tl-warn" if lost else ""}" title="{label}">{label}</span>'
                    f'<div class="vos-tl-bar" data-frames="{n}">{cells}{cursor}</div></div>')
    head = (f'<div class="vos-tl-legend"><b>Timeline</b> (click a frame to go there){legend}'
            f'<span>lost: empty on more than {editor.lost_after} frames in a row</span></div>')
    return f'<div class="vos-timeline">{head}{"".join(rows)}</div>'


def playable_names(payload: str) -> List[str]:
    """The encodings the page says its browser plays (`PLAYABLE_JS`), known ones only."""
    try:
        names = json.loads(payload or "[]")
    except (ValueError, RecursionError):
        raise InputError("the page sent something unreadable; reload the page") from None
    known = {e.name for e in PLAYABLE_ENCODINGS}
    return [str(n) for n in names if isinstance(n, str) and n in known] if isinstance(names, list) else []


#: asks the browser which playback encodings its <video> plays (`vos.io.writers.PLAYABLE_ENCODINGS`)
PLAYABLE_JS = ("(p, s) => { const v = document.createElement('video'); const kinds = "
               + json.dumps({e.name: e.mime for e in PLAYABLE_ENCODINGS})
               + "; return [JSON.stringify(Object.keys(kinds).filter(k => v.canPlayType(kinds[k]) !== '')), s]; }")



def overlay_frame(zip_path, frame_idx: int) -> Optional[np.ndarray]:
    """A frame of the exported overlay video, decoded from the zip (what the user will get)."""
    import av  # here: the page reads the zip back only after an export

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
