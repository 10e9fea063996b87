"""The editor's outputs (`vos.editing.editor.Editor`): the export zip of every frame, and the playback video.

The export writes the chosen outputs (`EXPORT_KINDS`) through the CLI's exporter (`vos.io.exports.Exporter`)
into a work folder under root/exports, then zips it atomically; frames no propagation reached are exported
empty. The playback is the results blended into the video, in an encoding the page's browser plays.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from seggpt.colors import davis_palette
from seggpt.errors import Cancelled, InputError, OutputError
from seggpt.io import overlay

from vos.editing.drawing import short, whole_number
from vos.editing.editor_files import open_reader, unused
from vos.io.exports import DEFAULT_SOFT_WIDTH, ExportSpec, Exporter, write_json, zip_folder
from vos.io.writers import PlaybackWriter, playable_encoding

#: what the export can hold: kind -> (the `ExportSpec` field, its name in the zip, its label in the app)
EXPORTS = {"index": ("index_dir", "masks", "index PNGs"),
           "objects": ("object_dir", "objects", "per-object 0/255 PNGs"),
           "alpha": ("alpha_dir", "alpha", "RGBA PNGs"),
           "matte": ("matte", "matte.mkv", "matte video (FFV1 .mkv)"),
           "overlay": ("overlay", "overlay.mp4", "overlay mp4"),
           "rle": ("rle", "rle.json", "RLE JSON")}
EXPORT_KINDS = tuple(EXPORTS)
EXPORT_LABELS = {k: label for k, (_, _, label) in EXPORTS.items()}


class EditorExport:
    """The part of `Editor` that writes its results out: `export` and `playback`."""

    def playback(self, folder: str | Path, hide: Sequence[int] = (), plays: Optional[Sequence[str]] = None,
                 max_side: int = 1280) -> Tuple[Path, str]:
        """The video with the results blended in (the objects not in `hide`) and each frame's number in its
        corner, in an encoding the page's browser plays (`plays`: the names it reported,
        `vos.io.writers.playable_encoding`), written to `folder`; frames not segmented yet show plain. At most
        `max_side` pixels on the long side (a preview; the export keeps the full size). Returns the file
        and a line for the status. Frames are read by a reader of its own, one at a time."""
        self._need_video()
        if not folder or not Path(folder).is_dir():
            raise InputError(f"playback: {folder!r} is not a folder")
        if isinstance(hide, (str, bytes)) or not isinstance(hide, (list, tuple, set, frozenset)):
            raise InputError(f"playback: hide is a list of object ids, got {short(hide)}")
        hidden = [whole_number(o, "playback: an object id to hide") for o in hide]
        if plays is not None and (isinstance(plays, (str, bytes)) or not isinstance(plays, (list, tuple))
                                  or not all(isinstance(p, str) for p in plays)):
            raise InputError(f"playback: plays is a list of encoding names, got {short(plays)}")
        max_side = whole_number(max_side, "playback: max_side")
        if max_side < 16:
            raise InputError(f"playback: max_side is at least 16 pixels, got {max_side}")
        try:
            encoding = playable_encoding(plays)  # OutputError: no encoding the browser plays
            reader = open_reader(self.video, self.fps)  # a VideoError, or fps given for a video file
        except (OutputError, ValueError) as e:
            raise InputError(str(e)) from None
        h, w = self.size
        scale = min(1.0, max_side / max(h, w))
        size = (max(2, round(h * scale)), max(2, round(w * scale)))
        path = Path(folder) / f"{Path(self.video_name).stem or 'video'}-playback{encoding.suffix}"
        palette = davis_palette()
        try:
            with reader, PlaybackWriter(path, self.fps, size, encoding, palette=palette) as writer:
                for idx, frame in reader.iter_frames(0, self.num_frames):
                    shown = overlay(frame, self._shown_labels(idx, hidden), palette)
                    if size != (h, w):
                        shown = cv2.resize(shown, (size[1], size[0]), interpolation=cv2.INTER_AREA)
                    writer.write(frame_number(shown, idx))
        except OutputError as e:
            raise InputError(str(e)) from None
        segmented = len(self.results)
        note = f"; {self.num_frames - segmented} frame(s) not segmented yet show plain" \
            if segmented < self.num_frames else ""
        ends = f" (the video ends after {writer.frames_written} of {self.num_frames})" \
            if writer.frames_written < self.num_frames else ""
        return path, (f"playback of {self.video_name}: {writer.frames_written} frames{ends} at {self.fps:g} fps, "
                      f"{encoding.name}{note}")

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
            spec = ExportSpec(**{field: work / name for k, (field, name, _) in EXPORTS.items() if k in kinds},
                              report=work / "report.json", soft=soft, soft_width=DEFAULT_SOFT_WIDTH)
            names = {o: obj.name for o, obj in sorted(self.objects.items())}
            state = self.state
            prompt_frames = {o: [a for a in state.annotations if o in state.annotations.given(a)] for o in names}
            exporter = Exporter(spec, size=self.size, fps=self.fps, first_frame=0, frame_name=self._frame_name,
                                names=names, prompt_frames=prompt_frames, palette=davis_palette(),
                                read_frames=self.source.iter_frames, video_name=Path(self.video_name).stem,
                                num_frames=self.num_frames)
            ids = list(names)
            try:
                for idx, frame in self.source.iter_frames(0, self.num_frames):
                    r = self.results.get(idx)
                    result = SimpleNamespace(frame_idx=idx, labels=self.labels(idx), object_ids=ids, frame=frame,
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
            zip_path = unused(out / f"{base}.zip")
            claimed = self._claim({"the export": zip_path})
            zip_folder(work, zip_path)
            claimed.finish(0)
        except OutputError as e:  # a full disk: one line
            raise InputError(str(e)) from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        missing = self.num_frames - len(self.results)
        note = f"; {missing} frame(s) not propagated yet were exported empty" if missing else ""
        return zip_path, f"exported {', '.join(EXPORT_LABELS[k] for k in kinds)} to {zip_path}{note}"

    def _frame_name(self, idx: int) -> str:
        names = getattr(self.source, "frame_names", None)
        return names[idx] if names else f"{idx:05d}"


def frame_number(image: np.ndarray, idx: int) -> np.ndarray:
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
