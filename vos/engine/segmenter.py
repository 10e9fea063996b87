"""VideoSegmenter: masks of objects on some frames in, the objects on every frame out.

The verbs, shaped like what editing tools already call:
* a session over a whole video (SAM 2's shape): `init_state`, `add_new_mask` (one object) /
  `add_mask` (a label map), `propagate` (forward or backward, from any frame), `remove_object`,
  `reset_state`; the state (`vos.engine.state.InferenceState`) is the caller's. `propagate_in_video` is
  `propagate` as (frame_idx, obj_ids, masks) tuples; SAM 2's own API, its arguments and tensors, is
  the one SAM 2 surface, `vos.sam2`;
* live streams (Cutie's shape): `stream()` gives a `LiveStream` with `step(frame, mask=None)`;
  `VideoSegmenter.step` is a thin alias on one default stream;
* `adapt(state)`: test-time adaptation on the session's annotated frames (`config.adapt`), the
  adapted model kept here for the session (`adapted(state)`); `propagate` calls it when the masks
  changed.

Every annotation conditions every propagation, in both directions, by the rules in `vos.engine.state`.
The engine knows nothing of files: frames come from a FrameSource, results go back to the caller.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Container, Deque, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from seggpt.adapt import AdaptProgress
from seggpt.adapt import adapt as adapt_model
from seggpt.device import dtype_reason, resolve_device, resolve_dtype
from seggpt.errors import Cancelled, EngineError, InputError, VideoError
from seggpt.model import SegGPT
from seggpt.predictor import SegGPTPredictor

from vos.engine.config import EngineConfig
from vos.engine.finishing import FinishQueue, one_thread_worker
from vos.engine.objects import (check_frame_index, check_object_id, give, is_integer, label_dtype, masks_from, object_mask)
from vos.engine.state import InferenceState
from vos.engine.stream import LiveStream
from vos.engine.tracker import FrameResult, Tracker
from vos.io.video import FrameSource, IteratorSource, open_source
from vos.engine.zoom import object_crops

logger = logging.getLogger(__name__)


class VideoSegmenter:
    """In-context video object segmentation with SegGPT (see the module docstring)."""

    def __init__(
        self,
        model_or_weights: Union[SegGPT, str] = "BAAI/seggpt-vit-large",
        config: Union[None, str, dict, EngineConfig] = None,
        device: Optional[Union[str, torch.device]] = None,
        dtype: Optional[Union[str, torch.dtype]] = None,
    ):
        try:
            self.device = resolve_device(device)
            resolve_dtype(dtype, self.device)  # a wrong name fails before any weights are read
        except InputError as e:  # a device or dtype that cannot be used here
            raise EngineError(str(e)) from None
        if isinstance(model_or_weights, SegGPT):
            model = model_or_weights.to(self.device)
        else:
            # packaged names first; the file checked before the model is built
            model = SegGPT.from_pretrained(str(model_or_weights), device=self.device)
        # defaults < the weights' recommended settings < `config` (an EngineConfig is taken as it is)
        self.config = EngineConfig.load(config, getattr(model, "recommended_settings", None))
        if self.config.zoom.enabled and not self.config.zooms:
            logger.warning("engine.zoom is on but engine.objects is joint: the zoom crops one object at a time, "
                           "so it applies in separate mode only (--set engine.objects=separate)")
        if self.config.image_size is not None:  # the same weights at another input size (shared, not copied)
            try:
                model = model.at_image_size(self.config.image_size)
            except ValueError as e:
                raise EngineError(f"engine.image_size: {e}") from None
        self.model = model.eval()
        width = model.config.embed_dim
        #: why the model call runs in its dtype (auto follows the CPU and the model's width), for summaries
        self.dtype_reason = dtype_reason(dtype, self.device, width)
        self.predictor = SegGPTPredictor(model, dtype=resolve_dtype(dtype, self.device, width),
                                         exact_resize=self.config.exact_resize)
        if self.config.compile:
            self.predictor.compile(self.config.compile)
        self._default_stream: Optional[LiveStream] = None
        #: per session, its adapted model and the annotations' version it learnt (kept so that a correction adds
        #: to it): the engine holds the models a session runs, the session's state holds data
        self._adapted: "weakref.WeakKeyDictionary[InferenceState, Tuple[int, SegGPTPredictor]]" = \
            weakref.WeakKeyDictionary()

    # ================================================================== live streams
    def stream(self) -> LiveStream:
        """A new live stream on this model (its own objects and memory)."""
        return LiveStream(self.predictor, self.config)

    def step(self, frame: np.ndarray, mask: Optional[np.ndarray] = None,
             object_ids: Optional[Sequence[int]] = None) -> FrameResult:
        """`LiveStream.step` on this segmenter's default stream (for one stream at a time)."""
        if self._default_stream is None:
            self._default_stream = self.stream()
        return self._default_stream.step(frame, mask, object_ids)

    def reset(self) -> None:
        """Forget the default stream (memory and objects)."""
        self._default_stream = None

    # ================================================================== sessions
    def init_state(self, source, **source_kw) -> InferenceState:
        """Open a video (file, frame folder, array, iterator or FrameSource); frames stream, never all in memory."""
        return InferenceState(source if isinstance(source, FrameSource) else open_source(source, **source_kw))

    def add_new_mask(self, state: InferenceState, frame_idx: int, obj_id: int, mask: np.ndarray) -> None:
        """Give (or correct) object `obj_id` on frame `frame_idx` with a (H, W) mask (bool, or 0/nonzero).
        Not while a propagation of the session is in progress (`InferenceState.check_no_pass`)."""
        frame_idx = check_frame_index(frame_idx, state.num_frames)
        obj_id = check_object_id(obj_id)
        state.check_no_pass(f"add_new_mask(object {obj_id} on frame {frame_idx})")
        give({obj_id: object_mask(mask, f"object {obj_id} on frame {frame_idx}", state.size)}, frame_idx,
             state.objects, state.annotations)

    def add_mask(self, state: InferenceState, frame_idx: int, labels: np.ndarray) -> List[int]:
        """Give several objects at once with a label map (ids as given; 0 asserts nothing about others).
        Not while a propagation of the session is in progress (`InferenceState.check_no_pass`)."""
        frame_idx = check_frame_index(frame_idx, state.num_frames)
        state.check_no_pass(f"add_mask(frame {frame_idx})")
        return sorted(give(masks_from(labels, None, state.size, f"frame {frame_idx}"), frame_idx, state.objects,
                           state.annotations))

    def remove_mask(self, state: InferenceState, frame_idx: int, obj_id: int) -> None:
        """Take back the mask given for `obj_id` on `frame_idx` (an editor's undo; SAM 2's
        `clear_all_prompts_in_frame` for one object). An object left with no mask on any frame is removed
        from the session. Not while a propagation of the session is in progress."""
        frame_idx = check_frame_index(frame_idx, state.num_frames)
        obj_id = check_object_id(obj_id)
        state.check_no_pass(f"remove_mask(object {obj_id} on frame {frame_idx})")
        state.annotations.remove(frame_idx, obj_id)
        if obj_id in state.objects and not any(obj_id in state.annotations.given(a) for a in state.annotations):
            state.objects.remove(obj_id)

    def remove_object(self, state: InferenceState, obj_id: int) -> None:
        """Remove an object and all its masks from the session (not while a propagation of it is in progress)."""
        obj_id = check_object_id(obj_id)
        state.check_no_pass(f"remove_object({obj_id})")
        state.objects.remove(obj_id)
        state.annotations.remove_object(obj_id)

    def reset_state(self, state: InferenceState) -> None:
        """Drop every mask and object; the video stays open (not while a propagation of the session is in progress)."""
        state.check_no_pass("reset_state")
        state.annotations.clear()
        state.objects.clear()

    def propagate(self, state: InferenceState, start_frame_idx: Optional[int] = None,
                  max_frames: Optional[int] = None, reverse: bool = False,
                  progress: Optional[Callable[[AdaptProgress], None]] = None,
                  cancel: Optional[threading.Event] = None) -> Iterator[FrameResult]:
        """Segment frames from `start_frame_idx` (default: the first annotated frame, or the last one when
        reverse) onwards, or backwards; yields a FrameResult per frame, in processing order.

        Test-time adaptation, when the settings ask for it and the masks changed, runs first, inside this
        call, before the generator is returned: `progress` gets every adaptation step (`adapt`), the only
        wait that yields nothing. `cancel` (a threading.Event, set from another thread) stops the work: during
        adaptation the pass yields nothing (and nothing is learnt), during the frames it ends after the frame
        in progress; the frames already yielded stay valid.

        Until the generator is exhausted, closed or dropped, the session's objects and masks cannot change
        (`InferenceState.check_no_pass`): every frame it yields has the objects it started with."""
        if not len(state.annotations):
            raise EngineError("add a mask first: no object is given on any frame")
        given = list(state.annotations)
        start = given[-1] if reverse else given[0]
        start = check_frame_index(start if start_frame_idx is None else start_frame_idx, state.num_frames)
        if max_frames is not None and (not is_integer(max_frames) or max_frames < 1):
            raise EngineError(f"max_frames must be a positive integer, got {max_frames!r}")
        state.read_annotated_frames(start, reverse)
        try:
            self.adapt(state, progress, cancel)
        except Cancelled:
            return state.start_pass(_nothing())
        tracker = Tracker(self.adapted(state) or self.predictor, self.config, state.annotations, state.objects, reverse)
        # a file, folder or array is read one batch ahead; an iterator's (a live feed's) frames are not held back
        ahead = 0 if isinstance(state.source, IteratorSource) else self.config.batch_frames
        return state.start_pass(self._run(tracker, state.frames(start, max_frames, reverse), ahead, cancel))

    def adapt(self, state: InferenceState, progress: Optional[Callable[[AdaptProgress], None]] = None,
              cancel: Optional[threading.Event] = None) -> float:
        """Test-time adaptation (`config.adapt`): learn the session's annotated frames; returns the seconds.

        A copy of the model is fine-tuned (the shared model is never modified) and kept for the session
        (`adapted`); after a correction it goes on from what it learnt. Called by `propagate` when masks
        changed since the last adaptation. `progress` gets every step; `cancel` set (from another thread)
        raises `seggpt.errors.Cancelled` before the next step and the session keeps what it had. Frames an
        iterator has not reached yet are learnt at the next call.
        """
        cfg = self.config.adapt
        learnt = self._adapted.get(state)
        if cfg.steps == 0 or (learnt is not None and learnt[0] == state.annotations.version):
            return 0.0
        state.read_annotated_frames()
        notes = [state.annotations[a] for a in state.annotations if state.annotations[a].frame is not None]
        if not notes:
            return 0.0
        labels = [state.annotations.label_map(n.frame_idx, label_dtype(list(state.objects))) for n in notes]
        logger.info("test-time adaptation: %d steps on %d annotated frame(s) before the first frame", cfg.steps,
                    len(notes))
        start = time.perf_counter()
        base = learnt[1].model if learnt is not None else self.model
        frames = [n.frame for n in notes]
        zoom = self.config.zoom
        if self.config.zooms and zoom.adapt_crops:  # the scale the zoom segments each object at, too
            crops = object_crops(frames, labels, list(state.objects), zoom.margin, zoom.min_size)
            frames, labels = frames + [c[0] for c in crops], labels + [c[1] for c in crops]
        with torch.inference_mode(False), torch.enable_grad():  # callers may hold inference mode (SAM 2's usage)
            adapted = adapt_model(base, frames, labels, cfg.steps, cfg.lr, cfg.params,
                                  object_ids=list(state.objects), objects=self.config.objects, colors=self.config.colors,
                                  embedding_type=self.config.embedding_type, batch_size=cfg.batch_size, seed=cfg.seed,
                                  object_weight_max=cfg.object_weight_max,
                                  progress=progress, amp_dtype=self.predictor.dtype, cancel=cancel)
        self._adapted[state] = (state.annotations.version, SegGPTPredictor(adapted, dtype=self.predictor.dtype,
                                                                           exact_resize=self.config.exact_resize))
        seconds = time.perf_counter() - start
        logger.info("test-time adaptation done in %.1f s", seconds)
        return seconds

    def adapted(self, state: InferenceState) -> Optional[SegGPTPredictor]:
        """The session's adapted model (`adapt`): None before adaptation, or once forgotten."""
        return self._adapted.get(state, (None, None))[1]

    def forget_adaptation(self, state: InferenceState) -> None:
        """Forget what the session learnt: its next propagation adapts afresh (the app's new step count)."""
        self._adapted.pop(state, None)

    def propagate_in_video(self, state: InferenceState, start_frame_idx: Optional[int] = None,
                           max_frames: Optional[int] = None, reverse: bool = False,
                           progress: Optional[Callable[[AdaptProgress], None]] = None,
                           cancel: Optional[threading.Event] = None
                           ) -> Iterator[Tuple[int, List[int], np.ndarray]]:
        """`propagate` as tuples, SAM 2's generator shape: (frame_idx, obj_ids, masks (N, H, W) bool) for every
        object of the session (`progress` and `cancel` as in `propagate`). A thin alias: SAM 2's own arguments
        and outputs (float tensors, any integer ids) are `vos.sam2`'s."""
        for r in self.propagate(state, start_frame_idx, max_frames, reverse, progress, cancel):
            yield r.frame_idx, list(r.object_ids), r.masks

    # ================================================================== internals
    def _run(self, tracker: Tracker, frames, ahead: int, cancel: Optional[threading.Event] = None
             ) -> Iterator[FrameResult]:
        """Frames through the tracker in batches; annotated frames end a batch and answer with their masks.
        `ahead`: frames made ready for the model ahead of the one it runs (`_ahead`); `cancel` set: the
        pass ends after the frame it has just yielded (results still being finished are dropped)."""
        # closed at the end: its threads end now, not when the garbage collector finds it
        with contextlib.closing(self._batches(tracker, frames, ahead)) as batches:
            for result in batches:
                yield result
                if cancel is not None and cancel.is_set():
                    return

    def _batches(self, tracker: Tracker, frames, ahead: int) -> Iterator[FrameResult]:
        annotations = tracker.annotations
        pending: List[Tuple[int, np.ndarray, Future]] = []
        finishing: FinishQueue[FrameResult] = FinishQueue(self.device)
        preparing = one_thread_worker(self.device, "vos-prepare")

        def run_pending() -> None:
            queries = [q.result() for _, _, q in pending]
            finishing.submit(tracker.run_batch([(i, f) for i, f, _ in pending],
                                               torch.cat(queries) if queries else None))
            pending.clear()

        try:
            for idx, frame, queries in _ahead(_until_error(frames), preparing, self.predictor, ahead, annotations):
                if idx is None or idx in annotations:  # the source's error or an annotated frame: the frames
                    # before it are finished first
                    run_pending()
                    yield from finishing.results(keep=0)
                    if idx is None:  # the source failed at a frame: raised once those are out
                        raise frame
                    yield tracker.annotate(idx, frame)
                    continue
                pending.append((idx, frame, queries))
                if len(pending) >= self.config.batch_frames:
                    run_pending()
                    # the previous batch's results, finished while this batch went through the model
                    yield from finishing.results(keep=1)
            run_pending()
            yield from finishing.results(keep=0)
        finally:
            finishing.close()
            preparing.shutdown(wait=True, cancel_futures=True)


