"""Tracker: one pass over a video in one direction (Cutie's inference core, reduced to SegGPT's needs).

It holds the recent-prediction memory of the pass and the annotated prompts it made (until an
annotation changes), and asks the session's `Annotations` which annotated frames condition each frame;
the predictor does the one model call, `seggpt.decode` brings its scores to frame size. With the engine's
zoom on (separate mode), it also follows where each object is (`vos.engine.zoom`) and segments each one in
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

from seggpt.decode import Decoded, Decoding, confidence, host
from seggpt.predictor import SegGPTPredictor

from vos.engine.config import EngineConfig
from vos.engine.memory import Prompt, PromptMemory
from vos.engine.objects import EngineError, Objects, label_dtype
from vos.engine.state import AnnotatedPrompt, Annotations
from vos.engine.zoom import Whereabouts, follow, main_parts, mask_box, place, query_crop


@dataclass
class FrameResult:
    """One frame's segmentation at the frame's own size."""

    frame_idx: int
    labels: np.ndarray  # (H, W) int32 object ids, 0 = background
    object_ids: List[int]  # every object of the session (an absent one has an empty mask)
    #: what `confidence` and `margins` are made from on first access (most callers never look: each costs a
    #: resize): this frame's maps in host memory (`seggpt.decode.Decoded`)
    decoded: Decoded = field(repr=False)
    frame: Optional[np.ndarray] = None  # the RGB frame itself, for overlays (no second decode)
    _margins: Optional[np.ndarray] = field(default=None, init=False, repr=False)

    @property
    def confidence(self) -> np.ndarray:
        """(H, W) float32 in [0, 1]: 0 where two labels tie, 1 where one label is unambiguous."""
        return self.decoded.confidence

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
        soft edges (`vos.io.exports.soft_alpha`).
        """
        if self._margins is None:
            margins = self.decoded.margins(self.object_ids)
            if margins is None:  # no scores (an annotated frame, no object yet): from the labels
                conf = self.confidence
                margins = np.where(self.masks, conf[None], -conf[None]).astype(np.float32)
            self._margins = margins
        return self._margins

    @property
    def masks(self) -> np.ndarray:
        """(N, H, W) bool, one per object id, in `object_ids` order (N = 0: (0, H, W))."""
        return self.labels[None] == np.asarray(self.object_ids, dtype=self.labels.dtype)[:, None, None]


