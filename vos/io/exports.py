"""Outputs for editors and tools: per-object 0/255 PNGs, RGBA PNGs, matte videos, soft alpha, COCO RLE
JSON and the lost-object report; `Exporter` writes any of them (and the index PNGs and the overlay)
from a stream of `FrameResult`s. The CLI (`vos.run`) and the web app (`vos.app`) both use it.

Every file is written under a temporary name and renamed (`seggpt.io.atomic_path`).

Each output has its own module, which says its format: the alpha mattes and their PNGs (hard and
soft, ``--soft``, ``--alpha``, ``--object-masks``): `vos.io.alpha`; the matte video (``--matte``):
`vos.io.matte`; COCO RLE JSON (``--rle``): `vos.io.rle`; the lost-object report (``--report``,
``--lost-after``): `vos.io.lost_objects`. This module is the exporter that writes them all, and the
names of those modules that editors and tools import from here.
"""
from __future__ import annotations

import contextlib
import json
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np

from seggpt.errors import InputError
from seggpt.io import OutputError, atomic_path, atomic_write_text, ensure_output_dir, overlay, save_index_png
from vos.io.alpha import (DEFAULT_SOFT_WIDTH, MIN_SOFT_WIDTH, alpha_path, hard_alpha, margins_of_alpha, result_alpha,
                          save_object_png, save_rgba_png, soft_alpha)
from vos.io.lost_objects import MAX_LOST_AFTER, LostObjectReport, ObjectTrack, lost_after_for  # noqa: F401
from vos.io.matte import MATTE_SUFFIXES, MatteVideoWriter, check_matte_path, read_matte  # noqa: F401
from vos.io.rle import RLE_FORMAT, RLE_VERSION, frame_objects_rle, require_rle, rle_decode, rle_encode
from vos.io.writers import BackgroundWriter, OverlayVideoWriter


@dataclass
class ExportSpec:
    """Which outputs to write, and where (None: not written)."""

    index_dir: Optional[Path] = None  # index PNGs (pixel = object id)
    object_dir: Optional[Path] = None  # <object_dir>/<id:03d>/<frame>.png, 0/255
    alpha_dir: Optional[Path] = None  # RGBA PNGs (layout: `vos.io.alpha`)
    matte: Optional[Path] = None  # .mkv (FFV1) or .mov (ProRes 4444)
    overlay: Optional[Path] = None  # overlay mp4
    rle: Optional[Path] = None  # COCO RLE JSON
    report: Optional[Path] = None  # lost-object report JSON
    soft: bool = False
    soft_width: float = DEFAULT_SOFT_WIDTH
    lost_after: Optional[int] = None  # None: fits the clip (`lost_after_for` the exporter's num_frames)

    def check_values(self) -> "ExportSpec":
        """The values alone (suffixes known, pycocotools there, widths valid): nothing is created."""
        if self.matte is not None:
            check_matte_path(self.matte)
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
        files = [Path(f).resolve().parent for f in (self.matte, self.overlay, self.rle, self.report) if f is not None]
        for d in [d for d in (self.index_dir, self.object_dir, self.alpha_dir) if d is not None] + files:
            ensure_output_dir(d)
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
        if self._overlay is not None or self._matte is not None:  # the videos
            matte = None
            if self._matte is not None:  # with a matte, the alpha is made above
                matte = alpha.max(axis=0) if len(alpha) else np.zeros(self.size, np.uint8)
            self._video(idx, labels, matte, result.frame)
        self.frames += 1

    # ------------------------------------------------------------------ videos, in frame order
    def _video(self, idx: int, labels: np.ndarray, matte: Optional[np.ndarray], frame: Optional[np.ndarray]) -> None:
        if idx == self._next_video and frame is not None:
            self._writer.submit(self._write_video_frame, frame, labels, matte)
            self._next_video += 1
        elif idx < self._next_video:
            raise InputError(f"frame {idx} came after frame {self._next_video - 1} was written to the videos")
        else:
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
            for v in (self._overlay, self._matte):
                if v is not None:
                    v.close()
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
        with contextlib.suppress(BaseException):  # already failing
            self._writer.close()
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
        atomic_write_text(path, json.dumps(doc, indent=indent, separators=None if indent else (",", ":")) + "\n")
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


__all__ = ["ExportSpec", "Exporter", "LostObjectReport", "MatteVideoWriter", "hard_alpha", "soft_alpha", "margins_of_alpha",
           "result_alpha", "save_object_png", "save_rgba_png", "alpha_path", "read_matte", "rle_encode", "rle_decode",
           "require_rle", "frame_objects_rle", "write_json", "zip_folder", "DEFAULT_SOFT_WIDTH", "MAX_LOST_AFTER",
           "lost_after_for"]
