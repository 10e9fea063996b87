"""The editing session behind the web app (`vos.app`), as a plain class: no browser needed to use or test it.

One `Editor` holds one video, its named objects, the masks the user gave and the results of the
propagations so far. The engine's rules apply unchanged (`vos.engine.state`): every mask given conditions
every propagation, forwards and backwards; a mask drawn on a frame that already has a result is a
correction, and propagating again from there uses it.

A mask is made by strokes over what the frame shows for the object (its given mask, else the
prediction: a correction is the prediction plus the brush minus the eraser, `apply_strokes`), from a
box (GrabCut, `mask_from_box`), from a mask PNG, or by accepting the prediction as it is; each given
mask remembers what made it (`origin`), and `undo` takes the last mask change back.

The session is here; its other jobs are beside it, each the part of `Editor` it names: the files under
its root folder and the session files (`vos.editing.editor_files`: uploads to `root/uploads/`, exports to
`root/exports/`, sessions to `root/sessions/`, every file written atomically), the results kept per
frame and the timeline (`vos.editing.editor_results`), the export zip and the playback (`vos.editing.editor_export`).
"""
from __future__ import annotations

import collections
import dataclasses
import threading
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from seggpt.adapt import AdaptProgress
from seggpt.colors import davis_palette
from seggpt.errors import EngineError, InputError

from vos.editing.drawing import apply_strokes, mask_from_box, parse_box, parse_strokes, whole_number
from vos.editing.editor_export import EXPORT_KINDS, EXPORT_LABELS, EditorExport
from vos.editing.editor_files import (FRAME_SUFFIXES, MAX_ADAPT_STEPS, SESSION_FORMAT, SESSION_SUFFIX,  # noqa: F401
                                     VIDEO_SUFFIXES, RootFiles, open_reader)
from vos.editing.editor_results import EditorResults, KeptResult, TimelineRow
from vos.engine.segmenter import VideoSegmenter
from vos.engine.objects import object_mask
from vos.io.prompts import read_mask
from vos.engine.state import InferenceState
from vos.io.video import FrameSource

MAX_OBJECTS = 255  # index PNGs hold ids 1..255
UNDO_DEPTH = 100  # mask changes `undo` can take back



#: the name of the errors the app shows in its status bar (something the user can fix, one line): an alias
#: of InputError, not another class
EditorError = InputError


@dataclass
class EditorObject:
    obj_id: int
    name: str

    @property
    def color(self) -> Tuple[int, int, int]:
        return tuple(int(v) for v in davis_palette()[self.obj_id % 256])

    @property
    def hex(self) -> str:
        return "#%02x%02x%02x" % self.color

    @property
    def label(self) -> str:
        return f"{self.obj_id}: {self.name}"


@dataclass
class _Change:
    """One mask change, as `undo` needs it: what the frame had for this object before (only this object:
    the other objects' pixels, and results that came later, are not taken back with it)."""

    frame_idx: int
    obj_id: int
    given: Optional[np.ndarray]  # the mask given before (None: none was given)
    origin: Optional[str]
    shown: np.ndarray  # (H, W) bool: the object's pixels in the frame's result before
    score: Tuple[bool, Optional[float]]  # (whether the result had a score for the object, the score)
    had_result: bool  # whether the frame had a result at all
    what: str  # the change, for the status line


