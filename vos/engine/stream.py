"""LiveStream: a live video, one frame at a time, forwards (Cutie's shape), with its own objects and state.

Hold one per stream (`VideoSegmenter.stream()`): one model serves several streams at once, and a
stream can add, correct and remove objects on any frame it is given.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from seggpt.predictor import SegGPTPredictor

from vos.engine.config import EngineConfig
from vos.engine.objects import EngineError, Objects, check_frame, check_object_id, give, masks_from
from vos.engine.state import Annotations
from vos.engine.tracker import FrameResult, Tracker


class LiveStream:
    """Frames in, one `FrameResult` out per frame (see the module docstring)."""

    def __init__(self, predictor: SegGPTPredictor, config: EngineConfig):
        self.predictor = predictor
        self.objects = Objects()
        self.annotations = Annotations()
        self._tracker = Tracker(predictor, config, self.annotations, self.objects)
        self.frame_idx = 0  # index the next frame gets
        self._size: Optional[tuple] = None

    def step(self, frame: np.ndarray, mask: Optional[np.ndarray] = None,
             object_ids: Optional[Sequence[int]] = None) -> FrameResult:
        """Segment the next frame; `mask` (a label map, or a binary mask: object 1 unless `object_ids`
        names it) adds or corrects objects on this frame."""
        frame = check_frame(frame)
        if self._size is not None and frame.shape[:2] != self._size:
            raise EngineError(f"frame {self.frame_idx} is {frame.shape[1]}x{frame.shape[0]}, the stream's frames "
                              f"are {self._size[1]}x{self._size[0]}")
        idx = self.frame_idx
        if mask is not None:
            give(masks_from(mask, object_ids, frame.shape[:2], f"frame {idx}"), idx, self.objects, self.annotations)
        self._size = frame.shape[:2]
        self.frame_idx += 1
        return self._tracker.run_batch([(idx, frame)])()[0] if mask is None else self._tracker.annotate(idx, frame)

    def remove_object(self, obj_id: int) -> None:
        """Stop tracking an object from the next frame on."""
        obj_id = check_object_id(obj_id)
        self.objects.remove(obj_id)
        self.annotations.remove_object(obj_id)
        self._tracker.memory.remove_object(obj_id)
        self._tracker.whereabouts.pop(obj_id, None)


__all__ = ["LiveStream"]
