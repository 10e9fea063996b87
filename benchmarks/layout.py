"""Where a benchmark run puts its files, and how a finished sequence is recognised.

Official layouts, so results go to the evaluation tools and the
challenge servers as they are:

* DAVIS: ``<out>/<seq>/<frame>.png``, one index PNG per frame at the original resolution.
* YouTube-VOS: ``<out>/Annotations/<vid>/<frame>.png`` for the frames listed in meta.json only, and
  a submission zip whose root holds ``Annotations/<vid>/<frame>.png``.

Bookkeeping lives apart from the results, in ``<out>/.progress/`` (``<seq>.json`` markers and
``<seq>.attempts`` counters): the evaluation tools read the result folders by frame name and the
submission zip must hold PNGs only, so nothing else may sit among the PNGs. A marker is written
last, atomically, after every frame of its sequence is on disk: a run killed at any point leaves
that sequence unfinished, and ``--resume`` redoes it.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from seggpt.io import atomic_path, atomic_write_text, read_label_png
from seggpt.masks import MaskError
from vos.datasets import Sequence

__all__ = ["LayoutError", "ResultLayout", "load_prediction"]

KINDS = ("davis", "ytvos")


class LayoutError(ValueError):
    """A results folder that cannot be used (missing frames, wrong sizes); the message names the path."""


def load_prediction(folder: str | os.PathLike, frame_names: list[str], size: tuple[int, int], binary: bool = False) -> np.ndarray:
    """(T, H, W) uint8 predicted ids read from ``<folder>/<frame>.png`` (module level: picklable loader).

    binary: DAVIS 2016 convention, any non-zero pixel is the object (results written as 0/255 score
    the same as 0/1, as with the official 2016 tool).
    """
    folder = Path(folder)
    labels = np.zeros((len(frame_names), *size), dtype=np.uint8)
    for i, name in enumerate(frame_names):
        path = folder / f"{name}.png"
        try:
            mask = read_label_png(path, binary=binary)
        except MaskError as err:
            raise LayoutError(str(err)) from None
        if mask.shape != tuple(size):
            raise LayoutError(f"{path}: prediction is {mask.shape[1]}x{mask.shape[0]}, the sequence is {size[1]}x{size[0]} (results must be at the original resolution)")
        labels[i] = mask
    return labels


class ResultLayout:
    """Paths of one results folder for a dataset kind ("davis" or "ytvos")."""

    def __init__(self, out: str | os.PathLike, kind: str):
        if kind not in KINDS:
            raise LayoutError(f"unknown layout kind {kind!r}; expected one of {KINDS}")
        self.out = Path(out)
        self.kind = kind
        self.annotations_root = self.out / "Annotations" if kind == "ytvos" else self.out
        self.progress_dir = self.out / ".progress"

    def sequence_dir(self, seq: str) -> Path:
        return self.annotations_root / seq

    def frame_path(self, seq: str, frame: str) -> Path:
        return self.sequence_dir(seq) / f"{frame}.png"

    def marker_path(self, seq: str) -> Path:
        return self.progress_dir / f"{seq}.json"

    def attempts_path(self, seq: str) -> Path:
        return self.progress_dir / f"{seq}.attempts"

    # ----------------------------------------------------------------- progress
    def begin(self, seq: str) -> int:
        """Mark ``seq`` as started: drop its marker, create its folder; returns the attempt number."""
        self.progress_dir.mkdir(parents=True, exist_ok=True)
        with open(self.attempts_path(seq), "a") as handle:  # one line per start: retries show up
            handle.write(f"{os.getpid()}\n")
        self.marker_path(seq).unlink(missing_ok=True)
        self.sequence_dir(seq).mkdir(parents=True, exist_ok=True)
        return self.attempts(seq)

    def attempts(self, seq: str) -> int:
        path = self.attempts_path(seq)
        return len(path.read_text().splitlines()) if path.is_file() else 0

    def finish(self, seq: str, info: dict[str, Any]) -> None:
        """Write the marker last: from now on the sequence counts as finished."""
        atomic_write_text(self.marker_path(seq), json.dumps(info, indent=1, sort_keys=True))

    def read_marker(self, seq: str) -> dict[str, Any] | None:
        path = self.marker_path(seq)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            return None  # an unreadable marker means unfinished: redo the sequence

    def is_finished(self, sequence: Sequence, fingerprint: str) -> dict[str, Any] | None:
        """The marker of ``sequence`` if it was finished by the same method and all its frames exist."""
        marker = self.read_marker(sequence.name)
        if marker is None or marker.get("fingerprint") != fingerprint:
            return None
        if not all(self.frame_path(sequence.name, f).is_file() for f in sequence.frames_to_save):
            return None
        return marker

    def reset_attempts(self, seq: str) -> None:
        self.attempts_path(seq).unlink(missing_ok=True)

    # ----------------------------------------------------------------- reading results
    def missing_frames(self, sequence: Sequence) -> list[str]:
        return [f for f in sequence.frames_to_save if not self.frame_path(sequence.name, f).is_file()]

    def load(self, sequence: Sequence, frame_names: list[str] | None = None) -> np.ndarray:
        names = sequence.frames_to_save if frame_names is None else frame_names
        return load_prediction(self.sequence_dir(sequence.name), names, sequence.size, sequence.binary_masks)

    # ----------------------------------------------------------------- submission
    def write_zip(self, sequences: Iterable[Sequence], path: str | os.PathLike | None = None) -> Path:
        """YouTube-VOS submission zip: ``Annotations/<vid>/<frame>.png`` at its root, listed frames only.

        Written under a temporary name and renamed, so an interrupted run never leaves a truncated zip.
        """
        target = Path(path) if path is not None else self.out / "submission.zip"
        entries: list[tuple[Path, str]] = []
        for seq in sequences:
            missing = self.missing_frames(seq)
            if missing:
                raise LayoutError(f"{self.sequence_dir(seq.name)}: frames missing for the zip: {missing[:5]}")
            entries += [(self.frame_path(seq.name, f), f"Annotations/{seq.name}/{f}.png") for f in seq.frames_to_save]
        # PNGs are compressed already: storing them is as small and several times faster.
        with atomic_path(target) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
                for source, name in entries:
                    with open(source, "rb") as src, archive.open(name, "w") as dst:
                        shutil.copyfileobj(src, dst)
        return target
