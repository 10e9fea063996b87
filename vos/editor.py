"""The editing session behind the web app (`vos.app`), as a plain class: no browser needed to use or test it.

One `Editor` holds one video, its named objects, the masks the user gave and the results of the
propagations so far. The engine's rules apply unchanged (`vos.state`): every mask given conditions
every propagation, forwards and backwards; a mask drawn on a frame that already has a result is a
correction, and propagating again from there uses it.

A mask is made by strokes over what the frame shows for the object (its given mask, else the
prediction: a correction is the prediction plus the brush minus the eraser, `apply_strokes`), from a
box (GrabCut, `mask_from_box`), from a mask PNG, or by accepting the prediction as it is; each given
mask remembers what made it (`origin`), and `undo` takes the last mask change back.

Files: the editor reads server-side files only under `root` (the folder named when the app starts);
uploads are copied to `root/uploads/`, exports go to `root/exports/`, session files to
`root/sessions/`. Every file is written atomically.

A session file (`.vos-session.zip`) holds `session.json` (the video, relative to `root`; the objects
with their names and colours; the settings) and every mask given, as 0/255 PNGs. Results are not
saved: open the session and propagate again.
"""
from __future__ import annotations

import collections
import dataclasses
import json
import logging
import math
import os
import re
import shutil
import tempfile
import threading
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from PIL import Image

from seggpt.adapt import AdaptProgress
from seggpt.colors import davis_palette
from seggpt.errors import Cancelled, EngineError, InputError, OutputError
from seggpt.io import atomic_path, overlay
from seggpt.outputs import OutputFiles, claim_files, is_within, real, written_by_us

from .drawing import apply_strokes, mask_from_box, parse_box, parse_strokes
from .engine import VideoSegmenter
from .objects import is_integer, object_mask
from .exports import (DEFAULT_SOFT_WIDTH, ExportSpec, Exporter, LostObjectReport, lost_after_for, margins_of_alpha,
                      remove_tree, save_object_png, soft_alpha, write_json, zip_folder)
from .prompts import read_mask
from .state import InferenceState
from .video import FrameSource, open_source
from .writers import PlaybackWriter, playable_encoding

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SESSION_SUFFIX = ".vos-session.zip"
SESSION_FORMAT = "seggpt-vos-session"
EXPORT_KINDS = ("index", "objects", "alpha", "matte", "overlay", "rle")
EXPORT_LABELS = {"index": "index PNGs", "objects": "per-object 0/255 PNGs", "alpha": "RGBA PNGs",
                 "matte": "matte video (FFV1 .mkv)", "overlay": "overlay mp4", "rle": "RLE JSON"}
MAX_OBJECTS = 255  # index PNGs hold ids 1..255
UNDO_DEPTH = 100  # mask changes `undo` can take back
MAX_ADAPT_STEPS = 10_000


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
class _Result:
    labels: bytes  # zlib of the (H, W) uint8 label map
    scores: Dict[int, Optional[float]]  # per object: mean confidence over its pixels (None where empty)
    object_ids: List[int]  # the session's objects when the frame was segmented, in `alpha` order
    #: zlib of the (N, H, W) uint8 soft alpha (`vos.exports.soft_alpha`, default width) of `object_ids`:
    #: 0 or 255 away from the edges, so it packs small; the soft exports are made from it
    alpha: bytes
    #: the ids its label map holds, worked out once when the timeline first asks (`Editor._present`)
    present: Optional[frozenset] = None


@dataclass
class TimelineRow:
    """One object over the video, for the app's timeline: runs of frames in one state each."""

    obj_id: int
    label: str
    color: str  # the object's overlay colour (#rrggbb)
    #: [start, stop) frame ranges with their state: "given" (a mask given there), "present", "empty",
    #: "lost" (in an empty run longer than the threshold) or "none" (not segmented yet, or absent there)
    runs: List[Tuple[int, int, str]]
    lost: List[Tuple[int, int]]  # inclusive [first, last] frames of its lost runs
    empty: int  # frames segmented where it is empty


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