class Editor(RootFiles, EditorResults, EditorExport):
    """One video being edited (module docstring). Not thread-safe except `cancel()` and the read-only views
    (`frame`, `preview`, `mask_of`), which a page may ask for while a propagation runs; the app serialises
    the rest."""

    def __init__(self, segmenter: VideoSegmenter, root: str | Path, settings: Optional[dict] = None):
        self.segmenter = segmenter
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise InputError(f"{root}: not a folder")
        self.settings = dict(settings or {})
        self.video: Optional[Path] = None
        self.source: Optional[FrameSource] = None
        self.state: Optional[InferenceState] = None
        self.objects: Dict[int, EditorObject] = {}
        self.results: Dict[int, KeptResult] = {}
        self._viewer: Optional[FrameSource] = None
        self._frames: "collections.OrderedDict[int, np.ndarray]" = collections.OrderedDict()
        self.origins: Dict[Tuple[int, int], str] = {}  # (frame, object) -> what made its given mask
        self._history: List[_Change] = []
        self._cancel = threading.Event()
        self.last_run_cancelled = False  # whether the last propagation was cancelled (read once it has ended)
        self._busy = threading.Lock()
        self._viewing = threading.Lock()  # the viewer's decoder and cache serve one request at a time

    # ================================================================== the video
    def open(self, path: str | Path, uploaded: bool = False, fps: Optional[float] = None,
             accept: Optional[Callable[[FrameSource], None]] = None) -> str:
        """Open a video or frame folder under root; an uploaded file is copied to root/uploads first.
        `accept(source)` may refuse the video (InputError) before the open one is replaced."""
        p = self._upload(path) if uploaded else self.inside(path)
        readers: List[FrameSource] = []
        try:
            for _ in range(2):  # a second reader: showing frames while a propagation decodes its own
                readers.append(open_reader(p, fps))
            source, viewer = readers
            if source.num_frames is None:
                raise InputError(f"{p.name}: the number of frames is unknown")
            if accept is not None:
                accept(source)
        except ValueError as e:  # InputError too (a ValueError): the readers are closed
            for reader in readers:
                reader.close()
            raise e if isinstance(e, InputError) else InputError(str(e)) from None
        self.cancel()
        with self._busy:
            for old in (self.source, self._viewer):
                if old is not None:
                    old.close()
            self.video, self.source, self._viewer = p, source, viewer
            self.state = self.segmenter.init_state(source)
            self.objects.clear()
            self.results.clear()
            self.origins.clear()
            self._history.clear()
            with self._viewing:
                self._frames.clear()
        return f"opened {self.video_name}: {self.num_frames} frames, {self.size[1]}x{self.size[0]}, {self.fps:g} fps"

    @property
    def is_open(self) -> bool:
        return self.state is not None

    def _need_video(self) -> InferenceState:
        if self.state is None:
            raise InputError("open a video first")
        return self.state

    @property
    def video_name(self) -> str:
        return self.video.name if self.video else ""

    @property
    def num_frames(self) -> int:
        return int(self._need_video().num_frames)

    @property
    def size(self) -> Tuple[int, int]:
        return tuple(self._need_video().size)

    @property
    def fps(self) -> float:
        return float(self._need_video().fps)

    def frame(self, idx: int) -> np.ndarray:
        """The RGB frame (a small cache keeps the recently viewed ones)."""
        self._need_video()
        idx = self.check_frame(idx)
        with self._viewing:
            if idx in self._frames:
                self._frames.move_to_end(idx)
                return self._frames[idx]
            for _, f in self._viewer.iter_frames(idx, idx + 1):
                self._frames[idx] = f
            if idx not in self._frames:
                raise InputError(f"{self.video_name}: frame {idx} could not be decoded")
            while len(self._frames) > 48:
                self._frames.popitem(last=False)
            return self._frames[idx]

    def check_frame(self, idx) -> int:
        """`idx` as a frame index of the open video, or one line saying why not."""
        i = whole_number(idx, "frame")
        if not 0 <= i < self.num_frames:
            raise InputError(f"frame {i} is out of range (0..{self.num_frames - 1})")
        return i

    # ================================================================== objects
    def add_object(self, name: Optional[str] = None, obj_id: Optional[int] = None) -> int:
        self._need_video()
        if obj_id is None:
            obj_id = next((i for i in range(1, MAX_OBJECTS + 1) if i not in self.objects), None)
            if obj_id is None:
                raise InputError(f"at most {MAX_OBJECTS} objects")
        obj_id = whole_number(obj_id, "object id")
        if not 1 <= obj_id <= MAX_OBJECTS:
            raise InputError(f"object ids are 1..{MAX_OBJECTS}, got {obj_id}")
        name = _object_name(name, obj_id)
        self.objects.setdefault(obj_id, EditorObject(obj_id, name)).name = name  # a new object, or a new name
        return obj_id

    def rename_object(self, obj_id: int, name: str) -> None:
        self._object(obj_id).name = _object_name(name, obj_id)

    def remove_object(self, obj_id: int) -> None:
        state = self._need_video()
        self._object(obj_id)
        with self._busy_or_error():
            del self.objects[obj_id]
            if obj_id in state.objects:
                self.segmenter.remove_object(state, obj_id)
            self._history = [c for c in self._history if c.obj_id != obj_id]
            self.origins = {k: v for k, v in self.origins.items() if k[1] != obj_id}
            self._drop_results_of(obj_id)

    def _target(self, frame_idx, obj_id) -> Tuple[int, int]:
        """The frame and object a mask change is for, checked (one line each)."""
        self._need_video()
        return self.check_frame(frame_idx), self._object(obj_id).obj_id

    def _object(self, obj_id) -> EditorObject:
        try:
            return self.objects[int(obj_id)]
        except (KeyError, TypeError, ValueError, OverflowError):
            raise InputError(f"no object {obj_id} (objects: {sorted(self.objects)})") from None

    # ================================================================== masks
    def set_mask(self, frame_idx: int, obj_id: int, mask: np.ndarray, origin: str = "drawn") -> int:
        """Give (or correct) an object on a frame; an empty mask says the object is not on this frame.
        `origin` says what made it (shown beside it). Returns the mask's area."""
        state = self._need_video()
        frame_idx, obj_id = self._target(frame_idx, obj_id)
        m = object_mask(mask, f"object {obj_id} on frame {frame_idx}", self.size)
        with self._busy_or_error():
            old = self.results.get(frame_idx)
            before = _Change(frame_idx, obj_id, self.given(frame_idx).get(obj_id), self.origins.get((frame_idx, obj_id)),
                             self.labels(frame_idx) == obj_id,
                             (bool(old and obj_id in old.scores), old.scores.get(obj_id) if old else None),
                             old is not None, f"{origin} mask of {self.objects[obj_id].label} on frame {frame_idx}")
            self.segmenter.add_new_mask(state, frame_idx, obj_id, m)
            self._history = (self._history + [before])[-UNDO_DEPTH:]
            self.origins[(frame_idx, obj_id)] = origin
            labels = self.labels(frame_idx)
            labels[labels == obj_id] = 0
            labels[m] = obj_id
            scores = {**(old.scores if old else {}), obj_id: 1.0 if m.any() else None}
            self.results[frame_idx] = self._drawn(old, labels, scores, obj_id, m)
        return int(m.sum())

    def load_mask(self, frame_idx: int, path: str | Path, obj_id: Optional[int] = None) -> List[int]:
        """A mask image (palette, 0/255 grey or RGB colours) on a frame. A binary mask is `obj_id` (or a new
        object); a label map gives its ids as they are (new ones become objects). Returns the ids set."""
        labels, _ = read_mask(path, self.size)  # "open a video first" without one
        ids = [int(v) for v in np.unique(labels) if v > 0]
        if ids == [1] and obj_id is not None:  # a binary mask: the selected object
            self.set_mask(frame_idx, obj_id, labels == 1, origin="mask PNG")
            return [int(obj_id)]
        for o in ids:
            if o > MAX_OBJECTS:
                raise InputError(f"{Path(path).name}: object id {o}; the app keeps ids 1..{MAX_OBJECTS}")
            if o not in self.objects:
                self.add_object(None, o)
            self.set_mask(frame_idx, o, labels == o, origin="mask PNG")
        return ids

    def draw(self, frame_idx: int, obj_id: int, strokes: list) -> int:
        """Brush and eraser strokes (`vos.editing.drawing.parse_strokes`, frame pixels) over what the frame shows for
        the object (`mask_of`: its given mask, else the prediction): the result becomes its given mask.
        Returns the area."""
        frame_idx, obj_id = self._target(frame_idx, obj_id)
        checked = parse_strokes(strokes, self.size)
        if not checked:
            raise InputError("draw on the frame first (the brush adds, the eraser removes)")
        before = self.origin(frame_idx, obj_id)
        origin = "painted" if before in ("none", "painted") else before if before.endswith(", corrected") \
            else f"{before}, corrected"
        return self.set_mask(frame_idx, obj_id, apply_strokes(self.mask_of(frame_idx, obj_id), checked), origin)

    def box_to_mask(self, frame_idx: int, obj_id: int, box: Sequence[float]) -> int:
        """The object inside a box [x0, y0, x1, y1] (frame pixels) by GrabCut (`vos.editing.drawing.mask_from_box`) as
        its given mask on the frame; returns the area (0: GrabCut found nothing: paint it instead)."""
        frame_idx, obj_id = self._target(frame_idx, obj_id)
        mask = mask_from_box(self.frame(frame_idx), parse_box(box, self.size))
        if not mask.any():
            raise InputError("box: GrabCut found no object in the box; draw a tighter box or paint the mask")
        return self.set_mask(frame_idx, obj_id, mask, origin="box (GrabCut)")

    def accept_prediction(self, frame_idx: int, obj_id: int) -> int:
        """The prediction of the object on the frame, as it is, becomes its given mask; returns the area."""
        frame_idx, obj_id = self._target(frame_idx, obj_id)
        if frame_idx not in self.results:
            raise InputError(f"frame {frame_idx} has no prediction yet: propagate first")
        return self.set_mask(frame_idx, obj_id, self.labels(frame_idx) == obj_id, origin="accepted prediction")

    def origin(self, frame_idx: int, obj_id: int) -> str:
        """What the frame shows for the object comes from: the origin of its given mask, "prediction", or "none"."""
        if obj_id in self.given(frame_idx):
            return self.origins.get((frame_idx, obj_id), "given")
        r = self.results.get(frame_idx)
        return "prediction" if r is not None and obj_id in r.object_ids else "none"

    def undo(self) -> Tuple[str, int, int]:
        """Take back the last mask change (drawn, box, PNG or accepted: a label-map PNG is one change per
        object); returns what was undone, with the frame and object it was on. Only that object on that
        frame goes back (its given mask, and the pixels the frame showed for it, with hard edges until the
        next propagation); other objects and later results stay."""
        state = self._need_video()
        if not self._history:
            raise InputError("nothing to undo")
        with self._busy_or_error():
            c = self._history[-1]
            try:
                if c.given is None:
                    self.segmenter.remove_mask(state, c.frame_idx, c.obj_id)
                else:
                    self.segmenter.add_new_mask(state, c.frame_idx, c.obj_id, c.given)
            except EngineError as e:
                raise InputError(f"cannot undo the {c.what}: {e}") from None
            self._history.pop()
            if c.origin is None:
                self.origins.pop((c.frame_idx, c.obj_id), None)
            else:
                self.origins[(c.frame_idx, c.obj_id)] = c.origin
            current = self.results.get(c.frame_idx)
            if not c.had_result and (current is None or set(current.object_ids) <= {c.obj_id}):
                self.results.pop(c.frame_idx, None)  # the change made this frame's only result
            else:
                labels = self.labels(c.frame_idx)
                labels[labels == c.obj_id] = 0
                restored = c.shown & (labels == 0)  # never over an object drawn there since
                labels[restored] = c.obj_id
                scores = {o: v for o, v in (current.scores if current else {}).items() if o != c.obj_id}
                if c.score[0]:
                    scores[c.obj_id] = c.score[1]
                self.results[c.frame_idx] = self._show_given(
                    c.frame_idx, self._drawn(current, labels, scores, c.obj_id, restored))
        return f"undid the {c.what}", c.frame_idx, c.obj_id

    @property
    def can_undo(self) -> int:
        return len(self._history)

    def given(self, frame_idx: int) -> Dict[int, np.ndarray]:
        """The masks given on a frame {obj_id: mask}."""
        state = self._need_video()
        return dict(state.annotations[frame_idx].given) if frame_idx in state.annotations else {}

    def annotated_frames(self) -> List[int]:
        return list(self._need_video().annotations)

    def mask_of(self, frame_idx: int, obj_id: int) -> np.ndarray:
        """What the editor shows for an object on a frame: its given mask, else its result, else nothing."""
        given = self.given(frame_idx)
        if obj_id in given:
            return given[obj_id].copy()
        return self.labels(frame_idx) == obj_id


    # ================================================================== propagation
    def cancel(self) -> None:
        """Stop a running propagation: during its adaptation before the next step (nothing learnt is kept),
        else after the frame in progress (the frames done are kept)."""
        self._cancel.set()

    @property
    def adapt_steps(self) -> int:
        return int(self.segmenter.config.adapt.steps)

    def set_adapt_steps(self, steps) -> None:
        """Test-time adaptation steps before the next propagation (0: off; `engine.adapt.steps`). A change
        forgets what was learnt, so the next propagation adapts afresh with the new count."""
        n = whole_number(steps, "adaptation steps")
        if not 0 <= n <= MAX_ADAPT_STEPS:
            raise InputError(f"adaptation steps: 0..{MAX_ADAPT_STEPS} (0: off), got {steps!r}")
        if n == self.adapt_steps:
            return
        with self._busy_or_error():
            cfg = self.segmenter.config
            cfg.adapt = dataclasses.replace(cfg.adapt, steps=n)
            if self.state is not None:
                self.segmenter.forget_adaptation(self.state)

    def propagate(self, frame_idx: int, reverse: bool = False,
                  on_adapt: Optional[Callable[[AdaptProgress], None]] = None) -> Iterator[Tuple[int, int, int]]:
        """Propagate from `frame_idx` to the end (or, reverse, to frame 0); yields (done, total, frame) per frame.
        Test-time adaptation, when set, runs first and reports each step to `on_adapt`. `cancel()` stops
        either; the frames done stay."""
        state = self._need_video()
        frame_idx = self.check_frame(frame_idx)
        if not len(state.annotations):
            raise InputError("give a mask first: draw one, or upload a mask PNG")
        if not self._busy.acquire(blocking=False):
            raise InputError("a propagation is already running")
        self._cancel.clear()
        total = frame_idx + 1 if reverse else self.num_frames - frame_idx
        try:
            with closing(self.segmenter.propagate(state, frame_idx, reverse=reverse, progress=on_adapt,
                                                  cancel=self._cancel)) as run:
                for done, r in enumerate(run, 1):
                    self._keep(r)
                    yield done, total, r.frame_idx  # the engine ends the pass itself once cancel is set
        finally:
            self.last_run_cancelled = self._cancel.is_set()  # before another action may clear the flag
            self._busy.release()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()


    @contextmanager
    def _busy_or_error(self) -> Iterator[None]:
        """Hold the session for a change; refused (one line) while a propagation runs."""
        if not self._busy.acquire(blocking=False):
            raise InputError("a propagation is running: cancel it or wait")
        try:
            yield
        finally:
            self._busy.release()


def _object_name(name: Optional[str], obj_id: int) -> str:
    """The name given, else "object <id>"."""
    return ("" if name is None else str(name)).strip() or f"object {obj_id}"


# the constants and TimelineRow stay importable from here, where they were before the editor's jobs were split
__all__ = ["Editor", "EditorError", "EditorObject", "TimelineRow", "EXPORT_KINDS", "EXPORT_LABELS", "SESSION_SUFFIX",
           "VIDEO_SUFFIXES", "MAX_ADAPT_STEPS"]
