"""Outputs for editors and tools: per-object 0/255 PNGs, RGBA PNGs, matte videos, soft alpha, COCO RLE
JSON and the lost-object report; `Exporter` writes any of them (and the index PNGs and the overlay)
from a stream of `FrameResult`s. The CLI (`vos.run`) and the web app (`vos.app`) both use it.

Every file is written under a temporary name and renamed (`vos.writers.atomic_path`).

Alpha, hard and soft (`--soft`):
* hard: 255 where the pixel's label is the object, else 0 (the index PNGs exactly);
* soft: from the model's per-object scores at frame resolution (`FrameResult.margins`: the object's
  score minus the best other label's, normalised to [-1, 1], positive exactly on the object), mapped
  linearly around the decision boundary: ``alpha = clip(0.5 + margin / (2 * width), 0, 1)``, width
  0.2 by default (`--soft-width`, at least 0.001). So alpha is 0.5 on the boundary, 1 where the margin is >= width,
  0 where it is <= -width, and ``alpha >= 128`` gives back the hard mask (ties aside). Masks given by
  the user are hard (margin 1). The model works at a low resolution (448x448, or 64x64 for our small
  model) and its scores are resized bilinearly, so the edge is as soft as one model pixel is wide.

RGBA PNG layout (`--alpha DIR`): with one object, ``DIR/<frame>.png``; with several, one folder per
object, ``DIR/<id:03d>/<frame>.png``. RGB is the frame, A the object's alpha.

Matte video (`--matte OUT`): the alpha of every object together (per pixel the largest) as a grey
video at the source fps: ``.mkv`` is FFV1 (lossless, 8-bit grey: reads back exactly), ``.mov`` is
ProRes 4444 (``prores_ks``, 10-bit 4:4:4 with alpha: the matte is the picture and the alpha channel;
ProRes is not lossless: it reads back within a few levels of 255).

RLE JSON (`--rle OUT.json`), COCO's run-length encoding per object per frame (pycocotools, the
`coco` extra)::

    {"format": "seggpt-vos-rle", "version": 1, "video": "judo", "width": 854, "height": 480,
     "fps": 24.0, "num_frames": 16,
     "objects": [{"id": 1, "name": "object 1", "prompt_frames": [0], "frames": 16,
                  "empty_frames": [[3, 5]], "empty": 3, "longest_empty_run": 3, "lost": false}, ...],
     "frames": [{"frame_idx": 0, "name": "00000",
                 "objects": [{"id": 1, "segmentation": {"size": [480, 854], "counts": "..."},
                              "area": 5321, "bbox": [x, y, w, h], "score": 0.97}, ...]}, ...]}

Each frame lists the objects that exist there (from the first frame each is given on; before it an
object is absent and not listed); an empty object has area 0, bbox null and score null. ``score`` is
the mean of `FrameResult.confidence` over the object's pixels (1 on masks the user gave).
``empty_frames`` are inclusive [first, last] ranges.

Lost-object report: an object whose mask on its prompt frame is not empty, but is empty on more than
`lost_after` consecutive frames, is reported lost: a warning, the summary line, and ``lost: true`` in
the JSON. The threshold fits the clip unless given (`--lost-after`): `lost_after_for` (the app's
timeline uses the same rule).
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from seggpt.errors import InputError
from seggpt.io import OutputError, VideoFileWriter, atomic_path, ensure_output_dir, overlay, save_index_png, save_png
from vos.writers import BackgroundWriter, OverlayVideoWriter

logger = logging.getLogger(__name__)

DEFAULT_SOFT_WIDTH = 0.2
#: the narrowest soft edge (a score margin): narrower is a hard edge, and 1 / (2 width) overflows near 0
MIN_SOFT_WIDTH = 1e-3
#: the lost-object threshold of a long (or unknown-length) video: more than this many empty frames in a row
MAX_LOST_AFTER = 10
RLE_FORMAT = "seggpt-vos-rle"
RLE_VERSION = 1
MATTE_SUFFIXES = (".mkv", ".mov")


# --------------------------------------------------------------------------- alpha


def hard_alpha(labels: np.ndarray, object_ids: Sequence[int]) -> np.ndarray:
    """(N, H, W) uint8: 255 where the label is the object, else 0."""
    ids = np.asarray(list(object_ids), dtype=np.int64).reshape(-1, 1, 1)
    return ((np.asarray(labels)[None] == ids) * 255).astype(np.uint8)


def soft_alpha(margins: np.ndarray, width: float = DEFAULT_SOFT_WIDTH) -> np.ndarray:
    """Margins in [-1, 1] (`FrameResult.margins`) -> uint8 alpha: ``clip(0.5 + margin / (2 width), 0, 1)``."""
    if not MIN_SOFT_WIDTH <= width <= 1:
        raise InputError(f"soft width must be in [{MIN_SOFT_WIDTH:g}, 1], got {width}")
    a = np.clip(0.5 + np.asarray(margins, np.float32) / (2.0 * width), 0.0, 1.0)
    return np.rint(a * 255.0).astype(np.uint8)


def margins_of_alpha(alpha: np.ndarray, width: float = DEFAULT_SOFT_WIDTH) -> np.ndarray:
    """The inverse of `soft_alpha`: margins that it maps back to `alpha` exactly (the centres of its uint8
    steps), for results kept as alpha only (the web app's session)."""
    return (np.asarray(alpha, np.float32) / 255.0 - 0.5) * 2.0 * width


def result_alpha(result, soft: bool, width: float = DEFAULT_SOFT_WIDTH) -> np.ndarray:
    """(N, H, W) uint8 alpha of every object of a FrameResult, hard or soft (module docstring)."""
    if soft:
        return soft_alpha(result.margins, width)
    return hard_alpha(result.labels, result.object_ids)


# --------------------------------------------------------------------------- PNGs


def save_object_png(path: str | os.PathLike, mask: np.ndarray) -> None:
    """One object's mask as an 8-bit grey PNG holding 0 and 255 (every tool reads 255 as 'in')."""
    from PIL import Image

    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"{path}: a mask must be (H, W), got {m.shape}")
    save_png(path, Image.fromarray(np.where(m.astype(bool), 255, 0).astype(np.uint8), mode="L"))