class Editor:
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
        self.results: Dict[int, _Result] = {}
        self._viewer: Optional[FrameSource] = None
        self._frames: "collections.OrderedDict[int, np.ndarray]" = collections.OrderedDict()
        self.origins: Dict[Tuple[int, int], str] = {}  # (frame, object) -> what made its given mask
        self._history: List[_Change] = []
        self._cancel = threading.Event()
        self.last_run_cancelled = False  # whether the last propagation was cancelled (read once it has ended)
        self._busy = threading.Lock()
        self._viewing = threading.Lock()  # the viewer's decoder and cache serve one request at a time

    # ================================================================== files under root
    def inside(self, path: str | Path) -> Path:
        """`path` (relative to root, or absolute) if it lies under root, else InputError."""
        p = Path(path)
        p = (p if p.is_absolute() else self.root / p).resolve()
        if p != self.root and self.root not in p.parents:
            raise InputError(f"{path}: outside the folder this app may read ({self.root})")
        return p

    def _own_folder(self, name: str) -> Path:
        """root/<name> (uploads, exports, sessions), made when missing; never a link (it could point anywhere)."""
        d = self.root / name
        if d.is_symlink() or (d.exists() and not d.is_dir()):
            raise InputError(f"{d}: is a link or not a folder; the app writes its {name} only into a folder of "
                             f"its own there: move it away")
        try:
            d.mkdir(exist_ok=True)
        except OSError as e:
            raise InputError(f"{d}: cannot create the folder ({e.strerror or e})") from None
        return d

    @staticmethod
    def _claim(files: Dict[str, Path]) -> OutputFiles:
        """The app's single files (`seggpt.outputs`): new, or ours unchanged; recorded once written."""
        claimed = claim_files(files, "vos.app", register=False)
        assert claimed is not None
        return claimed

    def media(self, max_depth: int = 3, limit: int = 500) -> List[str]:
        """Videos and folders of frames under root (relative paths), for the file picker."""
        found: List[str] = []
        skip = {self.root / "exports", self.root / "sessions"}

        def walk(d: Path, depth: int) -> None:
            try:
                entries = sorted(d.iterdir())
            except OSError:
                return
            if any(e.suffix.lower() in FRAME_SUFFIXES for e in entries if e.is_file()) and d != self.root:
                found.append(d.relative_to(self.root).as_posix() + "/")
            for e in entries:
                if len(found) >= limit or e.name.startswith("."):
                    continue
                if e.is_symlink() and not is_within(real(e), self.root):
                    continue  # a link under root to elsewhere: never listed (opening it is refused too)
                if e.is_file() and e.suffix.lower() in VIDEO_SUFFIXES:
                    found.append(e.relative_to(self.root).as_posix())
                elif e.is_dir() and depth < max_depth and e not in skip:
                    walk(e, depth + 1)

        walk(self.root, 0)
        return found[:limit]

    def sessions(self) -> List[str]:
        d = self.root / "sessions"
        return sorted(p.name for p in d.glob(f"*{SESSION_SUFFIX}")) if d.is_dir() else []

    # ================================================================== the video
    def open(self, path: str | Path, uploaded: bool = False, fps: Optional[float] = None,
             accept: Optional[Callable[[FrameSource], None]] = None) -> str:
        """Open a video or frame folder under root; an uploaded file is copied to root/uploads first.
        `accept(source)` may refuse the video (InputError) before the open one is replaced."""
        if uploaded:
            src = Path(path)
            dest_dir = self._own_folder("uploads")
            dest = dest_dir / _safe_name(src.name)
            if os.path.lexists(dest) and not written_by_us(dest_dir, dest.name):
                dest = _unused(dest)  # a file of that name that is not ours: kept, the upload gets another name
            claimed = self._claim({"the upload": dest})
            with atomic_path(dest) as tmp:
                shutil.copyfile(src, tmp)
            claimed.finish(0)
            p = dest
        else:
            p = self.inside(path)
        readers: List[FrameSource] = []
        try:
            for _ in range(2):  # a second reader: showing frames while a propagation decodes its own
                readers.append(_open_reader(p, fps))
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
        i = _whole_number(idx, "frame")
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
        obj_id = _whole_number(obj_id, "object id")
        if not 1 <= obj_id <= MAX_OBJECTS:
            raise InputError(f"object ids are 1..{MAX_OBJECTS}, got {obj_id}")
        name = ("" if name is None else str(name)).strip() or f"object {obj_id}"
        if obj_id in self.objects:
            self.objects[obj_id].name = name
        else:
            self.objects[obj_id] = EditorObject(obj_id, name)
        return obj_id

    def rename_object(self, obj_id: int, name: str) -> None:
        self._object(obj_id).name = ("" if name is None else str(name)).strip() or f"object {obj_id}"

    def remove_object(self, obj_id: int) -> None:
        state = self._need_video()
        self._object(obj_id)
        with self._busy_or_error():
            del self.objects[obj_id]
            if obj_id in state.objects:
                self.segmenter.remove_object(state, obj_id)
            self._history = [c for c in self._history if c.obj_id != obj_id]
            self.origins = {k: v for k, v in self.origins.items() if k[1] != obj_id}
            for idx, r in list(self.results.items()):
                if obj_id not in r.object_ids:
                    continue
                labels = self._unpack(r)
                labels[labels == obj_id] = 0
                keep = [k for k, o in enumerate(r.object_ids) if o != obj_id]  # an id used again starts clean
                kept = _Result(self._pack(labels), {o: v for o, v in r.scores.items() if o != obj_id},
                               [r.object_ids[k] for k in keep], self._pack(self._unpack_alpha(r)[keep]))
                self.results[idx] = self._show_given(idx, kept)

    def _show_given(self, frame_idx: int, r: _Result) -> _Result:
        """`r` with the frame's given masks shown where no object is (after an object's pixels were taken
        away: a mask given for another object under them shows again, hard)."""
        labels, alpha = self._unpack(r), self._unpack_alpha(r)
        ids = list(r.object_ids)
        for o, m in self.given(frame_idx).items():
            fill = m & (labels == 0)
            if o in ids and fill.any():
                labels[fill] = o
                alpha[:, fill] = 0
                alpha[ids.index(o)][fill] = 255
        return _Result(self._pack(labels), r.scores, ids, self._pack(alpha))

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
        frame_idx = self.check_frame(frame_idx)
        obj_id = self._object(obj_id).obj_id
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
            scores = dict(old.scores) if old else {}
            scores[obj_id] = 1.0 if m.any() else None
            self.results[frame_idx] = self._drawn(old, labels, scores, obj_id, m)
        return int(m.sum())

    def load_mask(self, frame_idx: int, path: str | Path, obj_id: Optional[int] = None) -> List[int]:
        """A mask image (palette, 0/255 grey or RGB colours) on a frame. A binary mask is `obj_id` (or a new
        object); a label map gives its ids as they are (new ones become objects). Returns the ids set."""
        self._need_video()
        labels, _ = read_mask(path, self.size)
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
        """Brush and eraser strokes (`vos.drawing.parse_strokes`, frame pixels) over what the frame shows for
        the object (`mask_of`: its given mask, else the prediction): the result becomes its given mask.
        Returns the area."""
        self._need_video()
        frame_idx = self.check_frame(frame_idx)
        obj_id = self._object(obj_id).obj_id
        checked = parse_strokes(strokes, self.size)
        if not checked:
            raise InputError("draw on the frame first (the brush adds, the eraser removes)")
        before = self.origin(frame_idx, obj_id)
        origin = "painted" if before in ("none", "painted") else before if before.endswith(", corrected") \
            else f"{before}, corrected"
        return self.set_mask(frame_idx, obj_id, apply_strokes(self.mask_of(frame_idx, obj_id), checked), origin)

    def box_to_mask(self, frame_idx: int, obj_id: int, box: Sequence[float]) -> int:
        """The object inside a box [x0, y0, x1, y1] (frame pixels) by GrabCut (`vos.drawing.mask_from_box`) as
        its given mask on the frame; returns the area (0: GrabCut found nothing: paint it instead)."""
        self._need_video()
        frame_idx = self.check_frame(frame_idx)
        obj_id = self._object(obj_id).obj_id
        mask = mask_from_box(self.frame(frame_idx), parse_box(box, self.size))
        if not mask.any():
            raise InputError("box: GrabCut found no object in the box; draw a tighter box or paint the mask")
        return self.set_mask(frame_idx, obj_id, mask, origin="box (GrabCut)")

    def accept_prediction(self, frame_idx: int, obj_id: int) -> int:
        """The prediction of the object on the frame, as it is, becomes its given mask; returns the area."""
        self._need_video()
        frame_idx = self.check_frame(frame_idx)
        obj_id = self._object(obj_id).obj_id
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
                scores = dict(current.scores) if current else {}
                scores.pop(c.obj_id, None)
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

    # ================================================================== results
    def labels(self, frame_idx: int) -> np.ndarray:
        """The frame's label map (uint8; zeros where no propagation has reached it yet)."""
        r = self.results.get(frame_idx)
        return self._unpack(r) if r else np.zeros(self.size, np.uint8)

    def preview(self, frame_idx: int, hide: Sequence[int] = ()) -> np.ndarray:
        """The frame with every object's overlay but the objects in `hide` (an id or ids)."""
        labels = self.labels(frame_idx)
        hidden = [hide] if is_integer(hide) else [int(h) for h in hide if h is not None]
        if hidden:
            labels = np.where(np.isin(labels, hidden), 0, labels).astype(np.uint8)
        return overlay(self.frame(frame_idx), labels, davis_palette())

    def done_frames(self) -> int:
        return len(self.results)

    def _present(self, r: _Result) -> frozenset:
        if r.present is None:
            r.present = frozenset(int(v) for v in np.unique(self._unpack(r)) if v)
        return r.present

    @property
    def lost_after(self) -> int:
        """More empty frames in a row than this and an object is lost: the rule of `vos.run --lost-after`
        (`vos.exports.lost_after_for`), for this video's length."""
        return lost_after_for(self.num_frames)

    def timeline(self) -> List[TimelineRow]:
        """Per object, where it is given, present, empty, lost or not segmented (`TimelineRow`), so an editor
        sees where to correct. An object exists on the frames whose result has it (from its first mask on,
        and before it where a backward pass reached); lost is the CLI's rule (`lost_after`)."""
        n = self.num_frames
        # snapshots: a propagation adds results meanwhile, and objects may be added from another view
        results, objects = dict(self.results), dict(self.objects)
        given = {a: set(self.given(a)) for a in list(self.annotated_frames())}
        prompts = {o: sorted(a for a in given if o in given[a]) for o in objects}
        report = LostObjectReport({o: obj.name for o, obj in objects.items()}, prompts, self.lost_after)
        for t in sorted(results):
            r = results[t]
            report.add_present(t, set(self._present(r)), [o for o in r.object_ids if o in objects])
        rows = []
        for o, obj in objects.items():
            track = report.tracks[o]
            lost = track.lost_frames(report.after)
            states = []
            for t in range(n):
                if o in given.get(t, ()):
                    states.append("given")
                elif t in lost:
                    states.append("lost")
                elif t in track.empty:
                    states.append("empty")
                elif t in track.frames:
                    states.append("present")
                else:
                    states.append("none")
            runs: List[Tuple[int, int, str]] = []
            for t, state in enumerate(states):
                if runs and runs[-1][2] == state:
                    runs[-1] = (runs[-1][0], t + 1, state)
                else:
                    runs.append((t, t + 1, state))
            lost_runs = [(a, b - 1) for a, b, state in runs if state == "lost"]
            rows.append(TimelineRow(o, obj.label, obj.hex, runs, lost_runs, len(track.empty)))
        return rows

    def playback(self, folder: str | Path, hide: Sequence[int] = (), plays: Optional[Sequence[str]] = None,
                 max_side: int = 1280) -> Tuple[Path, str]:
        """The video with the results blended in (the objects not in `hide`) and each frame's number in its
        corner, in an encoding the page's browser plays (`plays`: the names it reported,
        `vos.writers.playable_encoding`), written to `folder`; frames not segmented yet show plain. At most
        `max_side` pixels on the long side (a preview; the export keeps the full size). Returns the file
        and a line for the status. Frames are read by a reader of its own, one at a time."""
        self._need_video()
        if not folder or not Path(folder).is_dir():
            raise InputError(f"playback: {folder!r} is not a folder")
        if isinstance(hide, (str, bytes)) or not isinstance(hide, (list, tuple, set, frozenset)):
            raise InputError(f"playback: hide is a list of object ids, got {_short(hide)}")
        hidden = {_whole_number(o, "playback: an object id to hide") for o in hide}
        if plays is not None and (isinstance(plays, (str, bytes)) or not isinstance(plays, (list, tuple))
                                  or not all(isinstance(p, str) for p in plays)):
            raise InputError(f"playback: plays is a list of encoding names, got {_short(plays)}")
        max_side = _whole_number(max_side, "playback: max_side")
        if max_side < 16:
            raise InputError(f"playback: max_side is at least 16 pixels, got {max_side}")
        try:
            encoding = playable_encoding(plays)
        except OutputError as e:
            raise InputError(str(e)) from None
        h, w = self.size
        scale = min(1.0, max_side / max(h, w))
        size = (max(2, round(h * scale)), max(2, round(w * scale)))
        path = Path(folder) / f"{Path(self.video_name).stem or 'video'}-playback{encoding.suffix}"
        palette = davis_palette()
        try:
            reader = _open_reader(self.video, self.fps)
        except ValueError as e:  # a VideoError, or fps given for a video file
            raise InputError(str(e)) from None
        try:
            with PlaybackWriter(path, self.fps, size, encoding, palette=palette) as writer:
                for idx, frame in reader.iter_frames(0, self.num_frames):
                    labels = self.labels(idx)
                    if hidden:
                        labels = np.where(np.isin(labels, list(hidden)), 0, labels).astype(np.uint8)
                    shown = overlay(frame, labels, palette)
                    if size != (h, w):
                        shown = cv2.resize(shown, (size[1], size[0]), interpolation=cv2.INTER_AREA)
                    writer.write(_frame_number(shown, idx))
        except OutputError as e:
            raise InputError(str(e)) from None
        finally:
            reader.close()
        segmented = len(self.results)
        note = f"; {self.num_frames - segmented} frame(s) not segmented yet show plain" \
            if segmented < self.num_frames else ""
        short = f" (the video ends after {writer.frames_written} of {self.num_frames})" \
            if writer.frames_written < self.num_frames else ""
        return path, (f"playback of {self.video_name}: {writer.frames_written} frames{short} at {self.fps:g} fps, "
                      f"{encoding.name}{note}")

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
        n = _whole_number(steps, "adaptation steps")
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
        done = 0
        try:
            run = self.segmenter.propagate(state, frame_idx, reverse=reverse, progress=on_adapt, cancel=self._cancel)
            try:
                for r in run:
                    self._keep(r)
                    done += 1
                    yield done, total, r.frame_idx  # the engine ends the pass itself once cancel is set
            finally:
                run.close()
        finally:
            self.last_run_cancelled = self._cancel.is_set()  # before another action may clear the flag
            self._busy.release()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def _keep(self, r) -> None:
        labels = r.labels
        if labels.size and int(labels.max()) > 255:
            raise InputError("object ids above 255 cannot be kept")
        present = set(np.unique(labels).tolist())
        conf = r.confidence
        scores = {o: (round(float(conf[labels == o].mean()), 4) if o in present else None) for o in r.object_ids}
        alpha = soft_alpha(r.margins, DEFAULT_SOFT_WIDTH)
        self.results[r.frame_idx] = _Result(self._pack(labels.astype(np.uint8)), scores, list(r.object_ids),
                                            self._pack(alpha), frozenset(int(o) for o in present if o))

    def _busy_or_error(self):
        editor = self

        class _Guard:
            def __enter__(self):
                if not editor._busy.acquire(blocking=False):
                    raise InputError("a propagation is running: cancel it or wait")

            def __exit__(self, *exc):
                editor._busy.release()

        return _Guard()

    @staticmethod
    def _pack(labels: np.ndarray) -> bytes:
        return zlib.compress(np.ascontiguousarray(labels, dtype=np.uint8).tobytes(), 1)

    def _unpack(self, r: _Result) -> np.ndarray:
        return np.frombuffer(zlib.decompress(r.labels), np.uint8).reshape(self.size).copy()

    def _unpack_alpha(self, r: _Result) -> np.ndarray:
        return np.frombuffer(zlib.decompress(r.alpha), np.uint8).reshape(len(r.object_ids), *self.size).copy()

    def _drawn(self, old: Optional[_Result], labels: np.ndarray, scores: Dict[int, Optional[float]], obj_id: int,
               m: np.ndarray) -> _Result:
        """A frame's result after the user drew `m` for `obj_id`: hard there (alpha 255 on it, 0 for the others
        under it), the model's soft edges elsewhere kept."""
        ids = list(old.object_ids) if old else []
        alpha = self._unpack_alpha(old) if old else np.zeros((0, *self.size), np.uint8)
        if obj_id not in ids:
            ids.append(obj_id)
            alpha = np.concatenate([alpha, np.zeros((1, *self.size), np.uint8)])
        alpha[:, m] = 0
        alpha[ids.index(obj_id)] = np.where(m, 255, 0).astype(np.uint8)
        return _Result(self._pack(labels), scores, ids, self._pack(alpha))

    def _margins(self, r: Optional[_Result], ids: List[int]) -> np.ndarray:
        """(len(ids), H, W) margins giving back the kept alpha (`margins_of_alpha`); -1 (absent) for objects
        not segmented on the frame."""
        out = np.full((len(ids), *self.size), -1.0, np.float32)
        if r is None:
            return out
        margins = margins_of_alpha(self._unpack_alpha(r), DEFAULT_SOFT_WIDTH)
        for k, o in enumerate(ids):
            if o in r.object_ids:
                out[k] = margins[r.object_ids.index(o)]
        return out

    # ================================================================== export
    def export(self, kinds: Sequence[str] = EXPORT_KINDS, progress: Optional[Callable[[int, int], None]] = None,
               soft: bool = False) -> Tuple[Path, str]:
        """Write the chosen outputs for every frame into one zip under root/exports (atomically).
        Frames no propagation reached are exported empty; the message says how many. `soft`: the RGBA
        PNGs and the matte get soft edges from the model's scores (the CLI's `--soft`, default width);
        masks the user drew stay hard. `cancel()` stops it before the next frame: nothing is written."""
        self._need_video()
        if isinstance(kinds, str) or not isinstance(kinds, (list, tuple)):
            raise InputError(f"the outputs to export: a list of {', '.join(EXPORT_KINDS)}")
        kinds = [k for k in kinds if k in EXPORT_KINDS]
        if not kinds:
            raise InputError("choose at least one output to export")
        if not self.objects:
            raise InputError("nothing to export: add an object and give it a mask")
        with self._busy_or_error():
            self._cancel.clear()
            return self._export(kinds, progress, bool(soft))

    def _export(self, kinds: List[str], progress: Optional[Callable[[int, int], None]], soft: bool
                ) -> Tuple[Path, str]:
        out = self._own_folder("exports")
        stamp = time.strftime("%Y%m%d-%H%M%S")
        base = f"{Path(self.video_name).stem or 'video'}-{stamp}"
        work = Path(tempfile.mkdtemp(prefix=f".{base}-", dir=out))
        try:
            spec = ExportSpec(index_dir=work / "masks" if "index" in kinds else None,
                              object_dir=work / "objects" if "objects" in kinds else None,
                              alpha_dir=work / "alpha" if "alpha" in kinds else None,
                              matte=work / "matte.mkv" if "matte" in kinds else None,
                              overlay=work / "overlay.mp4" if "overlay" in kinds else None,
                              rle=work / "rle.json" if "rle" in kinds else None,
                              report=work / "report.json", soft=soft, soft_width=DEFAULT_SOFT_WIDTH)
            names = {o: obj.name for o, obj in sorted(self.objects.items())}
            state = self.state
            prompt_frames: Dict[int, List[int]] = {}
            for a in state.annotations:
                for o in state.annotations.given(a):
                    prompt_frames.setdefault(o, []).append(a)
            exporter = Exporter(spec, size=self.size, fps=self.fps, first_frame=0, frame_name=self._frame_name,
                                names=names, prompt_frames=prompt_frames, palette=davis_palette(),
                                read_frames=self.source.iter_frames, video_name=Path(self.video_name).stem,
                                num_frames=self.num_frames)
            ids = list(names)
            try:
                for idx, frame in self.source.iter_frames(0, self.num_frames):
                    r = self.results.get(idx)
                    labels = self._unpack(r) if r else np.zeros(self.size, np.uint8)
                    result = SimpleNamespace(frame_idx=idx, labels=labels, object_ids=ids, frame=frame,
                                             confidence=None, margins=self._margins(r, ids) if soft else None)
                    existing = [o for o in ids if prompt_frames.get(o) and prompt_frames[o][0] <= idx]
                    exporter.add(result, existing=existing, scores=r.scores if r else {})
                    if progress:
                        progress(idx + 1, self.num_frames)
                    if self._cancel.is_set():
                        raise Cancelled(f"export cancelled after {idx + 1} of {self.num_frames} frames: "
                                        f"nothing was written")
                exporter.close()
            except BaseException:
                exporter.abort()
                raise
            write_json(work / "objects.json", [{"id": o, "name": n, "color": self.objects[o].hex}
                                               for o, n in names.items()])
            zip_path = _unused(out / f"{base}.zip")
            claimed = self._claim({"the export": zip_path})
            zip_folder(work, zip_path)
            claimed.finish(0)
        except OutputError as e:  # a full disk: one line
            raise InputError(str(e)) from None
        finally:
            remove_tree(work)
        missing = self.num_frames - len(self.results)
        note = f"; {missing} frame(s) not propagated yet were exported empty" if missing else ""
        return zip_path, f"exported {', '.join(EXPORT_LABELS[k] for k in kinds)} to {zip_path}{note}"

    def _frame_name(self, idx: int) -> str:
        names = getattr(self.source, "frame_names", None)
        return names[idx] if names else f"{idx:05d}"

    # ================================================================== session files
    def save_session(self, name: str) -> Path:
        """Write root/sessions/<name>.vos-session.zip (module docstring), atomically."""
        state = self._need_video()
        d = self._own_folder("sessions")
        name = "" if name is None else str(name)
        path = d / (_safe_name(name or Path(self.video_name).stem or "session") + SESSION_SUFFIX)
        claimed = self._claim({"the session file": path})  # an earlier save of ours is replaced, nothing else
        notes = []
        with tempfile.TemporaryDirectory(dir=d, prefix=".save-") as tmp:
            for a in state.annotations:
                for o, m in state.annotations[a].given.items():
                    rel = f"masks/{a:05d}_{o:03d}.png"
                    (Path(tmp) / "masks").mkdir(exist_ok=True)
                    save_object_png(Path(tmp) / rel, m)
                    notes.append({"frame": a, "object": o, "mask": rel,
                                  "origin": self.origins.get((a, o), "given")})
            doc = {"format": SESSION_FORMAT, "version": 1, "video": self.video.relative_to(self.root).as_posix(),
                   "fps": self.fps, "objects": [{"id": o.obj_id, "name": o.name} for o in self.objects.values()],
                   "annotations": notes, "settings": {**self.settings, "adapt_steps": self.adapt_steps}}
            (Path(tmp) / "session.json").write_text(json.dumps(doc, indent=1) + "\n")
            zip_folder(tmp, path)
        claimed.finish(0)
        return path

    def open_session(self, name_or_path: str | Path) -> str:
        """Open a session file from root/sessions (or anywhere under root): the video, objects and masks."""
        p = Path(name_or_path)
        p = self.inside(p if p.is_absolute() or len(p.parts) > 1 else Path("sessions") / p)
        try:  # everything read and checked first: a bad session file leaves the open video as it was
            with zipfile.ZipFile(p) as z:
                doc = json.loads(z.read("session.json"))
                if not isinstance(doc, dict) or doc.get("format") != SESSION_FORMAT:
                    raise InputError(f"{p.name}: not a session file")
                settings = doc.get("settings") or {}
                if not isinstance(settings, dict):
                    raise InputError(f"{p.name}: its settings are not a table")
                objects = [(_whole_number(o["id"], "object id"), o.get("name")) for o in doc["objects"]]
                notes = []
                for note in doc["annotations"]:
                    with z.open(note["mask"]) as f:
                        mask = np.array(Image.open(f)) > 127
                    notes.append((_whole_number(note["frame"], "frame"), _whole_number(note["object"], "object"),
                                  mask, str(note.get("origin", "given"))))
            video = self.inside(doc["video"])
        except (OSError, KeyError, ValueError, TypeError, AttributeError, RecursionError, zipfile.BadZipFile) as e:
            if isinstance(e, InputError):
                raise
            raise InputError(f"{p.name}: cannot read the session ({_short(e)})") from None
        steps = settings.get("adapt_steps")
        if steps is not None and not 0 <= _whole_number(steps, "adaptation steps") <= MAX_ADAPT_STEPS:
            raise InputError(f"{p.name}: adaptation steps {steps} out of range")
        ids = {o for o, _ in objects}

        def fits(source: FrameSource) -> None:
            num_frames, size = source.num_frames, tuple(source.size)
            for frame_idx, obj_id, mask, _ in notes:
                if obj_id not in ids or not 0 <= frame_idx < num_frames or mask.shape != size:
                    raise InputError(f"{p.name}: its mask of object {obj_id} on frame {frame_idx} does not fit the "
                                     f"video ({num_frames} frames of {size[1]}x{size[0]})")

        self.open(video, fps=doc.get("fps"), accept=fits)
        for obj_id, name in objects:
            self.add_object(name, obj_id)
        for frame_idx, obj_id, mask, origin in notes:
            self.set_mask(frame_idx, obj_id, mask, origin=origin)
        self._history.clear()  # opening a session is not a change to undo
        if steps is not None:
            self.set_adapt_steps(steps)
        saved = settings.get("weights")
        other = f" (saved with weights {saved}, running {self.settings.get('weights')})" \
            if saved and saved != self.settings.get("weights") else ""
        return f"opened session {p.name}: {self.video_name}, {len(self.objects)} object(s), " \
               f"{len(notes)} mask(s); propagate to see the results{other}"