def _ahead(items: Iterator[Tuple[Optional[int], object]], pool: ThreadPoolExecutor, predictor: SegGPTPredictor,
           depth: int, annotated: Container[int]) -> Iterator[Tuple[Optional[int], object, Optional[Future]]]:
    """The items with each frame's model-size tensor being made on `pool`, `depth` frames ahead of the
    consumer: the next batch is resized and normalised while the current one is in the model.

    An annotated frame or the source's error (idx None) is never waited on: what is held goes out first,
    then it, at once (an annotated frame's result is its mask, with no model call to overlap). An error
    the source raises (other than `VideoError`, which `_until_error` makes an item) comes after the
    frames read before it, as it would without look-ahead."""
    window: Deque[Tuple[Optional[int], object, Optional[Future]]] = deque()
    try:
        for idx, frame in items:
            if idx is None or idx in annotated:
                yield from _drain(window)
                yield idx, frame, None
                continue
            window.append((idx, frame, pool.submit(predictor.preprocess_images, [frame])))
            if len(window) > depth:
                yield window.popleft()
    except Exception:
        yield from _drain(window)
        raise
    yield from _drain(window)


def _drain(window: Deque) -> Iterator:
    """What `window` holds, oldest first, emptying it."""
    while window:
        yield window.popleft()


def _nothing() -> Iterator[FrameResult]:
    """The pass of a propagation cancelled during its adaptation: no frames."""
    return
    yield


def _until_error(frames) -> Iterator[Tuple[Optional[int], object]]:
    """The frames, then (None, the error) if reading the next one fails (a damaged video)."""
    try:
        yield from frames
    except VideoError as error:
        yield None, error


__all__ = ["VideoSegmenter", "FrameResult", "InferenceState", "EngineError", "LiveStream"]