@dataclass
class Predicted:
    """One batch through the model: what the memory needs now, and `finish` for the frame-size maps."""

    queries: torch.Tensor  # (B, 3, h, w) preprocessed frames: prompts once memorised
    small_labels: List[torch.Tensor]  # (h, w) object ids at model size, per frame
    mean_confidence: List[float]
    finish: Callable[[], List[Decoded]]  # per frame: labels at frame size, confidence and margins on demand
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
        refine = config.refine  # how scores reach frame size (`seggpt.decode`)
        self.decoding = Decoding(config.resize, refine.model_pixels if refine.enabled else None, refine.eps,
                                 refine.guide)
        self.zoom = config.zoom if config.zooms else None
        self.whereabouts: Dict[int, Optional[Whereabouts]] = {}  # the zoom's: per object, where it was last
        #: the annotated prompts made, by frame, for the annotations' version they were made from
        self._prompts: Dict[int, AnnotatedPrompt] = {}
        self._prompts_version = -1

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
        return lambda: [FrameResult(idx, d.labels, ids, d, frame) for (idx, frame), d in zip(batch, predicted.finish())]

    # ------------------------------------------------------------------ annotated frames
    def annotate(self, frame_idx: int, frame: np.ndarray) -> FrameResult:
        """An annotated frame reached by this pass: its annotated prompt is its result."""
        if self.annotations[frame_idx].frame is None:  # a source read once (an iterator, a live stream)
            self.annotations.keep_frame(frame_idx, frame)
        if self.annotations.corrects(frame_idx, self.reverse):
            self.memory.clear()  # predictions made with the mistake the user just corrected
        prompt = self.annotated_prompt(frame_idx)
        if self.zoom is not None:
            self._follow(prompt.full_labels, list(self.objects))
        labels = prompt.full_labels.copy()
        return FrameResult(frame_idx, labels, list(self.objects), Decoded(labels, prompt.confidence.copy()), frame)

    def annotated_prompt(self, frame_idx: int) -> AnnotatedPrompt:
        """The annotated prompt of `frame_idx` in this direction, made (with those before it) if not made since
        the annotations last changed."""
        if self._prompts_version != self.annotations.version:
            self._prompts.clear()
            self._prompts_version = self.annotations.version
        for a in self.annotations.side(frame_idx, self.reverse, include_t=True):
            if a not in self._prompts:
                self._prompts[a] = self._make_annotated_prompt(a)
        return self._prompts[frame_idx]

    def _annotated_prompts(self, t: int, include_t: bool) -> List[AnnotatedPrompt]:
        frames = self.annotations.conditioning(t, self.reverse, self.config.max_annotated, include_t)
        return [self.annotated_prompt(a) for a in frames]

    def _make_annotated_prompt(self, a: int) -> AnnotatedPrompt:
        """The user's masks on frame a over a prediction of the objects they do not mention; the one place an
        annotated frame is made ready for the model."""
        note = self.annotations[a]
        if note.frame is None:
            raise EngineError(f"frame {a} is annotated but was never read (an iterator source reads each frame "
                              "once: start the propagation at or before it)")
        image = self.predictor.preprocess_images([note.frame])[0]
        size = note.size
        before = self.objects.ordered(self.annotations.objects_at(a, self.reverse, include_t=False))
        prior = self._annotated_prompts(a, include_t=False)
        if before and prior:
            decoded, = self._predict(image[None], prior, before, size, [note.frame]).finish()
            labels, conf = decoded.labels, decoded.confidence
        else:
            labels, conf = np.zeros(size, np.int32), np.ones(size, np.float32)
        labels = labels.astype(label_dtype(list(self.objects)), copy=False)
        for o in note.given:
            labels[labels == o] = 0  # the user's mask is the whole of that object
        for o, m in note.given.items():
            labels[m] = o
            conf[m] = 1.0
        small = torch.from_numpy(self.predictor.resize_labels(labels)).to(image.device).long()
        return AnnotatedPrompt(a, image, small, labels, conf)

    # ------------------------------------------------------------------ the model
    def _predict(self, queries: torch.Tensor, prompts: Sequence[Union[Prompt, AnnotatedPrompt]],
                 active: List[int], size: Tuple[int, int], frames: Optional[Sequence[np.ndarray]] = None
                 ) -> Predicted:
        """Queries against prompts; labels at model size now, at frame size in `finish` (`seggpt.decode`: refined
        against `frames` when the engine's `refine` is on)."""
        b = queries.shape[0]
        if not active or not prompts:
            h, w = self.predictor.image_size
            empty = torch.zeros(h, w, dtype=torch.long, device=queries.device)
            return Predicted(queries, [empty] * b, [1.0] * b,
                             lambda: [Decoded(np.zeros(size, np.int32), np.ones(size, np.float32)) for _ in range(b)])
        cfg = self.config
        scores = self.predictor.scores(queries, torch.stack([p.image for p in prompts]),
                                       torch.stack([p.labels for p in prompts]), active,
                                       mode=cfg.objects, colors=cfg.colors, embedding_type=cfg.embedding_type,
                                       absent_prompts=cfg.absent_prompts)
        small_conf, small_idx = confidence(scores)
        ids = torch.tensor([0] + active, dtype=torch.long, device=queries.device)
        values = ids.to(torch.int32 if label_dtype([0] + active) == np.int32 else torch.int64)
        return Predicted(queries, list(ids[small_idx]), small_conf.flatten(1).mean(dim=1).tolist(),
                         functools.partial(self.decoding.finish, scores, small_conf, small_idx, values, size, frames))

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
            """The object's own score map (B, 1, h, w): the background's is never used, and resizing or refining
            treat each map alone, so leaving it out gives the same bits for less work (refining one map instead of
            two costs about a third less on a whole 854x480 frame)."""
            return predictor.scores(q, images, labels, [o], mode="separate", colors=cfg.colors,
                                    embedding_type=cfg.embedding_type, absent_prompts=cfg.absent_prompts)[:, 1:]

        def whole() -> torch.Tensor:  # the whole frame, as without zoom
            s = model_scores(queries, torch.stack([p.image for p in prompts]), torch.stack([p.labels for p in prompts]))
            return self.decoding.scores_at(s, size, frames)[:, 0]

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
        fg[:, y0:y1, x0:x1] = self.decoding.scores_at(s, (y1 - y0, x1 - x0), cut)[:, 0]
        missed = ~(fg > 0.5).flatten(1).any(dim=1)  # not the object anywhere in the crop
        if missed.any():
            fg[missed] = whole()[missed]
        return self._main_parts(fg)

    def _main_parts(self, fg: torch.Tensor) -> torch.Tensor:
        """`fg` (B, H, W) with the object's small stray parts set to 0 (`vos.engine.zoom.main_parts`)."""
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
        conf, best = confidence(scores)
        ids = torch.tensor([0] + active, dtype=torch.long, device=queries.device)
        dtype = label_dtype(list(self.objects))
        full = [ids[best[i]].cpu().numpy().astype(dtype) for i in range(b)]
        small = [torch.from_numpy(np.asarray(self.predictor.resize_labels(f), np.int64)).to(queries.device)
                 for f in full]
        # the scores are at frame size already: nothing left to resize (`Decoded` without a decoding)
        return Predicted(queries, small, conf.flatten(1).mean(dim=1).tolist(),
                         lambda: [Decoded(full[i], host(conf[i]).numpy(), host(scores[i]), [0] + active,
                                          device=scores.device) for i in range(b)], full)


__all__ = ["Tracker", "FrameResult", "Predicted"]