def _open_reader(path: Path, fps: Optional[float]) -> FrameSource:
    return open_source(str(path), fps=fps) if path.is_dir() else open_source(str(path))


def _frame_number(image: np.ndarray, idx: int) -> np.ndarray:
    """`image` with "frame <idx>" in its top-left corner, white on a dark box: the playback's time is frames."""
    out = np.ascontiguousarray(image).copy()
    h = out.shape[0]
    scale = max(0.35, h / 720)
    thick = max(1, round(scale * 2))
    text = f"frame {idx}"
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    pad = max(2, round(4 * scale))
    cv2.rectangle(out, (0, 0), (tw + 2 * pad, th + base + 2 * pad), (0, 0, 0), -1)
    cv2.putText(out, text, (pad, pad + th), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thick, cv2.LINE_AA)
    return out


def _short(value) -> str:
    """At most 40 characters of `value` for a message (repr can fail: an int of 5,000 digits)."""
    try:
        text = repr(value) if not isinstance(value, BaseException) else str(value)
    except Exception:  # noqa: BLE001 - only a message
        text = type(value).__name__
    return text[:40]


def _whole_number(value, what: str) -> int:
    """`value` as an int when it is a whole number (7, 7.0, "7", numpy's), else one line naming `what`."""
    try:
        f = float(value) if not isinstance(value, (bool, np.bool_)) else math.nan
        whole = math.isfinite(f) and f == int(f)
    except (TypeError, ValueError, OverflowError):
        whole = False
    if not whole:
        raise InputError(f"{what}: expected a whole number, got {_short(value)}")
    return int(f)


def _unused(path: Path) -> Path:
    """`path`, or `stem-2.zip`, `stem-3.zip`, ...: two exports within one second never replace each other."""
    n = 2
    candidate = path
    while os.path.lexists(candidate):
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
        n += 1
    return candidate


def _safe_name(name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "file"
    return name[:120]


__all__ = ["Editor", "EditorError", "EditorObject", "TimelineRow", "EXPORT_KINDS", "EXPORT_LABELS", "SESSION_SUFFIX"]
