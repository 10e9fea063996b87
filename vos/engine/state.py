"""Session state the caller holds (SAM 2's inference state): the video, its objects, every annotation.

`Annotations` keeps every mask the user gave, the annotated frames themselves as read (so sources
that read once, iterators and live streams, still have them), and decides which annotated frames
condition a frame. The rules (the README's table), written here once:

* when an object exists: forward, object k is segmented on frame t once one of its masks lies at a
  frame <= t; backward, >= t. Before that it is absent.
* what conditions frame t: the annotated frames on its side (<= t forward, >= t backward), wherever
  the propagation started: the first one and the closest others, at most `limit`, plus the recent
  predictions (the tracker's memory).
* a correction: a new mask of an object already given, at frame c, retires the annotated frames
  before c (in that direction) where that object existed; the recent predictions are forgotten.
* changes during a propagation: none; objects and masks are fixed from the `propagate` call until
  its generator ends (`InferenceState.check_no_pass`).

An annotated frame conditions others as its *annotated prompt*: the user's masks painted over a
prediction of the objects they do not mention (from the annotated frames before it only), so an
annotation that holds only a new object does not teach that the others are background. Annotated
prompts depend on the annotations alone (and the model), so every propagation sees the same ones; the
tracker that makes them keeps them until an annotation changes (`Annotations.version`).

The state holds data only: the models a session runs (an adapted one too) are the engine's.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Dict, Generator, Iterator, List, Optional, Set, Tuple

import numpy as np
import torch

from vos.engine.objects import EngineError, Objects
from vos.io.video import FrameSource, IteratorSource


@dataclass
class AnnotatedFrame:
    """The masks given on one frame, and the frame itself once it has been read."""

    frame_idx: int
    given: Dict[int, np.ndarray] = field(default_factory=dict)  # obj_id -> (H, W) bool at frame size
    #: (H, W, 3) uint8: what the tracker's prompt and adaptation are made from
    frame: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def size(self) -> Tuple[int, int]:
        return next(iter(self.given.values())).shape


@dataclass
class AnnotatedPrompt:
    """An annotated frame as a prompt in one direction (see the module docstring)."""

    frame_idx: int
    image: torch.Tensor  # (3, h, w)
    labels: torch.Tensor  # (h, w) long object ids at model size
    full_labels: np.ndarray = field(repr=False)  # (H, W) int32 at frame size
    confidence: np.ndarray = field(repr=False)  # (H, W) float32, 1 on the given masks


class Annotations:
    """Every annotated frame of a session, and which of them condition a frame (module docstring)."""

    def __init__(self) -> None:
        self._frames: Dict[int, AnnotatedFrame] = {}
        #: changes with every mask given or removed: what was made from the annotations (annotated prompts,
        #: an adapted model) is keyed on it
        self.version = 0

    # ------------------------------------------------------------------ what the user gave
    def add(self, frame_idx: int, obj_id: int, mask: np.ndarray) -> None:
        self._frames.setdefault(frame_idx, AnnotatedFrame(frame_idx)).given[obj_id] = mask
        self.version += 1

    def keep_frame(self, frame_idx: int, frame: np.ndarray) -> None:
        """Keep the annotated frame as read (not a change: what was made from the annotations stays valid)."""
        self._frames[frame_idx].frame = frame

    def remove(self, frame_idx: int, obj_id: int) -> None:
        """Forget the mask given for one object on one frame (nothing if there is none)."""
        note = self._frames.get(frame_idx)
        if note is None or obj_id not in note.given:
            return
        del note.given[obj_id]
        if not note.given:
            del self._frames[frame_idx]
        self.version += 1

    def remove_object(self, obj_id: int) -> None:
        for idx in list(self._frames):
            self.remove(idx, obj_id)
        self.version += 1

    def clear(self) -> None:
        self._frames.clear()
        self.version += 1

    def __len__(self) -> int:
        return len(self._frames)

    def __contains__(self, frame_idx: object) -> bool:
        return frame_idx in self._frames

    def __getitem__(self, frame_idx: int) -> AnnotatedFrame:
        return self._frames[frame_idx]

    def __iter__(self) -> Iterator[int]:
        return iter(sorted(self._frames))

    def given(self, frame_idx: int) -> Set[int]:
        return set(self._frames[frame_idx].given)

    def label_map(self, frame_idx: int, dtype: type = np.int32) -> np.ndarray:
        """The masks given on a frame as one label map (0: not given)."""
        note = self._frames[frame_idx]
        labels = np.zeros(note.size, dtype)
        for o, m in note.given.items():
            labels[m] = o
        return labels

    # ------------------------------------------------------------------ the rules
    def side(self, t: int, reverse: bool, include_t: bool = True) -> List[int]:
        """Annotated frames on t's side in processing order (the farthest from t first)."""
        if reverse:
            return sorted((a for a in self._frames if a > t or (include_t and a == t)), reverse=True)
        return sorted(a for a in self._frames if a < t or (include_t and a == t))

    def objects_at(self, t: int, reverse: bool, include_t: bool = True) -> Set[int]:
        """Objects that exist on frame t: given on some frame of its side."""
        return set().union(*(self.given(a) for a in self.side(t, reverse, include_t)))

    def corrects(self, c: int, reverse: bool) -> Set[int]:
        """Objects frame c's masks give again (they existed before c in this direction)."""
        return self.given(c) & self.objects_at(c, reverse, include_t=False) if c in self._frames else set()

    def conditioning(self, t: int, reverse: bool, limit: Optional[int], include_t: bool = True) -> List[int]:
        """The annotated frames that condition frame t, in processing order."""
        kept: List[int] = []
        corrected: Set[int] = set()
        for a in reversed(self.side(t, reverse, include_t)):  # closest first
            if not (self.objects_at(a, reverse) & corrected):
                kept.append(a)
            corrected |= self.corrects(a, reverse)
        kept.reverse()
        if limit is not None and len(kept) > limit:  # the first one and the closest others
            kept = kept[:1] + (kept[len(kept) - limit + 1:] if limit > 1 else [])
        return kept