def save_rgba_png(path: str | os.PathLike, frame: np.ndarray, alpha: np.ndarray) -> None:
    """RGB frame + (H, W) uint8 alpha -> an RGBA PNG."""
    from PIL import Image

    f, a = np.asarray(frame), np.asarray(alpha)
    if f.ndim != 3 or f.shape[2] != 3 or a.shape != f.shape[:2]:
        raise ValueError(f"{path}: frame {f.shape} and alpha {a.shape} do not match")
    save_png(path, Image.fromarray(np.dstack([f.astype(np.uint8), a.astype(np.uint8)]), mode="RGBA"))


def alpha_path(folder: Path, obj_id: int, frame_name: str, several: bool) -> Path:
    """Where an RGBA PNG goes (the layout of the module docstring)."""
    return (folder / f"{obj_id:03d}" / f"{frame_name}.png") if several else folder / f"{frame_name}.png"


# --------------------------------------------------------------------------- matte video


class MatteVideoWriter(VideoFileWriter):
    """Grey mattes (H, W) uint8 -> a lossless FFV1 .mkv or a ProRes 4444 .mov, atomically (module docstring)."""

    what = "matte video"

    def __init__(self, path: str | os.PathLike, fps: float, size: Tuple[int, int]) -> None:
        suffix = Path(path).suffix.lower()
        if suffix not in MATTE_SUFFIXES:
            raise InputError(f"{path}: a matte video is .mkv (FFV1, lossless) or .mov (ProRes 4444)")
        if not fps or fps <= 0:
            raise InputError(f"{path}: fps must be positive, got {fps}")
        self.prores = suffix == ".mov"
        super().__init__(path, fps, size)

    def _add_stream(self, av: Any) -> Any:
        if self.prores:
            stream = self._container.add_stream("prores_ks", rate=self.rate, options={"profile": "4"})
            stream.pix_fmt = "yuva444p10le"
        else:
            stream = self._container.add_stream("ffv1", rate=self.rate, options={"level": "3"})
            stream.pix_fmt = "gray"
        stream.height, stream.width = self.size
        return stream

    def _to_frame(self, av: Any, matte: np.ndarray) -> Any:
        if matte.shape != self.size or matte.dtype != np.uint8:
            raise ValueError(f"{self.path}: expected a {self.size[0]}x{self.size[1]} uint8 matte, "
                             f"got {matte.shape} {matte.dtype}")
        if self.prores:
            return av.VideoFrame.from_ndarray(np.ascontiguousarray(np.dstack([matte] * 4)), format="rgba")
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(matte), format="gray")


