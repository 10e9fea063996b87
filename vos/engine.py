"""VideoSegmenter: masks of objects on some frames in, the objects on every frame out.

Two ways in, shaped like what editing tools already call:
* a streaming core, `step(frame, mask=None)`, for live or frame-by-frame use (Cutie's shape);
* a session API over a whole video (SAM 2's shape): `init_state`, `add_new_mask`, `propagate_in_video`,
  `remove_object`, `reset_state`.

Both drive one `_Tracker`: a PromptMemory plus the rules for user masks. A frame with a user mask is
predicted first (for the objects the mask does not mention), then the mask is painted over the
prediction, and the merged map becomes a permanent prompt. So a later annotation that holds only new
objects (YouTube-VOS) adds them without erasing the others, and a new mask for an existing object
replaces its prompt from that frame on (older prompts holding it are retired).

The engine knows nothing of files: frames come from a FrameSource, results go back to the caller.
"""
from __future__ import annotations

import functools
import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from seggpt import SegGPT
from seggpt.colors import distinct_colors, palette
from seggpt.predictor import SegGPTPredictor

from .config import EngineConfig
from .memory import Prompt, PromptMemory
from .video import FrameSource, open_source

log = logging.getLogger(__name__)

MAX_OBJECTS = 255  # index PNGs hold ids 1..255


class EngineError(ValueError):
    """Bad use of the engine (one-line message): unknown object, frame out of range, bad mask."""


@dataclass
class FrameResult:
    """One frame's segmentation at the frame's own size."""

    frame_idx: int
    labels: np.ndarray  # (H, W) int32 object ids, 0 = background
    object_ids: List[int]
    #: (H, W) float32 in [0, 1], the margin between the best and second-best label; or a function
    #: making it, called on first access of `confidence` (most callers never look: it costs a resize)
    confidence_map: Union[np.ndarray, Callable[[], np.ndarray]] = field(repr=False)
    frame: Optional[np.ndarray] = None  # the RGB frame itself, for overlays (no second decode)

    @property
    def confidence(self) -> np.ndarray:
        """(H, W) float32 in [0, 1]: 0 where two labels tie, 1 where one label is unambiguous."""
        if callable(self.confidence_map):
            self.confidence_map = self.confidence_map()
        return self.confidence_map

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool, one per object id, in `object_ids` order."""
        if not self.object_ids:
            return np.zeros((0,) + self.labels.shape, dtype=bool)
        return self.labels[None] == np.asarray(self.object_ids, dtype=self.labels.dtype)[:, None, None]


@dataclass
class InferenceState:
    """A session over one video: the frame source and the user's masks (nothing that grows with length)."""

    source: FrameSource
    #: frame_idx -> {obj_id: (H, W) bool mask} given by the user
    annotations: Dict[int, Dict[int, np.ndarray]] = field(default_factory=dict)
    object_ids: List[int] = field(default_factory=list)

    @property
    def num_frames(self) -> Optional[int]:
        return self.source.num_frames

    @property
    def size(self) -> Tuple[int, int]:
        return self.source.size

    @property
    def fps(self) -> float:
        return self.source.fps


def resolve_device(device: Optional[Union[str, torch.device]]) -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise EngineError("--device cuda was asked for, but no CUDA GPU is available (use --device cpu)")
    return dev


