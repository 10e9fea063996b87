"""The editor's files (`vos.editing.editor.Editor`): what it may read under its root folder, the folders it writes, names
that never replace a file it did not write, the file picker's listing, and the session files.

The editor reads server-side files only under `root` (the folder named when the app starts); uploads are
copied to `root/uploads/`, exports go to `root/exports/`, session files to `root/sessions/`. Every file is
written atomically, and only over a file of ours (`seggpt.outputs`).

A session file (`.vos-session.zip`) holds `session.json` (the video, relative to `root`; the objects with
their names and colours; the settings) and every mask given, as 0/255 PNGs. Results are not saved: open the
session and propagate again.
"""
from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from PIL import Image

from seggpt.errors import InputError
from seggpt.io import atomic_path
from seggpt.outputs import OutputFiles, claim_files, is_within, real, written_by_us

from vos.editing.drawing import short, whole_number
from vos.io.exports import save_object_png, zip_folder
from vos.io.video import FrameSource, open_source

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SESSION_SUFFIX = ".vos-session.zip"
SESSION_FORMAT = "seggpt-vos-session"
MAX_ADAPT_STEPS = 10_000  # the most adaptation steps `Editor.set_adapt_steps` (and a session file) may set


class RootFiles:
    """The part of `Editor` that deals in files under `self.root`: reading, listing, session files."""

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

    def _upload(self, path: str | Path) -> Path:
        """An uploaded file copied into root/uploads (atomically); returns the copy."""
        src = Path(path)
        dest_dir = self._own_folder("uploads")
        dest = dest_dir / safe_name(src.name)
        if os.path.lexists(dest) and not written_by_us(dest_dir, dest.name):
            dest = unused(dest)  # a file of that name that is not ours: kept, the upload gets another name
        claimed = self._claim({"the upload": dest})
        with atomic_path(dest) as tmp:
            shutil.copyfile(src, tmp)
        claimed.finish(0)
        return dest

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

    # ================================================================== session files
    def save_session(self, name: str) -> Path:
        """Write root/sessions/<name>.vos-session.zip (module docstring), atomically."""
        state = self._need_video()
        d = self._own_folder("sessions")
        name = "" if name is None else str(name)
        path = d / (safe_name(name or Path(self.video_name).stem or "session") + SESSION_SUFFIX)
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
                objects = [(whole_number(o["id"], "object id"), o.get("name")) for o in doc["objects"]]
                notes = []
                for note in doc["annotations"]:
                    with z.open(note["mask"]) as f:
                        mask = np.array(Image.open(f)) > 127
                    notes.append((whole_number(note["frame"], "frame"), whole_number(note["object"], "object"),
                                  mask, str(note.get("origin", "given"))))
            video = self.inside(doc["video"])
        except (OSError, KeyError, ValueError, TypeError, AttributeError, RecursionError, zipfile.BadZipFile) as e:
            if isinstance(e, InputError):
                raise
            raise InputError(f"{p.name}: cannot read the session ({short(e)})") from None
        steps = settings.get("adapt_steps")
        if steps is not None and not 0 <= whole_number(steps, "adaptation steps") <= MAX_ADAPT_STEPS:
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


def open_reader(path: Path, fps: Optional[float]) -> FrameSource:
    """A reader of the video or frame folder at `path` (`fps` applies to a frame folder only)."""
    return open_source(str(path), fps=fps) if path.is_dir() else open_source(str(path))


def unused(path: Path) -> Path:
    """`path`, or `stem-2.zip`, `stem-3.zip`, ...: two exports within one second never replace each other."""
    names = itertools.chain([path], (path.with_name(f"{path.stem}-{n}{path.suffix}") for n in itertools.count(2)))
    return next(p for p in names if not os.path.lexists(p))


def safe_name(name: str) -> str:
    """`name`'s last part with only letters, digits, '.', '_' and '-' (at most 120): a file name on any system."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name).strip("._") or "file"
    return name[:120]