def read_matte(path: str | os.PathLike) -> np.ndarray:
    """A matte video back as (T, H, W) uint8 (the alpha channel of a ProRes 4444 file, the grey of FFV1)."""
    import av

    out = []
    with av.open(str(path)) as c:
        for f in c.decode(video=0):
            if f.format.name.startswith("yuva"):
                out.append(f.to_ndarray(format="rgba")[:, :, 3])
            else:
                out.append(f.to_ndarray(format="gray"))
    return np.stack(out) if out else np.zeros((0, 0, 0), np.uint8)


# --------------------------------------------------------------------------- COCO RLE


def _mask_utils():
    try:
        from pycocotools import mask as mask_utils
    except ImportError:
        raise InputError("RLE output needs pycocotools: pip install 'seggpt-vos[coco]'") from None
    return mask_utils


def require_rle() -> None:
    """InputError (one line naming the extra) where pycocotools is missing: check before any inference."""
    _mask_utils()


def rle_encode(mask: np.ndarray) -> dict:
    """(H, W) bool -> COCO compressed RLE {"size": [H, W], "counts": str} (pycocotools' encoding)."""
    rle = _mask_utils().encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_decode(rle: Mapping) -> np.ndarray:
    """The inverse of `rle_encode`: (H, W) bool."""
    r = {"size": list(rle["size"]), "counts": rle["counts"].encode("ascii") if isinstance(rle["counts"], str)
         else rle["counts"]}
    import warnings

    with warnings.catch_warnings():  # pycocotools' own numpy 2 DeprecationWarning (copy=False), not ours
        warnings.simplefilter("ignore", DeprecationWarning)
        return _mask_utils().decode(r).astype(bool)


def _bbox(mask: np.ndarray) -> Optional[List[int]]:
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if not len(ys):
        return None
    return [int(xs[0]), int(ys[0]), int(xs[-1] - xs[0] + 1), int(ys[-1] - ys[0] + 1)]


def frame_objects_rle(labels: np.ndarray, confidence: Optional[np.ndarray], object_ids: Iterable[int],
                      scores: Optional[Mapping[int, Optional[float]]] = None) -> List[dict]:
    """The RLE JSON entries of one frame (module docstring) for the objects `object_ids`; `scores`, where
    given, are the objects' scores already computed (else the mean confidence over each object)."""
    out = []
    for o in object_ids:
        m = labels == o
        area = int(m.sum())
        score = None
        if area and scores is not None:
            score = scores.get(o)
        elif area and confidence is not None:
            score = round(float(confidence[m].mean()), 4)
        out.append({"id": int(o), "segmentation": rle_encode(m), "area": area, "bbox": _bbox(m), "score": score})
    return out


# --------------------------------------------------------------------------- lost objects


