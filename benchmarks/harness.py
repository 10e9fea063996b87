"""Run one sequence: method -> index PNGs in the official layout -> marker -> scores.

This is the unit of work of every engine (local loop or one Ray task per sequence), so a sequence
is run, timed, written and scored in exactly one way whatever the engine.

* ``open_benchmark`` opens a dataset by its CLI name (davis2016, davis2017, ytvos).
* ``run_sequence(method, sequence, layout)`` streams the method's label maps to PNGs (written by a
  background thread, overlapping PNG encoding with inference), times it, measures memory, and writes
  the sequence's marker last.
* ``process_sequence`` adds resume (skip a finished sequence) and scoring (DAVIS ground truth), and
  raises on failure: the local engine turns that into a failed result, Ray retries the task first.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from seggpt.errors import InputError, UserError
from seggpt.io import save_index_png
from vos.data.datasets import DAVIS, Sequence, YouTubeVOS
from vos.data.metrics import evaluate_sequence
from vos.io.writers import BackgroundWriter

from .layout import ResultLayout
from .methods import Method, MethodSpec
from .report import cuda_peak_mb, peak_rss_mb, reset_cuda_peak
from . import validate

__all__ = ["DATASETS", "Benchmark", "open_benchmark", "SequenceResult", "run_sequence", "process_sequence",
           "score_sequence", "has_ground_truth"]

DATASETS = ("davis2016", "davis2017", "ytvos")


@dataclass
class Benchmark:
    """An opened dataset: the reader, the layout kind of its results and what the report records."""

    name: str
    reader: Any
    kind: str
    split: str
    info: dict[str, Any]

    @property
    def names(self) -> list[str]:
        """Every sequence of the split, those with a problem too (`validate.split_names`)."""
        return validate.split_names(self)


def open_benchmark(name: str, root: str | os.PathLike, split: str | None = None, resolution: str = "480p",
                   all_frames: str | None = "auto") -> Benchmark:
    """Open dataset ``name`` at ``root``; split defaults to "val" (DAVIS) or "valid" (YouTube-VOS).

    all_frames (YouTube-VOS only): "auto" uses ``<root>/all_frames/<split>_all_frames`` where it exists
    (run on every frame, save the listed ones: what peers report), None or "none" runs on the
    listed frames only, any other value is the all-frames folder.
    """
    root = Path(root)
    if name not in DATASETS:
        raise InputError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if name.startswith("davis"):
        split = split or "val"
        reader = DAVIS(root, year=int(name[-4:]), split=split, resolution=resolution)
        info = {"dataset": name, "root": str(root), "split": split, "resolution": reader.resolution}
        return Benchmark(name, reader, "davis", split, info)
    split = split or "valid"
    if all_frames == "auto":
        candidate = root / "all_frames" / f"{split}_all_frames"
        all_frames = candidate if candidate.is_dir() else None
    reader = YouTubeVOS(root, split=split, all_frames_root=None if all_frames in (None, "none") else Path(all_frames))
    info = {"dataset": name, "root": str(root), "split": split,
            "all_frames": str(reader.all_frames_root) if reader.all_frames_root else None}
    return Benchmark(name, reader, "ytvos", split, info)


@dataclass
class SequenceResult:
    """What happened to one sequence; scores are {object id: {"J": per-frame, "F": per-frame}}.

    peak_rss_mb is the running process's peak so far (the OS cannot reset it per sequence), so in the
    local engine it also covers earlier sequences; cuda_max_allocated_mb is reset per sequence.
    """

    name: str
    status: str  # "done", "skipped" (finished earlier, --resume) or "failed"
    frames: int = 0  # frames the method processed
    saved: int = 0  # PNGs written
    seconds: float = 0.0
    peak_rss_mb: float | None = None
    cuda_max_allocated_mb: float | None = None
    attempts: int = 0
    worker: str = ""
    error: str | None = None
    scores: dict[int, dict[str, np.ndarray]] | None = field(default=None, repr=False)

    @property
    def fps(self) -> float | None:
        return self.frames / self.seconds if self.seconds > 0 and self.frames else None

    def summary(self) -> dict[str, Any]:
        """JSON-ready record (per-object J/F means; per-frame arrays stay out of the report)."""
        record = {key: getattr(self, key) for key in
                  ("name", "status", "frames", "saved", "seconds", "peak_rss_mb", "cuda_max_allocated_mb",
                   "attempts", "worker", "error")}
        record["fps"] = self.fps
        if self.scores is not None:
            record["objects"] = {str(obj): {"J-Mean": float(np.nanmean(s["J"])) if len(s["J"]) else None,
                                            "F-Mean": float(np.nanmean(s["F"])) if len(s["F"]) else None}
                                 for obj, s in sorted(self.scores.items())}
        return record


def run_sequence(method: Method, sequence: Sequence, layout: ResultLayout, *, fingerprint: str = "",
                 progress: bool = False) -> SequenceResult:
    """Run ``method`` on ``sequence``, write its PNGs, then its marker; raises if anything fails.

    Frames listed in ``frames_to_save`` before the first annotated frame (no object exists yet) are
    written as background. Every listed frame must be written, or the sequence is not finished.
    """
    attempt = layout.begin(sequence.name)
    to_save = set(sequence.frames_to_save)
    unknown = [f for f in sequence.annotations if f not in sequence.frame_names]
    if unknown or not sequence.annotations:
        raise InputError(f"{sequence.frames_dir}: no frame for the annotation(s) {unknown or 'at all'}")
    first_given = min(sequence.frame_names.index(f) for f in sequence.annotations)
    written: set[str] = set()
    frames = 0
    reset_cuda_peak()
    bar = tqdm(total=len(sequence.frame_names), desc=sequence.name, unit="frame", leave=False, disable=not progress,
               file=sys.stderr)
    start = time.perf_counter()
    try:
        with BackgroundWriter(maxsize=8, name=f"png-{sequence.name}") as writer:
            for name in [n for n in sequence.frame_names[:first_given] if n in to_save]:  # before any object
                writer.submit(save_index_png, layout.frame_path(sequence.name, name), np.zeros(sequence.size, np.uint8))
                written.add(name)
            for index, labels in method.segment(sequence):
                frames += 1
                bar.update(1)
                name = sequence.frame_names[index]
                if name not in to_save:
                    continue
                if labels.shape != tuple(sequence.size):
                    raise InputError(f"{sequence.name}/{name}: the method returned {labels.shape[1]}x{labels.shape[0]} "
                                       f"labels for {sequence.size[1]}x{sequence.size[0]} frames")
                writer.submit(save_index_png, layout.frame_path(sequence.name, name), labels)
                written.add(name)
    finally:
        bar.close()
    seconds = time.perf_counter() - start
    if missing := [f for f in sequence.frames_to_save if f not in written]:
        raise InputError(f"{sequence.name}: the method gave no mask for frames {missing[:5]}")
    result = SequenceResult(sequence.name, "done", frames=frames, saved=len(written), seconds=seconds,
                            peak_rss_mb=peak_rss_mb(), cuda_max_allocated_mb=cuda_peak_mb(),
                            attempts=attempt, worker=f"{socket.gethostname()}:{os.getpid()}")
    layout.finish(sequence.name, {"fingerprint": fingerprint, **result.summary()})
    return result


def has_ground_truth(sequence: Sequence) -> bool:
    """Scored locally only with ground truth for every saved frame (DAVIS val; not test-dev, not YouTube-VOS)."""
    return bool(sequence.ground_truth) and all(f in sequence.ground_truth for f in sequence.frames_to_save)


def score_sequence(sequence: Sequence, layout: ResultLayout) -> dict[int, dict[str, np.ndarray]]:
    """J and F per object and frame of the results on disk (what the official tool would read)."""
    gt = sequence.load_ground_truth(sequence.frame_names)
    pred = layout.load(sequence, sequence.frame_names)
    return evaluate_sequence(gt, pred, object_ids=sequence.object_ids)


def process_sequence(spec: MethodSpec, sequence: Sequence, layout: ResultLayout, *, resume: bool = False,
                     score: bool = True, progress: bool = False) -> SequenceResult:
    """Resume-or-run one sequence, then score it where ground truth exists; raises on failure."""
    fingerprint = spec.fingerprint()
    marker = layout.is_finished(sequence, fingerprint) if resume else None
    if marker is not None:
        result = SequenceResult(sequence.name, "skipped", frames=int(marker.get("frames", 0)),
                                saved=int(marker.get("saved", 0)), seconds=float(marker.get("seconds", 0.0)),
                                peak_rss_mb=marker.get("peak_rss_mb"),
                                cuda_max_allocated_mb=marker.get("cuda_max_allocated_mb"),
                                attempts=int(marker.get("attempts", 0)), worker=str(marker.get("worker", "")))
    else:
        result = run_sequence(spec.build(), sequence, layout, fingerprint=fingerprint, progress=progress)
    if score and layout.kind == "davis" and has_ground_truth(sequence):
        result.scores = score_sequence(sequence, layout)
    return result


def describe_sequence_error(err: BaseException) -> str:
    """One line for the report: dataset and harness errors are already worded for users."""
    text = str(err) if isinstance(err, (UserError, ValueError, OSError)) else f"{type(err).__name__}: {err}"
    return text.strip().splitlines()[0] if text.strip() else type(err).__name__
