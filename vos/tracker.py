"""Tracker: one pass over a video in one direction (Cutie's inference core, reduced to SegGPT's needs).

It holds the recent-prediction memory of the pass and asks the session's `Annotations` which
annotated frames condition each frame; the predictor does the one model call. With the engine's
zoom on (separate mode), it also follows where each object is (`vos.zoom`) and segments each one in
a crop around it, its prompts cropped around it the same way, the crop's scores pasted back at frame
size: one model call per object per frame, as separate mode costs anyway. It knows nothing of
files or of the segmenter that made it (no back-references): a live stream and a propagation each
own one.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from seggpt.predictor import SegGPTPredictor
from seggpt.refine import auto_params, refine_argmax, refine_margins, refine_scores

from .config import EngineConfig
from .memory import Prompt, PromptMemory
from .objects import EngineError, Objects, label_dtype
from .state import AnnotatedPrompt, Annotations
from .zoom import Whereabouts, follow, main_parts, mask_box, place, query_crop

LazyMap = Union[np.ndarray, Callable[[], np.ndarray]]


@dataclass
class FrameResult:
    """One frame's segmentation at the frame's own size."""

    frame_idx: int
    labels: np.ndarray  # (H, W) int32 object ids, 0 = background
    object_ids: List[int]  # every object of the session (an absent one has an empty mask)
    #: (H, W) float32 in [0, 1], the margin between the best and second-best label; or a function
    #: making it, called on first access of `confidence` (most callers never look: it costs a resize)
    confidence_map: LazyMap = field(repr=False)
    frame: Optional[np.ndarray] = None  # the RGB frame itself, for overlays (no second decode)
    #: (N, H, W) float32 per-object margins, or a function making them, or None (derived from the labels
    #: and `confidence`): see `margins`
    margins_map: Optional[LazyMap] = field(default=None, repr=False)

    @property
    def confidence(self) -> np.ndarray:
        """(H, W) float32 in [0, 1]: 0 where two labels tie, 1 where one label is unambiguous."""
        if callable(self.confidence_map):
            self.confidence_map = self.confidence_map()
        return self.confidence_map

    @property
    def margins(self) -> np.ndarray:
        """(N, H, W) float32 in [-1, 1], one per object in `object_ids` order: the object's score minus the
        best other label's score, normalised like `confidence` ((a - b) / (|a| + |b|)), from the very
        frame-size scores the labels are decided from (resized bilinearly or nearest, or refined against
        the frame when the engine's `refine` is on: `seggpt.refine.refine_margins`).

        Positive exactly where the pixel's label is that object (ties aside), and there it equals
        `confidence`; -1 for an object that does not exist on this frame. For an annotated frame the
        masks given are +1 inside and the rest follows the labels: `where(labels == id, c, -c)` with
        c = `confidence`. Computed on first access only (it resizes every object's score map), for
        soft edges (`vos.exports.soft_alpha`).
        """
        if self.margins_map is None:
            conf = self.confidence
            self.margins_map = np.where(self.masks, conf[None], -conf[None]).astype(np.float32)
        elif callable(self.margins_map):
            self.margins_map = self.margins_map()
        return self.margins_map

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool, one per object id, in `object_ids` order."""
        if not self.object_ids:
            return np.zeros((0,) + self.labels.shape, dtype=bool)
        return self.labels[None] == np.asarray(self.object_ids, dtype=self.labels.dtype)[:, None, None]


@dataclass
class Predicted:
    """One batch through the model: what the memory needs now, and `finish` for the frame-size maps."""

    queries: torch.Tensor  # (B, 3, h, w) preprocessed frames: prompts once memorised
    small_labels: List[torch.Tensor]  # (h, w) object ids at model size, per frame
    mean_confidence: List[float]
    finish: Callable[[], List[Tuple[np.ndarray, LazyMap]]]  # per frame: labels, confidence
    #: (batch index, object ids) -> (N, H, W) margins at frame size (FrameResult.margins); None: no scores
    margins: Optional[Callable[[int, List[int]], np.ndarray]] = None
    #: per frame, the labels at frame size, made at once (the zoom: where each object is next depends on them)
    full_labels: Optional[List[np.ndarray]] = None


class Tracker:
    """Recent memory + annotated prompts -> labels, for one direction (see the module docstring)."""

    def __init__(self, predictor: SegGPTPredictor, config: EngineConfig, annotations: Annotations,
                 objects: Objects, reverse: bool = False):
        self.predictor = predictor
        self.config = config
        self.annotations = annotations
        self.objects = objects
        self.reverse = reverse
        self.memory = PromptMemory(config.memory, config.memory_stride, config.confidence_gate)
        self.zoom = config.zoom if config.zooms else None
        self.whereabouts: Dict[int, Optional[Whereabouts]] = {}  # the zoom's: per object, where it was last

    # ------------------------------------------------------------------ frames without masks
    def run_batch(self, batch: Sequence[Tuple[int, np.ndarray]], queries: Optional[torch.Tensor] = None
                  ) -> Callable[[], List[FrameResult]]:
        """Predict and memorise frames (same size, no annotations among them, none annotated in between)
        now; return the function that makes their frame-size results (a worker thread may call it).

        `queries`: the frames already at model size (`SegGPTPredictor.preprocess_images`), made ahead by
        the caller while the previous batch was in the model; None makes them here."""
        if not batch:
            return list
        frames = [f for _, f in batch]
        first = batch[0][0]
        active = self.objects.ordered(self.annotations.objects_at(first, self.reverse))
        prompts = [*self._annotated_prompts(first, include_t=True), *self.memory.prompts()]
        if queries is None:
            queries = self.predictor.preprocess_images(frames)
        if self.zoom is not None and active and prompts:
            predicted = self._predict_zoomed(queries, frames, prompts, active)
            self._follow(predicted.full_labels[-1], active)
        else:
            predicted = self._predict(queries, prompts, active, frames[0].shape[:2], frames)
        if active:
            for i, (idx, frame) in enumerate(batch):
                full = None if predicted.full_labels is None else predicted.full_labels[i]
                self.memory.offer(Prompt(idx, predicted.queries[i], predicted.small_labels[i],
                                         frame if full is not None else None, full), predicted.mean_confidence[i])
        ids = list(self.objects)
        return lambda: [FrameResult(idx, labels, ids, conf, frame,
                                    None if predicted.margins is None else functools.partial(predicted.margins, i, ids))
                        for i, ((idx, frame), (labels, conf)) in enumerate(zip(batch, predicted.finish()))]

    # ------------------------------------------------------------------ annotated frames
    def annotate(self, frame_idx: int, frame: np.ndarray) -> FrameResult:
        """An annotated frame reached by this pass: its annotated prompt is its result."""
        note = self.annotations[frame_idx]
        if note.image is None:
            self.annotations.set_image(frame_idx, self.predictor.preprocess_images([frame])[0], frame)
        if self.annotations.corrects(frame_idx, self.reverse):
            self.memory.clear()  # predictions made with the mistake the user just corrected
        prompt = self.annotated_prompt(frame_idx)
        if self.zoom is not None:
            self._follow(prompt.full_labels, list(self.objects))
        return FrameResult(frame_idx, prompt.full_labels.copy(), list(self.objects), prompt.confidence.copy(), frame)

    def annotated_prompt(self, frame_idx: int) -> AnnotatedPrompt:
        """The annotated prompt of `frame_idx` in this direction, made (with those before it) if not cached."""
        for a in self.annotations.side(frame_idx, self.reverse, include_t=True):
            if self.annotations.prompt(a, self.reverse) is None:
                self.annotations.keep_prompt(self._make_annotated_prompt(a), self.reverse)
        return self.annotations.prompt(frame_idx, self.reverse)

    def _annotated_prompts(self, t: int, include_t: bool) -> List[AnnotatedPrompt]:
        frames = self.annotations.conditioning(t, self.reverse, self.config.max_annotated, include_t)
        return [self.annotated_prompt(a) for a in frames]

    def _make_annotated_prompt(self, a: int) -> AnnotatedPrompt:
        """The user's masks on frame a over a prediction of the objects they do not mention."""
        note = self.annotations[a]
        if note.image is None:
            raise EngineError(f"frame {a} is annotated but was never read (an iterator source reads each frame "
                              "once: start the propagation at or before it)")
        size = note.size
        before = self.objects.ordered(self.annotations.objects_at(a, self.reverse, include_t=False))
        prior = self._annotated_prompts(a, include_t=False)
        if before and prior:
            frames = None if note.frame is None else [note.frame]
            (labels, conf), = self._predict(note.image[None], prior, before, size, frames).finish()
            conf = conf() if callable(conf) else conf
        else:
            labels, conf = np.zeros(size, np.int32), np.ones(size, np.float32)
        labels = labels.astype(label_dtype(list(self.objects)), copy=False)
        for o in note.given:
            labels[labels == o] = 0  # the user's mask is the whole of that object
        for o, m in note.given.items():
            labels[m] = o
            conf[m] = 1.0
        small = torch.from_numpy(self.predictor.resize_labels(labels)).to(note.image.device).long()
        return AnnotatedPrompt(a, note.image, small, labels, conf)

    # ------------------------------------------------------------------ the model
    def _predict(self, queries: torch.Tensor, prompts: Sequence[Union[Prompt, AnnotatedPrompt]],
                 active: List[int], size: Tuple[int, int], frames: Optional[Sequence[np.ndarray]] = None
                 ) -> Predicted:
        """Queries against prompts; labels at model size now, at frame size in `finish` (refined against
        `frames` when the engine's `refine` is on)."""
        b = queries.shape[0]
        if not active or not prompts:
            h, w = self.predictor.image_size
            empty = torch.zeros(h, w, dtype=torch.long, device=queries.device)
            return Predicted(queries, [empty] * b, [1.0] * b,
                             lambda: [(np.zeros(size, np.int32), np.ones(size, np.float32)) for _ in range(b)])
        cfg = self.config
        scores = self.predictor.scores(queries, torch.stack([p.image for p in prompts]),
                                       torch.stack([p.labels for p in prompts]), active,
                                       mode=cfg.objects, colors=cfg.colors, embedding_type=cfg.embedding_type,
                                       absent_prompts=cfg.absent_prompts)
        small_conf, small_idx = self.predictor.confidence(scores)
        ids = torch.tensor([0] + active, dtype=torch.long, device=queries.device)
        return Predicted(queries, list(ids[small_idx]), small_conf.flatten(1).mean(dim=1).tolist(),
                         functools.partial(self._finish, scores, small_idx, small_conf, ids, size, frames),
                         functools.partial(self._full_margins, scores, active, size, frames))

    def _finish(self, scores: torch.Tensor, small_idx: torch.Tensor, small_conf: torch.Tensor, ids: torch.Tensor,
                size: Tuple[int, int], frames: Optional[Sequence[np.ndarray]]) -> List[Tuple[np.ndarray, LazyMap]]:
        """Labels at frame size (and the confidence, lazily) for each frame of a batch."""
        values_type = torch.int32 if label_dtype(ids.tolist()) == np.int32 else torch.int64
        refine = self.config.refine
        if refine.enabled and frames is not None:  # edge-aware: the scores follow the frame's edges
            # frame by frame: `_full_margins` repeats exactly this call, so margins and labels share every bit
            radius, subsample = auto_params(size, scores.shape[-2:], refine.model_pixels)
            full_labels = torch.cat([refine_argmax(scores[i:i + 1], frames[i:i + 1], radius, refine.eps, subsample,
                                                   refine.guide, values=ids.to(values_type))
                                     for i in range(scores.shape[0])]).cpu().numpy()
        elif self.config.resize == "nearest":  # the official way: decide at model size, then upsample
            full_idx = F.interpolate(small_idx[:, None].float(), size=size, mode="nearest-exact")[:, 0].long()
            full_labels = ids.to(values_type)[full_idx].cpu().numpy()
        else:  # labels from the scores resized to frame size (only where the resize can change them)
            full_labels = SegGPTPredictor.resize_argmax(scores, size, values=ids.to(values_type)).cpu().numpy()
        return [(full_labels[i], functools.partial(self._full_confidence, small_conf[i], size))
                for i in range(len(full_labels))]

    def _full_margins(self, scores: torch.Tensor, active: List[int], size: Tuple[int, int],
                      frames: Optional[Sequence[np.ndarray]], i: int, object_ids: List[int]) -> np.ndarray:
        """FrameResult.margins of frame i of a batch (computed only if a caller asks): per object its score
        minus the best other one, normalised, from the frame-size scores `_finish` decided the labels from,
        so that a margin is positive exactly where the label is the object."""
        out = np.full((len(object_ids),) + tuple(size), -1.0, np.float32)
        if scores.shape[1] < 2:
            return out
        refine = self.config.refine
        if refine.enabled and frames is not None:  # the same refinement, frame by frame, as in `_finish`
            radius, subsample = auto_params(size, scores.shape[-2:], refine.model_pixels)
            margins = refine_margins(scores[i:i + 1], frames[i:i + 1], radius, refine.eps, subsample, refine.guide)[0]
        else:
            s = scores[i:i + 1].float()
            if self.config.resize == "nearest":
                s = F.interpolate(s, size=size, mode="nearest-exact")
            else:
                s = SegGPTPredictor.resize_scores(s, size)
            margins = _score_margins(s[0])
        for j, obj in enumerate(active):
            if obj in object_ids:
                out[object_ids.index(obj)] = margins[j].cpu().numpy()
        return out

    # ------------------------------------------------------------------ the zoom
    def _follow(self, labels: np.ndarray, objects: Sequence[int]) -> None:
        """Where each object is after a frame with these labels (lost: looked for on the whole frame next)."""
        for o in objects:
            self.whereabouts[o] = follow(self.whereabouts.get(o), labels == o)

    def _prompt_view(self, p: Union[Prompt, AnnotatedPrompt]) -> Optional[Tuple[np.ndarray, np.ndarray]]:
        """A prompt's frame and frame-size labels, the zoom's crops are cut from; None where not kept."""
        if isinstance(p, AnnotatedPrompt):
            frame = self.annotations[p.frame_idx].frame if p.frame_idx in self.annotations else None
            return None if frame is None else (frame, p.full_labels)
        return None if p.frame is None or p.full_labels is None else (p.frame, p.full_labels)

    def _to_size(self, scores: torch.Tensor, size: Tuple[int, int], frames: Sequence[np.ndarray]) -> torch.Tensor:
        """Scores (B, L, h, w) at `size`: refined against `frames` when the engine's `refine` is on, else resized."""
        refine = self.config.refine
        if refine.enabled:
            radius, subsample = auto_params(size, scores.shape[-2:], refine.model_pixels)
            return refine_scores(scores, list(frames), radius, refine.eps, subsample, refine.guide)
        if self.config.resize == "nearest":
            return F.interpolate(scores.float(), size=tuple(size), mode="nearest-exact")
        return SegGPTPredictor.resize_scores(scores.float(), size)

    def _zoomed_scores(self, o: int, queries: torch.Tensor, frames: Sequence[np.ndarray],
                       prompts: Sequence[Union[Prompt, AnnotatedPrompt]]) -> torch.Tensor:
        """Object `o`'s foreground score in [0, 1] on each frame (B, H, W): from its crop, pasted back (0
        outside it), or from the whole frame where it is lost or the crop holds none of it (it moved out:
        looked for on the whole frame at once, one more model pass on such frames only)."""
        cfg, zoom, predictor = self.config, self.zoom, self.predictor
        size = frames[0].shape[:2]
        views = [self._prompt_view(p) for p in prompts]
        boxes = [mask_box(v[1] == o) if v is not None else None for v in views]
        plan = query_crop(self.whereabouts.get(o), [b for b in boxes if b is not None], size, zoom.margin,
                          zoom.min_size, zoom.motion, zoom.max_cover)

        def model_scores(q: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
            return predictor.scores(q, images, labels, [o], mode="separate", colors=cfg.colors,
                                    embedding_type=cfg.embedding_type, absent_prompts=cfg.absent_prompts)

        def whole() -> torch.Tensor:  # the whole frame, as without zoom
            s = model_scores(queries, torch.stack([p.image for p in prompts]), torch.stack([p.labels for p in prompts]))
            return self._to_size(s, size, frames)[:, 1]

        if plan is None:
            return self._main_parts(whole())
        crop, side = plan
        y0, y1, x0, x1 = crop
        cut = [np.ascontiguousarray(f[y0:y1, x0:x1]) for f in frames]
        images, labels = [], []
        for p, view, box in zip(prompts, views, boxes):
            if view is None:  # a prompt without its frame: as the model sees it whole
                images.append(p.image)
                labels.append(p.labels)
                continue
            frame, full = view
            # around the object in its own frame; where it is absent, the query's region ("not here")
            py0, py1, px0, px1 = crop if box is None else place(((box[0] + box[1]) / 2, (box[2] + box[3]) / 2),
                                                               side, size)
            images.append(predictor.preprocess_images([np.ascontiguousarray(frame[py0:py1, px0:px1])])[0])
            small = predictor.resize_labels(np.ascontiguousarray(full[py0:py1, px0:px1]))
            labels.append(torch.from_numpy(np.asarray(small, np.int64)).to(p.labels.device))
        s = model_scores(predictor.preprocess_images(cut), torch.stack(images), torch.stack(labels))
        fg = torch.zeros((len(frames),) + tuple(size), device=queries.device)
        fg[:, y0:y1, x0:x1] = self._to_size(s, (y1 - y0, x1 - x0), cut)[:, 1]
        missed = ~(fg > 0.5).flatten(1).any(dim=1)  # not the object anywhere in the crop
        if missed.any():
            fg[missed] = whole()[missed]
        return self._main_parts(fg)

    def _main_parts(self, fg: torch.Tensor) -> torch.Tensor:
        """`fg` (B, H, W) with the object's small stray parts set to 0 (`vos.zoom.main_parts`)."""
        if not self.zoom.min_part:
            return fg
        for b in range(fg.shape[0]):
            mask = (fg[b] > 0.5).cpu().numpy()  # where the object wins (separate mode combines at 0.5)
            stray = torch.from_numpy(mask & ~main_parts(mask, self.zoom.min_part)).to(fg.device)
            fg[b][stray] = 0.0
        return fg

    def _predict_zoomed(self, queries: torch.Tensor, frames: Sequence[np.ndarray],
                        prompts: Sequence[Union[Prompt, AnnotatedPrompt]], active: List[int]) -> Predicted:
        """`_predict` with each object segmented in its crop (module docstring): frame-size labels at once."""
        size = frames[0].shape[:2]
        b = len(frames)
        fg = torch.zeros((b, len(active)) + tuple(size), device=queries.device)  # outside a crop: not the object
        for j, o in enumerate(active):
            fg[:, j] = self._zoomed_scores(o, queries, frames, prompts)
        scores = torch.cat([1.0 - fg.max(dim=1, keepdim=True).values, fg], dim=1)  # as separate mode combines
        conf, best = self.predictor.confidence(scores)
        ids = torch.tensor([0] + active, dtype=torch.long, device=queries.device)
        dtype = label_dtype(list(self.objects))
        full = [ids[best[i]].cpu().numpy().astype(dtype) for i in range(b)]
        small = [torch.from_numpy(np.asarray(self.predictor.resize_labels(f), np.int64)).to(queries.device)
                 for f in full]
        confs = [conf[i].cpu().numpy() for i in range(b)]
        return Predicted(queries, small, conf.flatten(1).mean(dim=1).tolist(),
                         lambda: list(zip(full, confs)), functools.partial(self._zoomed_margins, scores, active),
                         full)

    @staticmethod
    def _zoomed_margins(scores: torch.Tensor, active: List[int], i: int, object_ids: List[int]) -> np.ndarray:
        """FrameResult.margins from the zoom's frame-size scores (the formula of `_full_margins`)."""
        margins = _score_margins(scores[i].float())
        out = np.full((len(object_ids),) + tuple(margins.shape[-2:]), -1.0, np.float32)
        for j, obj in enumerate(active):
            if obj in object_ids:
                out[object_ids.index(obj)] = margins[j].cpu().numpy()
        return out

    def _full_confidence(self, small_conf: torch.Tensor, size: Tuple[int, int]) -> np.ndarray:
        """The confidence map at frame size: computed only if a caller asks (FrameResult.confidence)."""
        conf = small_conf[None, None].float()
        if self.config.resize == "nearest":
            full = F.interpolate(conf, size=size, mode="nearest-exact")
        else:
            full = SegGPTPredictor.resize_scores(conf, size)
        return full[0, 0].cpu().numpy()


def _score_margins(s: torch.Tensor) -> torch.Tensor:
    """(n, H, W) in [-1, 1] from per-label scores (1+n, H, W), label 0 the background: each object's score
    minus the best other label's, normalised like `SegGPTPredictor.confidence`."""
    top2 = s.topk(2, dim=0)
    rows = []
    for j in range(s.shape[0] - 1):
        other = torch.where(top2.indices[0] == j + 1, top2.values[1], top2.values[0])
        rows.append((s[j + 1] - other) / (s[j + 1].abs() + other.abs()).clamp_min(1e-6))
    return torch.stack(rows).clamp(-1, 1)


__all__ = ["Tracker", "FrameResult", "Predicted"]