def lost_after_for(num_frames: Optional[int]) -> int:
    """The lost-object threshold that fits a clip of `num_frames`: min(10, max(2, frames // 8)).

    A fixed 10 never flagged anything on a short clip (an object gone for the last 7 of 16 frames);
    a clip of 16 frames flags 3 empty frames in a row, one of 80 frames or more 11. At least 2, so one
    or two frames of a missed thin part do not count as lost. Unknown length: 10. One rule for the
    CLI (`--lost-after`, its default) and the app's timeline.
    """
    if num_frames is None or num_frames <= 0:
        return MAX_LOST_AFTER
    return min(MAX_LOST_AFTER, max(2, int(num_frames) // 8))



def _ranges(frames: Sequence[int]) -> List[List[int]]:
    out: List[List[int]] = []
    for f in sorted(frames):
        if out and f == out[-1][1] + 1:
            out[-1][1] = f
        else:
            out.append([f, f])
    return out


@dataclass
class ObjectTrack:
    """What happened to one object over the frames processed."""

    obj_id: int
    name: str
    prompt_frames: List[int] = field(default_factory=list)
    frames: Set[int] = field(default_factory=set)  # processed frames where the object exists
    empty: Set[int] = field(default_factory=set)  # ... and where its mask is empty
    prompt_empty: bool = False  # its mask on its (first) prompt frame is empty (nothing to lose)

    def longest_empty_run(self) -> int:
        return max((b - a + 1 for a, b in _ranges(list(self.empty))), default=0)

    def lost(self, after: int) -> bool:
        return not self.prompt_empty and self.longest_empty_run() > after

    def lost_frames(self, after: int) -> Set[int]:
        """The frames of every empty run longer than `after` (none when its prompt mask is empty)."""
        if self.prompt_empty:
            return set()
        return {f for a, b in _ranges(list(self.empty)) if b - a + 1 > after for f in range(a, b + 1)}

    def as_json(self, after: int) -> dict:
        return {"id": self.obj_id, "name": self.name, "prompt_frames": sorted(self.prompt_frames),
                "frames": len(self.frames), "empty_frames": _ranges(list(self.empty)), "empty": len(self.empty),
                "longest_empty_run": self.longest_empty_run(), "lost": self.lost(after)}


class LostObjectReport:
    """Per object, the frames where it exists but is empty; lost = empty on more than `after` frames in a row."""

    def __init__(self, names: Mapping[int, str], prompt_frames: Mapping[int, Sequence[int]],
                 after: int = MAX_LOST_AFTER):
        if after < 0:
            raise InputError(f"lost-after must be >= 0, got {after}")
        self.after = after
        self.tracks: Dict[int, ObjectTrack] = {
            o: ObjectTrack(o, names.get(o, f"object {o}"), sorted(prompt_frames.get(o, []))) for o in names}

    def add(self, frame_idx: int, labels: np.ndarray, existing: Iterable[int]) -> None:
        """One frame's label map; `existing`: the objects that exist there (absent ones are not empty)."""
        self.add_present(frame_idx, set(np.unique(labels).tolist()), existing)

    def add_present(self, frame_idx: int, present: Set[int], existing: Iterable[int]) -> None:
        """One frame, as the ids its label map holds (`add` without the map: the app keeps them per frame)."""
        for o in existing:
            t = self.tracks.get(o)
            if t is None:
                continue
            t.frames.add(frame_idx)
            if o not in present:
                t.empty.add(frame_idx)
                if t.prompt_frames and frame_idx == t.prompt_frames[0]:
                    t.prompt_empty = True
            else:
                t.empty.discard(frame_idx)

    def lost(self) -> List[ObjectTrack]:
        return [t for t in self.tracks.values() if t.lost(self.after)]

    def summary(self) -> str:
        """One clause for the summary line: every object with empty frames, and the lost ones."""
        parts = []
        for t in self.tracks.values():
            if t.empty:
                spans = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in _ranges(list(t.empty)))
                parts.append(f"object {t.obj_id} empty on {len(t.empty)} frame(s) ({spans})"
                             + (" LOST" if t.lost(self.after) else ""))
        return "; ".join(parts) if parts else "no object lost"

    def warnings(self) -> List[str]:
        return [f"object {t.obj_id} ({t.name}) is empty on {t.longest_empty_run()} frames in a row "
                f"(more than {self.after}): it is probably lost; give a mask where it reappears"
                for t in self.lost()]

    def as_json(self) -> List[dict]:
        return [t.as_json(self.after) for t in self.tracks.values()]


# --------------------------------------------------------------------------- one exporter for everything


@dataclass
class ExportSpec:
    """Which outputs to write, and where (None: not written)."""

    index_dir: Optional[Path] = None  # index PNGs (pixel = object id)
    object_dir: Optional[Path] = None  # <object_dir>/<id:03d>/<frame>.png, 0/255
    alpha_dir: Optional[Path] = None  # RGBA PNGs (layout in the module docstring)
    matte: Optional[Path] = None  # .mkv (FFV1) or .mov (ProRes 4444)
    overlay: Optional[Path] = None  # overlay mp4
    rle: Optional[Path] = None  # COCO RLE JSON
    report: Optional[Path] = None  # lost-object report JSON
    soft: bool = False
    soft_width: float = DEFAULT_SOFT_WIDTH
    lost_after: Optional[int] = None  # None: fits the clip (`lost_after_for` the exporter's num_frames)

    def check_values(self) -> "ExportSpec":
        """The values alone (suffixes known, pycocotools there, widths valid): nothing is created."""
        if self.matte is not None and Path(self.matte).suffix.lower() not in MATTE_SUFFIXES:
            raise InputError(f"{self.matte}: a matte video is .mkv (FFV1, lossless) or .mov (ProRes 4444)")
        if not MIN_SOFT_WIDTH <= self.soft_width <= 1:  # NaN fails too
            raise InputError(f"--soft-width must be in [{MIN_SOFT_WIDTH:g}, 1] (a margin; below {MIN_SOFT_WIDTH:g} "
                             f"the edge is hard: leave out --soft), got {self.soft_width}")
        if self.lost_after is not None and self.lost_after < 0:
            raise InputError(f"--lost-after must be >= 0, got {self.lost_after}")
        if self.rle is not None:
            require_rle()
        return self

    def check(self) -> "ExportSpec":
        """Fail before any inference: the values (`check_values`), then every folder made and writable."""
        self.check_values()
        for d in (self.index_dir, self.object_dir, self.alpha_dir):
            if d is not None:
                ensure_output_dir(d)
        for f in (self.matte, self.overlay, self.rle, self.report):
            if f is not None:
                ensure_output_dir(Path(f).resolve().parent)
        return self


FrameReader = Callable[[int, int], Iterator[Tuple[int, np.ndarray]]]


class Exporter:
    """FrameResults in (any order), every output of an `ExportSpec` out.

    Per-frame files are written on a background thread as results come. The videos need frames in
    order: results that come out of order (a backward pass) are kept, compressed, until the frames
    before them are done, then the frames are read again with `read_frames(start, stop)` (one
    sequential decode) to compose them.

    `existing(frame_idx)` names the objects that exist on a frame (the lost-object report and the RLE
    JSON list those); by default every object of the result.
    """

    def __init__(self, spec: ExportSpec, *, size: Tuple[int, int], fps: float, first_frame: int,
                 frame_name: Callable[[int], str], names: Mapping[int, str],
                 prompt_frames: Mapping[int, Sequence[int]], palette: Optional[np.ndarray] = None,
                 read_frames: Optional[FrameReader] = None, video_name: str = "",
                 num_frames: Optional[int] = None):
        self.spec = spec.check()
        self.size = tuple(size)
        self.fps = fps
        self.frame_name = frame_name
        self.names = dict(names)
        self.palette = palette
        self.read_frames = read_frames
        self.video_name = video_name
        self.num_frames = num_frames
        self.several = len(self.names) > 1
        self.report = LostObjectReport(self.names, prompt_frames, spec.lost_after if spec.lost_after is not None
                                       else lost_after_for(num_frames))
        self._rle_frames: Dict[int, dict] = {}
        self._next_video = first_frame
        self._pending: Dict[int, Tuple[bytes, Optional[bytes]]] = {}
        self._writer = BackgroundWriter(maxsize=32, name="vos-exports")
        self._overlay = OverlayVideoWriter(spec.overlay, fps, self.size) if spec.overlay else None
        self._matte = MatteVideoWriter(spec.matte, fps, self.size) if spec.matte else None
        self.frames = 0

    @property
    def needs_video(self) -> bool:
        return self._overlay is not None or self._matte is not None

    def add(self, result, existing: Optional[Iterable[int]] = None,
            scores: Optional[Mapping[int, Optional[float]]] = None) -> None:
        """One frame's result (a FrameResult, or anything with its frame_idx, labels, object_ids, confidence,
        frame and margins); `scores` per object, where already known, spare the confidence map."""
        idx, labels = result.frame_idx, result.labels
        ids = list(self.names)  # every exported object, also those the result does not know (absent: empty)
        known = set(result.object_ids)
        there = known if existing is None else set(existing)
        existing = [o for o in ids if o in there]
        name = self.frame_name(idx)
        spec = self.spec
        self.report.add(idx, labels, existing)
        if spec.index_dir is not None:
            self._writer.submit(save_index_png, spec.index_dir / f"{name}.png", labels, self.palette)
        if spec.object_dir is not None:
            for o in ids:
                path = spec.object_dir / f"{o:03d}" / f"{name}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                self._writer.submit(save_object_png, path, labels == o)
        alpha = None
        if spec.alpha_dir is not None or self._matte is not None:
            if spec.soft:
                margins = result.margins
                rows = [margins[result.object_ids.index(o)] if o in known else np.full(self.size, -1.0, np.float32)
                        for o in ids]
                alpha = soft_alpha(np.stack(rows), spec.soft_width)
            else:
                alpha = hard_alpha(labels, ids)
        if spec.alpha_dir is not None:
            if result.frame is None:
                raise InputError(f"frame {idx}: the RGBA PNGs need the frame itself")
            for k, o in enumerate(ids):
                path = alpha_path(spec.alpha_dir, o, name, self.several)
                path.parent.mkdir(parents=True, exist_ok=True)
                self._writer.submit(save_rgba_png, path, result.frame, alpha[k])
        if spec.rle is not None:
            conf = None if scores is not None else result.confidence
            self._rle_frames[idx] = {"frame_idx": int(idx), "name": name,
                                     "objects": frame_objects_rle(labels, conf, existing, scores)}
        if self.needs_video:
            matte = None
            if self._matte is not None:
                matte = alpha.max(axis=0) if alpha is not None and len(alpha) else np.zeros(self.size, np.uint8)
            self._video(idx, labels, matte, result.frame)
        self.frames += 1

    # ------------------------------------------------------------------ videos, in frame order
    def _video(self, idx: int, labels: np.ndarray, matte: Optional[np.ndarray], frame: Optional[np.ndarray]) -> None:
        if idx == self._next_video and frame is not None:
            self._writer.submit(self._write_video_frame, frame, labels, matte)
            self._next_video += 1
            self._flush_pending()
            return
        if idx < self._next_video:
            raise InputError(f"frame {idx} came after frame {self._next_video - 1} was written to the videos")
        self._pending[idx] = (zlib.compress(np.ascontiguousarray(labels, dtype=np.uint8).tobytes(), 1),
                              None if matte is None else zlib.compress(matte.tobytes(), 1))
        self._flush_pending()

    def _flush_pending(self) -> None:
        if self._next_video not in self._pending:
            return
        stop = self._next_video
        while stop in self._pending:
            stop += 1
        if self.read_frames is None:
            raise InputError("frames came out of order and cannot be read again for the videos")
        for idx, frame in self.read_frames(self._next_video, stop):
            lab_bytes, matte_bytes = self._pending.pop(idx)
            labels = np.frombuffer(zlib.decompress(lab_bytes), np.uint8).reshape(self.size)
            matte = None if matte_bytes is None else np.frombuffer(zlib.decompress(matte_bytes), np.uint8).reshape(self.size)
            self._writer.submit(self._write_video_frame, frame, labels, matte)
            self._next_video = idx + 1

    def _write_video_frame(self, frame: np.ndarray, labels: np.ndarray, matte: Optional[np.ndarray]) -> None:
        if self._overlay is not None:
            self._overlay.write(overlay(frame, labels, self.palette))
        if self._matte is not None:
            self._matte.write(matte)

    # ------------------------------------------------------------------ the end
    def close(self) -> dict:
        """Finish every file (re-raises the first write error); returns the report as a dict."""
        try:
            self._writer.close()
            if self._pending:
                missing = sorted(self._pending)[0]
                raise InputError(f"the videos stop at frame {self._next_video - 1}: frame {self._next_video} has no "
                                 f"result (frames up to {missing} wait for it)")
            if self._overlay is not None:
                self._overlay.close()
            if self._matte is not None:
                self._matte.close()
        except BaseException:
            self.abort()
            raise
        report = {"objects": self.report.as_json(), "frames": self.frames, "lost_after": self.report.after}
        if self.spec.rle is not None:
            self._write_rle()
        if self.spec.report is not None:
            write_json(self.spec.report, report)
        return report

    def abort(self) -> None:
        try:
            self._writer.close()
        except BaseException:  # noqa: BLE001 - already failing
            pass
        for v in (self._overlay, self._matte):
            if v is not None:
                v.abort()

    def _write_rle(self) -> None:
        h, w = self.size
        doc = {"format": RLE_FORMAT, "version": RLE_VERSION, "video": self.video_name, "width": int(w),
               "height": int(h), "fps": float(self.fps), "num_frames": self.num_frames,
               "objects": self.report.as_json(),
               "frames": [self._rle_frames[i] for i in sorted(self._rle_frames)]}
        write_json(self.spec.rle, doc, indent=None)


def write_json(path: str | os.PathLike, doc, indent: Optional[int] = 1) -> None:
    """JSON, atomically (indent None: compact, one line)."""
    try:
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(doc, indent=indent, separators=None if indent else (",", ":")) + "\n")
    except OutputError:
        raise
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from exc


def zip_folder(folder: str | os.PathLike, out_zip: str | os.PathLike) -> Path:
    """Every file under `folder` into a zip at `out_zip` (paths relative to `folder`), atomically."""
    import zipfile

    folder = Path(folder)
    with atomic_path(out_zip) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            for p in sorted(folder.rglob("*")):
                if p.is_file():
                    z.write(p, p.relative_to(folder).as_posix())
    return Path(out_zip)


def remove_tree(path: str | os.PathLike) -> None:
    shutil.rmtree(path, ignore_errors=True)


__all__ = ["ExportSpec", "Exporter", "LostObjectReport", "MatteVideoWriter", "hard_alpha", "soft_alpha", "margins_of_alpha",
           "result_alpha", "save_object_png", "save_rgba_png", "alpha_path", "read_matte", "rle_encode", "rle_decode",
           "require_rle", "frame_objects_rle", "write_json", "zip_folder", "DEFAULT_SOFT_WIDTH", "MAX_LOST_AFTER",
           "lost_after_for"]
