"""Where a benchmark run puts its files, and how a finished sequence is recognised.

Official layouts, so results go to the evaluation tools and the challenge servers as they are
(the DAVIS tool, https://github.com/davisvideochallenge/davis2017-evaluation, and vos-benchmark
read ``<out>/<seq>/<frame>.png``; the YouTube-VOS server takes a zip of ``Annotations/``):

* DAVIS: ``<out>/<seq>/<frame>.png``, one index PNG per frame at the original resolution.
* YouTube-VOS: ``<out>/Annotations/<vid>/<frame>.png`` for the frames listed in meta.json only, and
  a submission zip whose root holds ``Annotations/<vid>/<frame>.png``.

Bookkeeping never sits among the sequence folders: those tools take every sub-folder of the results
for a sequence (vos-benchmark refuses a folder that is not one). It is one file,
``<out>/.progress.jsonl``, a log with one JSON line per event: a sequence ``begin`` (one per
attempt, so retries show up), ``finish`` (the marker, appended last, after every frame of the
sequence is on disk), ``reset`` (the attempt count starts again). Every line is one ``write`` on a
file opened for appending, so Ray workers that finish at the same time do not overwrite each other;
a line cut short by a kill does not parse and counts for nothing. A sequence whose last
``begin`` has no ``finish`` after it is unfinished, and ``--resume`` redoes it.
"""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from seggpt.errors import InputError
from seggpt.io import atomic_path, read_label_png
from vos.data.datasets import Sequence

__all__ = ["ResultLayout", "load_prediction", "PROGRESS_FILE"]

KINDS = ("davis", "ytvos")
#: the run's bookkeeping log, in the results folder (a file: the sequence listing has folders only)
PROGRESS_FILE = ".progress.jsonl"


def load_prediction(folder: str | os.PathLike, frame_names: list[str], size: tuple[int, int], binary: bool = False) -> np.ndarray:
    """(T, H, W) uint8 predicted ids read from ``<folder>/<frame>.png`` (module level: picklable loader).

    binary: DAVIS 2016 convention, any non-zero pixel is the object (results written as 0/255 score
    the same as 0/1, as with the official 2016 tool).
    """
    folder = Path(folder)
    labels = np.zeros((len(frame_names), *size), dtype=np.uint8)
    for i, name in enumerate(frame_names):
        path = folder / f"{name}.png"
        mask = read_label_png(path, binary=binary)  # an unreadable file: seggpt.masks.MaskError, an InputError
        if mask.shape != tuple(size):
            raise InputError(f"{path}: prediction is {mask.shape[1]}x{mask.shape[0]}, the sequence is {size[1]}x{size[0]} (results must be at the original resolution)")
        labels[i] = mask
    return labels


class ResultLayout:
    """Paths of one results folder for a dataset kind ("davis" or "ytvos")."""

    def __init__(self, out: str | os.PathLike, kind: str):
        if kind not in KINDS:
            raise InputError(f"unknown layout kind {kind!r}; expected one of {KINDS}")
        self.out = Path(out)
        self.kind = kind
        self.annotations_root = self.out / "Annotations" if kind == "ytvos" else self.out
        self.progress_path = self.out / PROGRESS_FILE

    def sequence_dir(self, seq: str) -> Path:
        return self.annotations_root / seq

    def frame_path(self, seq: str, frame: str) -> Path:
        return self.sequence_dir(seq) / f"{frame}.png"

    # ----------------------------------------------------------------- progress
    def _append(self, seq: str, event: str, **fields: Any) -> None:
        """One event as one line, in one write on an appending descriptor (concurrent writers interleave whole lines).

        The line starts with a newline too, so a line cut short by a kill never swallows the next one.
        """
        line = "\n" + json.dumps({"seq": seq, "event": event, **fields}, sort_keys=True, default=str) + "\n"
        fd = os.open(self.progress_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
        finally:
            os.close(fd)

    def _events(self, seq: str) -> list[dict[str, Any]]:
        """The events of ``seq`` in the order they were written (unparsable lines skipped)."""
        try:
            text = self.progress_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        events = []
        for line in text.splitlines():
            try:
                record = json.loads(line) if line.strip() else None
            except json.JSONDecodeError:
                continue  # cut short by a kill: counts for nothing
            if isinstance(record, dict) and record.get("seq") == seq:
                events.append(record)
        return events

    def begin(self, seq: str) -> int:
        """Mark ``seq`` as started (unfinished from now on), create its folder; returns the attempt number."""
        self.out.mkdir(parents=True, exist_ok=True)
        self._append(seq, "begin", pid=os.getpid())
        self.sequence_dir(seq).mkdir(parents=True, exist_ok=True)
        return self.attempts(seq)

    def attempts(self, seq: str) -> int:
        """Starts of ``seq`` since its attempt count was last reset."""
        count = 0
        for record in self._events(seq):
            count = count + 1 if record["event"] == "begin" else 0 if record["event"] == "reset" else count
        return count

    def finish(self, seq: str, info: dict[str, Any]) -> None:
        """Write the marker last: from now on the sequence counts as finished."""
        self._append(seq, "finish", info=info)

    def read_marker(self, seq: str) -> dict[str, Any] | None:
        """The ``info`` of the last ``finish`` of ``seq``, unless a ``begin`` came after it."""
        marker = None
        for record in self._events(seq):
            if record["event"] == "begin":
                marker = None
            elif record["event"] == "finish" and isinstance(record.get("info"), dict):
                marker = record["info"]
        return marker

    def is_finished(self, sequence: Sequence, fingerprint: str) -> dict[str, Any] | None:
        """The marker of ``sequence`` if it was finished by the same method and all its frames exist."""
        marker = self.read_marker(sequence.name)
        if (marker is None or marker.get("fingerprint") != fingerprint
                or not all(self.frame_path(sequence.name, f).is_file() for f in sequence.frames_to_save)):
            return None
        return marker

    def reset_attempts(self, seq: str) -> None:
        self._append(seq, "reset")

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
            if missing := self.missing_frames(seq):
                raise InputError(f"{self.sequence_dir(seq.name)}: frames missing for the zip: {missing[:5]}")
            entries += [(self.frame_path(seq.name, f), f"Annotations/{seq.name}/{f}.png") for f in seq.frames_to_save]
        # PNGs are compressed already: storing them is as small and several times faster.
        with atomic_path(target) as tmp:
            with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as archive:
                for source, name in entries:
                    with open(source, "rb") as src, archive.open(name, "w") as dst:
                        shutil.copyfileobj(src, dst)
        return target
