"""Methods a benchmark can run: ``copy-first`` (the sanity baseline) and ``seggpt`` (our engine).

A method turns a dataset Sequence into label maps; it knows nothing of output files, timing or
scoring (``benchmarks.harness`` does those), so both methods are measured and written the same way.

Contract of ``Method.segment(sequence)``: yield ``(frame_index, labels)`` in frame order, where
``frame_index`` indexes ``sequence.frame_names`` and ``labels`` is an (H, W) integer map at the
sequence's size (0 = background). It must cover every frame in ``sequence.frames_to_save`` from the
first annotated frame on; it may skip other frames (copy-first does: it has nothing to compute).

``MethodSpec`` is the picklable recipe of a method (name, weights, resolved engine settings,
device): Ray workers receive the spec, not a model, and build the method once per process.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterator, Protocol

import numpy as np

from seggpt.errors import InputError
from vos.engine.config import EngineConfig
from vos.data.datasets import Sequence
from vos.io.video import FolderSource


__all__ = ["Method", "CopyFirst", "SegGPTMethod", "MethodSpec", "METHODS", "prompt_labels"]

METHODS = ("seggpt", "copy-first")


class Method(Protocol):
    name: str

    def segment(self, sequence: Sequence) -> Iterator[tuple[int, np.ndarray]]: ...


def prompt_labels(sequence: Sequence, frame_name: str) -> np.ndarray:
    """The objects first given at ``frame_name``, as a label map (void 255 and other ids cleared).

    DAVIS first frames hold every object; YouTube-VOS annotations hold only the objects that
    appear there (0 = "not given"); either way only the objects that *start* here are prompts.
    """
    labels = sequence.read_annotation(frame_name)
    if labels.shape != tuple(sequence.size):
        raise InputError(f"{sequence.annotations[frame_name]}: mask is {labels.shape[1]}x{labels.shape[0]}, "
                           f"the sequence is {sequence.size[1]}x{sequence.size[0]}")
    return np.where(np.isin(labels, sequence.objects_first_given_at(frame_name)), labels, 0).astype(np.uint8)


class CopyFirst:
    """Each object's first mask, repeated on every later frame: the floor any method must beat."""

    name = "copy-first"

    def segment(self, sequence: Sequence) -> Iterator[tuple[int, np.ndarray]]:
        current = np.zeros(sequence.size, dtype=np.uint8)
        to_save = set(sequence.frames_to_save)
        for index, frame in enumerate(sequence.frame_names):
            if frame in sequence.annotations:
                given = prompt_labels(sequence, frame)
                current = np.where(given > 0, given, current)  # a later object is drawn over earlier ones
            if frame in to_save:
                yield index, current.copy()


class SegGPTMethod:
    """The video engine (``vos.VideoSegmenter``) with the prompts of the dataset's protocol.

    The frames stream from the sequence folder (never all in memory); each annotated frame gives the
    objects that start there, and propagation runs from the first annotated frame to the end.
    """

    name = "seggpt"

    def __init__(self, model_or_weights: Any, config: Any = None, device: str | None = None, dtype: str | None = None):
        # imported here, not above: torch and the model load only for this method (copy-first stays torch-free)
        from vos import VideoSegmenter

        self.segmenter = VideoSegmenter(model_or_weights, config=config, device=device, dtype=dtype)

    def segment(self, sequence: Sequence) -> Iterator[tuple[int, np.ndarray]]:
        source = FolderSource(sequence.frames_dir)
        try:
            if source.frame_names != sequence.frame_names:
                raise InputError(f"{sequence.frames_dir}: the folder holds other images than the sequence's "
                                   f"{len(sequence.frame_names)} frames ({source.num_frames} found)")
            if tuple(source.size) != tuple(sequence.size):
                raise InputError(f"{sequence.frames_dir}: frames are {source.size[1]}x{source.size[0]}, "
                                   f"masks {sequence.size[1]}x{sequence.size[0]}")
            state = self.segmenter.init_state(source)
            index = {name: i for i, name in enumerate(sequence.frame_names)}
            for frame in sequence.annotations:
                labels = prompt_labels(sequence, frame)
                for obj in sequence.objects_first_given_at(frame):  # one object each: 0 elsewhere is "not given"
                    if (labels == obj).any():
                        self.segmenter.add_new_mask(state, index[frame], obj, labels == obj)
            for frame_idx, obj_ids, masks in self.segmenter.propagate_in_video(state):
                labels = np.zeros(sequence.size, dtype=np.uint8)
                for obj, mask in zip(obj_ids, masks):
                    labels[mask] = obj
                yield frame_idx, labels
        finally:
            source.close()


@dataclass(frozen=True)
class MethodSpec:
    """Everything needed to build a method in another process; hashable, so it keys a per-process cache.

    engine: the resolved engine settings as canonical JSON (what runs is what is recorded).
    """

    name: str
    weights: str | None = None
    engine: str = "{}"
    device: str | None = None
    dtype: str | None = None

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise InputError(f"unknown method {self.name!r}; expected one of {', '.join(METHODS)}")

    def describe(self) -> dict[str, Any]:
        """What the JSON report and the resume fingerprint record about the method."""
        if self.name == "copy-first":
            return {"method": self.name}
        return {"method": self.name, "weights": self.weights, "engine": json.loads(self.engine),
                "device": self.device, "dtype": self.dtype}

    def fingerprint(self) -> str:
        """Results made by another method or setting are not 'finished' for this one (resume redoes them).

        The device is left out: the same weights and settings on another device are the same method.
        """
        desc = {k: v for k, v in self.describe().items() if k != "device"}
        return hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def build(self) -> Method:
        """The method, built once per process and spec (Ray reuses worker processes)."""
        if self not in _BUILT:
            method = CopyFirst() if self.name == "copy-first" else SegGPTMethod(
                self.weights, config=EngineConfig.load(json.loads(self.engine)), device=self.device, dtype=self.dtype)
            _BUILT.clear()  # one model per process: a new spec replaces the old one
            _BUILT[self] = method
        return _BUILT[self]


_BUILT: dict[MethodSpec, Method] = {}