def resolve_dtype(dtype: Optional[Union[str, torch.dtype]], device: torch.device) -> Optional[torch.dtype]:
    """auto: bf16 autocast on CUDA, fp32 on the CPU."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    table = {"fp32": None, "float32": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
             "fp16": torch.float16, "float16": torch.float16}
    if dtype not in table:
        raise EngineError(f"unknown dtype {dtype!r}; use auto, fp32, bf16 or fp16")
    return table[dtype]


@dataclass
class _Predicted:
    """One batch through the model: what the memory needs now, and `finish` for the frame-size labels."""

    queries: torch.Tensor  # (B, 3, h, w) preprocessed frames: prompts once memorised
    small_labels: List[torch.Tensor]  # (h, w) object ids at model size, per frame
    mean_confidence: List[float]
    finish: Callable[[], List[Tuple[np.ndarray, "np.ndarray | Callable[[], np.ndarray]"]]]


class _Tracker:
    """Memory + the per-frame rules, shared by the streaming core and the session API."""

    def __init__(self, seg: "VideoSegmenter"):
        self.seg = seg
        cfg = seg.config
        self.memory = PromptMemory(cfg.memory, cfg.memory_stride, cfg.confidence_gate)
        self.active: List[int] = []  # objects with a user prompt in this pass

    # -------------------------------------------------------------- one batch of frames
    def predict(self, frames: Sequence[np.ndarray]) -> "_Predicted":
        """Frames (same size) against the current memory.

        What the memory needs (labels at model size, mean confidence) is computed now; the labels
        at frame size are left to `_Predicted.finish`, which a pipeline runs on a worker thread
        while the next frames go through the model.
        """
        seg = self.seg
        queries = seg.predictor.preprocess_images(list(frames))
        b = len(frames)
        size = frames[0].shape[:2]
        if not self.active or not len(self.memory):
            h, w = seg.model.config.image_size
            empty = torch.zeros(h, w, dtype=torch.long, device=queries.device)
            return _Predicted(queries, [empty] * b, [1.0] * b,
                              lambda: [(np.zeros(size, np.int32), np.ones(size, np.float32)) for _ in range(b)])
        prompts = self.memory.prompts()
        images = torch.stack([p.image for p in prompts])  # (K,3,h,w)
        ids = torch.tensor([0] + self.active, device=queries.device)
        if seg.config.objects == "joint":
            scores = self._joint(queries, images, prompts)  # (B, 1+N, h, w): higher = more likely
        else:
            scores = self._separate(queries, images, prompts)
        small_conf, small_idx = _margin(scores)
        mean_conf = small_conf.flatten(1).mean(dim=1).tolist()
        return _Predicted(queries, list(ids[small_idx]), mean_conf,
                          functools.partial(self._finish, scores, small_idx, small_conf, ids, size))

    def _finish(self, scores: torch.Tensor, small_idx: torch.Tensor, small_conf: torch.Tensor, ids: torch.Tensor,
                size: Tuple[int, int]) -> List[Tuple[np.ndarray, Callable[[], np.ndarray]]]:
        """Labels at frame size (and the confidence, lazily) for each frame of a batch."""
        if self.seg.config.resize == "nearest":  # the official way: decide at model size, then upsample
            full_idx = F.interpolate(small_idx[:, None].float(), size=size, mode="nearest-exact")[:, 0].long()
            full_labels = ids.to(torch.int32)[full_idx].cpu().numpy()
        else:  # labels from the scores resized to frame size (only where the resize can change them)
            full_labels = SegGPTPredictor.resize_argmax(scores, size, values=ids.to(torch.int32)).cpu().numpy()
        return [(full_labels[i], functools.partial(self._full_confidence, small_conf[i], size))
                for i in range(len(full_labels))]

    def _full_confidence(self, small_conf: torch.Tensor, size: Tuple[int, int]) -> np.ndarray:
        """The confidence map at frame size: computed only if a caller asks (FrameResult.confidence)."""
        conf = small_conf[None, None].float()
        if self.seg.config.resize == "nearest":
            full = F.interpolate(conf, size=size, mode="nearest-exact")
        else:
            full = SegGPTPredictor.resize_scores(conf, size)
        return full[0, 0].cpu().numpy()

    def _joint(self, queries: torch.Tensor, images: torch.Tensor, prompts: List[Prompt]) -> torch.Tensor:
        """All objects in one pass, object i painted with colour i+1; scores = -colour distance."""
        seg = self.seg
        colors = (distinct_colors if seg.config.colors == "distinct" else palette)(len(self.active))
        lut = self._lut(queries.device)
        masks = seg.predictor.normalize(
            torch.as_tensor(colors, dtype=torch.float32, device=queries.device)[
                torch.stack([lut[p.labels] for p in prompts])
            ].permute(0, 3, 1, 2)
        )
        b = queries.shape[0]
        out = seg.model.infer(queries, images[None].expand(b, -1, -1, -1, -1), masks[None].expand(b, -1, -1, -1, -1),
                              embedding_type=seg.config.embedding_type)
        return -seg.predictor.colour_distances(out, colors)

    def _separate(self, queries: torch.Tensor, images: torch.Tensor, prompts: List[Prompt]) -> torch.Tensor:
        """Each object on its own as white-on-black (the official setting); scores from fg/bg distances."""
        seg = self.seg
        n, b = len(self.active), queries.shape[0]
        colors = palette(1)  # black, white
        white = torch.as_tensor(colors, dtype=torch.float32, device=queries.device)
        labels = torch.stack([p.labels for p in prompts])  # (K,h,w)
        per_obj = torch.stack([(labels == o).long() for o in self.active])  # (N,K,h,w)
        masks = seg.predictor.normalize(white[per_obj.flatten(0, 1)].permute(0, 3, 1, 2))
        masks = masks.reshape(n, len(prompts), *masks.shape[1:])
        k = len(prompts)
        out = seg.model.infer(
            queries.repeat_interleave(n, dim=0),
            images[None].expand(b * n, -1, -1, -1, -1),
            masks[None].expand(b, -1, -1, -1, -1, -1).reshape(b * n, k, *masks.shape[2:]),
            embedding_type=seg.config.embedding_type,
        )
        d = seg.predictor.colour_distances(out, colors)  # (B*N, 2, h, w)
        fg = (d[:, 0] / (d[:, 0] + d[:, 1]).clamp_min(1e-6)).reshape(b, n, *d.shape[-2:])  # 1 = white
        # background scores as "no object is foreground": a pixel goes to the best object only past 0.5
        bg = 1.0 - fg.max(dim=1, keepdim=True).values
        return torch.cat([bg, fg], dim=1)

    def _lut(self, device: torch.device) -> torch.Tensor:
        """Object id -> colour index (0 background, i+1 for the i-th active object; others background)."""
        top = max(self.active + [max((int(p.labels.max()) for p in self.memory.prompts()), default=0)])
        lut = torch.zeros(top + 1, dtype=torch.long, device=device)
        for i, o in enumerate(self.active):
            lut[o] = i + 1
        return lut

    # -------------------------------------------------------------- memory updates
    def memorise(self, frame_idx: int, query: torch.Tensor, labels_small: torch.Tensor, confidence: float) -> None:
        self.memory.offer_prediction(
            Prompt(frame_idx, query, labels_small, objects=set(self.active)), confidence
        )

    def annotate(self, frame_idx: int, frame: np.ndarray, given: Dict[int, np.ndarray]) -> FrameResult:
        """A frame with user masks: predict the others, paint the given ones on top, keep as a prompt."""
        seg = self.seg
        corrected = {o for o in given if o in self.active}
        if any(o not in given for o in self.active):  # objects the mask does not mention: predict them
            predicted = self.predict([frame])
            (labels, conf), query = predicted.finish()[0], predicted.queries[0]
            conf = conf() if callable(conf) else conf
        else:
            query = seg.predictor.preprocess_images([frame])[0]
            labels, conf = np.zeros(frame.shape[:2], np.int32), np.ones(frame.shape[:2], np.float32)
        for o in given:
            labels[labels == o] = 0
        for o, m in given.items():
            labels[m] = o
            conf[m] = 1.0
        for o in given:
            if o not in self.active:
                self.active.append(o)
        small = torch.from_numpy(seg.predictor.resize_labels(labels)).to(query.device)
        present = {int(v) for v in np.unique(labels) if v}
        self.memory.add_user_prompt(Prompt(frame_idx, query, small, objects=present | set(given)), corrected)
        return FrameResult(frame_idx, labels, list(self.active), conf, frame)


class _FinishQueue:
    """Frame-size post-processing of each batch on one worker thread, one batch behind the model.

    Why: resizing labels to the frame and copying them out costs a small model as much as a
    quarter of its forward. The memory only needs model-size labels, so the next batch can go
    through the model while this one is finished; results still come out in order. The worker runs
    torch with one intra-op thread, so that it never competes with the model's threads for cores
    (an oversubscribed OpenMP team stalls on its barriers).
    """

    def __init__(self, device: torch.device):
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="vos-finish")
        if device.type == "cpu":
            threads = torch.get_num_threads()
            self._pool.submit(_use_one_thread).result()
            torch.set_num_threads(threads)  # the setting is also a process-wide default: put it back
        self._queue: Deque[Future] = deque()

    def submit(self, make_results: Callable[[], List[FrameResult]]) -> None:
        self._queue.append(self._pool.submit(make_results))

    def results(self, keep: int) -> Iterator[FrameResult]:
        """Results of the oldest batches, in order, until at most `keep` are still in flight."""
        while len(self._queue) > keep:
            yield from self._queue.popleft().result()

    def close(self) -> None:
        for future in self._queue:
            future.cancel()
        self._queue.clear()
        self._pool.shutdown(wait=True)


def _use_one_thread() -> None:
    torch.get_num_threads()  # torch sets a thread's count on first use: do it now, then override it
    torch.set_num_threads(1)


def _margin(scores: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Best label and a confidence in [0, 1] from per-label scores (B, L, H, W) (higher = better).

    Confidence is the normalised gap between the best and the second-best score: 0 where two labels
    tie (an edge, or a colour half-way between two objects), 1 where one label is unambiguous.
    """
    if scores.shape[1] == 1:
        return torch.ones_like(scores[:, 0]), torch.zeros_like(scores[:, 0], dtype=torch.long)
    top2 = scores.topk(2, dim=1)
    gap = top2.values[:, 0] - top2.values[:, 1]
    scale = top2.values[:, 0].abs() + top2.values[:, 1].abs()
    return (gap / scale.clamp_min(1e-6)).clamp(0, 1), top2.indices[:, 0]