@dataclass(eq=False)  # a session equals itself only: the engine keys what it holds for a session on it
class InferenceState:
    """A session over one video: the frame source, its objects and annotations (nothing that grows with length)."""

    source: FrameSource
    annotations: Annotations = field(default_factory=Annotations)
    objects: Objects = field(default_factory=Objects)
    #: the propagations made on this session (generators, weakly: one dropped unfinished goes with it)
    _passes: "weakref.WeakSet[Generator]" = field(default_factory=weakref.WeakSet, init=False, repr=False,
                                                  compare=False)

    def start_pass(self, run: Generator) -> Generator:
        """Note a propagation of this session (`check_no_pass` refuses changes until it ends); returns it."""
        self._passes.add(run)
        return run

    def check_no_pass(self, verb: str) -> None:
        """EngineError if a propagation of this session is in progress: from the `propagate` call until the
        generator is exhausted, closed or dropped. Why: a pass has read and adapted to the masks it started
        with and finishes frames one batch behind the model, so a change in the middle would reach some
        frames and not others; SAM 2 refuses it too."""
        if any(run.gi_frame is not None for run in self._passes):  # gi_frame is None once a generator ended
            raise EngineError(f"{verb}: a propagation of this session is in progress; the objects and masks cannot "
                              "change while it runs: finish it or close() it first, then propagate again")

    @property
    def object_ids(self) -> List[int]:
        return list(self.objects)

    def read_annotated_frames(self, start: Optional[int] = None, reverse: bool = False) -> None:
        """Keep every annotated frame before a pass needs it as a prompt (or adaptation learns it).

        A file, folder or array is read at those frames now; an iterator (read once) keeps the frames
        it passes (`vos.engine.tracker.Tracker.annotate`), and must not be asked for an annotated frame behind it.
        """
        for a in self.annotations:
            if self.annotations[a].frame is not None:
                continue
            if isinstance(self.source, IteratorSource):
                if start is not None and ((a > start) if reverse else (a < start)):
                    raise EngineError(f"frame {a} is annotated but an iterator source is past it: start the "
                                      f"propagation at frame {a} or earlier, or give a file, folder or array")
                continue
            for _, frame in self.source.iter_frames(a, a + 1):
                self.annotations.keep_frame(a, frame)

    def frames(self, start: int, max_frames: Optional[int], reverse: bool):
        """The source's frames of a pass: from `start`, at most `max_frames`, forwards or backwards."""
        if reverse:
            lo = 0 if max_frames is None else max(0, start - max_frames + 1)
            return self.source.iter_frames(lo, start + 1, reverse=True)
        stop = None if max_frames is None else start + max_frames
        if self.num_frames is not None and stop is not None:
            stop = min(stop, self.num_frames)
        return self.source.iter_frames(start, stop)

    @property
    def num_frames(self) -> Optional[int]:
        return self.source.num_frames

    @property
    def size(self) -> Tuple[int, int]:
        return self.source.size

    @property
    def fps(self) -> float:
        return self.source.fps


__all__ = ["AnnotatedFrame", "AnnotatedPrompt", "Annotations", "InferenceState"]