class VideoSegmenter:
    """In-context video object segmentation with SegGPT (see the module docstring)."""

    def __init__(
        self,
        model_or_weights: Union[SegGPT, str] = "BAAI/seggpt-vit-large",
        config: Union[None, str, dict, EngineConfig] = None,
        device: Optional[Union[str, torch.device]] = None,
        dtype: Optional[Union[str, torch.dtype]] = None,
    ):
        self.config = EngineConfig.load(config) if not isinstance(config, EngineConfig) else config
        self.device = resolve_device(device)
        amp = resolve_dtype(dtype, self.device)
        if isinstance(model_or_weights, SegGPT):
            model = model_or_weights.to(self.device)
        else:
            model = SegGPT.from_pretrained(str(model_or_weights), device=self.device)
        self.model = model.eval()
        if self.config.compile:
            model.compile(self.config.compile)
        self.predictor = SegGPTPredictor(model, dtype=amp, exact_resize=self.config.exact_resize)
        model.autocast_dtype = amp  # this engine's dtype decides, also over an earlier engine's on the same model
        self._live: Optional[_Tracker] = None
        self._live_idx = 0

    # ================================================================== streaming core
    def step(self, frame: np.ndarray, mask: Optional[np.ndarray] = None,
             object_ids: Optional[Sequence[int]] = None) -> FrameResult:
        """Segment the next frame of a live stream; `mask` (a label map, or a bool mask with one id in
        `object_ids`) adds or corrects objects on this frame."""
        if self._live is None:
            self._live = _Tracker(self)
            self._live_idx = 0
        frame = _check_frame(frame)
        idx = self._live_idx
        self._live_idx += 1
        given = _masks_from(mask, object_ids, frame.shape[:2], f"frame {idx}") if mask is not None else {}
        if given:
            self._check_object_count(set(self._live.active) | set(given))
            return self._live.annotate(idx, frame, given)
        return self._run_batch(self._live, [(idx, frame)])()[0]

    def reset(self) -> None:
        """Forget the live stream (memory and objects)."""
        self._live = None
        self._live_idx = 0

    # ================================================================== session API
    def init_state(self, source, **source_kw) -> InferenceState:
        """Open a video (file, frame folder, array, iterator or FrameSource); frames stream, never all in memory."""
        src = source if isinstance(source, FrameSource) else open_source(source, **source_kw)
        return InferenceState(source=src)

    def add_new_mask(self, state: InferenceState, frame_idx: int, obj_id: int, mask: np.ndarray) -> None:
        """Give (or correct) object `obj_id` on frame `frame_idx` with a (H, W) boolean mask."""
        self._check_frame_idx(state, frame_idx)
        if int(obj_id) < 1:
            raise EngineError(f"object ids must be positive integers, got {obj_id}")
        m = np.asarray(mask)
        if m.shape != tuple(state.size):
            raise EngineError(f"mask for object {obj_id} is {m.shape[1]}x{m.shape[0]}, frames are "
                              f"{state.size[1]}x{state.size[0]}")
        ids = set(state.object_ids) | {int(obj_id)}
        self._check_object_count(ids)
        state.annotations.setdefault(int(frame_idx), {})[int(obj_id)] = m.astype(bool)
        if int(obj_id) not in state.object_ids:
            state.object_ids.append(int(obj_id))

    def add_mask(self, state: InferenceState, frame_idx: int, labels: np.ndarray) -> List[int]:
        """Give several objects at once with a label map (ids as given; 0 asserts nothing about others)."""
        given = _masks_from(labels, None, tuple(state.size), f"frame {frame_idx}")
        for o, m in given.items():
            self.add_new_mask(state, frame_idx, o, m)
        return sorted(given)

    def remove_object(self, state: InferenceState, obj_id: int) -> None:
        if obj_id not in state.object_ids:
            raise EngineError(f"no object {obj_id} in this session (objects: {state.object_ids})")
        state.object_ids.remove(obj_id)
        for f in list(state.annotations):
            state.annotations[f].pop(obj_id, None)
            if not state.annotations[f]:
                del state.annotations[f]

    def reset_state(self, state: InferenceState) -> None:
        """Drop every mask and object; the video stays open."""
        state.annotations.clear()
        state.object_ids.clear()

    def propagate(self, state: InferenceState, start_frame_idx: Optional[int] = None,
                  max_frames: Optional[int] = None, reverse: bool = False) -> Iterator[FrameResult]:
        """Segment frames from `start_frame_idx` (default: the first annotated frame, or the last one when
        reverse) onwards, or backwards; yields a FrameResult per frame, in processing order."""
        if not state.annotations:
            raise EngineError("add a mask first: no object is given on any frame")
        frames_given = sorted(state.annotations)
        start = start_frame_idx if start_frame_idx is not None else (frames_given[-1] if reverse else frames_given[0])
        self._check_frame_idx(state, start)
        n = state.num_frames
        if reverse:
            lo = 0 if max_frames is None else max(0, start - max_frames + 1)
            frames = state.source.iter_frames(lo, start + 1, reverse=True)
        else:
            stop = None if max_frames is None else start + max_frames
            if n is not None and stop is not None:
                stop = min(stop, n)
            frames = state.source.iter_frames(start, stop)
        tracker = _Tracker(self)
        pending: List[Tuple[int, np.ndarray]] = []
        finishing = _FinishQueue(self.device)
        try:
            for idx, frame in frames:
                if idx in state.annotations:
                    finishing.submit(self._run_batch(tracker, pending))
                    pending = []
                    yield from (self._with_all_ids(r, state) for r in finishing.results(keep=0))
                    given = {o: m for o, m in state.annotations[idx].items() if o in state.object_ids}
                    yield self._with_all_ids(tracker.annotate(idx, frame, given), state)
                    continue
                pending.append((idx, frame))
                if len(pending) >= self.config.batch_frames:
                    finishing.submit(self._run_batch(tracker, pending))
                    pending = []
                    # the previous batch's results, finished while this batch went through the model
                    yield from (self._with_all_ids(r, state) for r in finishing.results(keep=1))
            finishing.submit(self._run_batch(tracker, pending))
            yield from (self._with_all_ids(r, state) for r in finishing.results(keep=0))
        finally:
            finishing.close()

    def propagate_in_video(self, state: InferenceState, start_frame_idx: Optional[int] = None,
                           max_frames: Optional[int] = None, reverse: bool = False
                           ) -> Iterator[Tuple[int, List[int], np.ndarray]]:
        """SAM 2's generator: (frame_idx, obj_ids, masks (N, H, W) bool) for every object of the session."""
        for r in self.propagate(state, start_frame_idx, max_frames, reverse):
            yield r.frame_idx, list(r.object_ids), r.masks

    # ================================================================== internals
    def _run_batch(self, tracker: _Tracker, batch: List[Tuple[int, np.ndarray]]) -> Callable[[], List[FrameResult]]:
        """Predict and memorise a batch now; return the function that makes its frame-size results."""
        if not batch:
            return list
        predicted = tracker.predict([f for _, f in batch])
        active = list(tracker.active)
        if active:
            for i, (idx, _) in enumerate(batch):
                tracker.memorise(idx, predicted.queries[i], predicted.small_labels[i], predicted.mean_confidence[i])

        def results() -> List[FrameResult]:
            return [FrameResult(idx, labels, list(active), conf, frame)
                    for (idx, frame), (labels, conf) in zip(batch, predicted.finish())]
        return results

    @staticmethod
    def _with_all_ids(result: FrameResult, state: InferenceState) -> FrameResult:
        result.object_ids = list(state.object_ids)
        return result

    @staticmethod
    def _check_frame_idx(state: InferenceState, frame_idx: int) -> None:
        n = state.num_frames
        if frame_idx < 0 or (n is not None and frame_idx >= n):
            raise EngineError(f"frame index {frame_idx} is out of range (the video has {n} frames: 0..{(n or 1) - 1})")

    @staticmethod
    def _check_object_count(ids) -> None:
        if len(ids) > MAX_OBJECTS:
            raise EngineError(f"{len(ids)} objects: at most {MAX_OBJECTS} can be segmented (index PNGs hold ids 1..255)")


def _check_frame(frame: np.ndarray) -> np.ndarray:
    f = np.asarray(frame)
    if f.ndim != 3 or f.shape[2] != 3 or f.dtype != np.uint8:
        raise EngineError(f"a frame must be an (H, W, 3) uint8 RGB array, got {f.dtype} {f.shape}")
    return f


def _masks_from(mask: np.ndarray, object_ids: Optional[Sequence[int]], size: Tuple[int, int],
                where: str) -> Dict[int, np.ndarray]:
    """A label map, or a bool mask with one id, -> {obj_id: bool mask}."""
    m = np.asarray(mask)
    if m.shape != tuple(size):
        raise EngineError(f"{where}: the mask is {m.shape[-1]}x{m.shape[0]}, the frame {size[1]}x{size[0]}")
    if m.dtype == bool:
        if not object_ids or len(object_ids) != 1:
            raise EngineError(f"{where}: a boolean mask needs exactly one object id")
        return {int(object_ids[0]): m}
    if not np.issubdtype(m.dtype, np.integer):
        raise EngineError(f"{where}: a mask must be a label map of integer ids or a boolean mask")
    ids = [int(v) for v in np.unique(m) if v > 0]
    if object_ids is not None:
        ids = [i for i in ids if i in set(int(o) for o in object_ids)]
    return {i: m == i for i in ids}


__all__ = ["VideoSegmenter", "FrameResult", "InferenceState", "EngineError", "resolve_device", "resolve_dtype"]
